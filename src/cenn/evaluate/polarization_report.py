"""The report's polarization section (stores with Q and U): a table per dataset and method, the E
and B spectra figure, and the CSV tables, from ``metrics.json``'s ``polarization``
(:mod:`cenn.evaluate.polarization_summary`)."""

from __future__ import annotations

from typing import Any

from cenn.evaluate.document import Document
from cenn.evaluate.labels import dataset_text
from cenn.evaluate.labels import fmt as _fmt

#: The per-bin columns of ``tables/polarization_spectra_<dataset>_<method>.csv``.
PER_BIN_COLUMNS = (
    "ell", "ee_output_dl_mean", "bb_output_dl_mean", "ee_residual_dl_mean", "ee_residual_dl_std",
    "bb_residual_dl_mean", "bb_residual_dl_std", "te_output_dl_mean", "te_delta_dl_mean", "te_delta_dl_std",
    "ee_ratio", "ee_transfer", "ee_half_split_ratio", "bb_residual_over_lensing",
)
FIGURE = "figures/polarization_spectra.png"
CAPTION = ("E and B: mean D_ℓ^EE (top) and pure D_ℓ^BB (bottom) of the CMB label (band: standard deviation "
           "over patches), each method's Q/U output (solid) and residual (dashed); dotted: the lensing BB "
           "as the estimator sees it on average.")


def _pm(entry: dict[str, Any]) -> str:
    return f"{_fmt(entry['mean'])} ± {_fmt(entry['std'])}"


def polarization_table(polarization: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per dataset and method: Q and U residual RMS (mean per patch), Table 1's RMS for Q and U,
    residual EE and BB, recovered EE / input at |b| > 30°, residual BB / lensing BB, TE amplitude."""
    r, lo_hi = polarization["ell_ranges"], "{:g}–{:g}".format
    header = ["dataset", "method", "Q RMS [µK]", "U RMS [µK]", "Table 1 Q RMS [µK]", "Table 1 U RMS [µK]",
              f"residual EE {lo_hi(*r['residual'])} [µK²]", f"residual BB {lo_hi(*r['residual'])} [µK²]",
              f"EE out / in {lo_hi(*r['ee_recovery'])}", f"half-split EE / in {lo_hi(*r['ee_recovery'])}",
              f"residual BB / lensing {lo_hi(*r['lensing_bb'])}", "TE amplitude"]
    rows = []
    for d in polarization["datasets"]:
        for m, per_dataset in polarization["results"].items():
            x = per_dataset[d]
            pixel, table1 = x["pixel"], x["mean_residual_patch"]
            rows.append([dataset_text(d), m, _fmt(pixel["q"]["residual_rms_mean_uk"]),
                         _fmt(pixel["u"]["residual_rms_mean_uk"]), _fmt(table1["q"]["rms_uk"]),
                         _fmt(table1["u"]["rms_uk"]),
                         _pm(x["residual_ee_dl"]), _pm(x["residual_bb_dl"]), _fmt(x["ee_recovery"]["ratio"]),
                         _fmt(x["ee_recovery"].get("half_split_ratio")), _fmt(x["residual_bb_over_lensing"]),
                         _fmt(x["te"]["amplitude"])])
    return header, rows


def polarization_tables(polarization: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The CSV tables (file name under ``tables/``: header and rows): the summary and every per-bin line."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "polarization.csv": polarization_table(polarization)}
    for m, per_dataset in polarization["results"].items():
        for d, x in per_dataset.items():
            columns = [x["per_bin"][c] for c in PER_BIN_COLUMNS]
            tables[f"polarization_spectra_{d}_{m}.csv"] = (
                list(PER_BIN_COLUMNS), [list(row) for row in zip(*columns, strict=True)])
    return tables


def add_polarization_section(doc: Document, polarization: dict[str, Any]) -> None:
    """"Polarization (Q and U)": what was measured, the table and the E/B figure."""
    r = polarization["ell_ranges"]
    doc.heading("Polarization (Q and U)")
    skipped = ", ".join(f"`{m}` ({why})" for m, why in polarization["skipped"].items())
    doc.paragraph(
        "Every method that separates Q and U was run on the bands' Q and U (the ILCs and the target band: "
        "on Q and on U as two independent sets of maps; `cenn`: its Q/U weights, given with "
        "--polarization-weights, on every band's Q and U at once). Residual = CMB label − output. "
        "E and B: cosine "
        "taper, EE of the tapered maps, BB from the pure-B estimator, TE = the method's temperature "
        f"output × its E. Residual EE and BB: mean over {r['residual'][0]:g} ≤ ℓ < {r['residual'][1]:g} ± "
        "the standard deviation over patches; EE out / in: ⟨EE(output)⟩ / ⟨EE(label)⟩ on the patches at "
        f"|b| > {polarization['high_latitude_deg']:g}°, averaged over {r['ee_recovery'][0]:g} ≤ ℓ < "
        f"{r['ee_recovery'][1]:g} (noise in the output raises it); half-split EE / in: the same with the "
        "cross-spectrum of the method's outputs on the two half-mission maps (stores simulated with "
        "--splits 2), which has no noise bias, so an unbiased map gives 1; residual BB / lensing: over "
        f"{r['lensing_bb'][0]:g} ≤ ℓ < {r['lensing_bb'][1]:g}, against the lensing BB as the estimator sees "
        "it on average; TE amplitude: the least-squares A of ⟨TE(output)⟩ ≈ A ⟨TE(label)⟩."
        + (f" Not run on Q and U: {skipped}." if skipped else ""))
    doc.table(*polarization_table(polarization), "Q and U residuals per dataset and method (per bin: "
              "tables/polarization_spectra_<dataset>_<method>.csv)")
    doc.figure(FIGURE, CAPTION)
