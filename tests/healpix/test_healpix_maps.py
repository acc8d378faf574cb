import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from cenn.healpix import check_bands, read_map, uk_per_unit

NSIDE = 16


@pytest.fixture
def sky_uk(cmb_like_map):
    """A RING map in µK (std of order 100 µK)."""
    return cmb_like_map(NSIDE, seed=1)


def write(path, values, nest=False, units=None):
    hp.write_map(str(path), values, nest=nest, column_units=units, overwrite=True, dtype=np.float64)
    return path


def test_ring_map_in_k_comes_back_in_uk(tmp_path, sky_uk):
    m = read_map(write(tmp_path / "k.fits", sky_uk * 1e-6, units="K_CMB"))
    np.testing.assert_allclose(m.values, sky_uk, rtol=1e-12)
    assert (m.nside, m.ordering_in, m.units_in, m.unseen_fraction) == (NSIDE, "RING", "K_CMB", 0.0)
    assert m.path == tmp_path / "k.fits"


def test_nested_map_in_uk_comes_back_in_ring(tmp_path, sky_uk):
    m = read_map(write(tmp_path / "n.fits", hp.reorder(sky_uk, r2n=True), nest=True, units="uK_CMB"))
    np.testing.assert_array_equal(m.values, sky_uk)
    assert (m.ordering_in, m.units_in) == ("NESTED", "uK_CMB")


def test_column_units_follow_the_field(tmp_path, sky_uk):
    path = tmp_path / "two.fits"
    hp.write_map(str(path), [sky_uk * 1e-6, 2 * sky_uk], column_units=["K_CMB", "uK_CMB"], dtype=np.float64)
    np.testing.assert_allclose(read_map(path, field=0).values, sky_uk, rtol=1e-12)
    np.testing.assert_array_equal(read_map(path, field=1).values, 2 * sky_uk)
    with pytest.raises(ValueError, match="2 column"):
        read_map(path, field=2)


def test_units_argument_is_required_without_header_units_and_overrides_them(tmp_path, sky_uk):
    path = write(tmp_path / "bare.fits", sky_uk * 1e-6)
    with pytest.raises(ValueError, match=r"states no units.*units='K_CMB'"):
        read_map(path)
    np.testing.assert_allclose(read_map(path, units="K").values, sky_uk, rtol=1e-12)
    labelled = write(tmp_path / "mislabelled.fits", sky_uk, units="K_CMB")
    np.testing.assert_array_equal(read_map(labelled, units="µK_CMB").values, sky_uk)


def test_k_map_declared_uk_is_refused(tmp_path, sky_uk):
    path = write(tmp_path / "k_as_uk.fits", sky_uk * 1e-6, units="uK_CMB")
    with pytest.raises(ValueError, match="looks like a map in K_CMB; pass units='K_CMB'"):
        read_map(path)


def test_uk_map_declared_k_is_refused(tmp_path, sky_uk):
    path = write(tmp_path / "uk_as_k.fits", sky_uk, units="K_CMB")
    with pytest.raises(ValueError, match="looks like a map in µK_CMB; pass units='uK_CMB'"):
        read_map(path)


@pytest.mark.parametrize(("name", "factor"), [("KCMB", 1e6), ("k", 1e6), ("uK", 1.0), ("muK", 1.0),
                                              ("microK_CMB", 1.0), ("μK_CMB", 1.0)])
def test_unit_names(name, factor):
    assert uk_per_unit(name) == factor


@pytest.mark.parametrize("name", ["K_RJ", "MJy/sr", ""])
def test_unknown_units_refused(name):
    with pytest.raises(ValueError, match="unknown map units"):
        uk_per_unit(name)


def test_missing_ordering_needs_the_argument(tmp_path, sky_uk):
    path = write(tmp_path / "noorder.fits", hp.reorder(sky_uk, r2n=True), nest=True, units="uK_CMB")
    with fits.open(path, mode="update") as hdus:
        del hdus[1].header["ORDERING"]
    with pytest.raises(ValueError, match="no ORDERING keyword; pass ordering="):
        read_map(path)
    m = read_map(path, ordering="NESTED")
    np.testing.assert_array_equal(m.values, sky_uk)
    assert m.ordering_in == "NESTED"


def test_conflicting_ordering_refused(tmp_path, sky_uk):
    path = write(tmp_path / "ring.fits", sky_uk, units="uK_CMB")
    assert read_map(path, ordering="ring").ordering_in == "RING"
    with pytest.raises(ValueError, match="header says ORDERING=RING"):
        read_map(path, ordering="NESTED")


def test_missing_file_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.fits"):
        read_map(tmp_path / "nowhere.fits")


def test_unseen_pixels_are_kept_and_counted(tmp_path, sky_uk):
    holed = sky_uk * 1e-6
    holed[: hp.nside2npix(NSIDE) // 8] = hp.UNSEEN
    holed[-3] = np.nan
    m = read_map(write(tmp_path / "holed.fits", hp.reorder(holed, r2n=True), nest=True, units="K_CMB"))
    unseen = m.values == hp.UNSEEN
    np.testing.assert_array_equal(np.flatnonzero(unseen)[-1], hp.nside2npix(NSIDE) - 3)
    assert unseen.sum() == hp.nside2npix(NSIDE) // 8 + 1
    assert m.unseen_fraction == pytest.approx(unseen.mean())
    np.testing.assert_allclose(m.values[~unseen], sky_uk[~unseen], rtol=1e-12)


def test_bands_must_share_nside_and_ordering(tmp_path, sky_uk, cmb_like_map):
    a = read_map(write(tmp_path / "a.fits", sky_uk, units="uK_CMB"))
    b = read_map(write(tmp_path / "b.fits", cmb_like_map(2 * NSIDE), units="uK_CMB"))
    with pytest.raises(ValueError, match=r"a\.fits: Nside 16, b\.fits: Nside 32.*healpy\.ud_grade"):
        check_bands([a, b])
    c = read_map(write(tmp_path / "c.fits", hp.reorder(sky_uk, r2n=True), nest=True, units="uK_CMB"))
    with pytest.raises(ValueError, match=r"different orderings.*a\.fits: RING, c\.fits: NESTED"):
        check_bands([a, c])
    with pytest.raises(ValueError, match="no maps"):
        check_bands([])


def test_bands_with_unseen_pixels_are_reported(tmp_path, sky_uk, recwarn):
    holed = sky_uk.copy()
    holed[:96] = hp.UNSEEN
    a = read_map(write(tmp_path / "a.fits", sky_uk, units="uK_CMB"))
    b = read_map(write(tmp_path / "b.fits", holed, units="uK_CMB"))
    check_bands([a, a])
    assert not recwarn
    with pytest.warns(UserWarning, match=r"b.fits: 3.12%"):
        check_bands([a, b])
