from pathlib import Path

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from cenn.healpix import check_bands, read_map, uk_per_unit
from cenn.healpix.maps import check_band_order, check_sky_spread
from cenn.io.fits import parse_frequency_ghz
from cenn.io.healpix_maps import header_frequency_ghz

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
    words = (r"k_as_uk\.fits looks like K_CMB but is labelled uK_CMB: it varies by 0\.00\d+ µK "
             r"\(standard deviation .*pass units='K_CMB' or fix its TUNIT1")
    with pytest.raises(ValueError, match=words):
        read_map(path)


def test_uk_map_declared_k_is_refused(tmp_path, sky_uk):
    path = write(tmp_path / "uk_as_k.fits", sky_uk, units="K_CMB")
    with pytest.raises(ValueError, match=r"uk_as_k\.fits looks like uK_CMB but is labelled K_CMB: .*pass "
                                         r"units='uK_CMB'"):
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


# --- files that are not full-sky HEALPix maps, frequencies, band order, units by spread (issue 17) ---

def test_a_fits_image_or_garbage_is_not_a_healpix_map(tmp_path):
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image)
    with pytest.raises(ValueError, match=r"image\.fits is not a HEALPix map: it holds PrimaryHDU but no "
                                         r"binary table .*healpy\.write_map"):
        read_map(image)
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"hello" * 100)
    with pytest.raises(ValueError, match=r"garbage\.fits is not a readable FITS file \(.*\): download"):
        read_map(garbage)


def _table(path, n_pixels, **cards):
    column = fits.Column(name="T", format="E", array=np.ones(n_pixels, np.float32))
    table = fits.BinTableHDU.from_columns([column])
    table.header.update({"ORDERING": "RING", "TUNIT1": "uK_CMB", **cards})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def test_tables_of_the_wrong_length_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"a\.fits holds 1000 pixels in column 1, not 12·Nside²: it is "
                                         r"truncated or not a full-sky HEALPix map"):
        read_map(_table(tmp_path / "a.fits", 1000))
    with pytest.raises(ValueError, match=r"b\.fits holds 768 pixels in column 1, not 12·16² = 3072 for its "
                                         r"NSIDE = 16"):
        read_map(_table(tmp_path / "b.fits", 768, NSIDE=16))
    with pytest.raises(ValueError, match=r"c\.fits is a cut-sky HEALPix map \(INDXSCHM = 'EXPLICIT'\)"):
        read_map(_table(tmp_path / "c.fits", 768, INDXSCHM="EXPLICIT"))


def test_a_truncated_map_is_refused(tmp_path, sky_uk):
    path = write(tmp_path / "cut.fits", sky_uk, units="uK_CMB")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.fits is not a readable FITS file \(File may have been "
                                         r"truncated: .*\): download or write it again"):
        read_map(path)


@pytest.mark.parametrize(("value", "comment", "ghz"), [
    (143, "", 143.0), (143.0, "", 143.0), ("143", "", 143.0), ("143GHz", "", 143.0), ("143 GHz", "", 143.0),
    (" 143.0 ghz ", "", 143.0), (1.43e11, "", 143.0), ("1.43E11 Hz", "", 143.0), ("143000 MHz", "", 143.0),
    (143000, "", 143.0), (143000, "[MHz] centre", 143.0), ("070", "", 70.0), (353.0, "[GHz]", 353.0),
])
def test_frequency_values_are_parsed(value, comment, ghz):
    assert parse_frequency_ghz(value, comment) == pytest.approx(ghz)


@pytest.mark.parametrize(("value", "why"), [
    ("HFI", "not a number with an optional unit"), (True, "a logical"), (5e7, "could be MHz or Hz"),
    ("143 furlongs", "unknown unit 'FURLONGS'"), (0.0, "0 GHz is no frequency"),
])
def test_unreadable_frequency_values_say_why(value, why):
    with pytest.raises(ValueError, match=why):
        parse_frequency_ghz(value)


def test_header_frequency_from_the_table_or_primary_header(tmp_path, sky_uk):
    plain = write(tmp_path / "plain.fits", sky_uk, units="uK_CMB")
    assert header_frequency_ghz(plain) is None
    path = tmp_path / "f.fits"
    hp.write_map(str(path), sky_uk, column_units="uK_CMB", extra_header=[("FREQ", "217 GHz")])
    assert header_frequency_ghz(path) == 217.0
    with fits.open(plain, mode="update") as hdus:
        hdus[0].header["FREQUENC"] = (3.53e11, "[Hz]")
    assert header_frequency_ghz(plain) == pytest.approx(353.0)
    bad = tmp_path / "bad.fits"
    hp.write_map(str(bad), sky_uk, column_units="uK_CMB", extra_header=[("FREQ", "HFI-143")])
    with pytest.raises(ValueError, match=r"bad\.fits: cannot read a frequency from FREQ = 'HFI-143' \(not a "
                                         r"number.*\); fix the header .* or state the frequencies with "
                                         r"--frequencies"):
        header_frequency_ghz(bad)


def test_band_order_is_checked_against_the_stated_frequencies():
    paths = [Path("a/353.fits"), Path("a/217.fits"), Path("a/143.fits")]
    bands = [143.0, 217.0, 353.0]
    check_band_order(paths[::-1], [143.2, 217.0, 353.0], bands, "cenn")
    check_band_order(paths, [None, None, None], bands, "cenn")
    check_band_order(paths, [None, 217.0, None], bands, "cenn")  # what is stated is in place
    words = (r"the maps are in the wrong order \(353\.fits: 353 GHz, 217\.fits: 217 GHz, 143\.fits: 143 GHz, "
             r"from its header\) but the cenn method takes \[143, 217, 353\] GHz, in that order: pass --maps "
             r"a/143\.fits a/217\.fits a/353\.fits$")
    with pytest.raises(ValueError, match=words):
        check_band_order(paths, [353.0, 217.0, 143.0], bands, "cenn")
    with pytest.raises(ValueError, match=r"143\.fits: \? GHz, from --frequencies\) .*: give them in that"):
        check_band_order(paths, [353.0, 217.0, None], bands, "cenn", "--frequencies")
    with pytest.raises(ValueError, match=r"a/143\.fits is a 545 GHz map \(from its header\) but the ilc"):
        check_band_order(paths, [None, None, 545.0], bands, "ilc")
    with pytest.raises(ValueError, match=r"two maps are of one band"):
        check_band_order(paths, [143.0, 143.0, None], bands, "cenn")


def test_sky_maps_in_mk_read_as_uk_are_refused_by_their_spread(tmp_path, sky_uk):
    """A band map of the sky varies by tens of µK or more; the same in mK read as µK by 1e3 less."""
    noise = 31.0 * np.random.default_rng(0).standard_normal(hp.nside2npix(NSIDE))  # 217 GHz noise alone
    assert check_sky_spread(read_map(write(tmp_path / "n.fits", noise, units="uK_CMB"))) == pytest.approx(
        31.0, rel=0.05)
    mk = read_map(write(tmp_path / "mk.fits", noise * 1e-3, units="uK_CMB"))
    words = (r"mk\.fits looks like mK_CMB but is labelled uK_CMB: it varies by 0\.03\d* µK \(robust "
             r"standard deviation of its seen pixels\), where sky maps vary by 10 µK or more; label it "
             r"mK_CMB \(TUNIT1, or --units mK_CMB if all maps are\)")
    with pytest.raises(ValueError, match=words):
        check_sky_spread(mk)
    assert check_sky_spread(read_map(write(tmp_path / "mk.fits", noise * 1e-3, units="mK_CMB"))) > 30
    flat = noise.copy()
    flat[: flat.size * 3 // 4] = 7.0
    with pytest.raises(ValueError, match=r"flat\.fits is constant over most of the sky"):
        check_sky_spread(read_map(write(tmp_path / "flat.fits", flat, units="uK_CMB")))
