"""Half-split cross-spectra: a method's CMB spectrum without noise bias.

A store simulated with ``cenn simulate --splits 2`` holds, beside each patch's inputs, two
half-mission maps: the same sky with independent noise of σ √2 each, averaging to the inputs
(:meth:`cenn.data.store.DatasetStore.splits`), as Planck's half-mission maps. The evaluation runs every
method on both halves (with the halves' noise σ √2 where a method takes σ) and cross-correlates the
two outputs: the noise of the halves is independent, so the cross-spectrum has no noise bias, while
the auto-spectrum of an output carries its noise power. Per ℓ bin (the evaluation's binning and
spectrum estimator, :class:`cenn.sky.flat.spectra.SpectrumEstimator`), :func:`half_split_summary` gives
the mean over patches of the cross D_ℓ, of the CMB label's D_ℓ and of their per-patch difference,
the standard error of that difference (its standard deviation over patches / √N) and how many bins
lie within 2 standard errors of zero: an unbiased method has the cross-spectrum of the CMB it keeps,
so a difference from the label's spectrum is its transfer (signal lost or foregrounds left), not noise.
These are ``results.<method>.<set>.half_split`` of ``metrics.json``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cenn.evaluate.metrics import in_range
from cenn.separation import InputInfo, Separator
from cenn.sky.flat.spectra import SpectrumEstimator, cl_to_dl

#: Factor on the full map's noise σ giving each half's (half the integration time).
HALF_SIGMA_FACTOR = math.sqrt(2.0)
#: ``metrics.json``'s ``results``: {method: {set: method summary}}.
Results = Mapping[str, Mapping[str, Mapping[str, Any]]]


class HalfSplitStats:
    """Per-patch binned D_ℓ (µK², ``(n_patches, n_bins)``, NaN until filled) of one method's outputs
    on the two halves of one set: ``cross`` (half 1 × half 2) and ``auto`` (each half's auto-spectrum,
    averaged over the two halves: the noise-biased spectrum, for comparison)."""

    def __init__(self, n: int, n_bins: int):
        self.cross = np.full((n, n_bins), np.nan)
        self.auto = np.full((n, n_bins), np.nan)

    def add(self, rows: slice, estimator: SpectrumEstimator, first: torch.Tensor,
            second: torch.Tensor) -> None:
        """Record patches ``rows`` from the method's outputs on the first and second halves,
        ``(B, H, W)`` µK_CMB."""
        self.add_modes(rows, estimator, estimator.fourier(first), estimator.fourier(second))

    def add_modes(self, rows: slice, estimator: SpectrumEstimator, fa: torch.Tensor,
                  fb: torch.Tensor) -> None:
        """Record patches ``rows`` from the Fourier modes of the outputs on the two halves (``estimator``'s
        :meth:`~SpectrumEstimator.fourier`, or the E or B modes of
        :meth:`cenn.sky.flat.eb_spectra.EBSpectra.modes`)."""
        self.cross[rows] = _binned_dl(estimator, fa, fb)
        self.auto[rows] = 0.5 * (_binned_dl(estimator, fa) + _binned_dl(estimator, fb))


def _binned_dl(estimator: SpectrumEstimator, fa: torch.Tensor, fb: torch.Tensor | None = None) -> np.ndarray:
    """Binned auto (or cross, with ``fb``) D_ℓ in µK² of Fourier modes from ``estimator.fourier``,
    ``(..., n_bins)`` float64."""
    return cl_to_dl(estimator.ell, estimator.binned(fa, fb).cpu().numpy())


def separate_halves(separators: Mapping[str, Separator], splits: torch.Tensor, info: InputInfo,
                    noise_sigma: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each method's CMB ``(B, H, W)`` µK_CMB on the first and on the second half.

    Args:
        separators: the methods.
        splits: the half-mission maps ``(B, 2, C, H, W)`` µK_CMB.
        info: what the inputs are.
        noise_sigma: the full maps' per-pixel noise σ ``(B, C, H, W)`` µK_CMB; each half's is σ √2.
    """
    sigma = HALF_SIGMA_FACTOR * noise_sigma
    return {m: (sep.separate(splits[:, 0], info, sigma)[:, 0], sep.separate(splits[:, 1], info, sigma)[:, 0])
            for m, sep in separators.items()}


def half_split_summary(ell: np.ndarray, cmb: np.ndarray, stats: HalfSplitStats,
                       ell_range: tuple[float, float]) -> dict[str, Any]:
    """The numbers of ``results.<method>.<set>.half_split`` (schema in ``docs/evaluation.md``).

    Args:
        ell: bin centres ``(n_bins,)``.
        cmb: per-patch D_ℓ of the CMB label ``(n_patches, n_bins)`` µK².
        stats: the method's half-split spectra on the same patches.
        ell_range: ``[lo, hi)`` of bin centres for the one-number summaries.

    Per bin (D_ℓ in µK², means over patches): ``cross_dl``, ``cmb_dl``, ``auto_dl``, ``difference_dl``
    (cross − CMB) and ``standard_error_dl`` (standard deviation over patches of the per-patch
    difference, one degree of freedom removed, / √N); ``within_2se`` of the ``n_bins`` bins with a
    finite standard error have |difference| ≤ 2 standard errors. Over ``ell_range``: the mean
    difference / standard error and the mean difference and auto − CMB in µK².
    """
    difference = stats.cross - cmb
    n = np.sum(np.isfinite(difference), axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # empty bins and a single patch give NaN
        mean = np.nanmean(difference, axis=0)
        error = np.nanstd(difference, axis=0, ddof=1) / np.sqrt(n)
        ratio = np.where(error > 0, mean / error, np.where(mean == 0, 0.0, np.nan))
        cross, cmb_mean, auto = (np.nanmean(a, axis=0) for a in (stats.cross, cmb, stats.auto))
    valid = np.isfinite(mean) & np.isfinite(error)
    within = int(np.sum(valid & (np.abs(mean) <= 2.0 * error)))
    keep = in_range(np.asarray(ell), *ell_range) & valid
    return {
        "n_patches": int(n.max()) if n.size else 0,
        "ell": ell, "cross_dl": cross, "cmb_dl": cmb_mean, "auto_dl": auto,
        "difference_dl": mean, "standard_error_dl": error,
        "within_2se": within, "n_bins": int(valid.sum()),
        "fraction_within_2se": within / valid.sum() if valid.any() else None,
        "ell_range": list(ell_range),
        "mean_difference_over_se": _mean(ratio[keep]),
        "mean_difference_dl": _mean(mean[keep]),
        "mean_auto_minus_cmb_dl": _mean(auto[keep] - cmb_mean[keep]),
    }


def _mean(values: np.ndarray) -> float | None:
    """The mean of the finite ``values``; None when there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


# --- tables of metrics.json's half-split entries (for the report's CSV file and document) -----------

def half_split_entries(results: Results) -> list[tuple[str, str, dict]]:
    """``(set, method, half_split)`` for every method and set of ``metrics.json``'s ``results`` with a
    half-split entry, sets in the order first met."""
    sets = list(dict.fromkeys(d for per_set in results.values() for d in per_set))
    return [(d, m, per_set[d]["half_split"]) for d in sets for m, per_set in results.items()
            if d in per_set and per_set[d].get("half_split")]


def half_split_csv(results: Results) -> tuple[list[str], list[list]]:
    """Header and rows of ``tables/half_split.csv``: every bin of every entry (D_ℓ in µK²)."""
    keys = ("ell", "cross_dl", "cmb_dl", "auto_dl", "difference_dl", "standard_error_dl")
    rows = [[d, m, *values] for d, m, h in half_split_entries(results)
            for values in zip(*(h[k] for k in keys), strict=True)]
    return ["dataset", "method", *keys], rows
