"""Numbers of an evaluation: what ``metrics.json`` holds (schema in ``docs/evaluation.md``).

Every quantity of the paper's Sect. 4 and the extra diagnostics, per method and dataset, computed
from :class:`cenn.evaluate.analysis.DatasetEvaluation` with the conventions of
:mod:`cenn.evaluate.metrics`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from cenn.evaluate.analysis import DatasetEvaluation, ResidualStats
from cenn.evaluate.calibration import calibration_summary
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.half_split import half_split_summary
from cenn.evaluate.metrics import (
    as_line,
    correlation,
    ensemble,
    in_range,
    map_stats,
    percentiles,
    range_summary,
    transfer_error,
    transfer_function,
)
from cenn.sky.flat.spectra import cl_to_dl

SCHEMA = "cenn-evaluation/1"


def spectra_table(ev: DatasetEvaluation, stats: ResidualStats) -> dict[str, np.ndarray]:
    """Per-bin lines (D_ℓ in µK²): label, output, ΔD = label − output and residual, each mean and
    standard deviation over patches; the mean residual patch's D_ℓ with its mode scatter; the
    transfer function with its standard error, the response to an injected CMB
    (:mod:`cenn.evaluate.injection`; NaN without injection) and the correlation coefficient."""
    est = ev.estimator
    cmb_mean, cmb_std = ensemble(ev.cmb)
    out_mean, out_std = ensemble(stats.output)
    delta_mean, delta_std = ensemble(ev.cmb - stats.output)
    res_mean, res_std = ensemble(stats.residual)
    mrp, mrp_std = _single_spectrum(ev, stats.mean_residual_patch)
    return {
        "ell": est.ell, "cmb_dl_mean": cmb_mean, "cmb_dl_std": cmb_std,
        "output_dl_mean": out_mean, "output_dl_std": out_std,
        "delta_dl_mean": delta_mean, "delta_dl_std": delta_std,
        "residual_dl_mean": res_mean, "residual_dl_std": res_std,
        "mean_residual_patch_dl": mrp, "mean_residual_patch_dl_std": mrp_std,
        "transfer": transfer_function(stats.cross, ev.cmb),
        "transfer_error": transfer_error(stats.cross, ev.cmb),
        "response_transfer": transfer_function(stats.response, ev.injected),
        "correlation": correlation(stats.cross, stats.output, ev.cmb),
    }


def _single_spectrum(ev: DatasetEvaluation, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D_ℓ of one map ``(H, W)`` and the standard deviation of its mode powers in each bin."""
    est = ev.estimator
    cl, std = est.binned(est.fourier(torch.as_tensor(m, device=est.device)), return_std=True)
    return cl_to_dl(est.ell, cl.cpu().numpy()), cl_to_dl(est.ell, std.cpu().numpy())


def pixel_summary(p: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-patch residual metrics (:func:`cenn.evaluate.metrics.pixel_metrics`, µK) over the patches:
    mean |r|, √ of the mean square, the per-patch RMS's mean and percentiles, largest |r|, mean r."""
    return {
        "mae_uk": float(np.mean(p["mae"])),
        "rmse_uk": float(np.sqrt(np.mean(p["rms"] ** 2))),
        "residual_rms_mean_uk": float(np.mean(p["rms"])),
        "residual_rms_percentiles_uk": percentiles(p["rms"]),
        "max_abs_residual_uk": float(np.max(p["max_abs"])),
        "mean_residual_uk": float(np.mean(p["mean"])),
    }


def _spectra_summary(ev: DatasetEvaluation, cmb: np.ndarray, stats: ResidualStats,
                     ranges: dict[str, list[float]]) -> dict[str, Any]:
    ell = ev.ell
    return {
        "delta_dl": range_summary(ell, *ensemble(cmb - stats.output), ranges),
        "residual_dl": range_summary(ell, *ensemble(stats.residual), ranges),
        "transfer": range_summary(ell, transfer_function(stats.cross, cmb), None, ranges),
        "correlation": range_summary(ell, correlation(stats.cross, stats.output, cmb), None, ranges),
    }


def _dust_bins(ev: DatasetEvaluation, stats: ResidualStats, config: EvaluationConfig) -> list[dict[str, Any]]:
    edges, out = config.dust_edges_uk, []
    for lo, hi in itertools.pairwise(edges):
        sel = (ev.dust_brightness_uk >= lo) & (ev.dust_brightness_uk < hi)
        entry: dict[str, Any] = {"lo_uk": lo, "hi_uk": hi, "n_patches": int(sel.sum())}
        if sel.any():
            entry["residual_rms_mean_uk"] = float(np.mean(stats.pixel["rms"][sel]))
            entry["mae_uk"] = float(np.mean(stats.pixel["mae"][sel]))
            res = range_summary(ev.ell, *ensemble(stats.residual[sel]), config.ell_ranges)
            entry["residual_dl"] = res
        out.append(entry)
    return out


def _noise(ev: DatasetEvaluation, method: str, config: EvaluationConfig) -> dict[str, Any]:
    """The robustness test: factor 1 (nominal) on the same patches as the scaled-noise runs."""
    runs = ev.noise[method]
    if not runs:
        return {}
    n = next(iter(runs.values())).filled
    nominal = ev.methods[method]
    out = {}
    for factor, stats in [(1.0, nominal), *runs.items()]:
        out[f"{factor:g}"] = {
            "n_patches": n,
            "residual_rms_mean_uk": float(np.mean(stats.pixel["rms"][:n])),
            **_spectra_summary(ev, ev.cmb[:n], _Subset(stats, n), config.ell_ranges),
        }
    return out


class _Subset:
    """The first ``n`` patches of a :class:`ResidualStats` (spectra only)."""

    def __init__(self, stats: ResidualStats, n: int):
        self.output, self.cross, self.residual = stats.output[:n], stats.cross[:n], stats.residual[:n]


def _contaminated(ev: DatasetEvaluation, method: str, config: EvaluationConfig) -> dict[str, Any]:
    maps = ev.examples["contaminated"]
    residual = maps.target - maps.outputs[method]
    d_in, s_in = _single_spectrum(ev, maps.target)
    d_out, s_out = _single_spectrum(ev, maps.outputs[method])
    d_res, s_res = _single_spectrum(ev, residual)
    ranges = {**config.ell_ranges, "1200-1800": [1200.0, 1800.0]}
    return {
        "index": maps.index, "lat_deg": maps.lat, "lon_deg": maps.lon,
        "criterion": f"largest mean D_ell of the non-dust foregrounds at the target band for "
                     f"{config.contamination_ell[0]:g} <= ell < {config.contamination_ell[1]:g}",
        "contamination_dl": float(ev.contamination[maps.index]),
        "residual_mean_uk": float(residual.mean()), "residual_std_uk": float(residual.std()),
        "delta_dl": range_summary(ev.ell, d_in - d_out, np.hypot(s_in, s_out), ranges),
        "residual_dl": range_summary(ev.ell, d_res, s_res, ranges),
        "per_bin": {"ell": ev.ell, "cmb_dl": d_in, "cmb_dl_std": s_in, "output_dl": d_out,
                    "output_dl_std": s_out, "residual_dl": d_res, "residual_dl_std": s_res},
    }


def method_summary(ev: DatasetEvaluation, method: str, config: EvaluationConfig) -> dict[str, Any]:
    """Every number for one method on one dataset (``calibration``: None for a method that states
    no σ; ``half_split``: None for a dataset without half-mission maps)."""
    stats = ev.methods[method]
    table = spectra_table(ev, stats)
    mrp = map_stats(stats.mean_residual_patch)
    return {
        "n_patches": ev.n_patches,
        "pixel": pixel_summary(stats.pixel),
        "mean_residual_patch": {
            **mrp,
            "dl": range_summary(ev.ell, table["mean_residual_patch_dl"],
                                table["mean_residual_patch_dl_std"], config.ell_ranges),
        },
        "spectra": {**_spectra_summary(ev, ev.cmb, stats, config.ell_ranges),
                    "response_transfer": range_summary(ev.ell, table["response_transfer"], None,
                                                       config.ell_ranges)},
        "per_bin": table,
        "per_patch": per_patch_figures(ev.ell, stats),
        "by_dust": _dust_bins(ev, stats, config),
        "noise": _noise(ev, method, config),
        "contaminated_patch": _contaminated(ev, method, config),
        "calibration": (calibration_summary(ev.calibration[method]) if method in ev.calibration
                        else None),
        "half_split": (half_split_summary(ev.ell, ev.cmb, ev.half_split[method], HEADLINE_ELL_RANGE)
                       if method in ev.half_split else None),
    }


def dataset_summary(ev: DatasetEvaluation) -> dict[str, Any]:
    """Method-independent facts of a dataset: provenance and the foreground spectra (Fig. 5)."""
    region = ev.meta.get("config", {}).get("region", {})
    comps = {name: dict(zip(("mean", "std"), ensemble(v), strict=True)) for name, v in ev.components.items()}
    fg_mean, fg_std = ensemble(ev.foregrounds)
    return {
        "path": ev.path, "n_patches": ev.n_patches, "seed": ev.meta.get("seed"),
        "region_deg": [region.get("lat_min"), region.get("lat_max")],
        "mean_abs_lat_deg": float(np.mean(np.abs(ev.lat))),
        "frequencies_ghz": list(ev.info.frequencies_ghz), "target_band": ev.info.target_band,
        "sky_components": ev.meta.get("sky_components"), "stored_components": list(ev.components),
        "foreground_source": ev.foreground_source, "dust_source": ev.dust_source,
        "ell": ev.ell, "cmb_dl_mean": ensemble(ev.cmb)[0],
        "foreground_dl_mean": fg_mean, "foreground_dl_std": fg_std,
        "component_dl": comps,
    }


#: The multipole range and the transfer-function multipoles of :func:`headline_figures`.
HEADLINE_ELL_RANGE = (300.0, 2500.0)
HEADLINE_TRANSFER_ELLS = (500, 1500, 2500)


def per_patch_figures(ell: np.ndarray, stats: ResidualStats) -> dict[str, np.ndarray]:
    """Each patch's share of the headline figures, ``(N,)`` per key: its residual RMS (µK) and its
    residual D_ℓ averaged over the bins in :data:`HEADLINE_ELL_RANGE` (µK²); their means over the
    patches are :func:`headline_figures`' ``residual_rms_uk`` and ``residual_dl_uk2``."""
    keep = in_range(np.asarray(ell, dtype=float), *HEADLINE_ELL_RANGE)
    return {"residual_rms_uk": stats.pixel["rms"],
            "residual_dl_uk2": np.nanmean(stats.residual[:, keep], axis=1)}


def headline_figures(result: dict[str, Any]) -> dict[str, float]:
    """The figures a comparison of methods reads first, from one ``results.<method>.<dataset>``
    entry of ``metrics.json``: the mean per-patch residual RMS (µK), the residual D_ℓ and ΔD_ℓ =
    D_ℓ(CMB) − D_ℓ(output) averaged over the bins in :data:`HEADLINE_ELL_RANGE` that hold modes
    (µK²), and the transfer function t_ℓ in the bins nearest :data:`HEADLINE_TRANSFER_ELLS` (keys
    ``t_500``, ...)."""
    bins = result["per_bin"]
    ell = np.asarray(bins["ell"], dtype=float)
    keep = in_range(ell, *HEADLINE_ELL_RANGE)

    def line(key: str) -> np.ndarray:
        return as_line(bins[key])
    out = {"residual_rms_uk": float(result["pixel"]["residual_rms_mean_uk"]),
           "residual_dl_uk2": float(np.nanmean(line("residual_dl_mean")[keep])),
           "delta_dl_uk2": float(np.nanmean(line("delta_dl_mean")[keep]))}
    transfer = line("transfer")
    for target in HEADLINE_TRANSFER_ELLS:
        out[f"t_{target}"] = float(transfer[np.argmin(np.abs(ell - target))])
    return out
