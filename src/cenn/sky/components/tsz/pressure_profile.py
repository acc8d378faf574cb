"""The cluster pressure profile of the tSZ component: the generalised NFW shape (Arnaud+2010),
its line-of-sight projection, the pixel-averaged lookup table stamps are painted from and its 2-D
Fourier transform. Radii in units of R500 (3-D) or θ500 (projected)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

TABLE_DENSITY = 8192
"""Profile-table entries per x_max θ500 of radius."""
Q_MAX = 120.0
"""Largest ℓ θ500 of the profile's Fourier transform (P is ~1e-4 there)."""
PIXEL_SIGMA = 1.0 / math.sqrt(12.0)
"""σ (pixels) of the Gaussian standing for the pixel's top hat (same variance) on stamps."""


@dataclass(frozen=True)
class PressureProfile:
    """Generalised NFW pressure shape p(x) = (c x)^−γ [1 + (c x)^α]^−(β−γ)/α, x = r/R500,
    truncated at ``x_max``; normalisation (P0 P500) is set by the Y–M relation instead."""

    c500: float
    gamma: float
    alpha: float
    beta: float
    x_max: float = 5.0

    def shape(self, x):
        cx = self.c500 * np.asarray(x, dtype=np.float64)
        return cx ** (-self.gamma) * (1.0 + cx**self.alpha) ** (-(self.beta - self.gamma) / self.alpha)

    def y_sphere(self, x: float) -> float:
        """∫₀ˣ p(u) u² du (Y_sph(x R500) up to a constant)."""
        from scipy.integrate import quad

        return float(quad(lambda u: float(self.shape(u)) * u * u, 0.0, x, limit=200,
                          epsrel=1e-10)[0])

    @functools.cached_property
    def j_ratio(self) -> float:
        """J = Y_sph(x_max R500) / Y_sph(R500), the factor from Y500 to the truncated total."""
        return self.y_sphere(self.x_max) / self.y_sphere(1.0)

    def projected(self, big_x: np.ndarray) -> np.ndarray:
        """Line-of-sight integral ∫ p(√(X² + l²)) dl of the truncated profile at projected radii
        X (units of R500); zero for X ≥ x_max."""
        big_x = np.asarray(big_x, dtype=np.float64)
        t, w = np.polynomial.legendre.leggauss(96)
        t, w = 0.5 * (t + 1.0), 0.5 * w  # on [0, 1]
        half = np.sqrt(np.clip(self.x_max**2 - big_x**2, 0.0, None))
        lsub = half[:, None] * t[None, :] ** 2  # l = L t², dl = 2 L t dt
        r = np.sqrt(big_x[:, None] ** 2 + lsub**2)
        integrand = self.shape(np.maximum(r, 1e-12)) * 2.0 * half[:, None] * t[None, :]
        return 2.0 * np.sum(w * integrand, axis=1)


@functools.lru_cache(maxsize=8)
def stamp_table(profile: PressureProfile, extent: float, rows: tuple[float, ...]) -> np.ndarray:
    """Projected profiles of unit Y averaged over a pixel, for lookup by truncation, one row per
    θ500 in ``rows`` (pixels).

    Row k, entry i: fraction of Y per θ500² at radius X = x_max (i + ½) / TABLE_DENSITY (units of
    θ500), for the projected profile g (∫ g 2πX dX = 1, truncated at x_max) convolved with a
    Gaussian of σ = PIXEL_SIGMA pixels standing for the pixel's top hat; entries run to X = x_max
    × ``extent`` (0 beyond the truncation radius). Only the core (X < 12 σ) is smoothed: the
    outskirts are smooth on the pixel scale."""
    from scipy.special import i0e

    step = profile.x_max / TABLE_DENSITY
    x = (np.arange(math.ceil(extent * TABLE_DENSITY) + 1) + 0.5) * step
    inside = x < profile.x_max
    g = np.zeros(x.size)
    g[inside] = profile.projected(x[inside])
    # normalise on a grid refined near the centre, where the profile has a cusp
    xf = np.concatenate([np.geomspace(1e-6, 0.05, 300), np.linspace(0.05, profile.x_max, 6000)])
    gf = profile.projected(xf)
    g /= 2.0 * math.pi * np.sum(0.5 * (gf[1:] * xf[1:] + gf[:-1] * xf[:-1]) * np.diff(xf))
    table = np.tile(g, (len(rows), 1))
    for k, s in enumerate(rows):
        sig = PIXEL_SIGMA / s  # in θ500
        # smooth where the profile bends on the scale of σ: the core (the outskirts are smooth,
        # and g → 0 continuously at the truncation radius)
        near = x < 12.0 * sig
        xp = np.linspace(0.0, 18.0 * sig, 601)[1:]
        fp = np.interp(xp, x, g, left=g[0])
        xs = x[near][:, None]
        kern = np.exp(-((xs - xp[None, :]) ** 2) / (2 * sig**2)) * i0e(xs * xp[None, :] / sig**2)
        table[k, near] = (kern * (fp * xp)[None, :]).sum(1) * (xp[1] - xp[0]) / sig**2
    return table


@functools.lru_cache(maxsize=8)
def profile_transform(profile: PressureProfile) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D Fourier transform of the unit-Y projected profile, P(q) = 2π ∫ g(X) J0(qX) X dX,
    with q = ℓ θ500; returns (q, P) with P(0) = 1 and P = 0 beyond the last q."""
    from scipy.special import j0

    x = np.concatenate([np.geomspace(1e-6, 0.05, 300), np.linspace(0.05, profile.x_max, 4000)])
    g = profile.projected(x)
    g[-1] = 0.0
    wx = np.zeros_like(x)  # trapezoid weights
    dx = np.diff(x)
    wx[:-1] += 0.5 * dx
    wx[1:] += 0.5 * dx
    q = np.concatenate([np.linspace(0.0, 10.0, 401), np.linspace(10.05, Q_MAX, 900)])
    p = np.empty_like(q)
    for i in range(0, q.size, 100):
        p[i:i + 100] = 2.0 * math.pi * (j0(q[i:i + 100, None] * x[None, :]) @ (g * x * wx))
    return q, p / p[0]
