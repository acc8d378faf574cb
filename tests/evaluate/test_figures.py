"""Publication figures: every function writes the PNG of a figure that plots its inputs' numbers
(lines, images, histograms, labels and titles read back from the matplotlib objects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cenn.evaluate import figures
from cenn.evaluate.analysis import PatchMaps

METHODS = ("cenn", "ilc")
DATASETS = ("inner", "north-cap")  # a labelled dataset and one that falls back to its name
N_BINS = 20
NPIX = 32


def _per_bin(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-bin statistics of one method on one dataset (D_ℓ in µK²), with an empty (NaN) bin."""
    ell = np.linspace(50.0, 3000.0, N_BINS)
    cmb = 3000.0 * np.exp(-ell / 1500.0) + 10.0
    out = cmb * rng.uniform(0.8, 1.0, N_BINS)
    res = 5.0 + rng.uniform(0.0, 20.0, N_BINS)
    pb = {
        "ell": ell,
        "cmb_dl_mean": cmb, "cmb_dl_std": 0.1 * cmb,
        "output_dl_mean": out, "output_dl_std": 0.1 * out,
        "delta_dl_mean": cmb - out, "delta_dl_std": 0.05 * cmb,
        "residual_dl_mean": res, "residual_dl_std": 2.0 * res,
        "mean_residual_patch_dl": 0.1 * res, "mean_residual_patch_dl_std": 0.3 * res,
        "transfer": out / cmb, "correlation": rng.uniform(0.9, 1.0, N_BINS),
    }
    for values in pb.values():
        values[3] = np.nan
    return pb


def _contaminated(rng: np.random.Generator) -> dict:
    """Single-patch spectra of a contaminated patch (µK²)."""
    pb = _per_bin(rng)
    single = {"ell": pb["ell"]}
    for key in ("cmb", "output", "residual"):
        single[f"{key}_dl"] = pb[f"{key}_dl_mean"]
        single[f"{key}_dl_std"] = pb[f"{key}_dl_std"]
    return {"index": 7, "lat_deg": 3.2, "lon_deg": 120.0, "residual_mean_uk": 0.4, "residual_std_uk": 12.0,
            "per_bin": single}


def _by_dust(rng: np.random.Generator) -> list[dict]:
    """Dust bins, two of them empty, the last one open-ended."""
    edges = [(0.0, 30.0), (30.0, 100.0), (100.0, 300.0), (300.0, np.inf)]
    bins = []
    for i, (lo, hi) in enumerate(edges):
        n = 0 if i in (1, 3) else 5
        entry = {"lo_uk": lo, "hi_uk": hi, "n_patches": n}
        if n:
            entry["residual_rms_mean_uk"] = float(rng.uniform(5.0, 50.0))
        bins.append(entry)
    return bins


def _noise(rng: np.random.Generator) -> dict:
    """Noise test at factors 1, 5, 10."""
    ranges = {"low": {"mean": 1.0, "std": 0.5}, "high": {"mean": None, "std": None}}
    return {f: {"n_patches": 5, "residual_rms_mean_uk": float(rng.uniform(5.0, 50.0)) * float(f),
                "residual_dl": ranges, "delta_dl": ranges} for f in ("1", "5", "10")}


@pytest.fixture(scope="module")
def inputs() -> dict:
    """Synthetic results, dataset summaries, example maps and residual RMS for 2 methods × 2 datasets."""
    rng = np.random.default_rng(0)
    results = {
        m: {d: {"per_bin": _per_bin(rng), "contaminated_patch": _contaminated(rng), "by_dust": _by_dust(rng),
                "noise": _noise(rng) if m == "cenn" else {}} for d in DATASETS}
        for m in METHODS
    }
    summary = {}
    for d in DATASETS:
        ell = results["cenn"][d]["per_bin"]["ell"]
        comps = {n: {"mean": s * np.exp(-ell / 2000.0), "std": 0.3 * s * np.exp(-ell / 2000.0)}
                 for n, s in (("dust", 500.0), ("cib", 50.0), ("radio", 5.0), ("infrared_galaxies", 8.0),
                              ("noise", 20.0))}
        summary[d] = {"ell": ell, "cmb_dl_mean": results["cenn"][d]["per_bin"]["cmb_dl_mean"],
                      "component_dl": comps}

    def patch(lat: float) -> PatchMaps:
        target = rng.normal(0.0, 100.0, (NPIX, NPIX))
        return PatchMaps(index=7, lat=lat, lon=120.0, total=target + rng.normal(0.0, 300.0, (NPIX, NPIX)),
                         target=target, outputs={m: target + rng.normal(0.0, 10.0, (NPIX, NPIX))
                                                 for m in METHODS})

    examples = {d: {"example": patch(10.0 * i), "contaminated": patch(-3.0)} for i, d in enumerate(DATASETS)}
    rms = {m: {d: rng.lognormal(2.0, 0.5, 50) for d in DATASETS} for m in METHODS}
    return {"results": results, "summary": summary, "examples": examples, "rms": rms}


def _assert_png(path: Path, fig: Figure) -> None:
    """The file is the PNG of ``fig``: its signature and the figure's size in pixels at 110 dpi."""
    data = Path(path).read_bytes()
    assert data.startswith(b"\x89PNG")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == tuple(round(v * 110) for v in fig.get_size_inches())


def _lines(ax: Axes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The labelled lines of ``ax``: label -> (x, y) as drawn."""
    return {line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
            for line in ax.get_lines() if not line.get_label().startswith("_")}


def _same(a, b) -> None:
    np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float))


def _panels(fig: Figure) -> list[Axes]:
    """The data panels (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _fewer(results: dict, method: str = "ilc", dataset: str = DATASETS[0]) -> dict:
    """Results of one method on one dataset ("ilc" has no noise test)."""
    return {method: {dataset: results[method][dataset]}}


def test_dataset_label_falls_back_to_name() -> None:
    assert figures.dataset_label("all") == "All sky"
    assert "5^\\circ" in figures.dataset_label("inner")
    assert figures.dataset_label("north-cap") == "north-cap"


def test_method_colours_deterministic_and_distinct() -> None:
    methods = ["cenn", "target-band", "ilc", "nilc", "wiener"]
    colours = figures.method_colours(methods)
    assert colours == figures.method_colours(methods)
    assert len(set(colours.values())) == len(methods)
    assert figures.method_colours(methods[:2]) == {m: colours[m] for m in methods[:2]}


def test_plot_patch_grid_draws_each_map_on_its_own_symmetric_scale(tmp_path: Path, drawn) -> None:
    maps = [np.zeros((8, 8)), np.arange(64.0).reshape(8, 8) - 20.0]
    out = figures.plot_patch_grid([("row", maps)], ["a", "b"], tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png"
    (fig,) = drawn.values()
    _assert_png(out, fig)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    assert panels[0].get_ylabel() == "row\ny [pixel]" and panels[1].get_xlabel() == "x [pixel]"
    for ax, m in zip(panels, maps, strict=True):
        (image,) = ax.get_images()
        _same(image.get_array(), m)
    assert panels[0].get_images()[0].get_clim() == (-1.0, 1.0)  # an all-zero map: the unit scale
    lim = float(np.percentile(np.abs(maps[1]), 99.5))
    assert panels[1].get_images()[0].get_clim() == pytest.approx((-lim, lim))


def test_fig_patches(inputs: dict, tmp_path: Path, drawn) -> None:
    """One row per dataset: observed, label, output and label − output of its example patch."""
    out = figures.fig_patches(inputs["examples"], "cenn", tmp_path / "a" / "patches.png")
    one = {DATASETS[0]: inputs["examples"][DATASETS[0]]}
    figures.fig_patches(one, "cenn", tmp_path / "patches1.png")
    full, fewer = drawn.values()
    _assert_png(out, full)
    assert len(_panels(full)) == 8 and len(_panels(fewer)) == 4
    for row, d in enumerate(DATASETS):
        ex = inputs["examples"][d]["example"]
        panels = _panels(full)[4 * row:4 * row + 4]
        for ax, m in zip(panels, [ex.total, ex.target, ex.outputs["cenn"], ex.target - ex.outputs["cenn"]],
                         strict=True):
            _same(ax.get_images()[0].get_array(), m)
        assert panels[0].get_ylabel().startswith(figures.dataset_label(d))
        assert f"$b$ = {ex.lat:.1f}°" in panels[0].get_ylabel()
    assert [ax.get_title() for ax in _panels(full)[:4]] == [
        "Observed 217 GHz", "CMB label", "cenn output", "Residual (label − output)"]


def _check_spectra(fig: Figure, results: dict, datasets, methods) -> None:
    axes = np.array(fig.axes).reshape(2, len(datasets))
    for c, d in enumerate(datasets):
        top, bottom = _lines(axes[0, c]), _lines(axes[1, c])
        assert axes[0, c].get_title() == figures.dataset_label(d)
        assert set(top) == {"CMB label", *methods} and set(bottom) == set(methods)
        _same(top["CMB label"][1], results[methods[0]][d]["per_bin"]["cmb_dl_mean"])
        for m in methods:
            pb = results[m][d]["per_bin"]
            _same(top[m][0], pb["ell"])
            _same(top[m][1], pb["output_dl_mean"])
            _same(bottom[m][1], pb["delta_dl_mean"])


def _check_mean_residual(fig: Figure, results: dict, datasets, methods) -> None:
    for ax, d in zip(fig.axes, datasets, strict=True):
        lines = _lines(ax)
        assert set(lines) == set(methods) and ax.get_yscale() == "log"
        for m in methods:
            _same(lines[m][1], results[m][d]["per_bin"]["mean_residual_patch_dl"])


def _check_transfer(fig: Figure, results: dict, datasets, methods) -> None:
    axes = np.array(fig.axes).reshape(2, len(datasets))
    for c, d in enumerate(datasets):
        for row, key in enumerate(("transfer", "correlation")):
            lines = _lines(axes[row, c])
            assert set(lines) == set(methods)
            for m in methods:
                _same(lines[m][1], results[m][d]["per_bin"][key])


def _check_by_dust(fig: Figure, results: dict, datasets, methods) -> None:
    for ax, d in zip(fig.axes, datasets, strict=True):
        lines = _lines(ax)
        assert set(lines) == set(methods)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0–30", "30–100", "100–300", "> 300"]
        for m in methods:
            bins = results[m][d]["by_dust"]
            _same(lines[m][0], [0, 2])  # the empty bins 1 and 3 skipped
            _same(lines[m][1], [bins[0]["residual_rms_mean_uk"], bins[2]["residual_rms_mean_uk"]])


def _check_noise(fig: Figure, results: dict, datasets, methods) -> None:
    for ax, d in zip(fig.axes, datasets, strict=True):
        lines = _lines(ax)
        with_noise = [m for m in methods if results[m][d].get("noise")]
        assert set(lines) == set(with_noise)
        for m in with_noise:
            _same(lines[m][0], [1, 5, 10])
            _same(lines[m][1], [results[m][d]["noise"][f]["residual_rms_mean_uk"] for f in ("1", "5", "10")])
        notes = [t.get_text() for t in ax.texts]
        assert notes == ([] if with_noise else [figures.NO_NOISE_TEXT])


CHECKS = {"fig_spectra": _check_spectra, "fig_mean_residual_spectrum": _check_mean_residual,
          "fig_transfer": _check_transfer, "fig_by_dust": _check_by_dust, "fig_noise": _check_noise}


@pytest.mark.parametrize("name", list(CHECKS))
def test_result_figures_plot_each_method_on_each_dataset(inputs: dict, tmp_path: Path, drawn,
                                                         name: str) -> None:
    """Both methods on both datasets, and one method on one dataset (for fig_noise: the no-noise
    note): each panel holds the lines of its dataset's numbers, no more, no fewer."""
    fn = getattr(figures, name)
    out = fn(inputs["results"], list(DATASETS), tmp_path / "new" / f"{name}.png")
    fewer = _fewer(inputs["results"])
    fn(fewer, DATASETS[:1], tmp_path / f"{name}_fewer.png")
    full, one = drawn.values()
    _assert_png(out, full)
    CHECKS[name](full, inputs["results"], DATASETS, METHODS)
    CHECKS[name](one, fewer, DATASETS[:1], ("ilc",))


def test_fig_residual_vs_foregrounds(inputs: dict, tmp_path: Path, drawn) -> None:
    """Radio and IR galaxies drawn separately vs merged point sources with fewer methods and datasets."""
    results, summary = inputs["results"], inputs["summary"]
    out = figures.fig_residual_vs_foregrounds(results, summary, list(DATASETS), tmp_path / "f.png")
    merged = {d: {**s, "component_dl": {**s["component_dl"], "point_sources": s["component_dl"]["radio"]}}
              for d, s in summary.items()}
    figures.fig_residual_vs_foregrounds(_fewer(results), merged, DATASETS[:1], tmp_path / "p.png")
    full, fewer = drawn.values()
    _assert_png(out, full)
    names = ("dust", "cib", "radio", "infrared_galaxies", "noise")
    for ax, d in zip(full.axes, DATASETS, strict=True):
        lines = _lines(ax)
        assert set(lines) == {"cenn residual", "ilc residual", "CMB label",
                              *(figures.FOREGROUNDS[n][0] for n in names)}
        for m in METHODS:
            _same(lines[f"{m} residual"][1], results[m][d]["per_bin"]["residual_dl_mean"])
        for n in names:
            _same(lines[figures.FOREGROUNDS[n][0]][1], summary[d]["component_dl"][n]["mean"])
        _same(lines["CMB label"][1], summary[d]["cmb_dl_mean"])
        assert ax.get_yscale() == "log" and ax.get_ylim()[0] >= figures.FIG5_FLOOR_UK2
    (ax,) = fewer.axes
    assert set(_lines(ax)) == {"ilc residual", "CMB label", "Thermal dust", "CIB", "Point sources", "Noise"}


def test_fig_contaminated_patch(inputs: dict, tmp_path: Path, drawn) -> None:
    maps = inputs["examples"]["inner"]["contaminated"]
    contaminated = {m: inputs["results"][m]["inner"]["contaminated_patch"] for m in METHODS}
    out = figures.fig_contaminated_patch(maps, contaminated, tmp_path / "c" / "c.png")
    figures.fig_contaminated_patch(maps, {"ilc": contaminated["ilc"]}, tmp_path / "c1.png")
    both, one = drawn.values()
    _assert_png(out, both)
    assert both._suptitle.get_text() == "Patch 7: $(l, b)$ = (120.0°, -3.0°); cenn residual 0.40 ± 12.00 µK"
    assert one._suptitle.get_text().endswith("ilc residual 0.40 ± 12.00 µK")
    panels = _panels(both)
    for ax, m in zip(panels[:4], [maps.total, maps.target, maps.outputs["cenn"],
                                  maps.target - maps.outputs["cenn"]], strict=True):
        _same(ax.get_images()[0].get_array(), m)
    top, middle, bottom = (_lines(ax) for ax in panels[4:])
    assert set(top) == {"CMB label", *METHODS} and set(_lines(_panels(one)[4])) == {"CMB label", "ilc"}
    for m in METHODS:
        pb = contaminated[m]["per_bin"]
        _same(top[m][1], pb["output_dl"])
        _same(middle[m][1], np.asarray(pb["cmb_dl"]) - np.asarray(pb["output_dl"]))
        _same(bottom[m][1], pb["residual_dl"])


def test_fig_residual_rms(inputs: dict, tmp_path: Path, drawn) -> None:
    """Step histograms whose counts are the patches' RMS binned on shared log bins."""
    rms = inputs["rms"]
    out = figures.fig_residual_rms(rms, list(DATASETS), tmp_path / "r" / "rms.png")
    fewer = {"cenn": {DATASETS[0]: rms["cenn"][DATASETS[0]]}}
    figures.fig_residual_rms(fewer, DATASETS[:1], tmp_path / "r1.png")
    full, one = drawn.values()
    _assert_png(out, full)
    for ax, d in zip(full.axes, DATASETS, strict=True):
        values = np.concatenate([rms[m][d] for m in METHODS])
        bins = np.geomspace(values.min() / 1.05, values.max() * 1.05, 31)
        steps = {p.get_label(): p.get_xy() for p in ax.patches}
        assert set(steps) == set(METHODS) and ax.get_xscale() == "log" and ax.get_ylabel() == "Patches"
        for m in METHODS:
            _same(steps[m][1:-1:2, 1], np.histogram(rms[m][d], bins=bins)[0])
            assert steps[m][1:-1:2, 1].sum() == 50
    assert [p.get_label() for p in one.axes[0].patches] == ["cenn"]
