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

from cenn.sky.components._galactic_field import GalacticComponent
from cenn.sky.components._lognormal import load_parameters
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
    temperatures in K. The brightness-law and small-scale fields are those of
    :class:`~cenn.sky.components._galactic_field.GalacticComponent`. See the module docstring for the
    equations.
    """

    name = "free_free"
    randomisable = ("electron_temperature_k",)
    electron_temperature_k: float = _D["electron_temperature_k"]
    electron_temperature_patch_sigma_k: float = _D["electron_temperature_patch_sigma_k"]
    electron_temperature_min_k: float = _D["electron_temperature_min_k"]
    electron_temperature_max_k: float = _D["electron_temperature_max_k"]

    def __post_init__(self) -> None:
        self._check_parameters(
            positive=("electron_temperature_min_k",), non_negative=("electron_temperature_patch_sigma_k",),
            ordered=(("electron_temperature_min_k", "electron_temperature_k", "electron_temperature_max_k"),))

    def electron_temperature(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """T_e of every patch (K, ``(batch,)`` float64): the configured or drawn value plus the patch
        scatter, clipped to [min, max]."""
        return self.patch_parameter(ctx, "electron_temperature_k", self.electron_temperature_patch_sigma_k, z,
                                    self.electron_temperature_min_k, self.electron_temperature_max_k)

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        t_e = self.electron_temperature(ctx, z)[:, None]  # (B, 1)
        nu, conv = self.band_centres(ctx)
        k = optical_depth_per_em(nu, t_e).to(torch.float32)[:, :, None, None]  # τ / EM, (B, n_bands)
        amp = (1e6 * t_e * conv).to(torch.float32)[:, :, None, None]  # µK_CMB for τ -> ∞
        if float(k.max()) * float(brightness.max()) < 1e-3:
            # optically thin (always so above ~10 GHz): amp (1 - e^-τ) = amp (τ - τ²/2) to 2e-7
            # relative, several times faster than expm1
            return (brightness * (amp * k)).addcmul_(brightness.square(), -0.5 * amp * k * k)
        return torch.expm1(-brightness * k).mul_(-amp)
