"""Publication figures. Maps in µK_CMB; patch axes in pixels, as in the paper's figures.

Spectra are D_ℓ in µK² at the target band (217 GHz); residual RMS values in µK_CMB. Empty
bins (NaN) are drawn as gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from cenn.evaluate.metrics import as_line

if TYPE_CHECKING:
    from cenn.evaluate.analysis import PatchMaps

DATASET_LABELS = {
    "all": "All sky",
    "inner": r"$0^\circ<|b|<5^\circ$",
    "intermediate": r"$5^\circ<|b|<30^\circ$",
    "high": r"$30^\circ<|b|<90^\circ$",
}
METHOD_COLOURS = ("tab:red", "black", "tab:cyan", "tab:olive", "tab:gray", "gold", "teal", "navy")
CMB_COLOUR = "tab:blue"
FOREGROUNDS = {  # component name -> (legend label, colour)
    "dust": ("Thermal dust", "tab:orange"),
    "cib": ("CIB", "tab:green"),
    "point_sources": ("Point sources", "tab:pink"),
    "radio": ("Radio sources", "tab:pink"),
    "infrared_galaxies": ("IR galaxies", "palevioletred"),
    "tsz": ("tSZ", "tab:purple"),
    "noise": ("Noise", "tab:brown"),
}
ELL_LABEL = r"Multipole $\ell$"
DL_LABEL = r"$D_\ell$ [$\mu$K$^2$]"
UK_LABEL = r"$\mu$K$_{\rm CMB}$"
RMS_LABEL = r"Mean residual RMS [$\mu$K$_{\rm CMB}$]"
LOG_BAND_FLOOR = 1e-2  # lower edge of a band on a log axis, as a fraction of the mean
NO_NOISE_TEXT = "no noise test (datasets stored without component maps)"
FIG5_FLOOR_UK2 = 1e-3  # lower D_ℓ limit of Fig. 5: the tSZ null at 217 GHz would stretch the axis

Results = Mapping[str, Mapping[str, Mapping[str, Any]]]


def dataset_label(name: str) -> str:
    """Readable label of a dataset (its latitude range), falling back to the name itself."""
    return DATASET_LABELS.get(name, name)


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """Colour of each method, from a fixed cycle in the order the methods are given."""
    return {m: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, m in enumerate(methods)}


# --------------------------------------------------------------------------- helpers


def _save(fig: Figure, path: Path | str) -> Path:
    """Write ``fig`` to the PNG ``path`` (parents created), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_map(fig: Figure, ax: Axes, m: np.ndarray, cmap: str = "RdBu_r") -> None:
    """One patch (µK_CMB) on a symmetric colour scale of its own, with a colour bar."""
    lim = float(np.nanpercentile(np.abs(m), 99.5)) or 1.0
    im = ax.imshow(m, origin="lower", cmap=cmap, vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=UK_LABEL)


def _band(
    ax: Axes,
    ell: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    colour: str,
    label: str,
    linestyle: str = "-",
    log: bool = False,
) -> None:
    """A line with a shaded ±std band; on a log axis the band's lower edge stays positive."""
    ell, mean, std = (np.asarray(a, dtype=float) for a in (ell, mean, std))
    lower, upper = mean - std, mean + std
    if log:
        lower = np.maximum(lower, LOG_BAND_FLOOR * mean)
    ax.plot(ell, mean, color=colour, linestyle=linestyle, label=label, lw=1.4)
    ax.fill_between(ell, lower, upper, where=np.isfinite(lower) & np.isfinite(upper),
                    color=colour, alpha=0.2, lw=0)


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A small legend, only when something was labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **kwargs)


def _panel_grid(n: int, ncols: int = 2, size: tuple[float, float] = (5.6, 4.2)) -> tuple[Figure, list[Axes]]:
    """``n`` panels in rows of ``ncols`` (unused slots removed)."""
    ncols = max(1, min(n, ncols))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _column_pairs(n: int, height_ratios: Sequence[float]) -> tuple[Figure, np.ndarray]:
    """Two rows of panels sharing x within each of ``n`` columns."""
    return plt.subplots(
        2, max(n, 1), figsize=(5.2 * max(n, 1), 2.2 * sum(height_ratios) + 1.0), sharex="col",
        squeeze=False, gridspec_kw={"height_ratios": list(height_ratios)},
    )


def _plain_log(ax: Axes, which: str) -> None:
    """Log scale on the ``which`` ("x" or "y") axis, plain-number ticks at 1, 2, 5 × powers of ten."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _method_runs(results: Results, dataset: str) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(method, colour, results[method][dataset])`` for the methods that have ``dataset``."""
    colours = method_colours(list(results))
    return [(m, colours[m], per[dataset]) for m, per in results.items() if dataset in per]


def _spectrum_axis(ax: Axes, title: str | None = None, log: bool = False) -> None:
    """Multipole/D_ℓ labels, optional title and log y."""
    ax.set_xlabel(ELL_LABEL)
    ax.set_ylabel(DL_LABEL)
    if log:
        ax.set_yscale("log")
    if title is not None:
        ax.set_title(title)


# --------------------------------------------------------------------------- figures


def plot_patch_grid(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    column_titles: Sequence[str],
    path: Path | str,
    cmap: str = "RdBu_r",
) -> Path:
    """A grid of patches, one row per label, each map with its own colour bar (µK_CMB).

    Args:
        rows: ``(row label, [map (H, W) per column])``.
        column_titles: one title per column.
        path: PNG file to write.
    """
    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.6 * n_rows), squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for c, m in enumerate(maps):
            ax = axes[r, c]
            _draw_map(fig, ax, m, cmap)
            if r == 0:
                ax.set_title(column_titles[c])
            if c == 0:
                ax.set_ylabel(f"{label}\ny [pixel]")
            if r == n_rows - 1:
                ax.set_xlabel("x [pixel]")
    fig.tight_layout()
    return _save(fig, path)


def _map_titles(method: str) -> list[str]:
    """Column titles of the observed / label / output / residual maps."""
    return ["Observed 217 GHz", "CMB label", f"{method} output", "Residual (label − output)"]


def _map_row(maps: PatchMaps, method: str) -> list[np.ndarray]:
    """Observed map, CMB label, ``method`` output and residual (label − output), µK_CMB."""
    output = maps.outputs[method]
    return [maps.total, maps.target, output, maps.target - output]


def fig_patches(examples: Mapping[str, Mapping[str, PatchMaps]], method: str, path: Path | str) -> Path:
    """Fig. 1: one example patch per dataset — observed, label, ``method`` output, residual (µK_CMB)."""
    rows = [
        (f"{dataset_label(d)}\n$b$ = {ex['example'].lat:.1f}°", _map_row(ex["example"], method))
        for d, ex in examples.items()
    ]
    return plot_patch_grid(rows, _map_titles(method), path)


def fig_spectra(results: Results, datasets: Sequence[str], path: Path | str) -> Path:
    """Fig. 3: mean label and output D_ℓ (µK²) per dataset (top) and ΔD_ℓ = label − output (bottom)."""
    fig, axes = _column_pairs(len(datasets), (3, 1))
    for c, d in enumerate(datasets):
        top, bottom = axes[0, c], axes[1, c]
        runs = _method_runs(results, d)
        if runs:
            pb = runs[0][2]["per_bin"]
            _band(top, pb["ell"], pb["cmb_dl_mean"], pb["cmb_dl_std"], CMB_COLOUR, "CMB label")
        for m, colour, res in runs:
            pb = res["per_bin"]
            _band(top, pb["ell"], pb["output_dl_mean"], pb["output_dl_std"], colour, m)
            _band(bottom, pb["ell"], pb["delta_dl_mean"], pb["delta_dl_std"], colour, m)
        top.set_title(dataset_label(d))
        top.set_ylabel(DL_LABEL)
        bottom.axhline(0.0, color="grey", lw=0.8)
        bottom.set_xlabel(ELL_LABEL)
        bottom.set_ylabel(r"$\Delta D_\ell$ [$\mu$K$^2$]")
        _legend(top)
    fig.tight_layout()
    return _save(fig, path)


def fig_mean_residual_spectrum(results: Results, datasets: Sequence[str], path: Path | str) -> Path:
    """Fig. 4: D_ℓ (µK², log y) of the mean residual patch, one panel per dataset."""
    fig, axes = _panel_grid(len(datasets))
    for ax, d in zip(axes, datasets, strict=True):
        for m, colour, res in _method_runs(results, d):
            pb = res["per_bin"]
            _band(ax, pb["ell"], pb["mean_residual_patch_dl"], pb["mean_residual_patch_dl_std"], colour, m,
                  log=True)
        _spectrum_axis(ax, dataset_label(d), log=True)
        _legend(ax)
    fig.tight_layout()
    return _save(fig, path)


def _foreground_bands(ax: Axes, summary: Mapping[str, Any]) -> None:
    """Dashed mean ± std D_ℓ (µK², log y) of each foreground at the target band."""
    comps = summary.get("component_dl", {})
    names = [n for n in FOREGROUNDS if n in comps]
    if "point_sources" in names:
        names = [n for n in names if n not in ("radio", "infrared_galaxies")]
    for name in names:
        label, colour = FOREGROUNDS[name]
        _band(ax, summary["ell"], comps[name]["mean"], comps[name]["std"], colour, label, "--", log=True)


def fig_residual_vs_foregrounds(
    results: Results, datasets_summary: Mapping[str, Mapping[str, Any]], datasets: Sequence[str],
    path: Path | str,
) -> Path:
    """Fig. 5: mean residual D_ℓ per method against the CMB and the foregrounds at 217 GHz (µK², log y)."""
    fig, axes = _panel_grid(len(datasets), size=(6.4, 4.8))
    for ax, d in zip(axes, datasets, strict=True):
        for m, colour, res in _method_runs(results, d):
            pb = res["per_bin"]
            _band(ax, pb["ell"], pb["residual_dl_mean"], pb["residual_dl_std"], colour, f"{m} residual",
                  log=True)
        summary = datasets_summary.get(d)
        if summary is not None:
            ell = np.asarray(summary["ell"], dtype=float)
            ax.plot(ell, summary["cmb_dl_mean"], color=CMB_COLOUR, ls="--", lw=1.4, label="CMB label")
            _foreground_bands(ax, summary)
        _spectrum_axis(ax, dataset_label(d), log=True)
        ax.set_ylim(bottom=max(ax.get_ylim()[0], FIG5_FLOOR_UK2))
        _legend(ax, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def _contaminated_spectra(axes: Sequence[Axes], contaminated: Mapping[str, Mapping[str, Any]]) -> None:
    """Label/output D_ℓ, ΔD_ℓ and residual D_ℓ (µK²) of one patch, bands = mode scatter per bin."""
    colours = method_colours(list(contaminated))
    top, middle, bottom = axes
    first = next(iter(contaminated.values()))["per_bin"]
    _band(top, first["ell"], first["cmb_dl"], first["cmb_dl_std"], CMB_COLOUR, "CMB label")
    for m, info in contaminated.items():
        pb, colour = info["per_bin"], colours[m]
        cmb, out = np.asarray(pb["cmb_dl"], float), np.asarray(pb["output_dl"], float)
        _band(top, pb["ell"], out, pb["output_dl_std"], colour, m)
        _band(middle, pb["ell"], cmb - out, np.hypot(pb["cmb_dl_std"], pb["output_dl_std"]), colour, m)
        _band(bottom, pb["ell"], pb["residual_dl"], pb["residual_dl_std"], colour, m, log=True)
    middle.axhline(0.0, color="grey", lw=0.8)
    top.set_ylabel(DL_LABEL)
    middle.set_ylabel(r"$\Delta D_\ell$ [$\mu$K$^2$]")
    _spectrum_axis(bottom, log=True)
    bottom.set_ylabel(r"Residual $D_\ell$ [$\mu$K$^2$]")
    _legend(top)


def fig_contaminated_patch(
    maps: PatchMaps, contaminated: Mapping[str, Mapping[str, Any]], path: Path | str
) -> Path:
    """Fig. 6: a patch with strong small-scale contamination — maps (µK_CMB) and spectra (µK²)."""
    first = next(iter(contaminated))
    info = contaminated[first]
    fig = plt.figure(figsize=(15, 11))
    fig.suptitle(
        f"Patch {maps.index}: $(l, b)$ = ({maps.lon:.1f}°, {maps.lat:.1f}°); {first} residual "
        f"{info['residual_mean_uk']:.2f} ± {info['residual_std_uk']:.2f} µK"
    )
    outer = fig.add_gridspec(2, 1, height_ratios=[0.8, 1.8], hspace=0.15, left=0.07, right=0.96, top=0.94,
                             bottom=0.06)
    top = outer[0].subgridspec(1, 4, wspace=0.45)
    for i, (m, title) in enumerate(zip(_map_row(maps, first), _map_titles(first), strict=True)):
        ax = fig.add_subplot(top[i])
        _draw_map(fig, ax, m)
        ax.set_title(title)
        ax.set_xlabel("x [pixel]")
    bottom = outer[1].subgridspec(3, 1, height_ratios=[2, 1, 1], hspace=0.08)
    spectra = [fig.add_subplot(bottom[0])]
    spectra += [fig.add_subplot(bottom[i], sharex=spectra[0]) for i in (1, 2)]
    for ax in spectra[:2]:
        ax.tick_params(labelbottom=False)
    _contaminated_spectra(spectra, contaminated)
    return _save(fig, path)


def fig_transfer(results: Results, datasets: Sequence[str], path: Path | str) -> Path:
    """Transfer function t_ℓ with its standard error (top; dotted: the response to an injected CMB)
    and correlation r_ℓ (bottom) per dataset and method."""
    fig, axes = _column_pairs(len(datasets), (1, 1))
    for c, d in enumerate(datasets):
        for row, (key, label) in enumerate((("transfer", r"$t_\ell$"), ("correlation", r"$r_\ell$"))):
            ax = axes[row, c]
            for m, colour, res in _method_runs(results, d):
                pb = res["per_bin"]
                ax.plot(pb["ell"], pb[key], color=colour, label=m, lw=1.4)
                if key == "transfer" and pb.get("transfer_error") is not None:
                    line, err = as_line(pb["transfer"]), as_line(pb["transfer_error"])
                    ax.fill_between(pb["ell"], line - err, line + err, color=colour, alpha=0.2, lw=0)
                    ax.plot(pb["ell"], as_line(pb["response_transfer"]), color=colour, ls=":", lw=1.2)
            ax.axhline(1.0, color="grey", ls="--", lw=0.8)
            ax.set_ylabel(label)
        axes[0, c].set_title(dataset_label(d))
        axes[1, c].set_xlabel(ELL_LABEL)
        _legend(axes[0, c])
    fig.tight_layout()
    return _save(fig, path)


def _log_bins(arrays: Sequence[np.ndarray], n: int = 30) -> np.ndarray | None:
    """``n`` log-spaced bin edges covering the positive finite values (None when there are none)."""
    values = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.empty(0)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    return np.geomspace(lo / 1.05, hi * 1.05, n + 1)


def fig_residual_rms(
    residual_rms: Mapping[str, Mapping[str, np.ndarray]], datasets: Sequence[str], path: Path | str
) -> Path:
    """Histogram (log x) of the per-patch residual RMS (µK_CMB), one panel per dataset."""
    colours = method_colours(list(residual_rms))
    fig, axes = _panel_grid(len(datasets))
    for ax, d in zip(axes, datasets, strict=True):
        per_method = {m: np.asarray(v[d], dtype=float) for m, v in residual_rms.items() if d in v}
        bins = _log_bins(list(per_method.values()))
        if bins is not None:
            for m, values in per_method.items():
                ax.hist(values[np.isfinite(values)], bins=bins, histtype="step", color=colours[m], label=m)
        _plain_log(ax, "x")
        ax.set_xlabel(r"Residual RMS [$\mu$K$_{\rm CMB}$]")
        ax.set_ylabel("Patches")
        ax.set_title(dataset_label(d))
        _legend(ax)
    fig.tight_layout()
    return _save(fig, path)


def _dust_bin_label(lo: float, hi: float) -> str:
    """Label of a dust-brightness bin in µK, e.g. ``"30–100"`` or ``"> 300"``."""
    return f"> {lo:g}" if math.isinf(hi) else f"{lo:g}–{hi:g}"


def _dust_rms(by_dust: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Mean residual RMS (µK_CMB) per dust bin, NaN for empty bins."""
    return np.array(
        [b["residual_rms_mean_uk"] if b.get("n_patches", 0) > 0 else np.nan for b in by_dust], dtype=float
    )


def _line_panels(
    datasets: Sequence[str], draw: Callable[[Axes, str], None], xlabel: str, path: Path | str
) -> Path:
    """One log-y panel per dataset of mean residual RMS (µK_CMB); ``draw(ax, dataset)`` plots the lines."""
    fig, axes = _panel_grid(len(datasets))
    for ax, d in zip(axes, datasets, strict=True):
        draw(ax, d)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(RMS_LABEL)
        ax.set_title(dataset_label(d))
        _legend(ax)
    fig.tight_layout()
    return _save(fig, path)


def fig_by_dust(results: Results, datasets: Sequence[str], path: Path | str, dust_band: str = "353") -> Path:
    """Mean residual RMS (µK_CMB, log y) against the dust-brightness bin (RMS of the dust map at
    ``dust_band`` GHz, µK), empty bins skipped."""

    def draw(ax: Axes, d: str) -> None:
        runs = _method_runs(results, d)
        if not runs:
            return
        edges = runs[0][2]["by_dust"]
        x = np.arange(len(edges))
        for m, colour, res in runs:
            rms = _dust_rms(res["by_dust"])
            filled = np.isfinite(rms)
            ax.plot(x[filled], rms[filled], "o-", color=colour, label=m)
        ax.set_xticks(x, [_dust_bin_label(b["lo_uk"], b["hi_uk"]) for b in edges], rotation=30)
        _plain_log(ax, "y")

    return _line_panels(datasets, draw, rf"Dust RMS at {dust_band} GHz [$\mu$K$_{{\rm CMB}}$]", path)


def fig_noise(results: Results, datasets: Sequence[str], path: Path | str) -> Path:
    """Mean residual RMS (µK_CMB, log y) against the noise factor; a note where no noise test was run."""

    def draw(ax: Axes, d: str) -> None:
        runs = [(m, c, res["noise"]) for m, c, res in _method_runs(results, d) if res.get("noise")]
        if not runs:
            ax.text(0.5, 0.5, NO_NOISE_TEXT, ha="center", va="center", transform=ax.transAxes, wrap=True)
            ax.set_xticks([])
            ax.set_yticks([])
            return
        factors: set[float] = set()
        for m, colour, noise in runs:
            keys = sorted(noise, key=float)
            factors.update(float(k) for k in keys)
            rms = [noise[k].get("residual_rms_mean_uk", np.nan) for k in keys]
            ax.plot([float(k) for k in keys], np.asarray(rms, dtype=float), "o-", color=colour, label=m)
        ax.set_xticks(sorted(factors))
        _plain_log(ax, "y")

    return _line_panels(datasets, draw, "Noise factor", path)


NO_SIGMA_TEXT = "no method states a σ on this dataset"


def fig_reliability(results: Results, datasets: Sequence[str], path: Path | str) -> Path:
    """Reliability diagram, one panel per dataset: the observed fraction of pixels with
    |residual| < z_p σ against the nominal probability p, for each method with a ``calibration``
    entry (open squares: the 1σ and 2σ coverage); the diagonal is a calibrated σ."""
    fig, axes = _panel_grid(len(datasets), size=(4.6, 4.4))
    for ax, d in zip(axes, datasets, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="calibrated")
        runs = [(m, c, r["calibration"]) for m, c, r in _method_runs(results, d) if r.get("calibration")]
        for m, colour, cal in runs:
            rel = cal["reliability"]
            ax.plot(rel["nominal"], as_line(rel["observed"]), "o-", color=colour, label=m, ms=4)
            cov = cal["coverage"]
            ax.plot([cov["expected_1sigma"], cov["expected_2sigma"]],
                    as_line([cov["1sigma"], cov["2sigma"]]), "s", color=colour, mfc="none", ms=6)
        if not runs:
            ax.text(0.5, 0.3, NO_SIGMA_TEXT, ha="center", va="center", transform=ax.transAxes, wrap=True)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("Nominal coverage $p$")
        ax.set_ylabel(r"Observed fraction with $|r| < z_p\,\sigma$")
        ax.set_title(dataset_label(d))
        _legend(ax, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def fig_polarization_spectra(polarization: Mapping[str, Any], path: Path | str,
                             ell_max: float = 3000.0) -> Path:
    """EE (top) and pure BB (bottom) D_ℓ (µK², log y) per dataset with Q and U, up to ``ell_max``:
    the CMB label's (band: standard deviation over patches), each method's output (solid) and
    residual (dashed), and in BB the lensing BB the estimator gives on average (dotted)."""
    datasets = list(polarization["datasets"])
    fig, axes = _column_pairs(len(datasets), (1, 1))
    colours = method_colours(list(polarization["results"]))
    for c, d in enumerate(datasets):
        info = polarization["datasets"][d]
        ell = as_line(info["ell"])
        keep = ell < ell_max

        def line(values: Sequence[float | None], keep: np.ndarray = keep) -> np.ndarray:
            return as_line(values)[keep]

        for row, spectrum in enumerate(("ee", "bb")):
            ax = axes[row, c]
            _band(ax, ell[keep], line(info[f"{spectrum}_dl_mean"]), line(info[f"{spectrum}_dl_std"]),
                  CMB_COLOUR, "CMB label", log=True)
            if spectrum == "bb":
                ax.plot(ell[keep], line(info["lensing_bb_dl"]), color="grey", linestyle=":",
                        label="lensing BB (model)")
            for m, per_dataset in polarization["results"].items():
                if d not in per_dataset:
                    continue
                pb = per_dataset[d]["per_bin"]
                ax.plot(ell[keep], line(pb[f"{spectrum}_output_dl_mean"]), color=colours[m], label=m)
                ax.plot(ell[keep], line(pb[f"{spectrum}_residual_dl_mean"]), color=colours[m],
                        linestyle="--", label=f"{m} residual")
            ax.set_yscale("log")
            ax.set_ylabel(rf"$D_\ell^{{{spectrum.upper()}}}$ [$\mu$K$^2$]")
            _legend(ax)
        axes[0, c].set_title(dataset_label(d))
        axes[1, c].set_xlabel(ELL_LABEL)
    fig.tight_layout()
    return _save(fig, path)
