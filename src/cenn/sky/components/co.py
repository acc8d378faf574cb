"""Galactic CO rotational lines: CO(1-0), CO(2-1) and CO(3-2) in the bands that contain them.

Model (parameters and their sources in ``cenn/sky/data/co.toml``; ``W`` is the velocity-integrated
CO(1-0) intensity in K_RJ km/s):

* Mean intensity at every pixel (Galactic l, b): a thin molecular disk, bright in the inner Galaxy
  (|l| ≲ 55°) and fainter towards the anticentre, thicker in angle in the outer Galaxy, plus a
  thicker layer of local clouds (the same form as the dust's disk and thick terms, with CO's own
  numbers and random draws)::

      W̄(l, b) = A_disk [f_ac + (1 - f_ac) S(l)] e^{-|b|/h(l)} + A_local e^{-|b|/h_local}
      S(l) = 1 / (1 + e^{(|l| - l_in)/Δl}),   h(l) = h_out + (h_in - h_out) S(l)

  evaluated on a coarse grid and upsampled (bilinear in log), times a mean-preserving lognormal
  patch factor ``exp(σ_p z - σ_p²/2)``.
* Clumps: ``W(x) = W̄(x) exp(σ_g u(x) - σ_g² v/2)``, ``u`` a Gaussian field with ``C_ℓ ∝ ℓ^slope``
  of unit variance over ``ℓ >= sigma_g_lmin`` (``v`` its variance on the grid), as for dust but
  wider (σ_g = 1.2) and harder; the slope is taken to the nearest 0.01 (a randomised sky draws it
  per patch).
* High-latitude clouds: with probability ``p`` a patch also holds a cloud complex
  ``W_c max(ũ - t, 0) / m(t)``, ``ũ = u/√v``, ``t = Φ⁻¹(1 - f_cover)`` so that it covers about
  ``f_cover`` of the patch, ``m(t) = E[ũ - t | ũ > t]`` so that the mean over the covered area is
  ``W_c`` (lognormal per patch around ``cloud_mean_kkms``).
* Saturation: ``W ← W_s tanh(W / W_s)`` caps the rare extreme pixels of the lognormal tails (the
  line is optically thick); it changes W < 300 K km/s by less than 0.4 %.
* Lines: W(2-1) = R21 W, W(3-2) = R32 W, each ratio lognormal per patch around its configured
  value. Band ``b`` gets ``T_b = Σ_lines R_line F(b, line) W`` in µK_CMB, ``F`` from the shipped
  table for the real bandpasses (``"217:2-1"``) or else :func:`top_hat_conversion_uk`, which is
  zero for a line outside the band's top-hat: Planck 143 GHz gets exactly zero.

Random streams: ``co`` (small-scale field), ``co_patch`` (per-patch normals), ``co_cloud`` (whether
a patch has a high-latitude cloud).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import torch

from cenn.sky import fields, units
from cenn.sky.components._lognormal import (
    CoarseGrid,
    check_parameters,
    finite_number,
    load_parameters,
    unit_variance_field,
    wrap_lon,
)
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.instrument import Band, Instrument

LINES_GHZ: dict[str, float] = {"1-0": 115.2712018, "2-1": 230.5380000, "3-2": 345.7959899}
"""Rest frequencies (GHz) of the 12CO rotational lines (CDMS / JPL catalogues)."""

KM_S = 1e3  # m/s


def load_defaults() -> dict[str, Any]:
    """The ``[parameters]`` table of the shipped ``co.toml``."""
    return load_parameters("co")


_D = load_defaults()


def top_hat_conversion_uk(
    line_ghz: float, centre_ghz: float, mjysr_per_kcmb: float, fractional_bandwidth: float
) -> float:
    """µK_CMB per K_RJ km/s of a line at ``line_ghz`` seen by a top-hat band.

    The band spans ``centre (1 ± w/2)``; a line outside it gives 0. Inside, the line's integrated
    brightness (2kν₀²/c²)(ν₀/c) W spread over the band width Δν = w ν_c, divided by the band's
    MJy sr⁻¹ per K_CMB ``U``: ΔT = 2kν₀³/c³ · (1 km/s) / (Δν U) (36.25 µK_CMB per K km/s for
    CO(2-1) in a 217 GHz band with w = 0.33 and U = 483.69).
    """
    half = 0.5 * fractional_bandwidth * centre_ghz
    if abs(line_ghz - centre_ghz) > half:
        return 0.0
    nu0 = line_ghz * 1e9
    integrated = 2.0 * units.K_BOLTZMANN * nu0**3 / units.C_LIGHT**3 * KM_S  # W m⁻² sr⁻¹ per K km/s
    width_hz = fractional_bandwidth * centre_ghz * 1e9
    return integrated / (width_hz * mjysr_per_kcmb * units.MJY_SR) * 1e6


@register
@dataclass
class CO(Component):
    """Galactic CO line emission (defaults and sources: ``cenn/sky/data/co.toml``).

    Intensities in K_RJ km/s of CO(1-0), angles in degrees. See the module docstring for the
    equations.
    """

    name = "co"
    randomisable = ("ratio_21", "ratio_32", "disk_latitude_scale_deg", "sigma_g", "cloud_probability",
                    "slope")
    disk_amplitude_kkms: float = _D["disk_amplitude_kkms"]
    disk_latitude_scale_deg: float = _D["disk_latitude_scale_deg"]
    disk_outer_latitude_scale_deg: float = _D["disk_outer_latitude_scale_deg"]
    disk_inner_longitude_deg: float = _D["disk_inner_longitude_deg"]
    disk_longitude_edge_deg: float = _D["disk_longitude_edge_deg"]
    disk_anticentre_fraction: float = _D["disk_anticentre_fraction"]
    local_amplitude_kkms: float = _D["local_amplitude_kkms"]
    local_latitude_scale_deg: float = _D["local_latitude_scale_deg"]
    patch_scatter_ln: float = _D["patch_scatter_ln"]
    coarse_npix: int = _D["coarse_npix"]
    sigma_g: float = _D["sigma_g"]
    sigma_g_lmin: float = _D["sigma_g_lmin"]
    slope: float = _D["slope"]
    ratio_21: float = _D["ratio_21"]
    ratio_32: float = _D["ratio_32"]
    ratio_21_scatter_ln: float = _D["ratio_21_scatter_ln"]
    ratio_32_scatter_ln: float = _D["ratio_32_scatter_ln"]
    cloud_probability: float = _D["cloud_probability"]
    cloud_cover_fraction: float = _D["cloud_cover_fraction"]
    cloud_mean_kkms: float = _D["cloud_mean_kkms"]
    cloud_scatter_ln: float = _D["cloud_scatter_ln"]
    saturation_kkms: float = _D["saturation_kkms"]
    fractional_bandwidth: float = _D["fractional_bandwidth"]
    conversion_uk_per_kkms: dict[str, float] = field(
        default_factory=lambda: dict(_D["conversion_uk_per_kkms"])
    )

    def __post_init__(self) -> None:
        self._check_table(self.conversion_uk_per_kkms)
        check_parameters(
            self,
            tables=("conversion_uk_per_kkms",),
            positive=(
                "disk_latitude_scale_deg", "disk_outer_latitude_scale_deg", "disk_longitude_edge_deg",
                "local_latitude_scale_deg", "sigma_g_lmin", "fractional_bandwidth", "saturation_kkms",
            ),
            non_negative=(
                "disk_amplitude_kkms", "disk_inner_longitude_deg", "disk_anticentre_fraction",
                "local_amplitude_kkms", "patch_scatter_ln", "sigma_g", "ratio_21", "ratio_32",
                "ratio_21_scatter_ln", "ratio_32_scatter_ln", "cloud_probability", "cloud_mean_kkms",
                "cloud_scatter_ln",
            ),
            at_most_one=("disk_anticentre_fraction", "cloud_probability"),
            slopes=("slope",),
        )
        if not 0 < self.cloud_cover_fraction < 1:
            raise ValueError(f"co parameter cloud_cover_fraction must lie in (0, 1), got "
                             f"{self.cloud_cover_fraction}")
        if not self.fractional_bandwidth < 2:
            raise ValueError(f"co parameter fractional_bandwidth must be < 2 (the band's low edge "
                             f"above 0 GHz), got {self.fractional_bandwidth}")

    def _check_table(self, value: Any) -> None:
        """Validate and normalise ``conversion_uk_per_kkms`` (``"<band>:<line>"`` -> µK per K km/s)."""
        if not isinstance(value, dict):
            raise ValueError(f"co parameter conversion_uk_per_kkms must be a table, got {value!r}")
        table = {}
        for key, factor in value.items():
            band, sep, line = str(key).rpartition(":")
            if not sep or not band or line not in LINES_GHZ:
                raise ValueError(
                    f"co conversion_uk_per_kkms key {key!r} must be '<band name>:<line>' with a line "
                    f"among {sorted(LINES_GHZ)}"
                )
            factor = finite_number(factor, f"co conversion_uk_per_kkms[{key!r}] (µK_CMB per K_RJ km/s)")
            if not factor >= 0:
                raise ValueError(f"co conversion_uk_per_kkms[{key!r}] must be >= 0, got {factor!r}")
            table[str(key)] = factor
        self.conversion_uk_per_kkms = table

    # ------------------------------------------------------------------ model pieces

    def conversion_uk(self, band: Band, line: str) -> float:
        """µK_CMB in ``band`` per K_RJ km/s of ``line`` ("1-0", "2-1", "3-2"): the shipped
        bandpass value for the band's name if there is one, else the top-hat value."""
        key = f"{band.name}:{line}"
        if key in self.conversion_uk_per_kkms:
            return self.conversion_uk_per_kkms[key]
        return top_hat_conversion_uk(
            LINES_GHZ[line], band.frequency_ghz, band.mjysr_per_kcmb, self.fractional_bandwidth
        )

    def conversion_table(self, instrument: Instrument) -> torch.Tensor:
        """µK_CMB per K_RJ km/s of every line in every band, ``(n_bands, 3)`` float64, lines in
        the order of :data:`LINES_GHZ`."""
        return torch.tensor(
            [[self.conversion_uk(band, line) for line in LINES_GHZ] for band in instrument.bands],
            dtype=torch.float64,
        )

    def mean_intensity(
        self, lon_deg: torch.Tensor, lat_deg: torch.Tensor,
        latitude_scale_deg: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """W̄(l, b): mean CO(1-0) intensity in K_RJ km/s (no patch scatter), broadcasting; the
        inner-disk latitude scale defaults to ``disk_latitude_scale_deg``."""
        lon = wrap_lon(torch.as_tensor(lon_deg, dtype=torch.float64))
        lat = torch.as_tensor(lat_deg, dtype=torch.float64, device=lon.device).abs()
        h_in = self.disk_latitude_scale_deg if latitude_scale_deg is None else latitude_scale_deg
        inner = torch.sigmoid((self.disk_inner_longitude_deg - lon.abs()) / self.disk_longitude_edge_deg)
        h = self.disk_outer_latitude_scale_deg + (h_in - self.disk_outer_latitude_scale_deg) * inner
        f_ac = self.disk_anticentre_fraction
        disk = self.disk_amplitude_kkms * (f_ac + (1.0 - f_ac) * inner) * torch.exp(-lat / h)
        local = self.local_amplitude_kkms * torch.exp(-lat / self.local_latitude_scale_deg)
        return disk + local

    # ------------------------------------------------------------------ setup and drawing

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        device = torch.device(device)
        self._key = (geometry, instrument, device)
        self._conversion = self.conversion_table(instrument).to(device)  # (n_bands, 3)
        # u for each slope met (to 0.01): amplitude, unit variance over ℓ >= sigma_g_lmin, and
        # its pixel variance on this grid (_unit_field).
        self._u_fields: dict[int, tuple[torch.Tensor, float]] = {}
        # Cloud threshold t and m(t) = E[z - t | z > t] = φ(t)/(1 - Φ(t)) - t for z ~ N(0, 1).
        unit = NormalDist()
        t = unit.inv_cdf(1.0 - self.cloud_cover_fraction)
        self._cloud_t = t
        self._cloud_m = unit.pdf(t) / self.cloud_cover_fraction - t
        self._grid = CoarseGrid(geometry, self.coarse_npix, device)

    def _unit_field(self, slope: float, geometry: PatchGeometry, device: torch.device
                    ) -> tuple[torch.Tensor, float]:
        """u's float32 amplitude on the rfft2 grid and its pixel variance for ``slope`` taken to the
        nearest 0.01, computed on first use."""
        key = round(slope * 100)
        if key not in self._u_fields:
            if not key < -200:
                raise ValueError(f"co: slope must stay < -2 (a finite variance at large ℓ), got "
                                 f"{slope:.3f}; narrow its randomised range")
            self._u_fields[key] = unit_variance_field(geometry, key / 100, self.sigma_g_lmin, device)
        return self._u_fields[key]

    def line_ratios(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """Per-patch W(line)/W(1-0) of the lines of :data:`LINES_GHZ`, ``(batch, 3)`` float64, from
        the configured or randomised R21, R32 and the normals ``z`` (``(batch, 2)``)."""
        s21, s32 = self.ratio_21_scatter_ln, self.ratio_32_scatter_ln
        r21 = self.per_patch(ctx, "ratio_21").clamp_min(0.0) * torch.exp(s21 * z[:, 0] - 0.5 * s21 * s21)
        r32 = self.per_patch(ctx, "ratio_32").clamp_min(0.0) * torch.exp(s32 * z[:, 1] - 0.5 * s32 * s32)
        return torch.stack([torch.ones_like(r21), r21, r32], dim=1)

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """CO maps in µK_CMB before the beam, ``(batch, n_bands, n, n)``, float32."""
        geometry, device = ctx.geometry, ctx.device
        if getattr(self, "_key", None) != (geometry, ctx.instrument, device):
            self.setup(ctx.instrument, geometry, device)
        z = ctx.random.normal("co_patch", (4,), dtype=torch.float64)
        # Mean intensity with the patch factor, log K km/s on the coarse grid, upsampled.
        lon, lat = pixel_coordinates(ctx.lon_deg.to(device), ctx.lat_deg.to(device), self._grid.geometry)
        h_in = self.per_patch(ctx, "disk_latitude_scale_deg").clamp_min(1e-3)[:, None, None]
        s = self.patch_scatter_ln
        log_mean = torch.log(self.mean_intensity(lon, lat, h_in).clamp_min(1e-300))
        log_mean = log_mean + (s * z[:, 0] - 0.5 * s * s)[:, None, None]
        fine = self._grid.upsample(log_mean.clamp_min(-80.0))[:, None]  # (B, 1, n, n); e^-80 ~ 0 in float32
        # Clumps: W = W̄ exp(σ_g (u - σ_g v / 2)); u is reused, in place, after the clouds.
        white = fields.white_fourier(ctx.random, "co", geometry)
        unit = [self._unit_field(slope, geometry, device) for slope in self.per_patch(ctx, "slope").tolist()]
        var = [v for _, v in unit]
        # One inverse transform per patch: the batched one vectorises across patches and rounds
        # differently with the batch size, so a patch's bytes would depend on its batch.
        u = torch.cat([fields.to_real(w.mul_(amp), geometry)
                       for w, (amp, _) in zip(white.split(1), unit, strict=True)])  # (B, 1, n, n)
        # High-latitude cloud complexes in a random subset of patches, from the same field u.
        p = self.per_patch(ctx, "cloud_probability").clamp(0.0, 1.0)
        idx = torch.nonzero(ctx.random.uniform("co_cloud", ()) < p).flatten()
        if len(idx):
            sc = self.cloud_scatter_ln
            w_c = self.cloud_mean_kkms * torch.exp(sc * z[idx, 3] - 0.5 * sc * sc) / self._cloud_m
            inv_sd = torch.tensor([1.0 / math.sqrt(var[i]) for i in idx.tolist()], dtype=torch.float32,
                                  device=device)[:, None, None, None]
            cloud = (u[idx] * inv_sd - self._cloud_t).clamp_min_(0.0)
            cloud.mul_(w_c.to(torch.float32)[:, None, None, None])
        sig = self.per_patch(ctx, "sigma_g").clamp_min(0.0).to(torch.float32)[:, None, None, None]
        half_var = torch.tensor([0.5 * v for v in var], dtype=torch.float32, device=device)
        half_var = half_var[:, None, None, None]
        w_map = u.sub_(half_var * sig).mul_(sig).add_(fine).exp_()
        if len(idx):
            w_map.index_add_(0, idx, cloud)
        # Saturation W_s tanh(W / W_s), then lines into bands: T_b = Σ_line R_line F(b, line) W.
        w_sat = self.saturation_kkms
        w_map.mul_(1.0 / w_sat).tanh_()
        ratios = self.line_ratios(ctx, z[:, 1:3])  # (B, 3)
        # (elementwise, not a matrix product, so a patch's bytes do not depend on the batch size)
        per_band = (ratios[:, None, :] * self._conversion).sum(dim=-1) * (self.scale * w_sat)
        return w_map * per_band.to(torch.float32)[:, :, None, None]
