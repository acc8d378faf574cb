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
* Polarization (:meth:`Synchrotron.polarization`): ``Q + iU = p I e^{2iψ}`` in every band, so Q and U
  follow the intensity's T_RJ ∝ ν^β; ψ the orientation of the structures plus a turbulent angle
  and p a smooth lognormal field (:func:`cenn.sky.components._polarization.structured`), whose
  median rises from the plane to high latitude with the patch centre's |b|::

      p_med(b) = p_plane + (p_high - p_plane) (1 - e^{-|b|/b_p})

Random streams: ``synchrotron`` (small-scale field), ``synchrotron_patch`` (brightness scatter, then
β); for Q and U ``synchrotron_pol_structure``, ``synchrotron_pol_angle`` and
``synchrotron_pol_fraction``. Randomisable per patch: ``beta`` (the patch scatter is added to the
draw) and ``curvature``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cenn.sky.components import _polarization as pol
from cenn.sky.components._galactic_field import GalacticComponent
from cenn.sky.components._lognormal import load_parameters
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
    degrees, polarization fractions as fractions of I (``pol_fraction_median`` is p_high, the
    median far from the plane). The brightness-law and small-scale fields are those of
    :class:`~cenn.sky.components._galactic_field.GalacticComponent`. See the module docstring for the
    equations.
    """

    name = "synchrotron"
    polarized = True
    randomisable = ("beta", "curvature")
    reference_ghz: float = _D["reference_ghz"]
    beta: float = _D["beta"]
    beta_patch_sigma: float = _D["beta_patch_sigma"]
    beta_min: float = _D["beta_min"]
    beta_max: float = _D["beta_max"]
    curvature: float = _D["curvature"]
    curvature_pivot_ghz: float = _D["curvature_pivot_ghz"]
    pol_fraction_median: float = _D["pol_fraction_median"]
    pol_fraction_plane: float = _D["pol_fraction_plane"]
    pol_fraction_scale_deg: float = _D["pol_fraction_scale_deg"]
    pol_fraction_sigma_ln: float = _D["pol_fraction_sigma_ln"]
    pol_fraction_max: float = _D["pol_fraction_max"]
    pol_fraction_slope: float = _D["pol_fraction_slope"]
    pol_structure_correlation: float = _D["pol_structure_correlation"]
    pol_structure_smoothing_arcmin: float = _D["pol_structure_smoothing_arcmin"]
    pol_structure_slope: float = _D["pol_structure_slope"]
    pol_angle_sigma_deg: float = _D["pol_angle_sigma_deg"]
    pol_angle_slope: float = _D["pol_angle_slope"]

    def __post_init__(self) -> None:
        self._check_parameters(
            positive=("reference_ghz", "curvature_pivot_ghz", "pol_fraction_scale_deg"),
            non_negative=("beta_patch_sigma", "pol_fraction_plane", "pol_fraction_median",
                          "pol_fraction_sigma_ln", "pol_structure_correlation",
                          "pol_structure_smoothing_arcmin", "pol_angle_sigma_deg"),
            ordered=(("beta_min", "beta", "beta_max"), ("pol_fraction_plane", "pol_fraction_max"),
                     ("pol_fraction_median", "pol_fraction_max")),
            at_most_one=("pol_fraction_max", "pol_structure_correlation"),
            slopes=("pol_fraction_slope", "pol_structure_slope", "pol_angle_slope"))

    def spectral_index(self, ctx: SkyContext, z: torch.Tensor) -> torch.Tensor:
        """β of every patch (``(batch,)`` float64): the configured or drawn value plus the patch
        scatter, clipped to [beta_min, beta_max]."""
        return self.patch_parameter(ctx, "beta", self.beta_patch_sigma, z, self.beta_min, self.beta_max)

    def band_maps(self, ctx: SkyContext, brightness: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        beta = self.spectral_index(ctx, z)[:, None]
        curvature = self.per_patch(ctx, "curvature")[:, None]
        nu, conv = self.band_centres(ctx)
        sed = 1e6 * conv * spectrum(nu, beta, curvature, self.reference_ghz, self.curvature_pivot_ghz)
        return brightness * sed.to(torch.float32)[:, :, None, None]  # µK_CMB per K_RJ at ν₀

    def pol_fraction(self, lat_deg: torch.Tensor) -> torch.Tensor:
        """The median polarization fraction p_med(b) at Galactic latitudes ``lat_deg`` (degrees, any
        shape): ``pol_fraction_plane`` on the plane rising to ``pol_fraction_median`` over
        ``pol_fraction_scale_deg`` (module docstring)."""
        rise = 1.0 - torch.exp(-lat_deg.abs() / self.pol_fraction_scale_deg)
        return self.pol_fraction_plane + (self.pol_fraction_median - self.pol_fraction_plane) * rise

    def polarization(self, ctx: SkyContext, intensity: torch.Tensor) -> torch.Tensor:
        """Q and U in µK_CMB before the beam, ``(batch, 2, n_bands, n, n)``, for the intensity maps
        ``intensity (batch, n_bands, n, n)`` drawn for ``ctx``, p's median that of each patch
        centre's latitude (module docstring)."""
        return pol.structured(self, ctx, intensity, self.pol_fraction(ctx.lat_deg.to(ctx.device)))
