"""Metrics of separated patches: pixel residuals, spectrum statistics and their summaries.

Conventions (every report number follows them): the residual is ``target − output`` (µK_CMB); the
spectrum difference is ``ΔD_ℓ = D_ℓ(target) − D_ℓ(output)`` (µK²); an ensemble line is the mean
over patches of a per-patch spectrum and its band the standard deviation over patches; a range
summary "mean ± std" is the average over the bins whose centres lie in ``[lo, hi)`` of the line
and of its band (the paper's "13 ± 113 µK² for all multipoles").
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

PERCENTILES = (5, 16, 50, 84, 95)
#: The per-patch residual metrics of :func:`pixel_metrics`.
PIXEL_METRICS = ("mae", "rms", "std", "max_abs", "mean")


def nan_array(*shape: int) -> np.ndarray:
    """An array of ``shape`` filled with NaN (a value not yet measured)."""
    return np.full(shape, np.nan)


def pixel_metrics(target: torch.Tensor, output: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-patch residual metrics of maps ``(N, H, W)`` in µK: ``mae`` (mean |r|), ``rms``
    (√⟨r²⟩), ``std`` (about the patch's mean), ``max_abs`` and ``mean``; each ``(N,)`` float64."""
    r = (target.double() - output.double()).flatten(1)
    return {"mae": r.abs().mean(1), "rms": r.pow(2).mean(1).sqrt(), "std": r.std(1, correction=0),
            "max_abs": r.abs().amax(1), "mean": r.mean(1)}


def map_stats(m: np.ndarray) -> dict[str, float]:
    """Mean, RMS (√⟨m²⟩, the paper's Table 1) and standard deviation of one map, µK."""
    m = np.asarray(m, dtype=np.float64)
    return {"mean_uk": float(m.mean()), "rms_uk": float(np.sqrt(np.mean(m**2))), "std_uk": float(m.std())}


def _quiet(reduce, *arrays: np.ndarray) -> np.ndarray:
    """``reduce`` over axis 0 with empty bins (all NaN) giving NaN silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(*arrays)


def ensemble(per_patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over patches (axis 0) of per-patch spectra ``(N, n_bins)``."""
    return (_quiet(lambda a: np.nanmean(a, axis=0), per_patch),
            _quiet(lambda a: np.nanstd(a, axis=0), per_patch))


def as_line(values: Any) -> np.ndarray:
    """A per-bin line as read back from ``metrics.json`` (None for an empty bin) as floats with NaN."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def in_range(centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mask of the bins whose centres lie in ``[lo, hi)``."""
    return (centres >= lo) & (centres < hi)


def range_summary(centres: np.ndarray, line: np.ndarray, band: np.ndarray | None,
                  ranges: dict[str, list[float]]) -> dict[str, dict[str, float | None]]:
    """For each named range, the average over its bins of ``line`` (``mean``) and of ``band``
    (``std``); None where a range holds no bin."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (lo, hi) in ranges.items():
        keep = in_range(centres, lo, hi) & np.isfinite(line)
        entry: dict[str, float | None] = {"mean": float(line[keep].mean()) if keep.any() else None}
        if band is not None:
            entry["std"] = float(band[keep].mean()) if keep.any() else None
        out[name] = entry
    return out


def transfer_function(cross: np.ndarray, cmb: np.ndarray) -> np.ndarray:
    """t_ℓ = ⟨C_ℓ(out×in)⟩ / ⟨C_ℓ(in)⟩ from per-patch spectra ``(N, n_bins)``."""
    return _quiet(lambda a, b: np.nanmean(a, axis=0) / np.nanmean(b, axis=0), cross, cmb)


def transfer_error(cross: np.ndarray, cmb: np.ndarray) -> np.ndarray:
    """Standard error of :func:`transfer_function` from the scatter over patches (delta method):
    σ_t = std_i(C_i(out×in) − t C_i(in)) / (√N ⟨C_ℓ(in)⟩), ``(n_bins,)``."""
    def err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        mean_b = np.nanmean(b, axis=0)
        t = np.nanmean(a, axis=0) / mean_b
        n = np.sum(np.isfinite(a - b), axis=0)
        return np.nanstd(a - t * b, axis=0) / (np.sqrt(n) * mean_b)

    return _quiet(err, cross, cmb)


def correlation(cross: np.ndarray, out: np.ndarray, cmb: np.ndarray) -> np.ndarray:
    """r_ℓ = ⟨C_ℓ(out×in)⟩ / √(⟨C_ℓ(out)⟩ ⟨C_ℓ(in)⟩) from per-patch spectra ``(N, n_bins)``."""
    def r(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.nanmean(a, axis=0) / np.sqrt(np.nanmean(b, axis=0) * np.nanmean(c, axis=0))

    return _quiet(r, cross, out, cmb)


def percentiles(values: np.ndarray) -> dict[str, float]:
    """The :data:`PERCENTILES` of ``values`` keyed by their number."""
    return {str(p): float(v) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)}


def jsonable(value: Any) -> Any:
    """``value`` with numpy types converted and NaN/inf replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
