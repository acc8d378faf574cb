"""Calibration of a method's stated uncertainty: does its per-pixel σ describe its actual error?

For every method whose :meth:`cenn.separation.Separator.separate_with_sigma` returns a σ map, the
evaluation feeds each batch's label, output and σ (all µK_CMB, ``(B, H, W)``) to a
:class:`CalibrationStats`, which keeps only counts and sums (no pixels are stored), and
:func:`calibration_summary` turns them into the numbers of ``results.<method>.<set>.calibration`` in
``metrics.json``:

- coverage: the fraction of pixels with |r| < σ and < 2σ (a Gaussian σ gives 0.683 and 0.954);
- reliability: observed coverage of the interval ±z_p σ against the nominal probability p, with z_p
  the two-sided standard-normal quantile, at :data:`NOMINAL_LEVELS` (on the diagonal when calibrated);
- histogram: the distribution of z = r/σ in :data:`Z_EDGES` bins (with under- and overflow), beside
  the standard normal's expected fractions;
- sigma_bins: σ against the error, in up to :data:`N_SIGMA_BINS` log-spaced bins of σ spanning the
  σ values met: mean and RMS σ, RMS residual and pixel count per bin;
- mask: the confidence mask σ ≤ ``mask_above_uk``: the fraction of pixels kept, this method's
  residual RMS inside and outside it, and every other method's residual RMS inside the same mask.

The residual is r = label − output, as everywhere in the report (coverage and the RMS do not depend
on the sign). Pixels whose σ is not finite and positive, or whose residual is not finite, are counted
(``n_invalid``) and left out of every statistic; they are never in the mask.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import torch

#: Nominal two-sided coverage probabilities of the reliability diagram.
NOMINAL_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Multiples k of σ whose coverage |r| < kσ is reported on its own.
COVERAGE_K = (1.0, 2.0)
#: Bin edges of the histogram of z = r/σ (40 bins of 0.25, plus under- and overflow).
Z_EDGES = np.linspace(-5.0, 5.0, 41)
#: The fine log-spaced σ grid (µK) counts are kept on: 100 bins per decade from 1e-4 to 1e7 µK.
SIGMA_FINE_EDGES = np.logspace(-4.0, 7.0, 11 * 100 + 1)
#: Bins of σ reported (merged from the fine grid over the range of σ met).
N_SIGMA_BINS = 12

_NORMAL = NormalDist()
#: ``metrics.json``'s ``results``: {method: {set: method summary}}.
Results = Mapping[str, Mapping[str, Mapping[str, Any]]]


def two_sided_quantile(p: float) -> float:
    """z_p with P(|Z| < z_p) = p for a standard normal Z."""
    return _NORMAL.inv_cdf(0.5 * (1.0 + p))


def normal_coverage(k: float) -> float:
    """P(|Z| < k) for a standard normal Z."""
    return 2.0 * _NORMAL.cdf(k) - 1.0


def normal_bin_fractions(edges: Sequence[float]) -> tuple[np.ndarray, float, float]:
    """The standard normal's probability in each bin of ``edges`` ``(len(edges) - 1,)``, below the
    first edge and above the last."""
    cdf = np.array([_NORMAL.cdf(float(e)) for e in edges])
    return np.diff(cdf), float(cdf[0]), float(1.0 - cdf[-1])


#: Thresholds on |z| counted: the COVERAGE_K multiples, then the reliability levels' z_p.
_THRESHOLDS = np.array([*COVERAGE_K, *(two_sided_quantile(p) for p in NOMINAL_LEVELS)])
_ORDER = np.argsort(_THRESHOLDS)


class CalibrationStats:
    """Running counts and sums for one σ-giving method on one dataset (see the module docstring).

    Attributes (float64 numpy arrays; sums over the valid pixels of every batch added):
        mask_above_uk: the confidence mask keeps the pixels with σ ≤ this (µK_CMB).
        n_pixels, n_invalid: all pixels seen, and those left out (σ not finite and > 0, or r not finite).
        within: pixel counts with |z| < each threshold (``COVERAGE_K``, then ``NOMINAL_LEVELS``' z_p).
        z_counts: histogram of z = r/σ over ``Z_EDGES`` ``(len(Z_EDGES) + 1,)``: underflow first,
            overflow last. z_sum, z_sq: Σz and Σz².
        sigma_counts, sigma_sum, sigma_sq, residual_sq: per bin of ``SIGMA_FINE_EDGES`` (with under-
            and overflow, ``(len(SIGMA_FINE_EDGES) + 1,)``): pixels, Σσ (µK), Σσ² and Σr² (µK²).
        kept, residual_sq_in, residual_sq_out: pixels in the mask, Σr² inside and outside it (µK²).
        others: per other method, Σr² inside the mask and over all valid pixels (µK²).
    """

    def __init__(self, mask_above_uk: float):
        self.mask_above_uk = float(mask_above_uk)
        self.n_pixels = self.n_invalid = 0
        self.within = np.zeros(len(_THRESHOLDS))
        self.z_counts = np.zeros(len(Z_EDGES) + 1)
        self.z_sum = self.z_sq = 0.0
        n_fine = len(SIGMA_FINE_EDGES) + 1
        self.sigma_counts, self.sigma_sum = np.zeros(n_fine), np.zeros(n_fine)
        self.sigma_sq, self.residual_sq = np.zeros(n_fine), np.zeros(n_fine)
        self.kept = 0
        self.residual_sq_in = self.residual_sq_out = 0.0
        self.others: dict[str, dict[str, float]] = {}

    def add(self, target: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor,
            others: Mapping[str, torch.Tensor] | None = None) -> None:
        """Count one batch: the label ``target``, this method's ``output`` and its ``sigma``, all
        ``(B, H, W)`` µK_CMB; ``others``: other methods' outputs of the same patches (same shape),
        whose residual RMS inside this method's mask is kept too."""
        if not target.shape == output.shape == sigma.shape:
            raise ValueError(f"target {tuple(target.shape)}, output {tuple(output.shape)} and sigma "
                             f"{tuple(sigma.shape)} must have one shape")
        t = target.double().flatten()
        r = t - output.double().flatten()
        s = sigma.double().flatten()
        valid = torch.isfinite(s) & (s > 0) & torch.isfinite(r)
        self.n_pixels += r.numel()
        self.n_invalid += int((~valid).sum())
        keep = valid & (s <= self.mask_above_uk)
        for name, out in (others or {}).items():
            sq = (t - out.double().flatten()).pow(2)
            acc = self.others.setdefault(name, {"residual_sq_in": 0.0, "residual_sq_all": 0.0})
            acc["residual_sq_in"] += float(sq[keep].sum())
            acc["residual_sq_all"] += float(sq[valid].sum())
        self.kept += int(keep.sum())
        self.residual_sq_in += float(r[keep].pow(2).sum())
        self.residual_sq_out += float(r[valid & ~keep].pow(2).sum())
        r, s = r[valid], s[valid]
        z = r / s
        self.z_sum += float(z.sum())
        self.z_sq += float(z.pow(2).sum())
        self.z_counts += _counts(z, Z_EDGES)
        thresholds = torch.as_tensor(_THRESHOLDS[_ORDER], dtype=z.dtype, device=z.device)
        # |z| < threshold j  <=>  fewer than j + 1 sorted thresholds are <= |z|
        below = np.cumsum(_counts(z.abs(), thresholds))[: len(_THRESHOLDS)]
        self.within[_ORDER] += below
        fine = torch.as_tensor(SIGMA_FINE_EDGES, dtype=s.dtype, device=s.device)
        index = torch.bucketize(s, fine, right=True)
        n = len(SIGMA_FINE_EDGES) + 1
        self.sigma_counts += torch.bincount(index, minlength=n).cpu().numpy()
        self.sigma_sum += torch.bincount(index, weights=s, minlength=n).cpu().numpy()
        self.sigma_sq += torch.bincount(index, weights=s * s, minlength=n).cpu().numpy()
        self.residual_sq += torch.bincount(index, weights=r * r, minlength=n).cpu().numpy()

    @property
    def n_valid(self) -> int:
        return self.n_pixels - self.n_invalid


def _counts(values: torch.Tensor, edges: np.ndarray | torch.Tensor) -> np.ndarray:
    """Counts of ``values`` per interval ``[edges[i-1], edges[i])``, ``(len(edges) + 1,)``: below the
    first edge first, at or above the last edge last."""
    edges = torch.as_tensor(edges, dtype=values.dtype, device=values.device)
    index = torch.bucketize(values, edges, right=True)
    return torch.bincount(index, minlength=len(edges) + 1).cpu().numpy().astype(np.float64)


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _rms(sum_sq: float, n: float) -> float | None:
    return float(np.sqrt(sum_sq / n)) if n > 0 else None


def sigma_bins(stats: CalibrationStats, n_bins: int = N_SIGMA_BINS) -> list[dict[str, Any]]:
    """σ against the error: the fine σ grid merged into at most ``n_bins`` log-spaced bins over the
    range of σ met (an end bin holding σ off the grid has edge 0 or inf), each with ``lo_uk``,
    ``hi_uk``, ``n_pixels``, ``sigma_mean_uk``, ``sigma_rms_uk`` (√⟨σ²⟩) and ``residual_rms_uk``
    (√⟨r²⟩; equal to ``sigma_rms_uk`` when σ is calibrated); empty bins have None."""
    filled = np.flatnonzero(stats.sigma_counts)
    if filled.size == 0:
        return []
    ext = np.concatenate([[0.0], SIGMA_FINE_EDGES, [np.inf]])
    cuts = np.unique(np.round(np.linspace(filled[0], filled[-1] + 1, n_bins + 1)).astype(int))
    out = []
    for a, b in itertools.pairwise(cuts):
        n = float(stats.sigma_counts[a:b].sum())
        out.append({"lo_uk": float(ext[a]), "hi_uk": float(ext[b]), "n_pixels": int(n),
                    "sigma_mean_uk": float(stats.sigma_sum[a:b].sum() / n) if n else None,
                    "sigma_rms_uk": _rms(stats.sigma_sq[a:b].sum(), n),
                    "residual_rms_uk": _rms(stats.residual_sq[a:b].sum(), n)})
    return out


def calibration_summary(stats: CalibrationStats) -> dict[str, Any]:
    """The numbers of ``results.<method>.<set>.calibration`` (schema in ``docs/evaluation.md``):
    fractions over the valid pixels, RMS values in µK_CMB."""
    n = stats.n_valid
    frac = stats.within / n if n else np.full(len(_THRESHOLDS), np.nan)
    k = len(COVERAGE_K)
    observed = frac[k:]
    expected, under, over = normal_bin_fractions(Z_EDGES)
    counts = stats.z_counts / n if n else np.full(len(stats.z_counts), np.nan)
    rms_in = _rms(stats.residual_sq_in, stats.kept)
    others = {}
    for name, acc in stats.others.items():
        other_in = _rms(acc["residual_sq_in"], stats.kept)
        others[name] = {"residual_rms_in_uk": other_in,
                        "residual_rms_all_uk": _rms(acc["residual_sq_all"], n),
                        "rms_ratio_in": _ratio(rms_in, other_in)}
    return {
        "n_pixels": stats.n_pixels,
        "n_invalid": stats.n_invalid,
        "coverage": {
            **{f"{c:g}sigma": float(f) for c, f in zip(COVERAGE_K, frac[:k], strict=True)},
            **{f"expected_{c:g}sigma": normal_coverage(c) for c in COVERAGE_K},
        },
        "z_mean": stats.z_sum / n if n else None,
        "z_rms": _rms(stats.z_sq, n),
        "reliability": {
            "nominal": list(NOMINAL_LEVELS),
            "z": [float(z) for z in _THRESHOLDS[k:]],
            "observed": observed,
            "max_deviation": float(np.max(np.abs(observed - np.array(NOMINAL_LEVELS)))),
        },
        "histogram": {
            "edges": Z_EDGES, "fraction": counts[1:-1], "expected": expected,
            "underflow": float(counts[0]), "overflow": float(counts[-1]),
            "expected_underflow": under, "expected_overflow": over,
        },
        "sigma_bins": sigma_bins(stats),
        "mask": {
            "threshold_uk": stats.mask_above_uk,
            "kept_fraction": stats.kept / stats.n_pixels if stats.n_pixels else None,
            "n_kept": stats.kept,
            "residual_rms_in_uk": rms_in,
            "residual_rms_out_uk": _rms(stats.residual_sq_out, n - stats.kept),
            "residual_rms_all_uk": _rms(stats.residual_sq_in + stats.residual_sq_out, n),
            "others": others,
        },
    }


# --- tables of metrics.json's calibration entries (for the report's CSV files and document) --------

def calibrated(results: Results) -> list[tuple[str, str, dict]]:
    """``(set, method, calibration)`` for every method and set of ``metrics.json``'s ``results``
    with a calibration entry, sets in the order first met."""
    sets = list(dict.fromkeys(d for per_set in results.values() for d in per_set))
    return [(d, m, per_set[d]["calibration"]) for d in sets for m, per_set in results.items()
            if d in per_set and per_set[d].get("calibration")]


def csv_tables(results: Results) -> dict[str, tuple[list[str], list[list]]]:
    """``{file name under tables/: (header, rows)}`` of the calibration entries (numbers as they are)."""
    entries = calibrated(results)
    summary = [[d, m, c["n_pixels"], c["coverage"]["1sigma"], c["coverage"]["2sigma"],
                c["coverage"]["expected_1sigma"], c["coverage"]["expected_2sigma"], c["z_mean"], c["z_rms"],
                c["reliability"]["max_deviation"], c["mask"]["threshold_uk"], c["mask"]["kept_fraction"],
                c["mask"]["residual_rms_in_uk"], c["mask"]["residual_rms_out_uk"],
                c["mask"]["residual_rms_all_uk"]] for d, m, c in entries]
    mask = [[d, m, o, c["mask"]["threshold_uk"], c["mask"]["kept_fraction"], c["mask"]["residual_rms_in_uk"],
             v["residual_rms_in_uk"], v["rms_ratio_in"]]
            for d, m, c in entries for o, v in c["mask"]["others"].items()]
    reliability = [[d, m, p, z, obs] for d, m, c in entries
                   for p, z, obs in zip(c["reliability"]["nominal"], c["reliability"]["z"],
                                        c["reliability"]["observed"], strict=True)]
    bins = [[d, m, b["lo_uk"], b["hi_uk"], b["n_pixels"], b["sigma_mean_uk"], b["sigma_rms_uk"],
             b["residual_rms_uk"]] for d, m, c in entries for b in c["sigma_bins"]]
    hist = []
    for d, m, c in entries:
        h = c["histogram"]
        edges = list(h["edges"])
        hist.append([d, m, -np.inf, edges[0], h["underflow"], h["expected_underflow"]])
        hist += [[d, m, lo, hi, f, e] for lo, hi, f, e in
                 zip(edges[:-1], edges[1:], h["fraction"], h["expected"], strict=True)]
        hist.append([d, m, edges[-1], np.inf, h["overflow"], h["expected_overflow"]])
    return {
        "calibration.csv": (["dataset", "method", "n_pixels", "coverage_1sigma", "coverage_2sigma",
                             "expected_1sigma", "expected_2sigma", "z_mean", "z_rms",
                             "reliability_max_deviation", "mask_threshold_uk", "mask_kept_fraction",
                             "residual_rms_in_mask_uk", "residual_rms_outside_mask_uk",
                             "residual_rms_all_uk"], summary),
        "calibration_mask.csv": (["dataset", "method", "compared_method", "mask_threshold_uk",
                                  "mask_kept_fraction", "residual_rms_in_mask_uk",
                                  "compared_residual_rms_in_mask_uk", "rms_ratio"], mask),
        "calibration_reliability.csv": (["dataset", "method", "nominal", "z", "observed"], reliability),
        "calibration_sigma_bins.csv": (["dataset", "method", "sigma_lo_uk", "sigma_hi_uk", "n_pixels",
                                        "sigma_mean_uk", "sigma_rms_uk", "residual_rms_uk"], bins),
        "calibration_histogram.csv": (["dataset", "method", "z_lo", "z_hi", "fraction", "expected"], hist),
    }
