"""Polarization built on an intensity map: a polarization fraction and an angle per pixel.

Dust and synchrotron (:func:`structured`; :meth:`cenn.sky.components.dust.Dust.polarization`,
:meth:`cenn.sky.components.synchrotron.Synchrotron.polarization`): ``Q + iU = p I e^{2iψ}`` with

* ψ = ψ_s + δψ. The structure angle ψ_s = ½ arg S, S the pure-E spin-2 field (:mod:`cenn.sky.flat.spin2`)
  of a unit-variance scalar ``s = ρ g_I + √(1 − ρ²) g`` smoothed by a Gaussian beam: g_I the
  intensity's own log-structure and g an independent Gaussian field. Polarization then lies along
  or across the structures, as dust polarization does along filaments (Planck Int. XXXII,
  XXXVIII) and synchrotron polarization along its loops and filaments (Vidal et al. 2015), which
  makes EE > BB and TE > 0; ρ sets TE, and a turbulent Gaussian angle field δψ of RMS σ_ψ lowers
  EE/BB towards 1.
* p = p_med exp(σ_ln g_p), a smooth lognormal field, at most p_max; p_med per patch.

Sources (:func:`random_angles`): each pixel a fraction and an angle of its own, so every source,
painted in a single pixel, has its own.
"""

from __future__ import annotations

import math

import torch

from cenn.sky import fields
from cenn.sky.components._lognormal import power_law_amplitude
from cenn.sky.components.base import Component, SkyContext
from cenn.sky.flat import spin2
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import FWHM_TO_SIGMA
from cenn.sky.rng import SampleRandom


def unit_field(random: SampleRandom, stream: str, geometry: PatchGeometry, slope: float) -> torch.Tensor:
    """A Gaussian field with C_ℓ ∝ ℓ^slope and unit pixel variance, ``(batch, npix, npix)``."""
    amp, var = power_law_amplitude(geometry, slope, random.device)
    white = fields.white_fourier(random, stream, geometry)[:, 0]
    return fields.to_real(white * (amp / var.sqrt()).to(torch.float32), geometry)


def standardised(x: torch.Tensor) -> torch.Tensor:
    """``x (batch, n, n)`` less its mean over each map, over its standard deviation."""
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return x / x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-30)


def structure_angle(structure: torch.Tensor, geometry: PatchGeometry, smoothing_fwhm_arcmin: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos 2ψ_s, sin 2ψ_s) ``(batch, n, n)``: the orientation of the pure-E spin-2 field of the
    scalar ``structure (batch, n, n)`` smoothed by a Gaussian of FWHM ``smoothing_fwhm_arcmin``."""
    sigma = math.radians(smoothing_fwhm_arcmin / 60.0) * FWHM_TO_SIGMA
    ell = geometry.ell(structure.device)
    smoothed = torch.fft.rfft2(structure) * torch.exp(-0.5 * (ell * sigma) ** 2).to(torch.float32)
    zero = torch.zeros_like(smoothed)
    q, u = (fields.to_real(x, geometry) for x in spin2.eb_to_qu(smoothed, zero, geometry))
    norm = torch.hypot(q, u).clamp_min(1e-30)
    return q / norm, u / norm


def rotate(cos2: torch.Tensor, sin2: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos 2(ψ + angle), sin 2(ψ + angle)) from (cos 2ψ, sin 2ψ); ``angle`` in radians."""
    c, s = torch.cos(2.0 * angle), torch.sin(2.0 * angle)
    return cos2 * c - sin2 * s, sin2 * c + cos2 * s


def structured(component: Component, ctx: SkyContext, intensity: torch.Tensor,
               median: torch.Tensor) -> torch.Tensor:
    """Q and U ``(batch, 2, n_bands, n, n)`` float32, in the units of ``intensity (batch, n_bands, n, n)``
    (the maps ``component`` drew for ``ctx``): p I e^{2iψ} in every band (module docstring), p of
    median ``median``, per patch ``(batch,)`` or per pixel ``(batch, n, n)``.

    The component's fields ``pol_structure_correlation`` (ρ) and ``pol_angle_sigma_deg`` (σ_ψ, read
    per patch: :meth:`Component.per_patch`), ``pol_structure_slope``, ``pol_structure_smoothing_arcmin``
    (FWHM), ``pol_angle_slope``, ``pol_fraction_slope``, ``pol_fraction_sigma_ln`` and
    ``pol_fraction_max`` set the fields; they are drawn from its streams ``<name>_pol_structure``,
    ``<name>_pol_angle`` and ``<name>_pol_fraction``."""
    geometry, name = ctx.geometry, component.name
    rho = component.per_patch(ctx, "pol_structure_correlation")
    weights = torch.stack([rho, torch.sqrt(1.0 - rho * rho)]).to(torch.float32)[:, :, None, None]
    own = standardised(torch.log(intensity.clamp_min(1e-30)).mean(dim=1))
    other = unit_field(ctx.random, f"{name}_pol_structure", geometry, component.pol_structure_slope)
    cos2, sin2 = structure_angle(weights[0] * own + weights[1] * other, geometry,
                                 component.pol_structure_smoothing_arcmin)
    turbulence = unit_field(ctx.random, f"{name}_pol_angle", geometry, component.pol_angle_slope)
    angle_rms = torch.deg2rad(component.per_patch(ctx, "pol_angle_sigma_deg")).to(torch.float32)
    cos2, sin2 = rotate(cos2, sin2, angle_rms[:, None, None] * turbulence)
    log_p = unit_field(ctx.random, f"{name}_pol_fraction", geometry, component.pol_fraction_slope)
    median = median.to(torch.float32)
    median = median[:, None, None] if median.ndim == 1 else median
    p = (median * torch.exp(component.pol_fraction_sigma_ln * log_p)
         ).clamp_max(component.pol_fraction_max)
    return torch.stack([p * cos2, p * sin2], dim=1)[:, :, None] * intensity[:, None]


def random_angles(random: SampleRandom, stream: str, shape: tuple[int, ...], median: float,
                  sigma_ln: float) -> torch.Tensor:
    """p (cos 2ψ, sin 2ψ) per pixel, ``(batch, 2, *shape)``: ψ uniform, p lognormal of median
    ``median`` and log-width ``sigma_ln`` (at most 1), independent from pixel to pixel (stream
    ``stream``)."""
    draws = random.normal(stream, (2, *shape))
    p = (median * torch.exp(sigma_ln * draws[:, 0])).clamp_max(1.0)
    psi = math.pi * torch.special.ndtr(draws[:, 1])  # uniform on [0, π)
    return torch.stack([p * torch.cos(2.0 * psi), p * torch.sin(2.0 * psi)], dim=1)
