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

A component subclasses :class:`GalacticComponent` as a dataclass, declares its own parameters (it
gets the fields of :data:`LAYOUT_KEYS`, with defaults from its shipped TOML) and implements
:meth:`GalacticComponent.band_maps`. Random streams: ``<name>`` (small-scale field) and
``<name>_patch`` (per-patch normals: brightness scatter, then the spectral parameter's scatter).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from cenn.sky import fields, units
from cenn.sky.components._lognormal import (
    CoarseGrid,
    check_parameters,
    load_parameters,
    lognormal_width,
    unit_variance_field,
    wrap_lon,
)
from cenn.sky.components.base import Component, SkyContext
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.instrument import Band, Instrument

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


def rj_to_kcmb(band: Band) -> float:
    """K_CMB per K_RJ at the centre of ``band``: ``(2kν²/c²) / U_ν``, with ``U_ν`` the band's MJy sr⁻¹
    per K_CMB. It is ``1 / krj_per_kcmb(ν)`` when ``U_ν`` is the monochromatic dB/dT, and the exact
    band average for ``I_ν ∝ ν⁻¹`` (T_RJ ∝ ν⁻³) when ``U_ν`` is band-averaged in the IRAS convention
    (``νI_ν`` constant), as the Planck values are."""
    nu = band.frequency_ghz * 1e9
    rj_mjysr_per_k = 2.0 * units.K_BOLTZMANN * nu**2 / units.C_LIGHT**2 / units.MJY_SR
    return rj_mjysr_per_k / band.mjysr_per_kcmb


class GalacticComponent(Component):
    """Base of the diffuse Galactic components (not registered itself); see the module docstring for
    the model.

    A subclass is a dataclass that declares only its own parameters: the fields of
    :data:`LAYOUT_KEYS` below are added to it when it is defined, with their defaults from its
    shipped ``<name>.toml`` and, like its own fields, in that file's order.
    """

    csc_amplitude: float
    csc_softening_deg: float
    thick_amplitude: float
    thick_scale_height_deg: float
    inner_boost: float
    inner_width_deg: float
    disk_amplitude: float
    disk_scale_height_deg: float
    disk_longitude_scale_deg: float
    disk_anticentre_fraction: float
    patch_scatter_ln: float
    coarse_npix: int
    sigma_g_ref: float
    sigma_g_ref_level: float
    sigma_g_index: float
    sigma_g_min: float
    sigma_g_max: float
    sigma_g_lmin: float
    slope: float

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = load_parameters(cls.name)
        declared = {**{key: GalacticComponent.__annotations__[key] for key in LAYOUT_KEYS},
                    **inspect.get_annotations(cls)}
        for key in LAYOUT_KEYS:
            setattr(cls, key, defaults[key])
        # the fields in the TOML's order (any it lacks last), before @dataclass reads them
        cls.__annotations__ = {key: declared[key] for key in defaults if key in declared} | declared

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                          ordered: tuple[tuple[str, ...], ...] = (), at_most_one: tuple[str, ...] = (),
                          slopes: tuple[str, ...] = ()) -> None:
        """Make every field a float (``coarse_npix`` an int) and refuse invalid layout values and
        ``positive`` / ``non_negative`` / ``ordered`` / ``at_most_one`` / ``slopes`` extra fields
        (:func:`~cenn.sky.components._lognormal.check_parameters`), with clear messages."""
        check_parameters(
            self,
            positive=(
                "csc_softening_deg", "thick_scale_height_deg", "inner_width_deg", "disk_scale_height_deg",
                "disk_longitude_scale_deg", "sigma_g_ref_level", "sigma_g_lmin", *positive,
            ),
            non_negative=(
                "csc_amplitude", "thick_amplitude", "inner_boost", "disk_amplitude",
                "disk_anticentre_fraction", "patch_scatter_ln", "sigma_g_ref", "sigma_g_min", "sigma_g_max",
                *non_negative,
            ),
            at_most_one=("disk_anticentre_fraction", *at_most_one),
            slopes=("slope", *slopes),
            ordered=(("sigma_g_min", "sigma_g_max"), *ordered),
            not_all_zero=("csc_amplitude", "thick_amplitude", "disk_amplitude"),
        )

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
        return lognormal_width(brightness, self.sigma_g_ref, self.sigma_g_ref_level, self.sigma_g_index,
                               self.sigma_g_min, self.sigma_g_max)

    def patch_parameter(self, ctx: SkyContext, parameter: str, sigma: float, z: torch.Tensor, low: float,
                        high: float) -> torch.Tensor:
        """The spectral ``parameter`` of every patch (``(batch,)`` float64): the configured or drawn value
        plus its patch scatter ``sigma z``, clipped to [``low``, ``high``]."""
        return (self.per_patch(ctx, parameter) + sigma * z).clamp(low, high)

    @staticmethod
    def band_centres(ctx: SkyContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Every band's centre frequency (GHz) and its K_CMB per K_RJ (:func:`rj_to_kcmb`), float64
        ``(n_bands,)`` on the context's device."""
        bands = ctx.instrument.bands
        nu = torch.tensor([b.frequency_ghz for b in bands], dtype=torch.float64, device=ctx.device)
        conv = torch.tensor([rj_to_kcmb(b) for b in bands], dtype=torch.float64, device=ctx.device)
        return nu, conv

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """µK_CMB in every band, ``(batch, n_bands, n, n)`` float32, from the brightness maps
        ``(batch, 1, n, n)`` float32; ``z`` is a standard normal per patch ``(batch,)`` float64 for the
        spectral parameter's patch scatter (stream ``<name>_patch``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ setup and drawing

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        device = torch.device(device)
        self._key = (geometry, device)
        # u: unit variance over ℓ >= sigma_g_lmin; _u_var is its pixel variance on this grid.
        self._u_amp, self._u_var = unit_variance_field(geometry, self.slope, self.sigma_g_lmin, device)
        self._grid = CoarseGrid(geometry, self.coarse_npix, device)

    def brightness(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """Brightness maps with patch scatter and small-scale field, ``(batch, 1, n, n)`` float32;
        ``z`` ``(batch,)`` are the standard normals of the patch scatter."""
        device = ctx.device
        lon, lat = pixel_coordinates(ctx.lon_deg.to(device), ctx.lat_deg.to(device), self._grid.geometry)
        s = self.patch_scatter_ln
        mean = self.mean_brightness(lon, lat) * torch.exp(s * z - 0.5 * s * s)[:, None, None]
        coarse = torch.stack([torch.log(mean.clamp_min(1e-300)), self.sigma_g(mean)], dim=1)
        fine = self._grid.upsample(coarse)
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
