"""A σ-dependent calibration of the standard deviation a network states for its residual.

A network trained with a Gaussian likelihood states a σ per pixel, but how well that σ covers the
residual depends on σ itself: measured on the reference model, pixels with a small stated σ (quiet
high latitudes) held 60 % of their residuals within ±σ and those with σ of 11–15 µK held 75 %. One
factor cannot fix both. :class:`SigmaCurve` multiplies σ by a factor that depends on σ, piecewise
linear in ln σ between knots, constant beyond them, and never reorders pixels: the calibrated σ is
a non-decreasing function of the stated one, so a confidence mask at a σ threshold stays a mask of
the same pixels at the corresponding threshold. :meth:`SigmaCurve.fit` finds it on held-out
patches (:mod:`cenn.predict.calibrate`); networks carry it as their ``sigma_curve`` parameter and
:func:`cenn.model.apply.apply_network` applies it to σ in µK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: The coverage ±σ has for a Gaussian (erf(1/√2)).
ONE_SIGMA = math.erf(1.0 / math.sqrt(2.0))


@dataclass(frozen=True)
class SigmaCurve:
    """σ → σ · exp(c(ln σ)), σ in µK; ``c`` is linear between the knots ``log_sigma_uk`` (ln µK,
    increasing) where it takes the values ``log_factor``, and constant beyond the end knots."""

    log_sigma_uk: tuple[float, ...]
    log_factor: tuple[float, ...]

    def __post_init__(self) -> None:
        knots, factors = np.asarray(self.log_sigma_uk, float), np.asarray(self.log_factor, float)
        if knots.ndim != 1 or knots.size == 0 or knots.shape != factors.shape:
            raise ValueError("a σ curve needs as many log_factor values as log_sigma_uk knots (at least "
                             f"one); got {knots.size} knots and {factors.size} factors")
        if not (np.isfinite(knots).all() and np.isfinite(factors).all()):
            raise ValueError("a σ curve's knots and factors must be finite numbers")
        if np.any(np.diff(knots) <= 0):
            raise ValueError(f"a σ curve's knots must increase; got {knots.tolist()}")
        if np.any(np.diff(knots + factors) < 0):
            raise ValueError("a σ curve must keep the order of σ (ln σ + log_factor non-decreasing at "
                             "its knots); fit it with SigmaCurve.fit")

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[float]]) -> SigmaCurve:
        """From a network's ``sigma_curve`` parameter, ``{"log_sigma_uk": [...], "log_factor": [...]}``."""
        missing = {"log_sigma_uk", "log_factor"} - set(params)
        if missing:
            raise ValueError(f"a sigma_curve parameter needs the keys log_sigma_uk and log_factor; "
                             f"missing {', '.join(sorted(missing))}")
        return cls(tuple(float(v) for v in params["log_sigma_uk"]),
                   tuple(float(v) for v in params["log_factor"]))

    def to_params(self) -> dict[str, list[float]]:
        """The network parameter this curve is stored as (:meth:`from_params`)."""
        return {"log_sigma_uk": list(self.log_sigma_uk), "log_factor": list(self.log_factor)}

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        """The calibrated σ (µK) of a stated ``sigma`` (µK, any shape), in its dtype."""
        knots = torch.tensor(self.log_sigma_uk, dtype=torch.float64, device=sigma.device)
        factors = torch.tensor(self.log_factor, dtype=torch.float64, device=sigma.device)
        x = torch.log(sigma.to(torch.float64).clamp_min(torch.finfo(torch.float64).tiny))
        if knots.numel() == 1:
            return (sigma.to(torch.float64) * torch.exp(factors[0])).to(sigma.dtype)
        right = torch.searchsorted(knots, x.reshape(-1).contiguous()).clamp(1, knots.numel() - 1)
        left = right - 1
        t = ((x.reshape(-1) - knots[left]) / (knots[right] - knots[left])).clamp(0.0, 1.0)
        c = (factors[left] + t * (factors[right] - factors[left])).reshape(x.shape)
        return (sigma.to(torch.float64) * torch.exp(c)).to(sigma.dtype)

    @classmethod
    def fit(cls, abs_residual: np.ndarray, sigma: np.ndarray, bins: int = 8,
            coverage: float = ONE_SIGMA) -> SigmaCurve:
        """The curve under which a fraction ``coverage`` of the pixels of each of ``bins`` bins of equal
        pixel count in stated σ has its residual within ±σ: per bin the ``coverage`` quantile of
        |residual| / σ, at the bin's median ln σ; where the calibrated ln σ would decrease from one knot
        to the next, the knots' values are pooled (their mean), so that it keeps the order of σ.
        ``abs_residual`` and ``sigma`` (µK): flat arrays of the same size."""
        abs_residual, sigma = np.ravel(abs_residual), np.ravel(sigma)
        if abs_residual.shape != sigma.shape or sigma.size < bins:
            raise ValueError(f"fitting a σ curve of {bins} bins needs at least as many pixels, with one "
                             f"stated σ per residual; got {abs_residual.size} residuals and {sigma.size} σ")
        if not (np.all(sigma > 0) and np.isfinite(sigma).all() and np.isfinite(abs_residual).all()):
            raise ValueError("cannot fit a σ curve: the stated σ must be positive and every value finite")
        order = np.argsort(sigma, kind="stable")
        knots, factors = [], []
        for part in np.array_split(order, bins):
            knots.append(float(np.median(np.log(sigma[part]))))
            factors.append(float(np.log(np.quantile(abs_residual[part] / sigma[part], coverage))))
        knots, factors = np.asarray(knots), np.asarray(factors)
        keep = np.concatenate([[True], np.diff(knots) > 0])  # bins of equal σ share a knot
        knots, factors = knots[keep], factors[keep]
        calibrated = _non_decreasing(knots + factors)
        return cls(tuple(knots.tolist()), tuple((calibrated - knots).tolist()))


def _non_decreasing(values: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence nearest ``values`` in least squares (pool adjacent violators):
    runs that decrease are replaced by their mean."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, n2), (m1, n1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, n in blocks])
