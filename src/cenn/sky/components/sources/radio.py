"""Extragalactic radio sources (blazars: FSRQ and BL Lac) as Poisson-distributed point sources.

CENN (Casas et al. 2022, Sect. 2) simulated them at the central channel, 217 GHz, from the
Tucci et al. (2011) model, and gave each source a spectral index drawn from the Planck PCCS2
distributions to extrapolate it to 143 and 353 GHz. Here, for every patch independently:

1. a Poisson number of sources lies uniformly on the padded generation grid, with fluxes at
   ``reference_ghz`` (217 GHz) drawn from the Tucci-model counts there, between flux_min_jy and
   flux_max_jy;
2. each source gets spectral indices (S ∝ ν^α), independent of its flux, on the segments between
   anchor frequencies (143, 217, 353 GHz): α₁ ~ N(alpha_mean, alpha_sigma) and
   α_{k+1} = α_k + N(steepening_mean, steepening_sigma). Its SED is the piecewise power law
   through the anchors, the first and last segments extended below and above them, so any
   instrument's band gets a flux.

The Tucci-model counts are tabulated at 150 GHz (Lagache et al. 2020; a C2Ex table at 148 GHz is
the alternative). The 217 GHz counts are that table carried to 217 GHz by the same index
distribution: dN/dln S₂₁₇(S) = ⟨dN/dln S₁₅₀(S e^{−Δ})⟩ over the Gaussian shift
Δ = ln S₂₁₇ − ln S₁₅₀ = α₁ ln(217/150). With the PCCS2 mean α₁ = −0.43 (the Tucci model's own
effective index 150→225 GHz is −0.42…−0.46) they reproduce the Tucci-model 225 GHz table within a
few per cent (see ``data/radio.toml``). Drawing the indices independently of the 217 GHz flux, as
CENN did, gives the sources above any 217 GHz flux exactly the PCCS2 index distributions.

Sources are painted as single-pixel deltas in µK_CMB
(:func:`cenn.sky.components.sources.catalogue.paint`); the simulator's beam then spreads them,
conserving flux. :meth:`Radio.expected_number` and :meth:`Radio.expected_poisson_cl` give the
model's exact expectations at any frequency, for validation.

All numbers and their sources are in ``cenn/sky/data/radio.toml``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from numpy.polynomial.hermite_e import hermegauss

from cenn.sky.components._polarization import random_angles
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.sources.catalogue import SourceCatalogue, SourceCounts, paint, uniform_positions
from cenn.sky.shipped import shipped_path, shipped_toml

STREAM = "radio"
"""Name of the random stream (one NumPy generator per sample) every draw comes from."""

_TOML = shipped_toml("radio.toml")
_P = _TOML["parameters"]
TABLES: dict[str, dict] = _TOML["tables"]
"""Count tables shipped with cenn: name → {file, frequency_ghz}."""


@register
@dataclass
class Radio(Component):
    """Radio point sources (Tucci et al. 2011 counts, PCCS2 spectral indices).

    Parameters (defaults and sources in ``data/radio.toml``):
        counts: a count table shipped with cenn (``tucci_lagache2020_150ghz``, the default, or
            ``tucci_c2ex_148ghz``) or the path of a CSV of S (Jy) and dN/dS (Jy⁻¹ sr⁻¹).
        counts_ghz: frequency of the table, GHz; required for a CSV path, else set to the
            shipped table's.
        reference_ghz: frequency (GHz) where the flux range applies (CENN: 217).
        flux_min_jy, flux_max_jy: flux range at ``reference_ghz``, Jy: sources with
            flux_min ≤ S < flux_max are simulated (lower ``flux_max_jy`` to leave out the
            brightest, e.g. 0.3 for sources below the Planck detection limit).
        anchors_ghz: increasing anchor frequencies; the SED is a power law on each segment.
        alpha_mean, alpha_sigma: Gaussian index of the first segment.
        steepening_mean, steepening_sigma: Gaussian change of the index at each further anchor
            (one entry per segment after the first).
        pol_fraction_median, pol_fraction_sigma_ln: lognormal polarization fraction of each
            source (median, width of ln p); angles uniform.

    The counts are read and carried to ``reference_ghz`` once, when first needed: build a new
    component (e.g. ``dataclasses.replace``) rather than changing the parameters of a used one.
    """

    name = "radio"
    polarized = True
    counts: str = _P["counts"]
    counts_ghz: float | None = None
    reference_ghz: float = _P["reference_ghz"]
    flux_min_jy: float = _P["flux_min_jy"]
    flux_max_jy: float = _P["flux_max_jy"]
    anchors_ghz: list[float] = field(default_factory=lambda: list(_P["anchors_ghz"]))
    alpha_mean: float = _P["alpha_mean"]
    alpha_sigma: float = _P["alpha_sigma"]
    steepening_mean: list[float] = field(default_factory=lambda: list(_P["steepening_mean"]))
    steepening_sigma: list[float] = field(default_factory=lambda: list(_P["steepening_sigma"]))
    pol_fraction_median: float = _P["pol_fraction_median"]
    pol_fraction_sigma_ln: float = _P["pol_fraction_sigma_ln"]

    def __post_init__(self) -> None:
        if not 0.0 < self.flux_min_jy < self.flux_max_jy:
            raise ValueError(
                f"radio: need 0 < flux_min_jy < flux_max_jy, got {self.flux_min_jy}, "
                f"{self.flux_max_jy}"
            )
        anchors = [float(a) for a in self.anchors_ghz]
        if len(anchors) < 2 or any(b <= a for a, b in itertools.pairwise(anchors)):
            raise ValueError(f"radio: anchors_ghz must be >= 2 increasing frequencies: {anchors}")
        if anchors[0] <= 0 or self.reference_ghz <= 0:
            raise ValueError("radio: frequencies must be positive")
        n_extra = len(anchors) - 2
        if len(self.steepening_mean) != n_extra or len(self.steepening_sigma) != n_extra:
            raise ValueError(
                f"radio: {len(anchors)} anchors give {n_extra} index change(s): steepening_mean "
                f"and steepening_sigma need {n_extra} entries each"
            )
        if self.alpha_sigma < 0 or any(s < 0 for s in self.steepening_sigma):
            raise ValueError("radio: index dispersions must be >= 0")
        if self.counts_ghz is None:
            if self.counts not in TABLES:
                raise ValueError(
                    f"radio: counts {self.counts!r} is not a shipped table ({sorted(TABLES)}); "
                    "for a CSV path give its frequency as counts_ghz"
                )
            self.counts_ghz = float(TABLES[self.counts]["frequency_ghz"])
        if self.counts_ghz <= 0:
            raise ValueError(f"radio: counts_ghz must be positive, got {self.counts_ghz}")

    # ---------------------------------------------------------------------------------- model

    @cached_property
    def _table(self) -> SourceCounts:
        if self.counts in TABLES:
            with shipped_path(TABLES[self.counts]["file"]) as path:
                return SourceCounts.from_csv(path)
        return SourceCounts.from_csv(Path(self.counts))

    @property
    def table_counts(self) -> SourceCounts:
        """The tabulated differential counts, at ``counts_ghz``."""
        return self._table

    @property
    def n_segments(self) -> int:
        return len(self.anchors_ghz) - 1

    def log_sed_matrix(self, nu_ghz) -> np.ndarray:
        """E with ln S(ν) − ln S(anchor₀) = E @ α: the ln ν length of each segment up to ν.

        Returns (len(nu_ghz), n_segments) float64; the first segment extends below the first
        anchor and the last above the last anchor.
        """
        lnu = np.log(np.atleast_1d(np.asarray(nu_ghz, dtype=np.float64)))[:, None]
        b = np.log(np.asarray(self.anchors_ghz, dtype=np.float64))
        lo = b[:-1].copy()
        hi = b[1:].copy()
        lo[0], hi[-1] = -np.inf, np.inf
        return np.clip(lnu, lo, hi) - np.where(np.isfinite(lo), lo, b[0])

    def _shift(self, nu_ghz) -> np.ndarray:
        """D with ln S(ν) − ln S(ν_ref) = D @ α, (len(nu_ghz), n_segments)."""
        return self.log_sed_matrix(nu_ghz) - self.log_sed_matrix(self.reference_ghz)

    def index_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n_segments,) and covariance (n_segments, n_segments) of the indices α."""
        inc_mean = np.array([self.alpha_mean, *self.steepening_mean], dtype=np.float64)
        inc_var = np.array([self.alpha_sigma, *self.steepening_sigma], dtype=np.float64) ** 2
        k = np.arange(self.n_segments)
        cum_var = np.cumsum(inc_var)
        return np.cumsum(inc_mean), cum_var[np.minimum(k[:, None], k[None, :])]

    def shift_quadrature(self, nu_ghz: float, n_nodes: int = 96) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Hermite nodes and weights (summing to 1) of the Gaussian ln S(ν) − ln S(ν_ref)."""
        d = self._shift(nu_ghz)[0]
        mean, cov = self.index_moments()
        sigma = math.sqrt(max(float(d @ cov @ d), 0.0))
        x, w = hermegauss(n_nodes)
        return float(d @ mean) + sigma * x, w / w.sum()

    def draw_indices(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Spectral indices of ``count`` sources, (count, n_segments)."""
        inc_mean = np.array([self.alpha_mean, *self.steepening_mean], dtype=np.float64)
        inc_sigma = np.array([self.alpha_sigma, *self.steepening_sigma], dtype=np.float64)
        return np.cumsum(inc_mean + inc_sigma * rng.standard_normal((count, self.n_segments)), 1)

    @cached_property
    def source_counts(self) -> SourceCounts:
        """Differential counts at ``reference_ghz``: the table carried by the index distribution,
        dN/dln S_ref(S) = ⟨dN/dln S_c(S e^{Δ})⟩, Δ = ln S_c − ln S_ref Gaussian."""
        table = self._table
        delta, w = self.shift_quadrature(self.counts_ghz)
        ln_s, ln_d = np.log(table.flux_jy), np.log(table.dnds)
        if not (ln_s[0] <= math.log(self.flux_min_jy) and math.log(self.flux_max_jy) <= ln_s[-1]):
            raise ValueError(
                f"radio: the counts table ({table.flux_jy[0]:.3g}-{table.flux_jy[-1]:.3g} Jy) "
                f"does not cover the flux range {self.flux_min_jy}-{self.flux_max_jy} Jy"
            )
        # beyond its ends the table is continued as a power law (its end slopes), for the few
        # sources whose index carries them in from outside
        slope_lo = (ln_d[1] - ln_d[0]) / (ln_s[1] - ln_s[0])
        slope_hi = (ln_d[-1] - ln_d[-2]) / (ln_s[-1] - ln_s[-2])
        ext_s = np.concatenate([[ln_s[0] - 10.0], ln_s, [ln_s[-1] + 10.0]])
        ext_d = np.concatenate([[ln_d[0] - 10.0 * slope_lo], ln_d, [ln_d[-1] + 10.0 * slope_hi]])
        grid = np.linspace(ln_s[0], ln_s[-1], 2048)
        src = grid[:, None] + delta[None, :]  # ln S_c
        dn_dlns = np.exp(np.interp(src, ext_s, ext_d) + src) @ w
        return SourceCounts(np.exp(grid), dn_dlns / np.exp(grid))

    # --------------------------------------------------------------------------- simulation

    def setup(self, instrument, geometry, device) -> None:
        _ = self.source_counts  # read and carry the table once

    def catalogue(self, ctx: SkyContext) -> SourceCatalogue:
        """Draw the sources of every patch of the batch (positions on ``ctx.geometry``).

        Per sample, from its own generator of stream ``"radio"``, in this order: the Poisson
        number and the fluxes at ``reference_ghz``, the spectral indices, the positions.
        """
        counts = self.source_counts
        band_shift = self._shift(ctx.instrument.frequencies_ghz)  # (n_bands, K)
        table_shift = self._shift(self.counts_ghz)[0]  # (K,)
        area = ctx.geometry.area_sr
        parts: list[tuple[np.ndarray, ...]] = []
        for i, rng in enumerate(ctx.random.numpy(STREAM)):
            s_ref = counts.sample(rng, area, self.flux_min_jy, self.flux_max_jy)
            alpha = self.draw_indices(rng, s_ref.size)
            row, col = uniform_positions(rng, s_ref.size, ctx.geometry)
            flux = s_ref[:, None] * np.exp(alpha @ band_shift.T)
            s_table = s_ref * np.exp(alpha @ table_shift)
            parts.append((np.full(s_ref.size, i), row, col, flux, s_ref, s_table, alpha))
        sample, row, col, flux, s_ref, s_table, alpha = (np.concatenate(p) for p in zip(*parts, strict=True))
        return SourceCatalogue.from_arrays(ctx.device, sample, row, col, flux_jy=flux, flux_ref_jy=s_ref,
                                           alpha=alpha, flux_counts_jy=s_table)

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Radio sources in µK_CMB before the beam, (batch, n_bands, n, n) float32."""
        cat = self.catalogue(ctx)
        maps = paint(cat.sample, cat.row, cat.col, cat.flux_jy, ctx.batch, ctx.instrument,
                     ctx.geometry)
        return maps if self.scale == 1.0 else maps * self.scale

    def polarization(self, ctx: SkyContext, intensity: torch.Tensor) -> torch.Tensor:
        """Q and U in µK_CMB before the beam, ``(batch, 2, n_bands, n, n)``: each pixel of the
        painted ``intensity`` (one source, as a rule) gets a lognormal fraction and a uniform
        angle of its own (stream ``radio_pol``), the same in every band."""
        frac = random_angles(ctx.random, "radio_pol", ctx.geometry.shape, self.pol_fraction_median,
                             self.pol_fraction_sigma_ln)
        return frac[:, :, None] * intensity[:, None]

    # --------------------------------------------------------------------------- expectations

    @cached_property
    def _cumulative(self) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Cumulative ∫ S^p dN/dln S d ln S of the reference counts within the flux range."""
        counts = self.source_counts
        lns = np.linspace(math.log(self.flux_min_jy), math.log(self.flux_max_jy), 20001)
        dnds = np.exp(np.interp(lns, np.log(counts.flux_jy), np.log(counts.dnds)))
        out = {}
        for p in (0, 1, 2, 3, 4):
            f = np.exp((p + 1) * lns) * dnds  # S^p dN/dlnS
            out[p] = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(lns))])
        return lns, out

    def expected_moment(
        self, nu_ghz: float, power: int, s_min: float = 0.0, s_max: float = math.inf
    ) -> float:
        """Σ S_ν^power per steradian over the simulated sources with s_min ≤ S_ν < s_max.

        Exact for the model: for each Gauss–Hermite node Δ of ln S_ν − ln S_ref, the reference
        counts are integrated between the flux range and the bounds s_min e^{−Δ}, s_max e^{−Δ}.
        ``power`` is 0 (number), 1, 2 (shot noise, Jy² sr⁻¹), 3 or 4.
        """
        lns, cum = self._cumulative
        delta, w = self.shift_quadrature(nu_ghz)
        with np.errstate(divide="ignore"):
            lo = np.maximum(lns[0], math.log(s_min) - delta if s_min > 0 else -np.inf)
            hi = np.minimum(lns[-1], math.log(s_max) - delta if np.isfinite(s_max) else np.inf)
        hi = np.maximum(hi, lo)
        f = cum[power]
        integral = np.interp(hi, lns, f) - np.interp(lo, lns, f)
        return float(np.sum(w * integral * np.exp(power * delta)))

    def expected_number(self, nu_ghz: float, s_min: float = 0.0, s_max: float = math.inf) -> float:
        """Simulated sources per steradian with s_min ≤ S_ν < s_max at ν (GHz)."""
        return self.expected_moment(nu_ghz, 0, s_min, s_max)

    def expected_poisson_cl(
        self, nu_ghz: float, s_min: float = 0.0, s_max: float = math.inf
    ) -> float:
        """Shot-noise C_ℓ = Σ S_ν² per sr (Jy² sr⁻¹) of the simulated sources with
        s_min ≤ S_ν < s_max at ν; divide by U_ν² (MJy sr⁻¹ K⁻¹) for µK² sr."""
        return self.expected_moment(nu_ghz, 2, s_min, s_max)
