"""Unit conversions against published constants (physics-reference.md §1)."""

import pytest
import torch

from cenn.sky import units
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument


@pytest.mark.parametrize(("nu", "x", "dbdt", "krj", "f"), [
    (143.0, 2.5180, 379.93, 0.6047, -1.0404),
    (217.0, 3.8211, 483.65, 0.3343, -0.0078),
    (353.0, 6.2159, 296.65, 0.07749, 2.2407),
])
def test_monochromatic_conversions(nu, x, dbdt, krj, f):
    assert units.x_cmb(nu) == pytest.approx(x, abs=2e-4)
    assert units.dbdt_mjysr_per_k(nu) == pytest.approx(dbdt, rel=2e-4)
    assert units.krj_per_kcmb(nu) == pytest.approx(krj, rel=1e-3)
    assert units.tsz_f(nu) == pytest.approx(f, abs=2e-3)


def test_band_averaged_conversions_of_the_planck_preset():
    """Planck 2013 IX Table 6, and within 3 % of the monochromatic value (band averaging)."""
    inst = load_instrument("planck_hfi")
    published = {"143": 371.74, "217": 483.69, "353": 287.45}
    for band in inst.bands:
        assert band.mjysr_per_kcmb == pytest.approx(published[band.name], rel=1e-5)
        mono = units.dbdt_mjysr_per_k(band.frequency_ghz)
        assert abs(band.mjysr_per_kcmb / mono - 1) < 0.035


@pytest.mark.parametrize(("band", "uk_per_jy"), [("143", 14129), ("217", 10859), ("353", 18273)])
def test_one_jansky_in_one_pixel(band, uk_per_jy):
    inst = load_instrument("planck_hfi")
    b = inst.bands[inst.band_names.index(band)]
    got = units.jy_to_uk_per_pixel(1.0, PatchGeometry().pixel_area_sr, b.mjysr_per_kcmb)
    assert got == pytest.approx(uk_per_jy, rel=2e-4)


def test_dust_like_frequency_scaling_in_kcmb():
    """§3.1: a β = 1.53, T = 19.6 K MBB is 0.1326 (217/353) and 0.0427 (143/353) in K_CMB."""
    def kcmb(nu):
        return units.modified_blackbody(nu, 1.53, 19.6, 353.0) / units.dbdt_mjysr_per_k(nu)

    assert kcmb(217.0) / kcmb(353.0) == pytest.approx(0.1326, rel=2e-3)
    assert kcmb(143.0) / kcmb(353.0) == pytest.approx(0.0427, rel=3e-3)


def test_planck_function_tensor_and_float_agree():
    nu = torch.tensor([100.0, 353.0], dtype=torch.float64)
    t = units.planck_mjysr(nu, 19.6)
    assert t[1].item() == pytest.approx(units.planck_mjysr(353.0, 19.6), rel=1e-12)
    # Rayleigh-Jeans limit: B = 2 k T ν² / c²
    low = units.planck_mjysr(1.0, 1000.0)
    rj = 2 * units.K_BOLTZMANN * 1000.0 * 1e18 / units.C_LIGHT**2 / units.MJY_SR
    assert low == pytest.approx(rj, rel=1e-3)
