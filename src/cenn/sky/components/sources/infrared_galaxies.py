"""Bright infrared (dusty, late-type) galaxies as Poisson-distributed point sources.

CENN (Casas et al. 2022, Sect. 2) simulated the IR late-type galaxies at the central channel,
217 GHz, and extrapolated every source to 143 and 353 GHz with their Eq. 1,

    S_ν = S_217 (ν / 217 GHz)^α,   one α per source, α ~ N(alpha_mean, alpha_sigma).

For every patch independently (stream ``"infrared_galaxies"`` of the sample's generator):

1. a Poisson number of galaxies with ``flux_min_jy ≤ S_217 < flux_max_jy`` on the padded generation
   grid, fluxes drawn from the differential counts at 217 GHz (Béthermin et al. 2011 model; no
   public table of the Cai et al. 2013 counts CENN used exists);
2. uniform pixel positions on the grid;
3. one spectral index per galaxy, giving its flux at every band's nominal frequency (no colour
   correction);
4. single-pixel deltas in µK_CMB, ΔT = S / (Ω_pix U_ν) (:func:`cenn.sky.components.sources.catalogue.paint`);
   the simulator's beam spreads them, conserving flux.

These galaxies belong to the population whose Poisson power Planck measured as the CIB shot noise:
:meth:`InfraredGalaxies.poisson_cl_jy2` gives their exact Poisson C_ℓ for every band pair, which
the ``cib`` component subtracts from the measured levels, so the power is counted once.

Numbers and sources: ``cenn/sky/data/infrared_galaxies.toml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.sources.catalogue import SourceCatalogue, SourceCounts, paint, uniform_positions
from cenn.sky.instrument import Instrument
from cenn.sky.shipped import shipped_path, shipped_toml

STREAM = "infrared_galaxies"
"""Name of the random stream (one NumPy generator per sample) every draw comes from."""

_TOML = shipped_toml("infrared_galaxies.toml")
_P = _TOML["parameters"]
COUNTS_FREQUENCY_GHZ: float = float(_TOML["counts"]["frequency_ghz"])
"""Frequency of the counts table (217 GHz): the reference of the flux range and of Eq. 1."""


@lru_cache(maxsize=1)
def source_counts() -> SourceCounts:
    """The shipped differential counts dN/dS at :data:`COUNTS_FREQUENCY_GHZ`."""
    with shipped_path(_TOML["counts"]["file"]) as path:
        return SourceCounts.from_csv(path)


@register
@dataclass
class InfraredGalaxies(Component):
    """IR late-type galaxies painted as point sources (defaults and sources in
    ``data/infrared_galaxies.toml``).

    Parameters:
        flux_min_jy, flux_max_jy: flux range at 217 GHz, Jy (galaxies with
            flux_min ≤ S_217 < flux_max are painted; the fainter ones are left to the CIB shot term).
        alpha_mean, alpha_sigma: Gaussian distribution of the spectral index of Eq. 1.
    """

    name = "infrared_galaxies"
    flux_min_jy: float = _P["flux_min_jy"]
    flux_max_jy: float = _P["flux_max_jy"]
    alpha_mean: float = _P["alpha_mean"]
    alpha_sigma: float = _P["alpha_sigma"]

    def __post_init__(self) -> None:
        counts = source_counts()
        lo, hi = float(counts.flux_jy[0]), float(counts.flux_jy[-1])
        if not (lo <= self.flux_min_jy < self.flux_max_jy and self.flux_min_jy < hi):
            raise ValueError(
                f"infrared_galaxies: need {lo:g} <= flux_min_jy < flux_max_jy and flux_min_jy < "
                f"{hi:g} (Jy, the range of the counts table), got {self.flux_min_jy}, "
                f"{self.flux_max_jy}"
            )
        if self.alpha_sigma < 0:
            raise ValueError(f"infrared_galaxies: alpha_sigma must be >= 0, got {self.alpha_sigma}")

    # ---------------------------------------------------------------------------------- model

    @property
    def _flux_range(self) -> tuple[float, float]:
        return self.flux_min_jy, min(self.flux_max_jy, float(source_counts().flux_jy[-1]))

    def number_per_sr(self, flux_jy: float = 0.0) -> float:
        """Expected painted galaxies per steradian with S_217 above ``flux_jy`` (and in range)."""
        lo, hi = self._flux_range
        lo = max(lo, flux_jy)
        return source_counts().number_per_sr(lo, hi) if lo < hi else 0.0

    def sed_moment(self, nu_a_ghz: float, nu_b_ghz: float) -> float:
        """E[(ν_a/ν₀)^α (ν_b/ν₀)^α] over the index distribution: exp(μL + σ²L²/2),
        L = ln(ν_a/ν₀) + ln(ν_b/ν₀), ν₀ = 217 GHz."""
        lg = math.log(nu_a_ghz / COUNTS_FREQUENCY_GHZ) + math.log(nu_b_ghz / COUNTS_FREQUENCY_GHZ)
        return math.exp(self.alpha_mean * lg + 0.5 * (self.alpha_sigma * lg) ** 2)

    def poisson_cl_jy2(self, frequencies_ghz: Sequence[float]) -> np.ndarray:
        """Poisson (shot) C_ℓ of the painted galaxies in Jy² sr⁻¹ for every pair of frequencies,
        (n, n): scale² ∫ S² dN/dS dS (over the flux range at 217 GHz) × E[(ν_a ν_b / ν₀²)^α]."""
        c217 = source_counts().poisson_cl(*self._flux_range)
        nus = [float(f) for f in frequencies_ghz]
        moments = np.array([[self.sed_moment(a, b) for b in nus] for a in nus])
        return self.scale**2 * c217 * moments

    def poisson_cl(self, instrument: Instrument) -> np.ndarray:
        """Poisson C_ℓ of the painted galaxies in µK_CMB² sr for every band pair, (n_bands, n_bands):
        :meth:`poisson_cl_jy2` / (U_a U_b), U the band's MJy sr⁻¹ per K_CMB."""
        u = np.asarray(instrument.mjysr_per_kcmb(), dtype=np.float64)
        return self.poisson_cl_jy2(instrument.frequencies_ghz) / np.outer(u, u)

    # --------------------------------------------------------------------------- simulation

    def catalogue(self, ctx: SkyContext) -> SourceCatalogue:
        """Draw the galaxies of every patch of the batch (positions on ``ctx.geometry``).

        Per sample, from its own generator of stream ``"infrared_galaxies"``, in this order: the
        Poisson number and the 217 GHz fluxes, the positions, the spectral indices.
        """
        counts = source_counts()
        lo, hi = self._flux_range
        log_nu = np.log(np.asarray(ctx.instrument.frequencies_ghz) / COUNTS_FREQUENCY_GHZ)
        area = ctx.geometry.area_sr
        parts = []
        for i, rng in enumerate(ctx.random.numpy(STREAM)):
            s = counts.sample(rng, area, lo, hi)
            row, col = uniform_positions(rng, s.size, ctx.geometry)
            alpha = self.alpha_mean + self.alpha_sigma * rng.standard_normal(s.size)
            parts.append((np.full(s.size, i), row, col, s, alpha))
        sample, row, col, s, alpha = (np.concatenate(p) for p in zip(*parts, strict=True))
        flux = s[:, None] * np.exp(alpha[:, None] * log_nu[None, :])
        return SourceCatalogue.from_arrays(ctx.device, sample, row, col, flux_jy=flux, flux_ref_jy=s,
                                           alpha=alpha)

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """IR galaxies in µK_CMB before the beam, (batch, n_bands, n, n) float32."""
        cat = self.catalogue(ctx)
        flux = cat.flux_jy if self.scale == 1.0 else cat.flux_jy * self.scale
        return paint(cat.sample, cat.row, cat.col, flux, ctx.batch, ctx.instrument, ctx.geometry)

