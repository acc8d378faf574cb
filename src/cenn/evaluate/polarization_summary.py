"""The numbers of a Q/U evaluation (``metrics.json``'s ``polarization``; schema in
docs/evaluation.md), from :class:`cenn.evaluate.polarization.PolarizationEvaluation`, with the
conventions of :mod:`cenn.evaluate.metrics` (residual = label − output; ensemble lines are means
over patches, bands their standard deviation; a range summary averages a line over the bins whose
centres lie in ``[lo, hi)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cenn.evaluate.half_split import half_split_summary
from cenn.evaluate.metrics import ensemble, in_range, map_stats, range_summary, transfer_function
from cenn.evaluate.polarization import STOKES, PolarizationEvaluation
from cenn.evaluate.summary import pixel_summary

#: Multipole ranges ``[lo, hi)`` of the summaries (issue 28's targets).
RANGES = {
    "residual": [50.0, 1500.0],      # residual EE and BB, TE
    "ee_recovery": [100.0, 1500.0],  # recovered EE against the input, at |b| > HIGH_LATITUDE_DEG
    "lensing_bb": [100.0, 1000.0],   # residual BB against the lensing BB
}
#: The recovered EE is measured on the patches with |b| above this (degrees).
HIGH_LATITUDE_DEG = 30.0


def _range(ell: np.ndarray, line: np.ndarray, band: np.ndarray | None, key: str) -> dict[str, float | None]:
    lo, hi = RANGES[key]
    return range_summary(ell, line, band, {key: [lo, hi]})[key]


def _mean_over(ell: np.ndarray, line: np.ndarray, key: str) -> float | None:
    return _range(ell, line, None, key)["mean"]


def _te_amplitude(ell: np.ndarray, out: np.ndarray, cmb: np.ndarray) -> float | None:
    """Least-squares amplitude A of ⟨TE_out⟩ ≈ A ⟨TE_in⟩ over the residual range's bins (TE crosses
    zero, so a ratio per bin is not defined)."""
    keep = in_range(ell, *RANGES["residual"]) & np.isfinite(out) & np.isfinite(cmb)
    return float(np.sum(out[keep] * cmb[keep]) / np.sum(cmb[keep] ** 2)) if keep.any() else None


def method_polarization(pol: PolarizationEvaluation, method: str) -> dict[str, Any]:
    """Every Q/U number of one ``method`` on one dataset (see docs/evaluation.md): with half-mission
    maps, also the EE and BB of the cross-spectrum of its outputs on the two halves
    (:func:`cenn.evaluate.half_split.half_split_summary` over the residual range) and that EE over
    the label's at |b| > 30° (``ee_recovery.half_split_ratio``: the recovered EE without noise bias)."""
    stats = pol.methods[method]
    ell = pol.ell
    ee_res, ee_res_std = ensemble(stats.ee_residual)
    bb_res, bb_res_std = ensemble(stats.bb_residual)
    te_out = ensemble(stats.te)[0]
    te_delta, te_delta_std = ensemble(pol.te - stats.te)
    high = np.abs(pol.lat) > HIGH_LATITUDE_DEG
    ee_ratio = transfer_function(stats.ee[high], pol.ee[high]) if high.any() else np.full(len(ell), np.nan)
    ee_transfer = (transfer_function(stats.ee_cross[high], pol.ee[high]) if high.any()
                   else np.full(len(ell), np.nan))
    bb_over_lensing = bb_res / pol.lensing_bb
    mrp = stats.mean_residual_patch
    halves = pol.half_split.get(method)
    half_split = None if halves is None else {
        s: half_split_summary(ell, label, halves[s], tuple(RANGES["residual"]))
        for s, label in (("ee", pol.ee), ("bb", pol.bb))}
    ee_half = (transfer_function(halves["ee"].cross[high], pol.ee[high]) if halves is not None and high.any()
               else np.full(len(ell), np.nan))
    return {
        "n_patches": stats.filled,
        "pixel": {s: pixel_summary(stats.pixel[s]) for s in STOKES},
        "mean_residual_patch": {s: map_stats(mrp[i]) for i, s in enumerate(STOKES)},
        "residual_ee_dl": _range(ell, ee_res, ee_res_std, "residual"),
        "residual_bb_dl": _range(ell, bb_res, bb_res_std, "residual"),
        "ee_recovery": {"n_patches": int(high.sum()), "ratio": _mean_over(ell, ee_ratio, "ee_recovery"),
                        "transfer": _mean_over(ell, ee_transfer, "ee_recovery"),
                        "half_split_ratio": _mean_over(ell, ee_half, "ee_recovery")},
        "residual_bb_over_lensing": _mean_over(ell, bb_over_lensing, "lensing_bb"),
        "te": {"delta_dl": _range(ell, te_delta, te_delta_std, "residual"),
               "amplitude": _te_amplitude(ell, te_out, ensemble(pol.te)[0])},
        "per_bin": {
            "ell": ell, "ee_output_dl_mean": ensemble(stats.ee)[0],
            "bb_output_dl_mean": ensemble(stats.bb)[0],
            "ee_residual_dl_mean": ee_res, "ee_residual_dl_std": ee_res_std,
            "bb_residual_dl_mean": bb_res, "bb_residual_dl_std": bb_res_std,
            "te_output_dl_mean": te_out, "te_delta_dl_mean": te_delta, "te_delta_dl_std": te_delta_std,
            "ee_ratio": ee_ratio, "ee_transfer": ee_transfer, "ee_half_split_ratio": ee_half,
            "bb_residual_over_lensing": bb_over_lensing,
        },
        "half_split": half_split,
    }


def dataset_polarization(pol: PolarizationEvaluation) -> dict[str, Any]:
    """Method-independent Q/U facts of a dataset: the label's spectra and the model's."""
    ell = pol.ell
    ee, ee_std = ensemble(pol.ee)
    bb, bb_std = ensemble(pol.bb)
    te, te_std = ensemble(pol.te)
    return {
        "n_patches": len(pol.lat), "ell": ell, "ee_dl_mean": ee, "ee_dl_std": ee_std,
        "bb_dl_mean": bb, "bb_dl_std": bb_std, "te_dl_mean": te, "te_dl_std": te_std,
        "model_ee_dl": pol.model_ee, "lensing_bb_dl": pol.lensing_bb,
        "ee_over_model": _mean_over(ell, ee / pol.model_ee, "ee_recovery"),
        "bb_over_lensing": _mean_over(ell, bb / pol.lensing_bb, "lensing_bb"),
    }


def polarization_metrics(evaluations: Mapping[str, PolarizationEvaluation]) -> dict[str, Any]:
    """``metrics.json``'s ``polarization``: per dataset with Q and U (``evaluations``, by name)
    its facts, and per method that separates Q and U its numbers on each."""
    methods = list(next(iter(evaluations.values())).methods)  # the same separators on every dataset
    skipped = {m: why for pol in evaluations.values() for m, why in pol.skipped.items()}
    return {
        "ell_ranges": RANGES, "high_latitude_deg": HIGH_LATITUDE_DEG,
        "spectra": "EE of the tapered Q/U, BB pure (Smith 2006), TE = T x E; D_ell in uK^2",
        "skipped": skipped,
        "datasets": {d: dataset_polarization(pol) for d, pol in evaluations.items()},
        "results": {m: {d: method_polarization(pol, m) for d, pol in evaluations.items()
                        if m in pol.methods} for m in methods},
    }
