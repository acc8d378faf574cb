"""What the diffuse Galactic low-frequency components (``free_free``, ``synchrotron``) share: a
mean brightness law in Galactic (l, b), a lognormal patch-to-patch scatter, a lognormal small-scale
field, and the conversion of a Rayleigh-Jeans temperature at a band's centre to K_CMB.

Brightness ``Ī`` is in the component's own unit (emission measure in pc cm⁻⁶ for free-free, K_RJ at
408 MHz for synchrotron); the law is::

    Ī(l, b) = [A_csc / sqrt(sin²b + sin²b_s) + A_thick e^{-|b|/h_thick}] (1 + a_in e^{-l²/2w²} cos b)
              + A_disk [f_ac + (1 - f_ac) e^{-|l|/l_d}] e^{-|b|/h}

a softened cosecant (a plane-parallel layer seen from inside it) plus a thick layer, both brighter
towards the inner Galaxy (the ``cos b`` keeps the law continuous at the poles), and a thin disk
that fades along the plane away from the Galactic centre. It is evaluated on a coarse grid covering
the generation grid, times a mean-preserving lognormal patch factor ``exp(s z - s²/2)``, and
upsampled bilinearly in log. The small-scale structure is lognormal around it::

    I(x) = Ī(x) exp(σ_g(x) u(x) - σ_g(x)² v / 2),   σ_g = clip(σ_ref (Ī/I_ref)^γ, σ_min, σ_max)

with ``u`` a Gaussian field of ``C_ℓ ∝ ℓ^α`` normalised to unit variance over ℓ ≥ ``sigma_g_lmin``
(``v`` its variance on the grid), so the fluctuations follow the local brightness.

A component subclasses :class:`GalacticComponent`, declares the fields of :data:`LAYOUT_KEYS` (with
defaults from its shipped TOML, see :func:`load_parameters`) and implements
:meth:`GalacticComponent.band_maps`. Random streams: ``<name>`` (small-scale field) and
``<name>_patch`` (per-patch normals: brightness scatter, then the spectral parameter's scatter).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from cenn.sky import fields, units
from cenn.sky.components.base import Component, SkyContext
from cenn.sky.geometry import PatchGeometry
from cenn.sky.instrument import Band, Instrument
from cenn.sky.projection import pixel_coordinates
from cenn.sky.shipped import shipped_toml

#: Parameters of the brightness law (units: the component's brightness unit, degrees).
PROFILE_KEYS = (
    "csc_amplitude", "csc_softening_deg", "thick_amplitude", "thick_scale_height_deg",
    "inner_boost", "inner_width_deg", "disk_amplitude", "disk_scale_height_deg",
    "disk_longitude_scale_deg", "disk_anticentre_fraction",
)
#: Parameters of the patch scatter and of the small-scale field.
FIELD_KEYS = (
    "patch_scatter_ln", "coarse_npix", "sigma_g_ref", "sigma_g_ref_level", "sigma_g_index",
    "sigma_g_min", "sigma_g_max", "sigma_g_lmin", "slope",
)
LAYOUT_KEYS = PROFILE_KEYS + FIELD_KEYS


def load_parameters(name: str) -> dict[str, Any]:
    """The ``[parameters]`` table of the shipped ``<name>.toml``."""
    return shipped_toml(f"{name}.toml")["parameters"]


def wrap_lon(lon_deg: torch.Tensor) -> torch.Tensor:
    """Longitude in (-180, 180]."""
    return 180.0 - torch.remainder(180.0 - lon_deg, 360.0)


def rj_to_kcmb(band: Band) -> float:
    """K_CMB per K_RJ at the centre of ``band``: ``(2kν²/c²) / U_ν``, with ``U_ν`` the band's MJy sr⁻¹
    per K_CMB. It is ``1 / krj_per_kcmb(ν)`` when ``U_ν`` is the monochromatic dB/dT, and the exact
    band average for ``I_ν ∝ ν⁻¹`` (T_RJ ∝ ν⁻³) when ``U_ν`` is band-averaged in the IRAS convention
    (``νI_ν`` constant), as the Planck values are."""
    nu = band.frequency_ghz * 1e9
    rj_mjysr_per_k = 2.0 * units.K_BOLTZMANN * nu**2 / units.C_LIGHT**2 / units.MJY_SR
    return rj_mjysr_per_k / band.mjysr_per_kcmb


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class GalacticComponent(Component):
    """Base of the diffuse Galactic components (not registered itself). Subclasses are dataclasses
    whose fields include :data:`LAYOUT_KEYS`; see the module docstring for the model."""

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
        """Make every field a float (``coarse_npix`` an int) and refuse invalid layout values and
        ``positive`` / ``non_negative`` extra fields, with clear messages."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "coarse_npix":
                integer = isinstance(value, float) and value.is_integer()
                if not (integer or (isinstance(value, int) and not isinstance(value, bool))) or value < 8:
                    raise ValueError(f"{self.name}: coarse_npix must be an integer >= 8, got {value!r}")
                self.coarse_npix = int(value)
            else:
                setattr(self, f.name, _number(value, f"{self.name} parameter {f.name}"))
        positive = (
            "csc_softening_deg", "thick_scale_height_deg", "inner_width_deg", "disk_scale_height_deg",
            "disk_longitude_scale_deg", "sigma_g_ref_level", "sigma_g_lmin", *positive,
        )
        non_negative = (
            "csc_amplitude", "thick_amplitude", "inner_boost", "disk_amplitude", "disk_anticentre_fraction",
            "patch_scatter_ln", "sigma_g_ref", "sigma_g_min", "sigma_g_max", *non_negative,
        )
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"{self.name} parameter {key} must be > 0, got {getattr(self, key)}")
        for key in non_negative:
            if not getattr(self, key) >= 0:
                raise ValueError(f"{self.name} parameter {key} must be >= 0, got {getattr(self, key)}")
        if self.csc_amplitude + self.thick_amplitude + self.disk_amplitude <= 0:
            raise ValueError(f"{self.name}: csc_amplitude, thick_amplitude and disk_amplitude are all zero")
        if not self.disk_anticentre_fraction <= 1:
            raise ValueError(f"{self.name}: disk_anticentre_fraction must be <= 1, got "
                             f"{self.disk_anticentre_fraction}")
        if not self.sigma_g_min <= self.sigma_g_max:
            raise ValueError(f"{self.name}: need sigma_g_min <= sigma_g_max, got {self.sigma_g_min} > "
                             f"{self.sigma_g_max}")
        if not self.slope < -2:
            raise ValueError(f"{self.name}: slope must be < -2 (C_ℓ ∝ ℓ^slope with a finite variance at "
                             f"large ℓ), got {self.slope}")

    # ------------------------------------------------------------------ model pieces

    def mean_brightness(self, lon_deg: torch.Tensor, lat_deg: torch.Tensor) -> torch.Tensor:
        """Ī(l, b) in the component's brightness unit (no patch scatter), float64, broadcasting."""
        lon = wrap_lon(torch.as_tensor(lon_deg, dtype=torch.float64))
        lat = torch.deg2rad(torch.as_tensor(lat_deg, dtype=torch.float64, device=lon.device))
        abs_b = lat.abs() * (180.0 / math.pi)
        sin_s = math.sin(math.radians(self.csc_softening_deg))
        layer = self.csc_amplitude / torch.sqrt(torch.sin(lat) ** 2 + sin_s**2)
        layer = layer + self.thick_amplitude * torch.exp(-abs_b / self.thick_scale_height_deg)
        inner = torch.exp(-0.5 * (lon / self.inner_width_deg) ** 2) * torch.cos(lat)
        f_ac = self.disk_anticentre_fraction
        along = f_ac + (1.0 - f_ac) * torch.exp(-lon.abs() / self.disk_longitude_scale_deg)
        disk = self.disk_amplitude * along * torch.exp(-abs_b / self.disk_scale_height_deg)
        return layer * (1.0 + self.inner_boost * inner) + disk

    def sigma_g(self, brightness: torch.Tensor) -> torch.Tensor:
        """Lognormal width σ_g of the small-scale field for a local mean brightness."""
        ratio = (brightness / self.sigma_g_ref_level).clamp_min(1e-30)
        return (self.sigma_g_ref * ratio**self.sigma_g_index).clamp(self.sigma_g_min, self.sigma_g_max)

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """µK_CMB in every band, ``(batch, n_bands, n, n)`` float32, from the brightness maps
        ``(batch, 1, n, n)`` float32; ``z`` is a standard normal per patch ``(batch,)`` float64 for the
        spectral parameter's patch scatter (stream ``<name>_patch``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ setup and drawing

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        device = torch.device(device)
        n = geometry.npix
        self._key = (geometry, device)
        # u: C_ℓ = 2π(-α-2) ℓ_lo^-(α+2) ℓ^α has unit variance over ℓ >= ℓ_lo (continuous
        # normalisation, independent of the grid); _u_var is u's pixel variance on this grid.
        ell = geometry.ell(device)
        alpha = self.slope
        log_c0 = (math.log(2.0 * math.pi) + math.log(-alpha - 2.0)
                  - (alpha + 2.0) * math.log(self.sigma_g_lmin) - math.log(geometry.pixel_area_sr))
        amp = torch.exp(0.5 * (alpha * torch.log(ell.clamp_min(1e-30)) + log_c0))
        amp[0, 0] = 0.0  # u has zero mean
        weights = torch.full(ell.shape, 2.0, dtype=torch.float64, device=device)
        weights[:, 0] = 1.0
        if n % 2 == 0:
            weights[:, -1] = 1.0
        self._u_var = float((amp.square() * weights).sum() / (n * n))
        self._u_amp = amp.to(torch.float32)
        nc = self.coarse_npix
        self._coarse = PatchGeometry(nc, n * geometry.pixel_arcsec / nc)
        # Bilinear interpolation, coarse pixel centres -> fine pixel centres (both grids cover the
        # same square), clamped at the border like F.interpolate(align_corners=False).
        src = ((torch.arange(n, dtype=torch.float64) + 0.5) * nc / n - 0.5).clamp(0, nc - 1)
        i0 = src.floor().long().clamp(max=nc - 2)
        frac = src - i0
        interp = torch.zeros(n, nc, dtype=torch.float64)
        rows = torch.arange(n)
        interp[rows, i0] = 1.0 - frac
        interp[rows, i0 + 1] = frac
        self._interp = interp.to(device=device, dtype=torch.float32)

    def _upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """Bilinear upsampling of ``(B, C, nc, nc)`` to the generation grid (two matrix products)."""
        w = self._interp
        return torch.matmul(w, torch.matmul(coarse.to(torch.float32), w.T))

    def brightness(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """Brightness maps with patch scatter and small-scale field, ``(batch, 1, n, n)`` float32;
        ``z`` ``(batch,)`` are the standard normals of the patch scatter."""
        device = ctx.device
        lon, lat = pixel_coordinates(ctx.lon_deg.to(device), ctx.lat_deg.to(device), self._coarse)
        s = self.patch_scatter_ln
        mean = self.mean_brightness(lon, lat) * torch.exp(s * z - 0.5 * s * s)[:, None, None]
        coarse = torch.stack([torch.log(mean.clamp_min(1e-300)), self.sigma_g(mean)], dim=1)
        fine = self._upsample(coarse)
        log_mean, sig = fine[:, :1], fine[:, 1:]
        white = fields.white_fourier(ctx.random, self.name, ctx.geometry)
        u = fields.to_real(white.mul_(self._u_amp), ctx.geometry)
        # log I = log Ī + σ_g (u - σ_g v / 2)
        return u.add_(sig, alpha=-0.5 * self._u_var).mul_(sig).add_(log_mean).exp_()

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Maps in µK_CMB before the beam, ``(batch, n_bands, n, n)``, float32."""
        if getattr(self, "_key", None) != (ctx.geometry, ctx.device):
            self.setup(ctx.instrument, ctx.geometry, ctx.device)
        z = ctx.random.normal(f"{self.name}_patch", (2,), dtype=torch.float64)
        out = self.band_maps(ctx, self.brightness(ctx, z[:, 0]), z[:, 1])
        if self.scale != 1.0:
            out.mul_(self.scale)
        return out
