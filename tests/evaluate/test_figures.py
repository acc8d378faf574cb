"""Publication figures: every function writes a valid, non-trivial PNG that depends on its inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def _assert_png(path: Path) -> bytes:
    """The file exists, is a PNG and is more than a few kB; returns its bytes."""
    data = Path(path).read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 5_000
    return data


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


def test_plot_patch_grid_still_works(tmp_path: Path) -> None:
    maps = [np.zeros((8, 8)), np.arange(64.0).reshape(8, 8)]
    out = figures.plot_patch_grid([("row", maps)], ["a", "b"], tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png"
    _assert_png(out)


def test_fig_patches(inputs: dict, tmp_path: Path) -> None:
    full = _assert_png(figures.fig_patches(inputs["examples"], "cenn", tmp_path / "a" / "patches.png"))
    one = {DATASETS[0]: inputs["examples"][DATASETS[0]]}
    assert _assert_png(figures.fig_patches(one, "cenn", tmp_path / "patches1.png")) != full


@pytest.mark.parametrize(
    "name", ["fig_spectra", "fig_mean_residual_spectrum", "fig_transfer", "fig_by_dust", "fig_noise"]
)
def test_result_figures_depend_on_methods_and_datasets(inputs: dict, tmp_path: Path, name: str) -> None:
    """Both methods on both datasets vs one method on one dataset (for fig_noise: the no-noise note)."""
    fn = getattr(figures, name)
    full = _assert_png(fn(inputs["results"], list(DATASETS), tmp_path / "new" / f"{name}.png"))
    fewer = _assert_png(fn(_fewer(inputs["results"]), DATASETS[:1], tmp_path / f"{name}_fewer.png"))
    assert full != fewer


def test_fig_residual_vs_foregrounds(inputs: dict, tmp_path: Path) -> None:
    """Radio and IR galaxies drawn separately vs merged point sources with fewer methods and datasets."""
    results, summary = inputs["results"], inputs["summary"]
    full = figures.fig_residual_vs_foregrounds(results, summary, list(DATASETS), tmp_path / "f.png")
    merged = {d: {**s, "component_dl": {**s["component_dl"], "point_sources": s["component_dl"]["radio"]}}
              for d, s in summary.items()}
    fewer = figures.fig_residual_vs_foregrounds(_fewer(results), merged, DATASETS[:1], tmp_path / "p.png")
    assert _assert_png(fewer) != _assert_png(full)


def test_fig_contaminated_patch(inputs: dict, tmp_path: Path) -> None:
    maps = inputs["examples"]["inner"]["contaminated"]
    contaminated = {m: inputs["results"][m]["inner"]["contaminated_patch"] for m in METHODS}
    both = _assert_png(figures.fig_contaminated_patch(maps, contaminated, tmp_path / "c" / "c.png"))
    one = _assert_png(figures.fig_contaminated_patch(maps, {"ilc": contaminated["ilc"]}, tmp_path / "c1.png"))
    assert both != one


def test_fig_residual_rms(inputs: dict, tmp_path: Path) -> None:
    rms = inputs["rms"]
    full = _assert_png(figures.fig_residual_rms(rms, list(DATASETS), tmp_path / "r" / "rms.png"))
    fewer = {"cenn": {DATASETS[0]: rms["cenn"][DATASETS[0]]}}
    assert _assert_png(figures.fig_residual_rms(fewer, DATASETS[:1], tmp_path / "r1.png")) != full
