"""Physical constants, spectral energy distributions and unit conversions.

Conventions: frequencies in GHz, brightness in MJy sr⁻¹, temperatures in K_CMB (or µK_CMB
where stated), fluxes in Jy. Functions accept floats or tensors and broadcast.
"""

from __future__ import annotations

import math

import torch

H_PLANCK = 6.62607015e-34  # J s (exact, SI 2019)
K_BOLTZMANN = 1.380649e-23  # J / K (exact, SI 2019)
C_LIGHT = 2.99792458e8  # m / s (exact)
T_CMB = 2.7255  # K, Fixsen 2009
JY = 1e-26  # W m⁻² Hz⁻¹
MJY_SR = 1e-20  # W m⁻² Hz⁻¹ sr⁻¹ per MJy sr⁻¹

Number = float | torch.Tensor


def _exp(x: Number) -> Number:
    return torch.exp(x) if isinstance(x, torch.Tensor) else math.exp(x)


def _expm1(x: Number) -> Number:
    return torch.expm1(x) if isinstance(x, torch.Tensor) else math.expm1(x)


def x_cmb(nu_ghz: Number) -> Number:
    """Dimensionless frequency x = hν / (k T_CMB)."""
    return H_PLANCK * nu_ghz * 1e9 / (K_BOLTZMANN * T_CMB)


def planck_mjysr(nu_ghz: Number, temperature_k: Number) -> Number:
    """Planck function B_ν(T) in MJy sr⁻¹."""
    nu = nu_ghz * 1e9
    x = H_PLANCK * nu / (K_BOLTZMANN * temperature_k)
    return 2.0 * H_PLANCK * nu**3 / C_LIGHT**2 / _expm1(x) / MJY_SR


def dbdt_mjysr_per_k(nu_ghz: Number) -> Number:
    """Monochromatic dB_ν/dT at T_CMB in MJy sr⁻¹ K_CMB⁻¹ (379.93 at 143 GHz)."""
    x = x_cmb(nu_ghz)
    nu = nu_ghz * 1e9
    ex = _exp(x)
    return 2.0 * H_PLANCK * nu**3 / C_LIGHT**2 * x * ex / (_expm1(x) ** 2 * T_CMB) / MJY_SR


def krj_per_kcmb(nu_ghz: Number) -> Number:
    """Monochromatic K_RJ per K_CMB, x² eˣ / (eˣ − 1)²."""
    x = x_cmb(nu_ghz)
    return x**2 * _exp(x) / _expm1(x) ** 2


def tsz_f(nu_ghz: Number) -> Number:
    """Non-relativistic tSZ spectral function f(x) = x coth(x/2) − 4, so ΔT/T_CMB = y f(x)."""
    x = x_cmb(nu_ghz)
    return x * (_exp(x) + 1.0) / _expm1(x) - 4.0


def modified_blackbody(
    nu_ghz: Number, beta: Number, temperature_k: Number, nu0_ghz: Number
) -> Number:
    """Modified blackbody (ν/ν₀)^β B_ν(T)/B_ν₀(T): brightness at ν relative to ν₀ (MJy sr⁻¹
    ratio)."""
    return (nu_ghz / nu0_ghz) ** beta * planck_mjysr(nu_ghz, temperature_k) / planck_mjysr(
        nu0_ghz, temperature_k
    )


def jy_to_uk_per_pixel(
    flux_jy: Number, pixel_area_sr: float, mjysr_per_kcmb: float
) -> Number:
    """Temperature (µK_CMB) of one pixel holding a source of flux ``flux_jy``.

    ΔT = S / (Ω_pix U_ν), with U_ν the MJy sr⁻¹ per K_CMB factor of the band.
    """
    return flux_jy * 1e-6 / (pixel_area_sr * mjysr_per_kcmb) * 1e6
