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
  to -2.9 for bright patches, interpolated in log Ī) grow with brightness.
* SED: ``I_ν = I_353 (ν/ν₀)^β B_ν(T)/B_ν₀(T) · CC_ν/CC_ν₀`` with (β, T) drawn per patch and as
  smooth anticorrelated fields within it; ``T_ν = I_ν / U_ν`` with ``U_ν`` the band's MJy sr⁻¹
  per K_CMB (:attr:`cenn.sky.instrument.Band.mjysr_per_kcmb`).

Random streams: ``dust`` (small-scale field), ``dust_patch`` (per-patch scalars), ``dust_sed``
(β/T fields).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import torch

from cenn.sky import fields, units
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.geometry import PatchGeometry
from cenn.sky.instrument import Instrument
from cenn.sky.projection import pixel_coordinates


def load_defaults() -> dict[str, Any]:
    """The ``[parameters]`` table of the shipped ``dust.toml``."""
    text = (resources.files("cenn.sky") / "data" / "dust.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["parameters"]


_D = load_defaults()


def _default(key: str):
    """Default of a scalar parameter, from ``dust.toml``."""
    return _D[key]


def _wrap_lon(lon_deg: torch.Tensor) -> torch.Tensor:
    """Longitude in (-180, 180]."""
    return 180.0 - torch.remainder(180.0 - lon_deg, 360.0)


def _power_law_amplitude(
    log_ell: torch.Tensor, slope: torch.Tensor | float, weights: torch.Tensor, n2: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised amplitude exp(slope/2 · ln ℓ) on an rfft2 grid (zero at ℓ = 0), and the
    pixel variance Σ_w amp² / N² of the field it makes from :func:`fields.white_fourier`."""
    amp = torch.exp(0.5 * slope * log_ell)
    amp[..., 0, 0] = 0.0  # the mean of u is zero
    var = (amp.square() * weights).sum(dim=(-2, -1)) / n2
    return amp, var


@register
@dataclass
class Dust(Component):
    """Galactic thermal dust (defaults and sources: ``cenn/sky/data/dust.toml``).

    Brightnesses in MJy sr⁻¹ at the reference band (Planck 353 GHz map convention), angles in
    degrees, temperatures in K. See the module docstring for the equations.
    """

    name = "dust"
    randomisable = ("beta", "temperature_k")
    reference_ghz: float = _default("reference_ghz")
    csc_amplitude_mjysr: float = _default("csc_amplitude_mjysr")
    csc_softening_deg: float = _default("csc_softening_deg")
    csc_inner_boost: float = _default("csc_inner_boost")
    csc_inner_width_deg: float = _default("csc_inner_width_deg")
    disk_amplitude_mjysr: float = _default("disk_amplitude_mjysr")
    disk_scale_height_deg: float = _default("disk_scale_height_deg")
    disk_longitude_scale_deg: float = _default("disk_longitude_scale_deg")
    disk_anticentre_fraction: float = _default("disk_anticentre_fraction")
    thick_amplitude_mjysr: float = _default("thick_amplitude_mjysr")
    thick_scale_height_deg: float = _default("thick_scale_height_deg")
    patch_scatter_ln: float = _default("patch_scatter_ln")
    coarse_npix: int = _default("coarse_npix")
    sigma_g_ref: float = _default("sigma_g_ref")
    sigma_g_ref_mjysr: float = _default("sigma_g_ref_mjysr")
    sigma_g_index: float = _default("sigma_g_index")
    sigma_g_min: float = _default("sigma_g_min")
    sigma_g_max: float = _default("sigma_g_max")
    sigma_g_lmin: float = _default("sigma_g_lmin")
    slope_faint: float = _default("slope_faint")
    slope_bright: float = _default("slope_bright")
    slope_faint_mjysr: float = _default("slope_faint_mjysr")
    slope_bright_mjysr: float = _default("slope_bright_mjysr")
    beta: float = _default("beta")
    temperature_k: float = _default("temperature_k")
    beta_patch_sigma: float = _default("beta_patch_sigma")
    beta_field_sigma: float = _default("beta_field_sigma")
    temperature_patch_sigma_k: float = _default("temperature_patch_sigma_k")
    temperature_field_sigma_k: float = _default("temperature_field_sigma_k")
    beta_temperature_correlation: float = _default("beta_temperature_correlation")
    sed_field_slope: float = _default("sed_field_slope")
    beta_min: float = _default("beta_min")
    beta_max: float = _default("beta_max")
    temperature_min_k: float = _default("temperature_min_k")
    temperature_max_k: float = _default("temperature_max_k")
    colour_correction: dict[str, float] = field(
        default_factory=lambda: dict(_D["colour_correction"])
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "colour_correction":
                if not isinstance(value, dict) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                    for v in value.values()
                ):
                    raise ValueError(
                        f"colour_correction must map band names to positive numbers, got {value!r}"
                    )
                self.colour_correction = {str(k): float(v) for k, v in value.items()}
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"dust parameter {f.name} must be a number, got {value!r}")
            if f.name == "coarse_npix":
                if value != int(value) or value < 8:
                    raise ValueError(f"coarse_npix must be an integer >= 8, got {value!r}")
                self.coarse_npix = int(value)
            else:
                setattr(self, f.name, float(value))
        positive = (
            "reference_ghz", "csc_softening_deg", "csc_inner_width_deg", "disk_scale_height_deg",
            "disk_longitude_scale_deg", "thick_scale_height_deg", "sigma_g_ref_mjysr",
            "sigma_g_lmin", "slope_faint_mjysr", "slope_bright_mjysr", "beta_min",
            "temperature_min_k",
        )
        non_negative = (
            "csc_amplitude_mjysr", "csc_inner_boost", "disk_amplitude_mjysr",
            "disk_anticentre_fraction", "thick_amplitude_mjysr", "patch_scatter_ln", "sigma_g_ref",
            "sigma_g_min", "sigma_g_max", "beta_patch_sigma", "beta_field_sigma", "temperature_patch_sigma_k",
            "temperature_field_sigma_k",
        )
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"dust parameter {key} must be > 0, got {getattr(self, key)}")
        for key in non_negative:
            if not getattr(self, key) >= 0:
                raise ValueError(f"dust parameter {key} must be >= 0, got {getattr(self, key)}")
        if self.csc_amplitude_mjysr + self.disk_amplitude_mjysr + self.thick_amplitude_mjysr <= 0:
            raise ValueError("dust: the csc, disk and thick amplitudes are all zero")
        if not self.disk_anticentre_fraction <= 1:
            raise ValueError("disk_anticentre_fraction must be <= 1")
        if not self.sigma_g_min <= self.sigma_g_max:
            raise ValueError("sigma_g_min must be <= sigma_g_max")
        if not (self.slope_faint < -2 and self.slope_bright < -2):
            raise ValueError("dust slopes must be < -2 (C_ℓ ∝ ℓ^slope with finite large-ℓ variance)")
        if not self.slope_faint_mjysr < self.slope_bright_mjysr:
            raise ValueError("slope_faint_mjysr must be < slope_bright_mjysr")
        if not -1 <= self.beta_temperature_correlation <= 1:
            raise ValueError("beta_temperature_correlation must lie in [-1, 1]")
        if not (self.beta_min <= self.beta <= self.beta_max):
            raise ValueError("need beta_min <= beta <= beta_max")
        if not (self.temperature_min_k <= self.temperature_k <= self.temperature_max_k):
            raise ValueError("need temperature_min_k <= temperature_k <= temperature_max_k")

    # ------------------------------------------------------------------ model pieces

    def mean_brightness(self, lon_deg: torch.Tensor, lat_deg: torch.Tensor) -> torch.Tensor:
        """Ī(l, b): mean 353 GHz brightness in MJy sr⁻¹ (no patch scatter), broadcasting."""
        lon = _wrap_lon(torch.as_tensor(lon_deg, dtype=torch.float64))
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
            -lat.abs() / self.disk_scale_height_deg
        )
        thick = self.thick_amplitude_mjysr * torch.exp(-lat.abs() / self.thick_scale_height_deg)
        return csc + disk + thick

    def sigma_g(self, brightness: torch.Tensor) -> torch.Tensor:
        """Lognormal width σ_g for a local mean brightness (MJy sr⁻¹ at 353 GHz)."""
        ratio = (brightness / self.sigma_g_ref_mjysr).clamp_min(1e-30)
        return (self.sigma_g_ref * ratio**self.sigma_g_index).clamp(self.sigma_g_min, self.sigma_g_max)

    def slope(self, brightness: torch.Tensor) -> torch.Tensor:
        """Log-slope α of C_ℓ of the small-scale field for a patch's mean brightness."""
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
        n = geometry.npix
        self._key = (geometry, instrument, device)
        ell = geometry.ell(device)
        weights = torch.full(ell.shape, 2.0, dtype=torch.float64, device=device)
        weights[:, 0] = 1.0
        if n % 2 == 0:
            weights[:, -1] = 1.0
        # Amplitudes of the small-scale field u for a table of slopes between slope_faint and
        # slope_bright (steps <= 0.01; each patch takes the nearest): C_ℓ = 2π(-α-2)
        # ℓ_lo^-(α+2) ℓ^α has unit variance over ℓ >= ℓ_lo (continuous normalisation, so
        # independent of the grid); _u_var is u's pixel variance on this grid.
        span = self.slope_bright - self.slope_faint
        k = 1 if span == 0 else min(128, math.ceil(abs(span) / 0.01) + 1)
        slopes = torch.linspace(self.slope_faint, self.slope_bright, k, dtype=torch.float64)
        slopes = slopes.to(device)[:, None, None]
        amp, var = _power_law_amplitude(torch.log(ell.clamp_min(1e-30)), slopes, weights, n * n)
        log_c0 = (
            math.log(2.0 * math.pi) + torch.log(-slopes - 2.0)
            - (slopes + 2.0) * math.log(self.sigma_g_lmin) - math.log(geometry.pixel_area_sr)
        )
        c0 = torch.exp(log_c0)
        self._u_amp = (amp * torch.sqrt(c0)).to(torch.float32)  # (k, n, n // 2 + 1)
        self._u_var = (var * c0[:, 0, 0]).to(torch.float32)  # (k,)
        self._n_slopes = k
        nc = self.coarse_npix
        self._coarse = PatchGeometry(nc, geometry.npix * geometry.pixel_arcsec / nc)
        cell = self._coarse.ell(device)
        cw = torch.full(cell.shape, 2.0, dtype=torch.float64, device=device)
        cw[:, 0] = 1.0
        if nc % 2 == 0:
            cw[:, -1] = 1.0
        amp, var = _power_law_amplitude(
            torch.log(cell.clamp_min(1e-30)), self.sed_field_slope, cw, nc * nc
        )
        self._sed_amp = (amp / torch.sqrt(var)).to(torch.float32)  # unit-variance β/T fields
        # Bilinear interpolation matrix, coarse pixel centres -> fine pixel centres (both grids
        # cover the same square), clamped at the border like F.interpolate.
        src = ((torch.arange(n, dtype=torch.float64) + 0.5) * nc / n - 0.5).clamp(0, nc - 1)
        i0 = src.floor().long().clamp(max=nc - 2)
        frac = src - i0
        interp = torch.zeros(n, nc, dtype=torch.float64)
        rows = torch.arange(n)
        interp[rows, i0] = 1.0 - frac
        interp[rows, i0 + 1] = frac
        self._interp = interp.to(device=device, dtype=torch.float32)
        self._log_uk = math.log(1e6)

    def _upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """Bilinear upsampling (as ``F.interpolate(align_corners=False)``) of ``(B, C, nc, nc)``
        to the generation grid, as two matrix products (several times faster on CPU)."""
        w = self._interp
        return torch.matmul(w, torch.matmul(coarse.to(torch.float32), w.T))

    def _coarse_fields(self, ctx: SkyContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """On the coarse grid: log of µK_CMB per band of Ī (with patch scatter), σ_g, and the
        patch-mean brightness. Shapes (B, n_bands, nc, nc), (B, 1, nc, nc), (B,)."""
        device = ctx.device
        lon, lat = pixel_coordinates(ctx.lon_deg.to(device), ctx.lat_deg.to(device), self._coarse)
        z = ctx.random.normal("dust_patch", (3,), dtype=torch.float64)
        s = self.patch_scatter_ln
        mean = self.mean_brightness(lon, lat) * torch.exp(s * z[:, 0] - 0.5 * s * s)[:, None, None]
        # β and T: per-patch offsets plus smooth in-patch fields, anticorrelated.
        rho = self.beta_temperature_correlation
        rho_c = math.sqrt(max(0.0, 1.0 - rho * rho))
        white = fields.white_fourier(ctx.random, "dust_sed", self._coarse, channels=2)
        u = fields.to_real(white * self._sed_amp, self._coarse).to(torch.float64)
        beta0 = self.per_patch(ctx, "beta")[:, None, None]
        beta = beta0 + self.beta_patch_sigma * z[:, 1, None, None] + self.beta_field_sigma * u[:, 0]
        t_patch = rho * z[:, 1] + rho_c * z[:, 2]
        t_field = rho * u[:, 0] + rho_c * u[:, 1]
        temp = (
            self.per_patch(ctx, "temperature_k")[:, None, None]
            + self.temperature_patch_sigma_k * t_patch[:, None, None]
            + self.temperature_field_sigma_k * t_field
        )
        beta = beta.clamp(self.beta_min, self.beta_max)
        temp = temp.clamp(self.temperature_min_k, self.temperature_max_k)
        sed = self.sed_kcmb(ctx.instrument, beta, temp).transpose(0, 1)  # (B, n_bands, nc, nc)
        log_uk = torch.log(mean)[:, None] + torch.log(sed) + self._log_uk
        sig = self.sigma_g(mean)[:, None]
        return log_uk, sig, mean.mean(dim=(-2, -1))

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Dust maps in µK_CMB before the beam, ``(batch, n_bands, n, n)``, float32."""
        geometry = ctx.geometry
        if getattr(self, "_key", None) != (geometry, ctx.instrument, ctx.device):
            self.setup(ctx.instrument, geometry, ctx.device)
        log_uk, sig, patch_mean = self._coarse_fields(ctx)
        # Smooth fields upsampled bilinearly: log µK_CMB of Ī per band, and σ_g.
        fine = self._upsample(log_uk)
        sig_f = self._upsample(sig)
        # Small-scale field u, C_ℓ ∝ ℓ^α with α from the patch's mean brightness.
        if self._n_slopes == 1:
            idx = torch.zeros(len(patch_mean), dtype=torch.long, device=ctx.device)
        else:
            t = (self.slope(patch_mean) - self.slope_faint) / (self.slope_bright - self.slope_faint)
            idx = torch.round(t * (self._n_slopes - 1)).long()
        var = self._u_var[idx][:, None, None, None]
        white = fields.white_fourier(ctx.random, "dust", geometry)
        u = fields.to_real(white.mul_(self._u_amp[idx][:, None]), geometry)
        # exponent σ_g u - σ_g² v / 2 = σ_g (u - σ_g v / 2), then I = exp(log Ī_ν + exponent)
        expo = u.addcmul_(sig_f, -0.5 * var).mul_(sig_f)
        out = fine.add_(expo).exp_()
        if self.scale != 1.0:
            out.mul_(self.scale)
        return out
