"""The tSZ population's background (astropy) against an independent integration and the textbook
critical density; the halo table's background; the alias sampler."""

import math

import numpy as np
import pytest

from cenn.sky.components.tsz.alias_sampler import alias_table, draw
from cenn.sky.components.tsz.cosmology import Background
from cenn.sky.components.tsz.halo_counts import HaloCounts

C_KMS = 299792.458
TABLE = HaloCounts.read()
BG = TABLE.background


def _trapezoid_da(bg: Background, z: np.ndarray) -> np.ndarray:
    """D_A in Mpc by the trapezoid rule on E(z) written out (the code astropy replaced)."""
    zz = np.linspace(0.0, 12.0, 240001)
    zp = 1.0 + zz
    inv_e = 1.0 / np.sqrt(bg.omega_m * zp**3 + bg.omega_r * zp**4 + 1.0 - bg.omega_m - bg.omega_r)
    chi = np.concatenate([[0.0], np.cumsum(0.5 * (inv_e[1:] + inv_e[:-1]) * np.diff(zz))])
    return np.interp(z, zz, chi) * C_KMS / (100.0 * bg.h) / (1.0 + z)


def test_distances_agree_with_a_direct_integration_over_the_redshifts_used():
    z = np.linspace(TABLE.z_edges[0], TABLE.z_edges[-1], 997)
    assert np.abs(BG.angular_diameter_distance(z) / _trapezoid_da(BG, z) - 1).max() < 1e-4
    zp = 1 + z
    e = np.sqrt(BG.omega_m * zp**3 + BG.omega_r * zp**4 + 1 - BG.omega_m - BG.omega_r)
    assert BG.e_of_z(z) == pytest.approx(e, rel=1e-12)


def test_the_astropy_background_holds_the_tables_densities():
    cosmo = BG.astropy
    assert cosmo.Om0 == pytest.approx(0.31582255, rel=1e-7)
    assert cosmo.Ogamma0 + cosmo.Onu0 == pytest.approx(7.971314817e-05, rel=1e-9)
    assert cosmo.Ode0 == pytest.approx(1 - cosmo.Om0 - 7.971314817e-05, rel=1e-9)
    # ρ_c = 3 H0² / 8πG = 2.775366e11 h² M☉ Mpc⁻³
    assert BG.rho_crit0 == pytest.approx(2.775366e11 * BG.h**2, rel=1e-6)
    with pytest.raises(ValueError, match="below the CMB photons"):
        _ = Background(0.7, 0.3, 1e-6).astropy


def test_r500_and_the_critical_density_at_redshift():
    assert BG.rho_crit(1.0) == pytest.approx(BG.rho_crit0 * BG.e_of_z(1.0) ** 2, rel=1e-12)
    assert BG.r500(6e14, 0.0) == pytest.approx((3 * 6e14 / (4 * math.pi * 500 * BG.rho_crit0)) ** (1 / 3))


def test_alias_sampler_draws_with_the_given_probabilities():
    prob = np.array([0.5, 0.0, 0.2, 0.25, 0.05])
    u = np.random.default_rng(0).random(400_000)
    counts = np.bincount(draw(alias_table(prob), u), minlength=prob.size)
    expected = prob * u.size
    assert counts[1] == 0
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected + 1))
