"""Galactic synchrotron: emission of cosmic-ray electrons in the Galactic magnetic field.

Model (parameters and their sources in ``cenn/sky/data/synchrotron.toml``):

* Brightness T_408 (K_RJ at the reference frequency, 408 MHz as the Haslam et al. 1982 survey) on
  the sky: the shared law of :mod:`cenn.sky.components._galactic_field` — a wide halo (softened
  cosecant, ~10-20 K at high latitude, brighter towards the inner Galaxy: North Polar Spur, Loop I),
  a thick disk of scale height several degrees and a thin disk (~1.5°) along the plane (hundreds of
  K in the inner Galaxy) — times a lognormal patch scatter, and a weak lognormal small-scale field
  with a steep spectrum (C_ℓ ∝ ℓ^-2.8).
* Spectrum: a power law with optional curvature, β and C per patch::

      T_RJ(ν) = T_408 (ν/ν₀)^(β + C ln(ν/ν_c))

  (ν₀ = ``reference_ghz``, ν_c = ``curvature_pivot_ghz``); β = ``beta`` + ``beta_patch_sigma`` z,
  clipped to [``beta_min``, ``beta_max``].
* Bands: T_RJ at the band centre times K_CMB per K_RJ (:func:`_galactic_field.rj_to_kcmb`, the band's
  MJy sr⁻¹ per K_CMB), the exact band average in the IRAS convention for β = -3.

Random streams: ``synchrotron`` (small-scale field), ``synchrotron_patch`` (brightness scatter, then
β). Randomisable per patch: ``beta`` (the patch scatter is added to the draw) and ``curvature``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cenn.sky.components._galactic_field import GalacticComponent, load_parameters, rj_to_kcmb
from cenn.sky.components.base import SkyContext, register

_D = load_parameters("synchrotron")


def spectrum(nu_ghz, beta, curvature, reference_ghz: float, pivot_ghz: float):
    """T_RJ(ν) / T_RJ(ν₀) = (ν/ν₀)^(β + C ln(ν/ν_c)) (broadcasting tensors)."""
    return (nu_ghz / reference_ghz) ** (beta + curvature * torch.log(nu_ghz / pivot_ghz))


@register
@dataclass
class Synchrotron(GalacticComponent):
    """Galactic synchrotron emission (defaults and sources: ``cenn/sky/data/synchrotron.toml``).

    Brightnesses (``*_amplitude``, ``sigma_g_ref_level``) in K_RJ at ``reference_ghz``, angles in
    degrees. See the module docstring for the equations.
    """

    name = "synchrotron"
    randomisable = ("beta", "curvature")
    reference_ghz: float = _D["reference_ghz"]
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
    beta: float = _D["beta"]
    beta_patch_sigma: float = _D["beta_patch_sigma"]
    beta_min: float = _D["beta_min"]
    beta_max: float = _D["beta_max"]
    curvature: float = _D["curvature"]
    curvature_pivot_ghz: float = _D["curvature_pivot_ghz"]

    def __post_init__(self) -> None:
        self._check_parameters(positive=("reference_ghz", "curvature_pivot_ghz"),
                               non_negative=("beta_patch_sigma",))
        if not self.beta_min <= self.beta <= self.beta_max:
            raise ValueError(f"synchrotron: need beta_min <= beta <= beta_max, got {self.beta_min}, "
                             f"{self.beta}, {self.beta_max}")

    def spectral_index(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """β of every patch (``(batch,)`` float64): the configured or drawn value plus the patch
        scatter, clipped to [beta_min, beta_max]."""
        beta = self.per_patch(ctx, "beta") + self.beta_patch_sigma * z
        return beta.clamp(self.beta_min, self.beta_max)

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        bands = ctx.instrument.bands
        beta = self.spectral_index(ctx, z)[:, None]
        curvature = self.per_patch(ctx, "curvature")[:, None]
        nu = torch.tensor([b.frequency_ghz for b in bands], dtype=torch.float64, device=ctx.device)
        conv = torch.tensor([rj_to_kcmb(b) for b in bands], dtype=torch.float64, device=ctx.device)
        sed = 1e6 * conv * spectrum(nu, beta, curvature, self.reference_ghz, self.curvature_pivot_ghz)
        return brightness * sed.to(torch.float32)[:, :, None, None]  # µK_CMB per K_RJ at ν₀
