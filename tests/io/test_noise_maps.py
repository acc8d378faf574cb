"""The noise σ per pixel read from Planck-layout frequency maps (II_COV or HITS columns)."""

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from cenn.io.healpix_maps import read_map
from cenn.io.noise_maps import check_sigma_matches, has_noise_column, read_noise_sigma
from cenn.io.units import uk_per_root_variance_unit

NSIDE = 16
NPIX = hp.nside2npix(NSIDE)
ROW = 1024
"""Pixels per table row, as in Planck's files (NAXIS2 = Npix / 1024, TFORM = 1024E)."""


@pytest.fixture
def sigma_uk():
    """A RING σ map (µK_CMB), 20–60 µK, every value distinct."""
    return 20.0 + 40.0 * np.random.default_rng(3).random(NPIX)


@pytest.fixture
def sky_uk():
    """A RING map (µK_CMB) with a spread of about 100 µK."""
    return 100.0 * np.random.default_rng(4).standard_normal(NPIX)


def planck_file(path, columns, ordering="RING", units=None, nside=NSIDE):
    """Write a Planck-layout frequency map: ``columns`` {name: RING values}, stored in ``ordering``
    (rows of 1024 pixels), with TUNITn from ``units`` {name: unit}."""
    units = units or {}
    npix = hp.nside2npix(nside)
    row = min(ROW, npix)
    cols = []
    for name, values in columns.items():
        stored = hp.reorder(values, r2n=True) if ordering == "NESTED" else values
        dtype, form = (np.int32, "J") if name == "HITS" else (np.float32, "E")
        cols.append(fits.Column(name=name, format=f"{row}{form}", unit=units.get(name),
                                array=np.asarray(stored).astype(dtype).reshape(-1, row)))
    table = fits.BinTableHDU.from_columns(cols)
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": ordering, "NSIDE": nside, "INDXSCHM": "IMPLICIT"})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def full_file(path, sky_uk, sigma_uk, ordering="RING", cov_unit="Kcmb^2", nside=NSIDE):
    """A temperature-only Planck map (I_STOKES in K_CMB, HITS, II_COV in K_CMB²) with variance
    (σ·1e-6)² per pixel. Stored as float32, so σ is compared with the float32 variance's root."""
    variance = (sigma_uk * 1e-6) ** 2
    return planck_file(path, {"I_STOKES": sky_uk * 1e-6, "HITS": np.full(sky_uk.size, 7),
                              "II_COV": variance}, ordering, {"I_STOKES": "Kcmb", "II_COV": cov_unit}, nside)


def stored_sigma_uk(sigma_uk):
    """σ (µK) as it comes back from a float32 variance in K_CMB²."""
    return np.sqrt(((sigma_uk * 1e-6) ** 2).astype(np.float32).astype(np.float64)) * 1e6


def test_ii_cov_in_kcmb2_gives_sigma_in_uk(tmp_path, sky_uk, sigma_uk):
    path = full_file(tmp_path / "HFI_SkyMap_217.fits", sky_uk, sigma_uk)
    sigma = read_noise_sigma(path)
    assert (sigma.source, sigma.path, sigma.n_masked, sigma.nside, sigma.ordering_in) == (
        "II_COV", path, 0, NSIDE, "RING")
    assert sigma.values.dtype == np.float64
    np.testing.assert_array_equal(sigma.values, stored_sigma_uk(sigma_uk))
    np.testing.assert_allclose(sigma.values, sigma_uk, rtol=1e-7)
    assert has_noise_column(path) == "II_COV"


def test_exact_values_for_each_variance_unit(tmp_path):
    """4e-12 K² is 2 µK; 4e-6 mK² is 2 µK; 4 µK² is 2 µK (values exact in float32 and float64 alike
    up to the conversion)."""
    for unit, variance in (("K_CMB^2", 4e-12), ("mK_CMB^2", 4e-6), ("uK^2", 4.0), ("(K_CMB)**2", 4e-12)):
        path = planck_file(tmp_path / f"{len(unit)}{unit[0]}.fits", {"II_COV": np.full(NPIX, variance)},
                           units={"II_COV": unit})
        sigma = read_noise_sigma(path)
        np.testing.assert_allclose(sigma.values, 2.0, rtol=1e-6)
    assert uk_per_root_variance_unit("K_CMB^2") == 1e6
    assert uk_per_root_variance_unit("mK^2") == 1e3
    assert uk_per_root_variance_unit("µK_CMB^2") == 1.0


def test_column_names_are_found_in_any_case(tmp_path, sigma_uk):
    columns = {"i_stokes": sigma_uk * 1e-6, "ii_cov": (sigma_uk * 1e-6) ** 2}
    path = planck_file(tmp_path / "lower.fits", columns, units={"ii_cov": "K_CMB^2"})
    assert has_noise_column(path) == "II_COV"
    np.testing.assert_array_equal(read_noise_sigma(path).values, stored_sigma_uk(sigma_uk))


def test_nested_input_comes_back_in_ring_exactly(tmp_path, sky_uk, sigma_uk):
    ring = read_noise_sigma(full_file(tmp_path / "ring.fits", sky_uk, sigma_uk))
    nested = read_noise_sigma(full_file(tmp_path / "nest.fits", sky_uk, sigma_uk, ordering="NESTED"))
    assert nested.ordering_in == "NESTED"
    np.testing.assert_array_equal(nested.values, ring.values)
    np.testing.assert_array_equal(nested.values, stored_sigma_uk(sigma_uk))


def test_missing_ordering_needs_the_argument(tmp_path, sky_uk, sigma_uk):
    path = full_file(tmp_path / "noorder.fits", sky_uk, sigma_uk, ordering="NESTED")
    with fits.open(path, mode="update") as hdus:
        del hdus[1].header["ORDERING"]
    with pytest.raises(ValueError, match="no ORDERING keyword; pass ordering="):
        read_noise_sigma(path)
    np.testing.assert_array_equal(read_noise_sigma(path, ordering="NESTED").values, stored_sigma_uk(sigma_uk))


def test_hits_with_a_sigma_per_hit(tmp_path, sky_uk):
    hits = np.random.default_rng(5).integers(1, 50, NPIX)
    path = planck_file(tmp_path / "hits.fits", {"I_STOKES": sky_uk, "HITS": hits}, ordering="NESTED",
                       units={"I_STOKES": "uK_CMB"})
    assert has_noise_column(path) == "HITS"
    sigma = read_noise_sigma(path, sigma_per_hit_uk=300.0)
    assert (sigma.source, sigma.n_masked) == ("HITS", 0)
    np.testing.assert_allclose(sigma.values, 300.0 / np.sqrt(hits), rtol=1e-15)


def test_hits_without_a_sigma_per_hit_is_refused(tmp_path, sky_uk):
    path = planck_file(tmp_path / "hits.fits", {"I_STOKES": sky_uk, "HITS": np.ones(NPIX)})
    with pytest.raises(ValueError, match=r"hits\.fits has no II_COV column, only HITS: pass sigma_per_hit"):
        read_noise_sigma(path)
    with pytest.raises(ValueError, match="sigma_per_hit_uk must be a positive number"):
        read_noise_sigma(path, sigma_per_hit_uk=-1.0)
    with pytest.raises(ValueError, match="units='K_CMB' would apply to nothing"):
        read_noise_sigma(path, sigma_per_hit_uk=1.0, units="K_CMB")


def test_ii_cov_is_preferred_to_hits(tmp_path, sky_uk, sigma_uk):
    path = full_file(tmp_path / "both.fits", sky_uk, sigma_uk)
    with pytest.warns(UserWarning, match=r"has II_COV: σ is read from it and sigma_per_hit_uk=5\.0 is not"):
        sigma = read_noise_sigma(path, sigma_per_hit_uk=5.0)
    assert sigma.source == "II_COV"


def test_a_file_without_noise_columns_is_refused_naming_its_columns(tmp_path, sky_uk):
    path = tmp_path / "plain.fits"
    hp.write_map(str(path), sky_uk, column_units="uK_CMB", dtype=np.float64)
    assert has_noise_column(path) is None
    with pytest.raises(ValueError, match=r"plain\.fits has neither an II_COV nor a HITS column \(its "
                                         r"columns: T\)"):
        read_noise_sigma(path)


@pytest.mark.parametrize(("bad", "kinds"), [
    (0.0, "2 zero"), (-1e-12, "2 negative"), (np.nan, "2 NaN or infinite"), (np.inf, "2 NaN or infinite")])
def test_bad_variances_are_refused_naming_file_and_column(tmp_path, sky_uk, sigma_uk, bad, kinds):
    path = full_file(tmp_path / "bad.fits", sky_uk, sigma_uk)
    with fits.open(path, mode="update") as hdus:
        hdus[1].data["II_COV"][1, 5] = bad
        hdus[1].data["II_COV"][2, 7] = bad
    with pytest.raises(ValueError, match=rf"bad\.fits: column II_COV has 2 observed pixel\(s\) with zero, "
                                         rf"negative or non-finite variance \({kinds}\); pass mask_bad=True"):
        read_noise_sigma(path)


def test_mask_bad_masks_and_counts_them(tmp_path, sky_uk, sigma_uk):
    sky, variance = sky_uk * 1e-6, (sigma_uk * 1e-6) ** 2
    sky[:10] = hp.UNSEEN  # unobserved: stay UNSEEN, whatever their variance
    variance[:10] = 0.0
    variance[[100, 200, 300]] = [0.0, -1.0, np.nan]
    path = planck_file(tmp_path / "holed.fits", {"I_STOKES": sky, "II_COV": variance},
                       units={"I_STOKES": "K_CMB", "II_COV": "K_CMB^2"})
    with pytest.raises(ValueError, match=r"holed\.fits: column II_COV has 3 observed pixel\(s\) .*\(1 zero, "
                                         r"1 negative, 1 NaN or infinite\)"):
        read_noise_sigma(path)
    with pytest.warns(UserWarning, match=r"holed\.fits: 3 observed pixel\(s\) with zero, negative or "
                                         r"non-finite II_COV masked"):
        sigma = read_noise_sigma(path, mask_bad=True)
    assert sigma.n_masked == 3
    unseen = sigma.values == hp.UNSEEN
    np.testing.assert_array_equal(np.flatnonzero(unseen), [*range(10), 100, 200, 300])
    np.testing.assert_array_equal(sigma.values[~unseen], stored_sigma_uk(sigma_uk)[~unseen])


def test_zero_hits_are_bad_only_where_observed(tmp_path, sky_uk):
    sky, hits = sky_uk.copy(), np.full(NPIX, 4)
    sky[-5:] = np.nan  # blank pixels of the map
    hits[-5:] = 0
    hits[7] = 0
    path = planck_file(tmp_path / "hits.fits", {"I_STOKES": sky, "HITS": hits}, units={"I_STOKES": "uK_CMB"})
    with pytest.raises(ValueError, match=r"hits\.fits: column HITS has 1 observed pixel\(s\) with zero, "
                                         r"negative or non-finite hits \(1 zero\); pass mask_bad=True"):
        read_noise_sigma(path, sigma_per_hit_uk=10.0)
    with pytest.warns(UserWarning, match="1 observed pixel"):
        sigma = read_noise_sigma(path, sigma_per_hit_uk=10.0, mask_bad=True)
    assert sigma.n_masked == 1
    np.testing.assert_array_equal(np.flatnonzero(sigma.values == hp.UNSEEN), [7, *range(NPIX - 5, NPIX)])
    assert np.all(sigma.values[8:-5] == 5.0)


def test_without_a_map_column_unseen_noise_pixels_are_unobserved(tmp_path):
    variance = np.full(NPIX, 4.0)
    variance[:3] = hp.UNSEEN
    path = planck_file(tmp_path / "cov.fits", {"II_COV": variance}, units={"II_COV": "uK_CMB^2"})
    sigma = read_noise_sigma(path)
    assert sigma.n_masked == 0
    np.testing.assert_array_equal(sigma.values[:3], hp.UNSEEN)
    np.testing.assert_array_equal(sigma.values[3:], 2.0)


def test_variance_units_missing_or_unknown_are_refused(tmp_path, sky_uk, sigma_uk):
    bare = full_file(tmp_path / "bare.fits", sky_uk, sigma_uk, cov_unit=None)
    with pytest.raises(ValueError, match=r"bare\.fits states no units for II_COV \(TUNIT3\); pass "
                                         r"units='K_CMB\^2'"):
        read_noise_sigma(bare)
    np.testing.assert_array_equal(read_noise_sigma(bare, units="K_CMB^2").values, stored_sigma_uk(sigma_uk))
    for unit in ("K_CMB", "MJy^2/sr^2", "K_RJ^2"):
        path = full_file(tmp_path / f"u{len(unit)}.fits", sky_uk, sigma_uk, cov_unit=unit)
        words = rf"TUNIT3 of II_COV is '{unit.replace('^', '.')}': unknown variance units .*units='K_CMB\^2'"
        with pytest.raises(ValueError, match=words):
            read_noise_sigma(path)
    with pytest.raises(ValueError, match="unknown variance units 'uK'"):
        read_noise_sigma(bare, units="uK")


def test_sigma_must_fit_its_band_map(tmp_path, sky_uk, sigma_uk):
    path = full_file(tmp_path / "HFI_217.fits", sky_uk, sigma_uk)
    band = read_map(path, field="i_stokes")
    sigma = read_noise_sigma(path)
    check_sigma_matches(sigma, band)
    coarse = hp.nside2npix(8)
    other = full_file(tmp_path / "HFI_217_n8.fits", sky_uk[:coarse], sigma_uk[:coarse], nside=8)
    with pytest.raises(ValueError, match=r"the noise σ of .*HFI_217_n8\.fits \(Nside 8\) does not fit the "
                                         r"map .*HFI_217\.fits \(Nside 16\)"):
        check_sigma_matches(read_noise_sigma(other), band)


def test_sigma_of_implausible_size_says_the_units_are_wrong(tmp_path, sky_uk, sigma_uk):
    labelled = full_file(tmp_path / "k_as_uk.fits", sky_uk, sigma_uk, cov_unit="uK_CMB^2")
    band = read_map(labelled, field="I_STOKES")
    words = (r"k_as_uk\.fits: the median noise σ per pixel is \d\.\d+e-05 µK_CMB, outside 0\.1 to 1e5 µK: "
             r"the units of II_COV are probably wrong: if it is in K_CMB\^2, pass units='K_CMB\^2'")
    with pytest.raises(ValueError, match=words):
        check_sigma_matches(read_noise_sigma(labelled), band)
    uk2 = planck_file(tmp_path / "uk_as_k.fits", {"I_STOKES": sky_uk * 1e-6, "II_COV": sigma_uk**2},
                      units={"I_STOKES": "K_CMB", "II_COV": "K_CMB^2"})
    with pytest.raises(ValueError, match=r"uk_as_k\.fits: .* is \d\.\d+e\+07 µK_CMB, .*if it is in "
                                         r"uK_CMB\^2, pass units='uK_CMB\^2'"):
        check_sigma_matches(read_noise_sigma(uk2), band)
    hits = planck_file(tmp_path / "hits.fits", {"I_STOKES": sky_uk, "HITS": np.ones(NPIX)},
                       units={"I_STOKES": "uK_CMB"})
    with pytest.raises(ValueError, match="sigma_per_hit_uk is probably not in µK_CMB"):
        check_sigma_matches(read_noise_sigma(hits, sigma_per_hit_uk=3e-4), read_map(hits))


def test_band_pixels_without_sigma_are_reported(tmp_path, sky_uk, sigma_uk):
    variance = (sigma_uk * 1e-6) ** 2
    variance[:4] = -1.0
    path = planck_file(tmp_path / "p.fits", {"I_STOKES": sky_uk * 1e-6, "II_COV": variance},
                       units={"I_STOKES": "K_CMB", "II_COV": "K_CMB^2"})
    with pytest.warns(UserWarning, match="4 observed pixel"):
        sigma = read_noise_sigma(path, mask_bad=True)
    with pytest.warns(UserWarning, match=r"4 pixel\(s\) observed in .*p\.fits have no noise σ"):
        check_sigma_matches(sigma, read_map(path))


def test_read_map_finds_columns_by_name(tmp_path, sky_uk, sigma_uk):
    path = full_file(tmp_path / "named.fits", sky_uk, sigma_uk)
    np.testing.assert_allclose(read_map(path, field="I_Stokes").values, sky_uk, rtol=1e-6)
    with pytest.raises(ValueError, match=r"named\.fits has no column 'Q_STOKES' \(its columns: I_STOKES, "
                                         r"HITS, II_COV\)"):
        read_map(path, field="Q_STOKES")
