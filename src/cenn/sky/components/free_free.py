"""Galactic free-free: thermal bremsstrahlung of ionised gas, concentrated in the Galactic plane.

Model (parameters and their sources in ``cenn/sky/data/free_free.toml``):

* Emission measure EM (pc cm⁻⁶) on the sky: the shared law of
  :mod:`cenn.sky.components._galactic_field` — a thin disk (HII regions and the inner-Galaxy
  ionised layer, scale height ~1°) fading along the plane, plus a softened cosecant and a thick
  layer (the warm ionised medium seen in Hα, EM sin|b| ≈ 1-2 pc cm⁻⁶), brighter towards the inner
  Galaxy — times a lognormal patch scatter, and a lognormal small-scale field whose width grows with
  EM (clumpy HII regions in the plane).
* Spectrum (Draine 2011; Planck 2015 X, A&A 594, A10, Table 4), the electron temperature ``T_e``
  drawn per patch around ``electron_temperature_k``::

      T_RJ = 10⁶ T_e (1 - e^{-τ}) µK,   τ = 0.05468 T_e^{-3/2} ν₉^{-2} EM g_ff,
      g_ff = ln(exp[5.960 - (√3/π) ln(ν₉ T₄^{-3/2})] + e)

  with ν₉ = ν / 1 GHz and T₄ = T_e / 10⁴ K: T_RJ ∝ ν^-2.14 near 30 GHz, steepening slowly with
  frequency (the Gaunt factor's curvature: -2.16 between 143 and 217 GHz, -2.17 between 217 and 353).
* Bands: T_RJ at the band centre times K_CMB per K_RJ (:func:`_galactic_field.rj_to_kcmb`, the band's
  MJy sr⁻¹ per K_CMB; exact for ν⁻¹ spectra in the IRAS convention, within ~1 % for free-free).

Random streams: ``free_free`` (small-scale field), ``free_free_patch`` (EM scatter, then T_e).
Randomisable per patch: ``electron_temperature_k`` (the patch scatter is added to the draw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cenn.sky.components._galactic_field import GalacticComponent, load_parameters, rj_to_kcmb
from cenn.sky.components.base import SkyContext, register

_D = load_parameters("free_free")


def gaunt_factor(nu_ghz, electron_temperature_k):
    """Free-free Gaunt factor g_ff of Draine (2011) as in Planck 2015 X, Table 4 (broadcasting)."""
    t4 = electron_temperature_k / 1e4
    x = 5.960 - (math.sqrt(3.0) / math.pi) * torch.log(nu_ghz * t4**-1.5)
    return torch.log(torch.exp(x) + math.e)


def optical_depth_per_em(nu_ghz, electron_temperature_k):
    """τ / EM in (pc cm⁻⁶)⁻¹ at ``nu_ghz`` for ``electron_temperature_k`` (broadcasting tensors)."""
    g_ff = gaunt_factor(nu_ghz, electron_temperature_k)
    return 0.05468 * electron_temperature_k**-1.5 * nu_ghz**-2.0 * g_ff


def brightness_rj_uk(nu_ghz, emission_measure, electron_temperature_k):
    """Free-free T_RJ in µK: 10⁶ T_e (1 - e^{-τ}) (broadcasting tensors)."""
    tau = optical_depth_per_em(nu_ghz, electron_temperature_k) * emission_measure
    return -1e6 * electron_temperature_k * torch.expm1(-tau)


@register
@dataclass
class FreeFree(GalacticComponent):
    """Galactic free-free emission (defaults and sources: ``cenn/sky/data/free_free.toml``).

    Emission measures in pc cm⁻⁶ (``*_amplitude``, ``sigma_g_ref_level``), angles in degrees,
    temperatures in K. See the module docstring for the equations.
    """

    name = "free_free"
    randomisable = ("electron_temperature_k",)
    csc_amplitude: float = _D["csc_amplitude"]
    csc_softening_deg: float = _D["csc_softening_deg"]
    thick_amplitude: float = _D["thick_amplitude"]
    thick_scale_height_deg: float = _D["thick_scale_height_deg"]
    inner_boost: float = _D["inner_boost"]
    inner_width_deg: float = _D["inner_width_deg"]
    disk_amplitude: float = _D["disk_amplitude"]
    disk_scale_height_deg: float = _D["disk_scale_height_deg"]
    disk_longitude_scale_deg: float = _D["disk_longitude_scale_deg"]
    disk_anticentre_fraction: float = _D["disk_anticentre_fraction"]
    patch_scatter_ln: float = _D["patch_scatter_ln"]
    coarse_npix: int = _D["coarse_npix"]
    sigma_g_ref: float = _D["sigma_g_ref"]
    sigma_g_ref_level: float = _D["sigma_g_ref_level"]
    sigma_g_index: float = _D["sigma_g_index"]
    sigma_g_min: float = _D["sigma_g_min"]
    sigma_g_max: float = _D["sigma_g_max"]
    sigma_g_lmin: float = _D["sigma_g_lmin"]
    slope: float = _D["slope"]
    electron_temperature_k: float = _D["electron_temperature_k"]
    electron_temperature_patch_sigma_k: float = _D["electron_temperature_patch_sigma_k"]
    electron_temperature_min_k: float = _D["electron_temperature_min_k"]
    electron_temperature_max_k: float = _D["electron_temperature_max_k"]

    def __post_init__(self) -> None:
        self._check_parameters(positive=("electron_temperature_min_k",),
                               non_negative=("electron_temperature_patch_sigma_k",))
        t_min, t_max = self.electron_temperature_min_k, self.electron_temperature_max_k
        if not t_min <= self.electron_temperature_k <= t_max:
            raise ValueError(
                "free_free: need electron_temperature_min_k <= electron_temperature_k <= "
                f"electron_temperature_max_k, got {self.electron_temperature_min_k}, "
                f"{self.electron_temperature_k}, {self.electron_temperature_max_k}")

    def electron_temperature(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """T_e of every patch (K, ``(batch,)`` float64): the configured or drawn value plus the patch
        scatter, clipped to [min, max]."""
        t_e = self.per_patch(ctx, "electron_temperature_k") + self.electron_temperature_patch_sigma_k * z
        return t_e.clamp(self.electron_temperature_min_k, self.electron_temperature_max_k)

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        bands = ctx.instrument.bands
        t_e = self.electron_temperature(ctx, z)[:, None]  # (B, 1)
        nu = torch.tensor([b.frequency_ghz for b in bands], dtype=torch.float64, device=ctx.device)
        conv = torch.tensor([rj_to_kcmb(b) for b in bands], dtype=torch.float64, device=ctx.device)
        k = optical_depth_per_em(nu, t_e).to(torch.float32)[:, :, None, None]  # τ / EM, (B, n_bands)
        amp = (1e6 * t_e * conv).to(torch.float32)[:, :, None, None]  # µK_CMB for τ -> ∞
        if float(k.max()) * float(brightness.max()) < 1e-3:
            # optically thin (always so above ~10 GHz): amp (1 - e^-τ) = amp (τ - τ²/2) to 2e-7
            # relative, several times faster than expm1
            return (brightness * (amp * k)).addcmul_(brightness.square(), -0.5 * amp * k * k)
        return torch.expm1(-brightness * k).mul_(-amp)
