"""The report folder of ``cenn evaluate``: ``metrics.json``, CSV tables, the paper's figures and
``report.md`` / ``report.html`` with the paper's published numbers beside ours.

The folder is written under a temporary name beside it and renamed into place at the end, so a
reader never sees a half-written report; it is marked as cenn's (:mod:`cenn.outputs`), and
``overwrite`` only ever replaces such a report folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cenn._version import __version__
from cenn.config import dumps_toml
from cenn.evaluate import figures
from cenn.evaluate.analysis import DatasetEvaluation
from cenn.evaluate.calibration import calibrated, csv_tables
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.cross_sky import cross_sky, cross_sky_table
from cenn.evaluate.document import Document, markdown_table
from cenn.evaluate.half_split import half_split_csv, half_split_entries
from cenn.evaluate.labels import dataset_text
from cenn.evaluate.labels import fmt as _fmt
from cenn.evaluate.metrics import jsonable
from cenn.evaluate.overview import add_settings, summary_text
from cenn.evaluate.polarization_report import FIGURE, add_polarization_section, polarization_tables
from cenn.evaluate.polarization_summary import polarization_metrics
from cenn.evaluate.summary import (
    HEADLINE_ELL_RANGE,
    SCHEMA,
    dataset_summary,
    headline_figures,
    method_summary,
)
from cenn.io.atomic import discard, temporary_path
from cenn.outputs import Inputs, check_output, clear_stale, mark, publish

PER_BIN_COLUMNS = (
    "ell", "cmb_dl_mean", "cmb_dl_std", "output_dl_mean", "output_dl_std", "delta_dl_mean",
    "delta_dl_std", "residual_dl_mean", "residual_dl_std", "mean_residual_patch_dl",
    "mean_residual_patch_dl_std", "transfer", "transfer_error", "response_transfer", "correlation",
)


def paper_results() -> dict[str, Any]:
    """The paper's published numbers (``evaluate/data/paper_results.toml``)."""
    text = resources.files("cenn.evaluate").joinpath("data/paper_results.toml").read_text()
    return tomllib.loads(text)


def build_metrics(evaluations: Sequence[DatasetEvaluation], methods: dict[str, dict[str, Any]],
                  config: EvaluationConfig, timing: dict[str, float]) -> dict[str, Any]:
    """Everything ``metrics.json`` holds (schema in ``docs/evaluation.md``); arrays stay numpy."""
    metrics = {
        "schema": SCHEMA,
        "cenn_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "methods": methods,
        "datasets": {ev.name: dataset_summary(ev) for ev in evaluations},
        "results": {m: {ev.name: method_summary(ev, m, config) for ev in evaluations} for m in methods},
        "timing_s": timing,
        "paper": paper_results(),
    }
    metrics["cross_sky"] = cross_sky(metrics["results"], metrics["datasets"])
    polarized = {ev.name: ev.polarization for ev in evaluations if ev.polarization is not None}
    if polarized:  # only for stores with Q and U: a temperature evaluation's metrics are unchanged
        metrics["polarization"] = polarization_metrics(polarized)
    return metrics


def _pm(entry: dict[str, Any] | Sequence[float] | None) -> str:
    """"mean ± std" of a range summary (or of a paper pair)."""
    if entry is None:
        return "–"
    mean, std = (entry["mean"], entry.get("std")) if isinstance(entry, dict) else entry
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_cell(v) for v in r] for r in rows])
    return buf.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{float(value):.6g}"
    return value


# --- tables ---------------------------------------------------------------------------------------

def _table1(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    methods, paper = list(metrics["results"]), metrics["paper"]["table1"]
    header = ["dataset", "paper mean", "paper RMS"]
    for m in methods:
        header += [f"{m} mean", f"{m} RMS"]
    rows = []
    for d in metrics["datasets"]:
        ref = paper.get(d, {})
        row = [dataset_text(d), _fmt(ref.get("mean_uk")), _fmt(ref.get("rms_uk"))]
        for m in methods:
            mrp = metrics["results"][m][d]["mean_residual_patch"]
            row += [_fmt(mrp["mean_uk"]), _fmt(mrp["rms_uk"])]
        rows.append(row)
    return header, rows


def _range_table(metrics: dict[str, Any], path: Sequence[str], paper_key: str | None,
                 ranges: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """One row per dataset and method: ``path`` inside the method summary, per range, mean ± std,
    with the paper's value first where it quotes one."""
    header = ["dataset", "method", *ranges]
    rows = []
    paper = metrics["paper"].get(paper_key, {}) if paper_key else {}
    for d in metrics["datasets"]:
        if d in paper:
            rows.append([dataset_text(d), "paper", *(_pm(paper[d].get(r)) for r in ranges)])
        for m, per_dataset in metrics["results"].items():
            entry = per_dataset[d]
            for key in path:
                entry = entry[key]
            rows.append([dataset_text(d), m, *(_pm(entry.get(r)) for r in ranges)])
    return header, rows


def _pixel_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "method", "MAE", "RMSE", "mean patch RMS", "median patch RMS",
              "16–84 % patch RMS", "max |residual|", "mean residual"]
    rows = []
    for d in metrics["datasets"]:
        for m, per_dataset in metrics["results"].items():
            p = per_dataset[d]["pixel"]
            q = p["residual_rms_percentiles_uk"]
            rows.append([dataset_text(d), m, _fmt(p["mae_uk"]), _fmt(p["rmse_uk"]),
                         _fmt(p["residual_rms_mean_uk"]), _fmt(q["50"]),
                         f"{_fmt(q['16'])}–{_fmt(q['84'])}", _fmt(p["max_abs_residual_uk"]),
                         _fmt(p["mean_residual_uk"])])
    return header, rows


def _dust_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "method", "dust RMS [µK]", "patches", "mean patch RMS", "residual D_ℓ (all ℓ)"]
    rows = []
    for d in metrics["datasets"]:
        for m, per_dataset in metrics["results"].items():
            for b in per_dataset[d]["by_dust"]:
                if b["n_patches"]:
                    rows.append([dataset_text(d), m, f"{_fmt(b['lo_uk'])}–{_fmt(b['hi_uk'])}",
                                 str(b["n_patches"]), _fmt(b["residual_rms_mean_uk"]),
                                 _pm(b["residual_dl"]["all"])])
    return header, rows


def _noise_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "method", "noise ×", "patches", "mean patch RMS", "ΔD_ℓ (all ℓ)",
              "residual D_ℓ (ℓ ≥ 2500)"]
    rows = []
    for d in metrics["datasets"]:
        for m, per_dataset in metrics["results"].items():
            for factor, n in per_dataset[d]["noise"].items():
                rows.append([dataset_text(d), m, factor, str(n["n_patches"]),
                             _fmt(n["residual_rms_mean_uk"]), _pm(n["delta_dl"].get("all")),
                             _pm(n["residual_dl"].get("2500+"))])
    return header, rows


def _contaminated_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "method", "patch (l, b)", "residual mean ± std [µK]", "ΔD_ℓ (all ℓ)",
              "residual D_ℓ (1200–1800)"]
    ref = metrics["paper"]["contaminated_patch"]
    rows = [["paper", "CENN", "–", f"{ref['residual_mean_uk']:g} ± {ref['residual_std_uk']:g}",
             _pm(ref["delta_dl"]), _pm(ref["residual_dl_1200_1800"])]]
    for d in metrics["datasets"]:
        for m, per_dataset in metrics["results"].items():
            c = per_dataset[d]["contaminated_patch"]
            rows.append([dataset_text(d), m,
                         f"#{c['index']} ({c['lon_deg']:.1f}°, {c['lat_deg']:.1f}°)",
                         f"{_fmt(c['residual_mean_uk'])} ± {_fmt(c['residual_std_uk'])}",
                         _pm(c["delta_dl"]["all"]), _pm(c["residual_dl"]["1200-1800"])])
    return header, rows


def _calibration_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per dataset and σ-giving method: coverage at 1σ and 2σ, RMS of r/σ, the reliability
    diagram's largest deviation, the confidence mask, and every other method's residual RMS inside
    the same mask (with this method's in-mask RMS over it)."""
    methods = list(metrics["results"])
    threshold = metrics["config"].get("mask_above_uk")
    header = ["dataset", "method", "|r| < σ (0.683)", "|r| < 2σ (0.954)", "RMS r/σ", "max |obs − nominal|",
              f"kept (σ ≤ {_fmt(threshold)} µK)", "RMS in mask [µK]", "RMS outside [µK]",
              *(f"{o} RMS in mask [µK] (ratio)" for o in methods)]
    rows = []
    for d, m, c in calibrated(metrics["results"]):
        mask, others = c["mask"], c["mask"]["others"]
        cells = [f"{_fmt(others[o]['residual_rms_in_uk'])} ({_fmt(others[o]['rms_ratio_in'], 2)})"
                 if o in others else "–" for o in methods]
        rows.append([dataset_text(d), m, _fmt(c["coverage"]["1sigma"]), _fmt(c["coverage"]["2sigma"]),
                     _fmt(c["z_rms"]), _fmt(c["reliability"]["max_deviation"], 2),
                     _fmt(mask["kept_fraction"]), _fmt(mask["residual_rms_in_uk"]),
                     _fmt(mask["residual_rms_out_uk"]), *cells])
    return header, rows


def _sigma_bins_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "method", "σ range [µK]", "pixels", "mean σ [µK]", "RMS σ [µK]",
              "RMS residual [µK]", "RMS residual / RMS σ"]
    rows = []
    for d, m, c in calibrated(metrics["results"]):
        for b in c["sigma_bins"]:
            if b["n_pixels"]:
                rows.append([dataset_text(d), m, f"{_fmt(b['lo_uk'])}–{_fmt(b['hi_uk'])}", str(b["n_pixels"]),
                             _fmt(b["sigma_mean_uk"]), _fmt(b["sigma_rms_uk"]), _fmt(b["residual_rms_uk"]),
                             _fmt(b["residual_rms_uk"] / b["sigma_rms_uk"])])
    return header, rows


def _half_split_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per dataset and method with half-mission maps: the fraction of bins whose cross-spectrum lies
    within 2 standard errors of the CMB label's, and over the summary range the mean (cross − CMB) /
    standard error, the mean cross − CMB and the auto-spectrum's excess over the CMB (µK²)."""
    header = ["dataset", "method", "patches", "bins within 2 SE", "mean (cross − CMB) / SE",
              "cross − CMB [µK²]", "auto − CMB [µK²]"]
    rows = [[dataset_text(d), m, str(h["n_patches"]), f"{_fmt(h['fraction_within_2se'], 2)} "
             f"({h['within_2se']}/{h['n_bins']})", _fmt(h["mean_difference_over_se"], 2),
             _fmt(h["mean_difference_dl"]), _fmt(h["mean_auto_minus_cmb_dl"])]
            for d, m, h in half_split_entries(metrics["results"])]
    return header, rows


def summary_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The headline table (also printed by ``cenn evaluate``): per dataset and method, the mean
    per-patch residual RMS, Table 1's mean-residual-patch RMS and the all-ℓ ΔD_ℓ and residual D_ℓ,
    with the paper's values."""
    header = ["dataset", "method", "patches", "patch RMS [µK]", "Table 1 RMS [µK]", "ΔD_ℓ [µK²]",
              "residual D_ℓ [µK²]"]
    paper = metrics["paper"]
    rows = []
    for d, info in metrics["datasets"].items():
        label = dataset_text(d)
        rows.append([label, "paper", "6000" if d == "all" else "2000", "–",
                     _fmt(paper["table1"].get(d, {}).get("rms_uk")),
                     _pm(paper["delta_dl"].get(d, {}).get("all")),
                     _pm(paper["residual_dl"].get(d, {}).get("all"))])
        for m, per_dataset in metrics["results"].items():
            r = per_dataset[d]
            rows.append([label, m, str(info["n_patches"]), _fmt(r["pixel"]["residual_rms_mean_uk"]),
                         _fmt(r["mean_residual_patch"]["rms_uk"]), _pm(r["spectra"]["delta_dl"]["all"]),
                         _pm(r["spectra"]["residual_dl"]["all"])])
    return header, rows


def headline_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of :func:`cenn.evaluate.summary.headline_figures`, ``rows[method][dataset]``:
    residual RMS and residual D_ℓ per dataset, then ΔD_ℓ and t_ℓ on the first dataset."""
    datasets = list(next(iter(rows.values())))
    first = datasets[0]
    ells = [int(k[2:]) for k in rows[next(iter(rows))][first] if k.startswith("t_")]
    header = (["method"] + [f"RMS {d} [µK]" for d in datasets] + [f"res. D_ℓ {d} [µK²]" for d in datasets]
              + [f"ΔD_ℓ {first} [µK²]", f"t_ℓ {first} at ℓ = " + " / ".join(map(str, ells))])
    return markdown_table(header, [
        [method] + [f"{per[d]['residual_rms_uk']:.1f}" for d in datasets]
        + [f"{per[d]['residual_dl_uk2']:.1f}" for d in datasets]
        + [f"{per[first]['delta_dl_uk2']:+.1f}", " / ".join(f"{per[first][f't_{ell}']:.3f}" for ell in ells)]
        for method, per in rows.items()])


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table for the terminal."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    body = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


# --- writing --------------------------------------------------------------------------------------

def _csv_files(metrics: dict[str, Any]) -> dict[str, str]:
    files = {
        "tables/summary.csv": _csv_text(*summary_table(metrics)),
        "tables/table1.csv": _csv_text(*_table1(metrics)),
        "tables/pixel_metrics.csv": _csv_text(*_pixel_table(metrics)),
        "tables/by_dust.csv": _csv_text(*_dust_table(metrics)),
        "tables/noise.csv": _csv_text(*_noise_table(metrics)),
    }
    for name, table in csv_tables(metrics["results"]).items():
        files[f"tables/{name}"] = _csv_text(*table)
    if half_split_entries(metrics["results"]):
        files["tables/half_split.csv"] = _csv_text(*half_split_csv(metrics["results"]))
    for m, per_dataset in metrics["results"].items():
        for d, r in per_dataset.items():
            t = r["per_bin"]
            files[f"tables/spectra_{d}_{m}.csv"] = _csv_text(
                PER_BIN_COLUMNS, list(zip(*(t[c] for c in PER_BIN_COLUMNS), strict=True)))
    for name, table in (polarization_tables(metrics["polarization"]) if "polarization" in metrics
                        else {}).items():
        files[f"tables/{name}"] = _csv_text(*table)
    for d, info in metrics["datasets"].items():
        names = list(info["component_dl"])
        cols = [info["ell"], info["cmb_dl_mean"], info["foreground_dl_mean"],
                *(info["component_dl"][n]["mean"] for n in names)]
        files[f"tables/foregrounds_{d}.csv"] = _csv_text(
            ["ell", "cmb_dl_mean", "foreground_dl_mean", *(f"{n}_dl_mean" for n in names)],
            list(zip(*cols, strict=True)))
    return files


def _per_patch_csv(ev: DatasetEvaluation, method: str) -> str:
    p = ev.methods[method].pixel
    header = ["index", "lon_deg", "lat_deg", "dust_rms_uk", "foreground_dl_contamination",
              "mae_uk", "rms_uk", "std_uk", "max_abs_uk", "mean_uk"]
    rows = [[i, ev.lon[i], ev.lat[i], ev.dust_brightness_uk[i], ev.contamination[i],
             *(p[k][i] for k in ("mae", "rms", "std", "max_abs", "mean"))] for i in range(ev.n_patches)]
    return _csv_text(header, rows)


def _figures(folder: Path, evaluations: Sequence[DatasetEvaluation],
             metrics: dict[str, Any]) -> dict[str, str]:
    """Draw every figure into ``folder/figures``; returns ``{file: caption}``."""
    results, datasets = metrics["results"], list(metrics["datasets"])
    examples = {ev.name: ev.examples for ev in evaluations}
    first = next(iter(results))
    fig = folder / "figures"
    captions = {}

    def add(caption: str, path: Path) -> None:
        captions[path.relative_to(folder).as_posix()] = caption

    add(f"Fig. 1: one patch per dataset at 217 GHz: observed, CMB label, {first} "
        "output, residual (label − output).", figures.fig_patches(examples, first, fig / "fig1_patches.png"))
    add("Fig. 3: mean D_ℓ of the CMB label and of each method's output (bands: "
        "standard deviation over patches); bottom: ΔD_ℓ = label − output.",
        figures.fig_spectra(results, datasets, fig / "fig3_spectra.png"))
    add("Fig. 4: D_ℓ of the mean residual patch (bands: scatter of "
        "the Fourier modes in each bin).",
        figures.fig_mean_residual_spectrum(results, datasets, fig / "fig4_mean_residual_patch.png"))
    add("Fig. 5: mean D_ℓ of the residual patches against the CMB "
        "and each foreground and the noise at 217 GHz (bands: standard deviation over patches).",
        figures.fig_residual_vs_foregrounds(results, metrics["datasets"], datasets,
                                            fig / "fig5_residual_vs_foregrounds.png"))
    for d in datasets:
        name = f"fig6_contaminated_{d}.png"
        contaminated = {m: results[m][d]["contaminated_patch"] for m in results}
        add(f"Fig. 6 ({dataset_text(d)}): the patch with the most foreground power at "
            "small scales (point sources, CIB, tSZ), its maps and spectra.",
            figures.fig_contaminated_patch(examples[d]["contaminated"], contaminated, fig / name))
    add("Transfer function t_ℓ = ⟨C(out×in)⟩/⟨C(in)⟩ and correlation coefficient r_ℓ.",
        figures.fig_transfer(results, datasets, fig / "transfer.png"))
    rms = {m: {ev.name: ev.methods[m].pixel["rms"] for ev in evaluations} for m in results}
    add("Distribution of the per-patch residual RMS.",
        figures.fig_residual_rms(rms, datasets, fig / "residual_rms.png"))
    add("Mean per-patch residual RMS against the patch's dust brightness.",
        figures.fig_by_dust(results, datasets, fig / "by_dust.png", metrics["config"]["dust_band"]))
    add("Mean per-patch residual RMS with the instrument noise scaled by 1, 5 and 10.",
        figures.fig_noise(results, datasets, fig / "noise.png"))
    if calibrated(results):
        add("Reliability diagram of the stated σ: the fraction of pixels with |residual| < z_p σ "
            "against the nominal probability p (z_p: the two-sided normal quantile); open squares: 1σ "
            "and 2σ. On the diagonal σ is calibrated; below it σ is too small, above it too large.",
            figures.fig_reliability(results, datasets, fig / "reliability.png"))
    if "polarization" in metrics:
        figures.fig_polarization_spectra(metrics["polarization"], folder / FIGURE)
    return captions


def build_document(metrics: dict[str, Any], captions: dict[str, str], home: Path) -> Document:
    """``report.md`` / ``report.html``, read figure-first: a plain summary of what was run and what it
    found, the headline figure (one patch per dataset) and the spectra, the summary table, then
    every metric with the paper's numbers beside ours, and last the settings; paths relative to the
    report folder ``home``."""
    doc = Document("cenn evaluation report")
    for text in summary_text(metrics):
        doc.paragraph(text)
    for name in ("figures/fig1_patches.png", "figures/fig3_spectra.png"):
        doc.figure(name, captions[name])
    doc.heading("Summary")
    doc.table(*summary_table(metrics), "Per dataset and method: mean per-patch residual RMS, RMS of the "
              "mean residual patch (the paper's Table 1), and ΔD_ℓ and residual D_ℓ averaged over all ℓ")
    _which_map_section(doc, metrics)
    if metrics.get("cross_sky"):
        doc.heading("Cross-model test: a sky the methods were not built for")
        doc.table(*cross_sky_table(metrics["cross_sky"]), "Mean per-patch residual RMS and residual D_ℓ "
                  "(300 ≤ ℓ < 2500) on the default sky and on the alternative sky (datasets alt-*), their "
                  "ratio alternative / default, and that ratio over NILC's (> 1: the method degrades more "
                  "than NILC) with its 68 % bootstrap interval over patches; paired: the two stores hold "
                  "the same positions, CMB and noise draws (same seed), so the ratio measures the sky model "
                  "alone")
    doc.heading("Table 1: the mean residual patch")
    doc.table(*_table1(metrics), "Mean and RMS (µK) of the residual (label − output) averaged over the "
              "patches of each dataset")
    doc.heading("Sect. 4.1: power spectra")
    ranges = list(metrics["config"]["ell_ranges"])
    doc.table(*_range_table(metrics, ("spectra", "delta_dl"), "delta_dl", ranges),
              "ΔD_ℓ = D_ℓ(label) − D_ℓ(output), µK²: mean over the range's bins of the mean over "
              "patches ± mean of the standard deviation over patches (the spectra: Fig. 3 at the top)")
    doc.heading("Sect. 4.2: residuals")
    doc.table(*_range_table(metrics, ("mean_residual_patch", "dl"), "mean_residual_patch_dl", ranges),
              "D_ℓ of the mean residual patch, µK² (± the mode scatter within bins)")
    doc.figure("figures/fig4_mean_residual_patch.png", captions["figures/fig4_mean_residual_patch.png"])
    doc.table(*_range_table(metrics, ("spectra", "residual_dl"), "residual_dl", ranges),
              "Mean D_ℓ of the residual patches, µK² (± standard deviation over patches)")
    doc.figure("figures/fig5_residual_vs_foregrounds.png",
               captions["figures/fig5_residual_vs_foregrounds.png"])
    doc.heading("Sect. 4.3: the most contaminated patch")
    doc.table(*_contaminated_table(metrics), "Patch selected by the largest mean D_ℓ of the foregrounds "
              f"other than dust at 217 GHz for ℓ in {metrics['config']['contamination_ell']} (the paper "
              "chose its patch by eye for its point sources)")
    for name, caption in captions.items():
        if "fig6_" in name:
            doc.figure(name, caption)
    doc.heading("Beyond the paper")
    doc.table(*_range_table(metrics, ("spectra", "transfer"), None, ranges),
              "Transfer function t_ℓ = ⟨C_ℓ(output × CMB)⟩ / ⟨C_ℓ(CMB)⟩")
    doc.table(*_range_table(metrics, ("spectra", "response_transfer"), None, ranges),
              "Response to an independent CMB added to the inputs, ⟨C_ℓ(Δoutput × added)⟩ / ⟨C_ℓ(added)⟩: "
              "the transfer function without the residual's chance correlation with the CMB")
    doc.table(*_range_table(metrics, ("spectra", "correlation"), None, ranges),
              "Correlation coefficient r_ℓ")
    doc.figure("figures/transfer.png", captions["figures/transfer.png"])
    doc.table(*_pixel_table(metrics), "Pixel metrics of the residual, µK")
    doc.figure("figures/residual_rms.png", captions["figures/residual_rms.png"])
    doc.table(*_dust_table(metrics), "Results by the patch's dust brightness (RMS of the dust map at "
              f"{metrics['config']['dust_band']} GHz)")
    doc.figure("figures/by_dust.png", captions["figures/by_dust.png"])
    noise_header, noise_rows = _noise_table(metrics)
    if noise_rows:
        doc.table(noise_header, noise_rows, "Robustness to the instrument noise (paper Sect. 4.2: 5× and "
                  "10×), on the first patches of each dataset")
    else:
        doc.paragraph("No noise test: the datasets were stored without component maps "
                      "(`cenn simulate --components`).")
    doc.figure("figures/noise.png", captions["figures/noise.png"])
    _calibration_section(doc, metrics, captions)
    _half_split_section(doc, metrics)
    if "polarization" in metrics:
        add_polarization_section(doc, metrics["polarization"])
    doc.heading("Definitions")
    doc.paragraph("Residual = label − output. ΔD_ℓ = D_ℓ(label) − D_ℓ(output). Maps in µK_CMB at the "
                  "217 GHz target band; spectra D_ℓ in µK² binned as in the paper (Δℓ = 50 up to ℓ = 1000, "
                  "200 above) unless configured otherwise. Ensemble lines are means over patches and bands "
                  "their standard deviation; a range 'mean ± std' averages both over the bins whose centres "
                  "lie in the range. Table 1 RMS = √⟨M²⟩ of the mean residual patch M. Spectra: patch mean "
                  "removed, cosine taper, periodogram normalised by the window's mean square. Paper: "
                  f"{metrics['paper']['source']}; its validation sets have 6,000 (all sky) and 2,000 "
                  "patches (latitude bands). Every number is in metrics.json (schema: docs/evaluation.md).")
    add_settings(doc, metrics, home)
    return doc


#: The two maps cenn makes, and what each is for.
MAP_USES = {"cenn": "minimum MSE: visualisation, inpainting, source work (its transfer t_ℓ < 1 depends on "
                    "the sky it was trained on)",
            "cenn-unbiased": "unit response to the CMB: power spectra, lensing, cross-correlation"}


def _which_map_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per dataset, the minimum-MSE and the unbiased map's residual, transfer and response."""
    lo, hi = HEADLINE_ELL_RANGE
    header = ["dataset", "map", "residual RMS [µK]", f"residual D_ℓ {lo:g}–{hi:g} [µK²]", "t_500", "t_1500",
              "t_2500", "max |response − 1|, 30 ≤ ℓ < 2500"]
    rows = []
    for dataset in metrics["results"]["cenn"]:
        for method in MAP_USES:
            result = metrics["results"][method][dataset]
            h = headline_figures(result)
            bins = result["per_bin"]
            response = [abs(r - 1.0) for r, ell in zip(bins["response_transfer"], bins["ell"], strict=True)
                        if 30 <= ell < 2500 and r is not None and math.isfinite(r)]
            rows.append([dataset_text(dataset), method, _fmt(h["residual_rms_uk"]),
                         _fmt(h["residual_dl_uk2"]), _fmt(h["t_500"]), _fmt(h["t_1500"]), _fmt(h["t_2500"]),
                         f"{max(response):.1e}" if response else "–"])
    return header, rows


def _which_map_section(doc: Document, metrics: dict[str, Any]) -> None:
    """"Which map for what", when both networks were evaluated: what each map is for, with their
    numbers on the same patches."""
    if not all(m in metrics["results"] for m in MAP_USES):
        return
    doc.heading("Which map for what")
    doc.paragraph(" ".join(f"`{m}`: {use}." for m, use in MAP_USES.items()))
    doc.table(*_which_map_table(metrics), "The two maps on the same patches: residual, transfer function "
              "t_ℓ = ⟨C_ℓ(output × CMB)⟩ / ⟨C_ℓ(CMB)⟩, and the largest departure from 1 of the response to "
              "a CMB added to the inputs")


def _calibration_section(doc: Document, metrics: dict[str, Any], captions: dict[str, str]) -> None:
    """"Uncertainty calibration": coverage, the confidence mask, the reliability diagram and σ
    against the residual, for the methods that state a per-pixel σ."""
    doc.heading("Uncertainty calibration")
    if not calibrated(metrics["results"]):
        doc.paragraph("No method states a per-pixel σ of its residual: nothing to calibrate.")
        return
    threshold = _fmt(metrics["config"].get("mask_above_uk"))
    doc.paragraph("For the methods that state a per-pixel standard deviation σ of their residual r = "
                  "label − output: the fraction of pixels with |r| < σ and < 2σ (0.683 and 0.954 for a "
                  "calibrated Gaussian σ) and the RMS of r/σ (1 when calibrated); the confidence mask "
                  f"keeps the pixels with σ ≤ {threshold} µK, and inside it each other method's residual RMS "
                  "is given on the same pixels, with this method's in-mask RMS over it in brackets. "
                  "Histograms of r/σ: metrics.json and tables/calibration_histogram.csv.")
    doc.table(*_calibration_table(metrics), "Coverage, calibration and the confidence mask")
    doc.figure("figures/reliability.png", captions["figures/reliability.png"])
    doc.table(*_sigma_bins_table(metrics), "The stated σ against the actual error, in bins of σ: "
              "RMS residual / RMS σ is 1 when σ tracks the error")


def _half_split_section(doc: Document, metrics: dict[str, Any]) -> None:
    """"Half-split cross-spectra": the noise-bias-free spectrum of each method's output on the sets
    with half-mission maps, or a line saying why there is none."""
    doc.heading("Half-split cross-spectra")
    header, rows = _half_split_table(metrics)
    if not rows:
        why = ("switched off (half_split = false)" if not metrics["config"].get("half_split", True)
               else "no dataset holds half-mission maps (`cenn simulate --splits 2`)")
        doc.paragraph(f"No half-split cross-spectra: {why}.")
        return
    lo, hi = half_split_entries(metrics["results"])[0][2]["ell_range"]
    doc.table(header, rows, "Every method run on the two half-mission maps of each patch (independent noise "
              "of σ √2 each, averaging to the full maps) and its two outputs cross-correlated: the "
              "cross-spectrum has no noise bias. Bins within 2 SE: bins where the mean over patches of "
              "cross − CMB label lies within 2 standard errors (std over patches / √N) of zero; the "
              f"other columns average over {lo:g} ≤ ℓ < {hi:g}; auto − CMB: the output's "
              "auto-spectrum on one half, biased by its noise. Per bin: tables/half_split.csv")


def check_report_out(out: Path, overwrite: bool, inputs: Inputs = ()) -> None:
    """Refuse, before any work, a report folder ``out`` that exists (unless ``overwrite``), cannot
    be written, or whose replacement would lose data (:func:`cenn.outputs.check_output`; ``inputs``:
    (role, path) of what the evaluation reads)."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: choose another --out or pass --overwrite to replace it")
    check_output(out, "report", inputs, overwrite)


def write_report(out: Path | str, evaluations: Sequence[DatasetEvaluation],
                 methods: dict[str, dict[str, Any]], config: EvaluationConfig, timing: dict[str, float],
                 overwrite: bool = False, inputs: Inputs = ()) -> dict[str, Any]:
    """Write the report folder ``out`` (see the module docstring); returns the metrics. A report
    there is replaced only with ``overwrite``, and only if cenn wrote it and it holds none of
    ``inputs``; temporary folders a killed evaluation left beside it are removed."""
    out = Path(out)
    inputs = [*inputs, *((f"store {ev.name}", ev.path) for ev in evaluations)]
    check_report_out(out, overwrite, inputs)
    clear_stale(out.parent, [out.name])
    tmp = temporary_path(out)
    discard(tmp)
    try:  # a full disk or a kill: no half-written report is left behind
        tmp.mkdir()
        mark(tmp, "report")
        metrics = _write_folder(tmp, out, evaluations, methods, config, timing)
        publish(tmp, out, "report", inputs)
    finally:
        discard(tmp)
    return metrics


def _write_folder(folder: Path, home: Path, evaluations: Sequence[DatasetEvaluation],
                  methods: dict[str, dict[str, Any]], config: EvaluationConfig,
                  timing: dict[str, float]) -> dict[str, Any]:
    """Every file of the report into ``folder``, which becomes the report folder ``home``; returns
    the metrics."""
    (folder / "tables").mkdir(parents=True)
    metrics = build_metrics(evaluations, methods, config, timing)
    captions = _figures(folder, evaluations, metrics)
    for name, text in _csv_files(metrics).items():
        (folder / name).write_text(text)
    for ev in evaluations:
        for m in methods:
            (folder / f"tables/per_patch_{ev.name}_{m}.csv").write_text(_per_patch_csv(ev, m))
    (folder / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1))
    (folder / "evaluation.toml").write_text(dumps_toml({"evaluation": config.to_dict(), "methods": methods,
                                                       "datasets": {ev.name: ev.path for ev in evaluations}}))
    doc = build_document(metrics, captions, home)
    (folder / "report.md").write_text(doc.markdown())
    (folder / "report.html").write_text(doc.html())
    return metrics
