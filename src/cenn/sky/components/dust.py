"""Galactic thermal dust: a position-dependent, lognormal, modified-blackbody foreground.

Model (parameters and their sources in ``cenn/sky/data/dust.toml``; brightness ``I`` is the
Planck 353 GHz map value in MJy sr⁻¹):

* Mean brightness at every pixel (Galactic l, b): a softened cosecant, a thin disk brighter
  towards the inner Galaxy, and a thick layer standing for the local clouds (Gould Belt) that
  make intermediate latitudes brighter than a plane-parallel cosecant::

      Ī(l, b) = A_csc (1 + a_in e^{-l²/2w²}) / sqrt(sin²b + sin²b_s)
                + A_disk [f_ac + (1 - f_ac) e^{-|l|/l_d}] e^{-|b|/h} + A_thick e^{-|b|/h_thick}

  evaluated on a coarse grid covering the generation grid and upsampled (bilinear in log),
  times a mean-preserving lognormal patch factor ``exp(σ_p z - σ_p²/2)``.
* Small-scale structure: ``I(x) = Ī(x) exp(σ_g(x) u(x) - σ_g(x)² v / 2)``, ``u`` a Gaussian field
  with ``C_ℓ ∝ ℓ^α`` normalised to unit variance over ``ℓ >= sigma_g_lmin`` (``v`` its variance
  on the grid), so the fluctuations scale with the local brightness (``D_ℓ ∝ Ī²``). The
  lognormal width ``σ_g = σ_ref (Ī/I_ref)^γ`` (clipped) and the slope ``α`` (from -2.6 for faint
  to -2.9 for bright patches, interpolated in log Ī, plus ``slope_shift``, 0 unless a randomised
  sky draws it per patch) grow with brightness.
* SED: ``I_ν = I_353 (ν/ν₀)^β B_ν(T)/B_ν₀(T) · CC_ν/CC_ν₀`` with (β, T) drawn per patch and as
  smooth anticorrelated fields within it; ``T_ν = I_ν / U_ν`` with ``U_ν`` the band's MJy sr⁻¹
  per K_CMB (:attr:`cenn.sky.instrument.Band.mjysr_per_kcmb`).

* Polarization (:meth:`Dust.polarization`): ``Q + iU = p I e^{2iψ}`` in every band (the same SED
  as the intensity), p a smooth lognormal fraction whose median falls with the column density as
  ``(Ī/I_ref)^-γ`` (Ī clamped to the range where that was measured) and ψ the orientation of the
  structures plus a turbulent angle (:mod:`cenn.sky.components._polarization`).

Random streams: ``dust`` (small-scale field), ``dust_patch`` (per-patch scalars), ``dust_sed``
(β/T fields); for Q and U ``dust_pol_structure``, ``dust_pol_angle`` and ``dust_pol_fraction``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from cenn.sky import fields, units
from cenn.sky.components import _polarization as pol
from cenn.sky.components._lognormal import (
    CoarseGrid,
    check_parameters,
    load_parameters,
    log_unit_variance_norm,
    lognormal_width,
    power_law_amplitude,
    wrap_lon,
)
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.instrument import Instrument


def load_defaults() -> dict[str, Any]:
    """The ``[parameters]`` table of the shipped ``dust.toml``."""
    return load_parameters("dust")


_D = load_defaults()


@register
@dataclass
class Dust(Component):
    """Galactic thermal dust (defaults and sources: ``cenn/sky/data/dust.toml``).

    Brightnesses in MJy sr⁻¹ at the reference band (Planck 353 GHz map convention), angles in
    degrees, temperatures in K. See the module docstring for the equations.
    """

    name = "dust"
    polarized = True
    randomisable = ("beta", "temperature_k", "sigma_g_ref", "beta_field_sigma",
                    "temperature_field_sigma_k", "pol_fraction_median", "pol_structure_correlation",
                    "pol_angle_sigma_deg", "slope_shift", "disk_scale_height_deg")
    reference_ghz: float = _D["reference_ghz"]
    csc_amplitude_mjysr: float = _D["csc_amplitude_mjysr"]
    csc_softening_deg: float = _D["csc_softening_deg"]
    csc_inner_boost: float = _D["csc_inner_boost"]
    csc_inner_width_deg: float = _D["csc_inner_width_deg"]
    disk_amplitude_mjysr: float = _D["disk_amplitude_mjysr"]
    disk_scale_height_deg: float = _D["disk_scale_height_deg"]
    disk_longitude_scale_deg: float = _D["disk_longitude_scale_deg"]
    disk_anticentre_fraction: float = _D["disk_anticentre_fraction"]
    thick_amplitude_mjysr: float = _D["thick_amplitude_mjysr"]
    thick_scale_height_deg: float = _D["thick_scale_height_deg"]
    patch_scatter_ln: float = _D["patch_scatter_ln"]
    coarse_npix: int = _D["coarse_npix"]
    sigma_g_ref: float = _D["sigma_g_ref"]
    sigma_g_ref_mjysr: float = _D["sigma_g_ref_mjysr"]
    sigma_g_index: float = _D["sigma_g_index"]
    sigma_g_min: float = _D["sigma_g_min"]
    sigma_g_max: float = _D["sigma_g_max"]
    sigma_g_lmin: float = _D["sigma_g_lmin"]
    slope_faint: float = _D["slope_faint"]
    slope_bright: float = _D["slope_bright"]
    slope_faint_mjysr: float = _D["slope_faint_mjysr"]
    slope_bright_mjysr: float = _D["slope_bright_mjysr"]
    slope_shift: float = _D["slope_shift"]
    beta: float = _D["beta"]
    temperature_k: float = _D["temperature_k"]
    beta_patch_sigma: float = _D["beta_patch_sigma"]
    beta_field_sigma: float = _D["beta_field_sigma"]
    temperature_patch_sigma_k: float = _D["temperature_patch_sigma_k"]
    temperature_field_sigma_k: float = _D["temperature_field_sigma_k"]
    beta_temperature_correlation: float = _D["beta_temperature_correlation"]
    sed_field_slope: float = _D["sed_field_slope"]
    beta_min: float = _D["beta_min"]
    beta_max: float = _D["beta_max"]
    temperature_min_k: float = _D["temperature_min_k"]
    temperature_max_k: float = _D["temperature_max_k"]
    pol_fraction_median: float = _D["pol_fraction_median"]
    pol_fraction_reference_mjysr: float = _D["pol_fraction_reference_mjysr"]
    pol_fraction_nh_index: float = _D["pol_fraction_nh_index"]
    pol_fraction_nh_min_mjysr: float = _D["pol_fraction_nh_min_mjysr"]
    pol_fraction_nh_max_mjysr: float = _D["pol_fraction_nh_max_mjysr"]
    pol_fraction_sigma_ln: float = _D["pol_fraction_sigma_ln"]
    pol_fraction_max: float = _D["pol_fraction_max"]
    pol_fraction_slope: float = _D["pol_fraction_slope"]
    pol_structure_correlation: float = _D["pol_structure_correlation"]
    pol_structure_smoothing_arcmin: float = _D["pol_structure_smoothing_arcmin"]
    pol_structure_slope: float = _D["pol_structure_slope"]
    pol_angle_sigma_deg: float = _D["pol_angle_sigma_deg"]
    pol_angle_slope: float = _D["pol_angle_slope"]
    colour_correction: dict[str, float] = field(
        default_factory=lambda: dict(_D["colour_correction"])
    )

    def __post_init__(self) -> None:
        value = self.colour_correction
        if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value.values()
        ):
            raise ValueError(f"colour_correction must map band names to positive numbers, got {value!r}")
        self.colour_correction = {str(k): float(v) for k, v in value.items()}
        check_parameters(
            self,
            tables=("colour_correction",),
            positive=(
                "reference_ghz", "csc_softening_deg", "csc_inner_width_deg", "disk_scale_height_deg",
                "disk_longitude_scale_deg", "thick_scale_height_deg", "sigma_g_ref_mjysr",
                "sigma_g_lmin", "slope_faint_mjysr", "slope_bright_mjysr", "beta_min",
                "temperature_min_k", "pol_fraction_reference_mjysr", "pol_fraction_nh_min_mjysr",
            ),
            non_negative=(
                "csc_amplitude_mjysr", "csc_inner_boost", "disk_amplitude_mjysr",
                "disk_anticentre_fraction", "thick_amplitude_mjysr", "patch_scatter_ln", "sigma_g_ref",
                "sigma_g_min", "sigma_g_max", "beta_patch_sigma", "beta_field_sigma",
                "temperature_patch_sigma_k", "temperature_field_sigma_k", "pol_fraction_nh_index",
            ),
            at_most_one=("disk_anticentre_fraction",),
            slopes=("slope_faint", "slope_bright"),
            ordered=(("sigma_g_min", "sigma_g_max"), ("beta_min", "beta", "beta_max"),
                     ("pol_fraction_nh_min_mjysr", "pol_fraction_nh_max_mjysr"),
                     ("temperature_min_k", "temperature_k", "temperature_max_k")),
            not_all_zero=("csc_amplitude_mjysr", "disk_amplitude_mjysr", "thick_amplitude_mjysr"),
        )
        if not max(self.slope_faint, self.slope_bright) + self.slope_shift < -2:
            raise ValueError(f"dust: slope_faint and slope_bright plus slope_shift must stay < -2, got "
                             f"{self.slope_faint}, {self.slope_bright} and {self.slope_shift}")
        if not self.slope_faint_mjysr < self.slope_bright_mjysr:
            raise ValueError("dust: slope_faint_mjysr must be < slope_bright_mjysr")
        if not -1 <= self.beta_temperature_correlation <= 1:
            raise ValueError("dust: beta_temperature_correlation must lie in [-1, 1]")
        if not 0 <= self.pol_structure_correlation <= 1:
            raise ValueError("dust: pol_structure_correlation must lie in [0, 1]")
        if not 0 <= self.pol_fraction_median <= self.pol_fraction_max <= 1:
            raise ValueError("dust: need 0 <= pol_fraction_median <= pol_fraction_max <= 1")
        if not (self.pol_fraction_sigma_ln >= 0 and self.pol_angle_sigma_deg >= 0
                and self.pol_structure_smoothing_arcmin >= 0):
            raise ValueError("dust: pol_fraction_sigma_ln, pol_angle_sigma_deg and "
                             "pol_structure_smoothing_arcmin must be >= 0")

    # ------------------------------------------------------------------ model pieces

    def mean_brightness(self, lon_deg: torch.Tensor, lat_deg: torch.Tensor,
                        disk_scale_height_deg: float | torch.Tensor | None = None) -> torch.Tensor:
        """Ī(l, b): mean 353 GHz brightness in MJy sr⁻¹ (no patch scatter), broadcasting; the disk's
        scale height ``h`` in degrees is ``disk_scale_height_deg`` unless given (a number or a tensor
        broadcasting against ``lat_deg``)."""
        h = self.disk_scale_height_deg if disk_scale_height_deg is None else disk_scale_height_deg
        lon = wrap_lon(torch.as_tensor(lon_deg, dtype=torch.float64))
        lat = torch.as_tensor(lat_deg, dtype=torch.float64, device=lon.device)
        sin_b = torch.sin(torch.deg2rad(lat))
        sin_s = math.sin(math.radians(self.csc_softening_deg))
        inner = torch.exp(-0.5 * (lon / self.csc_inner_width_deg) ** 2)
        csc = self.csc_amplitude_mjysr * (1.0 + self.csc_inner_boost * inner) / torch.sqrt(
            sin_b**2 + sin_s**2
        )
        f_ac = self.disk_anticentre_fraction
        lon_profile = f_ac + (1.0 - f_ac) * torch.exp(-lon.abs() / self.disk_longitude_scale_deg)
        disk = self.disk_amplitude_mjysr * lon_profile * torch.exp(
            -lat.abs() / h
        )
        thick = self.thick_amplitude_mjysr * torch.exp(-lat.abs() / self.thick_scale_height_deg)
        return csc + disk + thick

    def sigma_g(self, brightness: torch.Tensor, sigma_ref: float | torch.Tensor | None = None
                ) -> torch.Tensor:
        """Lognormal width σ_g for a local mean brightness (MJy sr⁻¹ at 353 GHz); ``sigma_ref``
        (default ``sigma_g_ref``) broadcasts against ``brightness``."""
        ref = self.sigma_g_ref if sigma_ref is None else sigma_ref
        return lognormal_width(brightness, ref, self.sigma_g_ref_mjysr, self.sigma_g_index,
                               self.sigma_g_min, self.sigma_g_max)

    def slope(self, brightness: torch.Tensor) -> torch.Tensor:
        """Log-slope α of C_ℓ of the small-scale field for a patch's mean brightness, before the
        ``slope_shift``."""
        lo, hi = math.log(self.slope_faint_mjysr), math.log(self.slope_bright_mjysr)
        t = ((torch.log(brightness.clamp_min(1e-30)) - lo) / (hi - lo)).clamp(0.0, 1.0)
        return self.slope_faint + (self.slope_bright - self.slope_faint) * t

    def sed_kcmb(
        self, instrument: Instrument, beta: torch.Tensor, temperature_k: torch.Tensor
    ) -> torch.Tensor:
        """K_CMB per MJy sr⁻¹ of 353 GHz brightness in every band, shape ``(n_bands, *beta.shape)``.

        The band value is (ν/ν₀)^β B_ν(T)/B_ν₀(T) · CC_ν / CC_ν₀ / U_ν.
        """
        cc = self.colour_correction
        cc0 = cc.get(f"{self.reference_ghz:g}", 1.0)
        out = []
        for band in instrument.bands:
            mbb = units.modified_blackbody(band.frequency_ghz, beta, temperature_k, self.reference_ghz)
            out.append(mbb * (cc.get(band.name, 1.0) / cc0 / band.mjysr_per_kcmb))
        return torch.stack(out)

    # ------------------------------------------------------------------ setup and drawing

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        device = torch.device(device)
        self._key = (geometry, instrument, device)
        # Amplitudes of the small-scale field u for a table of slopes α_j between slope_faint (j = 0)
        # and slope_bright (j = k - 1), steps <= 0.01; each patch takes the nearest. A slope shifted
        # beyond the ends takes an entry α_j = slope_faint + j·step added on first use (_table_entry).
        # Each entry is u's amplitude (unit variance over ℓ >= sigma_g_lmin) and its pixel variance.
        # (The normalisation multiplies the unit amplitude here, where the other components put it
        # in the exponent.)
        span = self.slope_bright - self.slope_faint
        k = 1 if span == 0 else min(128, math.ceil(abs(span) / 0.01) + 1)
        slopes = torch.linspace(self.slope_faint, self.slope_bright, k, dtype=torch.float64)
        self._slope_step = span / (k - 1) if k > 1 else -0.01
        self._u_table = {j: self._unit_field(geometry, slope, device) for j, slope in enumerate(slopes)}
        self._n_slopes = k
        self._grid = CoarseGrid(geometry, self.coarse_npix, device)
        amp, var = power_law_amplitude(self._grid.geometry, self.sed_field_slope, device)
        self._sed_amp = (amp / torch.sqrt(var)).to(torch.float32)  # unit-variance β/T fields
        self._log_uk = math.log(1e6)

    def _unit_field(self, geometry: PatchGeometry, slope: torch.Tensor, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u's float32 amplitude on the rfft2 grid ``(n, n // 2 + 1)`` and its pixel variance (a
        0-d float32 tensor) for the log-slope ``slope`` (a 0-d float64 tensor)."""
        slope = slope.to(device)
        amp, var = power_law_amplitude(geometry, slope, device)
        c0 = torch.exp(log_unit_variance_norm(slope, self.sigma_g_lmin, geometry.pixel_area_sr))
        return (amp * torch.sqrt(c0)).to(torch.float32), (var * c0).to(torch.float32)

    def _table_entry(self, j: int, geometry: PatchGeometry, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Entry ``j`` of the slope table, computed and kept on first use beyond its ends."""
        if j not in self._u_table:
            slope = torch.tensor(self.slope_faint + j * self._slope_step, dtype=torch.float64)
            if not slope < -2:
                raise ValueError(f"dust: a shifted slope must stay < -2 (a finite variance at large ℓ), "
                                 f"got {float(slope):.3f}; narrow the slope_shift range")
            self._u_table[j] = self._unit_field(geometry, slope, device)
        return self._u_table[j]

    def _coarse_mean(self, ctx: SkyContext) -> torch.Tensor:
        """Ī (MJy sr⁻¹ at 353 GHz, no patch scatter) on the coarse grid, ``(batch, nc, nc)`` float64."""
        device = ctx.device
        lon, lat = pixel_coordinates(ctx.lon_deg.to(device), ctx.lat_deg.to(device), self._grid.geometry)
        height = self.per_patch(ctx, "disk_scale_height_deg").clamp_min(1e-3)[:, None, None]
        return self.mean_brightness(lon, lat, height)

    def pol_fraction_medians(self, ctx: SkyContext) -> torch.Tensor:
        """The median polarization fraction at every pixel, ``(batch, n, n)`` float32:
        ``pol_fraction_median (Ī/I_ref)^-γ``, Ī the mean 353 GHz brightness (a column density, without
        the patch scatter) clamped to the range where p's fall with N_H was measured."""
        brightness = self._coarse_mean(ctx).clamp(self.pol_fraction_nh_min_mjysr,
                                                  self.pol_fraction_nh_max_mjysr)
        factor = torch.log(brightness / self.pol_fraction_reference_mjysr) * -self.pol_fraction_nh_index
        median = self.per_patch(ctx, "pol_fraction_median")[:, None, None]
        return torch.exp(self._grid.upsample(factor)) * median.to(torch.float32)

    def _coarse_fields(self, ctx: SkyContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """On the coarse grid: log of µK_CMB per band of Ī (with patch scatter), σ_g, and the
        patch-mean brightness. Shapes (B, n_bands, nc, nc), (B, 1, nc, nc), (B,)."""
        z = ctx.random.normal("dust_patch", (3,), dtype=torch.float64)
        s = self.patch_scatter_ln
        mean = self._coarse_mean(ctx) * torch.exp(s * z[:, 0] - 0.5 * s * s)[:, None, None]
        # β and T: per-patch offsets plus smooth in-patch fields, anticorrelated.
        rho = self.beta_temperature_correlation
        rho_c = math.sqrt(max(0.0, 1.0 - rho * rho))
        white = fields.white_fourier(ctx.random, "dust_sed", self._grid.geometry, channels=2)
        u = fields.to_real(white * self._sed_amp, self._grid.geometry).to(torch.float64)
        beta0 = self.per_patch(ctx, "beta")[:, None, None]
        beta_field = self.per_patch(ctx, "beta_field_sigma")[:, None, None]
        temp_field = self.per_patch(ctx, "temperature_field_sigma_k")[:, None, None]
        beta = beta0 + self.beta_patch_sigma * z[:, 1, None, None] + beta_field * u[:, 0]
        t_patch = rho * z[:, 1] + rho_c * z[:, 2]
        t_field = rho * u[:, 0] + rho_c * u[:, 1]
        temp = (
            self.per_patch(ctx, "temperature_k")[:, None, None]
            + self.temperature_patch_sigma_k * t_patch[:, None, None]
            + temp_field * t_field
        )
        beta = beta.clamp(self.beta_min, self.beta_max)
        temp = temp.clamp(self.temperature_min_k, self.temperature_max_k)
        sed = self.sed_kcmb(ctx.instrument, beta, temp).transpose(0, 1)  # (B, n_bands, nc, nc)
        log_uk = torch.log(mean)[:, None] + torch.log(sed) + self._log_uk
        sig = self.sigma_g(mean, self.per_patch(ctx, "sigma_g_ref")[:, None, None])[:, None]
        return log_uk, sig, mean.mean(dim=(-2, -1))

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Dust maps in µK_CMB before the beam, ``(batch, n_bands, n, n)``, float32."""
        geometry = ctx.geometry
        if getattr(self, "_key", None) != (geometry, ctx.instrument, ctx.device):
            self.setup(ctx.instrument, geometry, ctx.device)
        log_uk, sig, patch_mean = self._coarse_fields(ctx)
        # Smooth fields upsampled bilinearly: log µK_CMB of Ī per band, and σ_g.
        fine = self._grid.upsample(log_uk)
        sig_f = self._grid.upsample(sig)
        # Small-scale field u, C_ℓ ∝ ℓ^α with α from the patch's mean brightness and its shift.
        shift = self.per_patch(ctx, "slope_shift")
        if self._n_slopes == 1:
            steps = shift / self._slope_step
        else:
            t = (self.slope(patch_mean) + shift - self.slope_faint) / (self.slope_bright - self.slope_faint)
            steps = t * (self._n_slopes - 1)
        idx = torch.round(steps).long().tolist()
        entries = [self._table_entry(j, geometry, ctx.device) for j in idx]
        var = torch.stack([v for _, v in entries])[:, None, None, None]
        white = fields.white_fourier(ctx.random, "dust", geometry)
        u = fields.to_real(white.mul_(torch.stack([a for a, _ in entries])[:, None]), geometry)
        # exponent σ_g u - σ_g² v / 2 = σ_g (u - σ_g v / 2), then I = exp(log Ī_ν + exponent)
        expo = u.addcmul_(sig_f, -0.5 * var).mul_(sig_f)
        out = fine.add_(expo).exp_()
        if self.scale != 1.0:
            out.mul_(self.scale)
        return out

    def polarization(self, ctx: SkyContext, intensity: torch.Tensor) -> torch.Tensor:
        """Q and U in µK_CMB before the beam, ``(batch, 2, n_bands, n, n)``, for the intensity maps
        ``intensity (batch, n_bands, n, n)`` drawn for ``ctx`` (module docstring)."""
        return pol.structured(self, ctx, intensity, self.pol_fraction_medians(ctx))
