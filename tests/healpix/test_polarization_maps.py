"""Full-sky Q/U: Planck-layout Q_STOKES/U_STOKES read in the COSMO convention (POLCCONV), the CMB's
Q/U through patches and back with the target band and the ILC (`full_sky_maps(stokes="QU")`,
`cenn predict --maps --stokes QU`), written as Q_STOKES/U_STOKES with POLCCONV = 'COSMO'."""

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits

from cenn.cli import main
from cenn.healpix.command import card_info, instrument_info
from cenn.healpix.reproject import full_sky_maps
from cenn.io.healpix_maps import read_polarization
from cenn.model import WeightsCard, build_model, save_weights
from cenn.pretrained import shipped_weights
from cenn.separators import NetworkSeparator, build_separator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument

pytestmark = pytest.mark.usefixtures("one_thread")

NSIDE, NPIX = 64, 32


def _write(path, iqu: np.ndarray, polcconv: str | None) -> str:
    """I, Q, U ``(3, npix)`` µK_CMB as a Planck-layout table, POLCCONV ``polcconv`` (None: no key)."""
    header = [] if polcconv is None else [("POLCCONV", polcconv)]
    hp.write_map(path, iqu, column_names=["I_STOKES", "Q_STOKES", "U_STOKES"], column_units="uK_CMB",
                 dtype=np.float64, extra_header=header)
    return str(path)


@pytest.fixture(scope="module")
def skies(cmb_like_alm):
    """A CMB-like Q/U sky (µK, beam 2 pixels at Nside 64) whose E and B are drawn with the same
    spectrum, as I, Q, U ``(3, npix)`` with I the E part's coefficients as a temperature map; and
    the B part's as a temperature map ``(npix,)``: the scalar skies of the same patches."""
    alm_e, alm_b = cmb_like_alm(NSIDE, seed=5), cmb_like_alm(NSIDE, seed=6)
    lmax = 3 * NSIDE - 1
    return hp.alm2map([alm_e, alm_e, alm_b], NSIDE, lmax=lmax), hp.alm2map(alm_b, NSIDE, lmax=lmax)


@pytest.fixture(scope="module")
def sky(skies):
    """I, Q, U ``(3, npix)`` of :func:`skies`."""
    return skies[0]


def test_polcconv_cosmo_is_read_as_is_and_iau_has_u_negated(sky, tmp_path):
    q_cosmo, u_cosmo = read_polarization(_write(tmp_path / "cosmo.fits", sky, "COSMO"))
    assert np.array_equal(q_cosmo.values, sky[1]) and np.array_equal(u_cosmo.values, sky[2])
    iau = _write(tmp_path / "iau.fits", sky * np.array([1.0, 1.0, -1.0])[:, None], "IAU")
    q, u = read_polarization(iau)
    assert np.array_equal(q.values, sky[1]) and np.array_equal(u.values, sky[2])  # U → −U exactly
    q, u = read_polarization(_write(tmp_path / "none.fits", sky, None), polcconv="iau")
    assert np.array_equal(u.values, -sky[2])  # the argument, for a header without the key
    holed = sky.copy()
    holed[1, :10] = hp.UNSEEN
    q, u = read_polarization(_write(tmp_path / "holed.fits", holed, "COSMO"))
    assert np.all(u.values[:10] == hp.UNSEEN) and u.unseen_fraction == q.unseen_fraction == 10 / sky.shape[1]


def test_a_missing_unknown_or_contradicted_convention_is_refused(sky, tmp_path):
    with pytest.raises(ValueError, match=r"states no polarization convention \(POLCCONV\)") as err:
        read_polarization(_write(tmp_path / "none.fits", sky, None))
    assert "astropy.io.fits.setval('none.fits', 'POLCCONV', value='COSMO', ext=1)" in str(err.value)
    with pytest.raises(ValueError, match=r"POLCCONV = 'COSMO' but polcconv='IAU' was passed; drop the"):
        read_polarization(_write(tmp_path / "cosmo.fits", sky, "COSMO"), polcconv="IAU")
    with pytest.raises(ValueError, match=r"unknown polarization convention 'HEALPIX' \(its POLCCONV\)"):
        read_polarization(_write(tmp_path / "odd.fits", sky, "HEALPIX"))
    temperature = tmp_path / "t.fits"
    hp.write_map(temperature, sky[0], column_units="uK_CMB", dtype=np.float64)
    with pytest.raises(ValueError, match=r"no Q_STOKES and U_STOKES columns \(its columns: T\): write"):
        read_polarization(temperature)


def _patch_setup(method: str = "target-band"):
    """``method`` on patches of 32 pixels of 0.8 HEALPix pixel at Nside 64 with the Planck HFI bands:
    the separator, its InputInfo, the PatchGeometry and the matching `cenn predict` options."""
    pixel_arcsec = f"{hp.nside2resol(NSIDE, arcmin=True) * 48.0:.3f}"
    geometry = PatchGeometry(NPIX, float(pixel_arcsec))
    return (build_separator(method), instrument_info(load_instrument("planck_hfi"), geometry), geometry,
            ["--npix", str(NPIX), "--pixel-arcsec", pixel_arcsec])


def test_target_band_full_sky_qu_recovers_the_input_as_the_temperature_round_trip(skies):
    """The target band's Q/U through the 181 patches of 23° tiling the sphere (the frame angle ψ
    reaches 14° at |b| < 50°, median 7°, and all angles in the pole patches) and back, against the
    scalar round trip on the same patches: the round trip is linear and, in the patch frame,
    rotation-free, so Q and U together lose what temperature maps of their E and B parts lose (not
    zero: both interpolations smooth the map, by T_ℓ). Measured, error RMS over the input's RMS:
    Q and U 0.04238, E and B as temperature maps 0.04241 (Q 0.0445, U 0.0406; E 0.0475, B 0.0387);
    the largest Q/U error 654 µK on a sky of RMS 2508 µK (631 µK in temperature)."""
    (sky, b_sky), (separator, info, geometry, _) = skies, _patch_setup()
    qu = full_sky_maps(np.repeat(sky[1:, None], 3, axis=1), NSIDE, separator, info, geometry, NSIDE,
                       progress=False, stokes="QU")
    e, b = (full_sky_maps(np.repeat(t[None], 3, axis=0), NSIDE, separator, info, geometry, NSIDE,
                          progress=False) for t in (sky[0], b_sky))
    assert qu.cmb.shape == (2, sky.shape[1]) and np.array_equal(qu.weight, e.weight) and qu.weight.min() > 0

    def error(out: np.ndarray, truth: np.ndarray) -> float:
        return float(np.sqrt(np.mean((out - truth) ** 2) / np.mean(truth**2)))

    scalar = error(np.stack([e.cmb, b.cmb]), np.stack([sky[0], b_sky]))
    assert error(qu.cmb, sky[1:]) == pytest.approx(scalar, rel=0.01)
    assert scalar < 0.05


def _argv(paths: list[str], out, method: str, *extra: str) -> list[str]:
    """`cenn predict --maps` of ``paths`` (143, 217, 353 GHz) to ``out`` with ``method`` on the patches
    of :func:`_patch_setup`."""
    return ["predict", "--maps", *paths, "--out", str(out), "--method", method, *_patch_setup()[3],
            "--frequencies", "143,217,353", "--no-progress", *extra]


def test_predict_maps_stokes_qu_writes_cosmo_q_and_u_as_the_method_on_the_patches(sky, tmp_path, capsys,
                                                                                  mollweide_of):
    """`cenn predict --maps --stokes QU --method ilc`: Q_STOKES and U_STOKES (µK_CMB) with WEIGHT and
    POLCCONV = 'COSMO', equal (float32) to full_sky_maps of the ILC on the same Q/U; a band given in
    the IAU convention (U negated) gives the same map; the temperature path reads the same files'
    first column as before."""
    separator, info, geometry, _ = _patch_setup("ilc")
    bands = sky[:, None] * np.array([1.0, 1.05, 1.1])[:, None]  # (3 Stokes, 3 bands, npix)
    paths = [_write(tmp_path / f"{f}.fits", bands[:, k], "COSMO") for k, f in enumerate((143, 217, 353))]
    out = tmp_path / "qu.fits"
    assert main(_argv(paths, out, "ilc", "--stokes", "QU", "--mollweide", str(tmp_path / "p.png"))) == 0
    assert "CMB Q and U (COSMO)" in capsys.readouterr().out
    expected = full_sky_maps(bands[1:], NSIDE, separator, info, geometry, NSIDE, progress=False, stokes="QU")
    q, u, weight = hp.read_map(out, field=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose(np.stack([q, u]), expected.cmb, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(weight, expected.weight, rtol=1e-6)
    header = fits.getheader(out, 1)
    assert header["POLCCONV"] == "COSMO" and header["TTYPE1"] == "Q_STOKES" and header["TTYPE2"] == "U_STOKES"
    assert header["TUNIT1"] == header["TUNIT2"] == "uK_CMB" and header["TTYPE3"] == "WEIGHT"
    mollweide_of(tmp_path / "p.png", np.hypot(q, u))  # the polarized intensity
    paths[1] = _write(tmp_path / "217_iau.fits", bands[:, 1] * np.array([1.0, 1.0, -1.0])[:, None], "IAU")
    assert main(_argv(paths, tmp_path / "iau.fits", "ilc", "--stokes", "QU")) == 0
    iau = hp.read_map(tmp_path / "iau.fits", field=(0, 1))
    assert np.array_equal(iau, np.stack([q, u]).astype(np.float32))
    temperature = tmp_path / "t.fits"
    assert main(_argv(paths, temperature, "ilc")) == 0
    expected_t = full_sky_maps(bands[0], NSIDE, separator, info, geometry, NSIDE, progress=False)
    np.testing.assert_allclose(hp.read_map(temperature), expected_t.cmb, rtol=1e-6, atol=1e-4)
    header = fits.getheader(temperature, 1)
    assert header["TTYPE1"] == "CMB" and "POLCCONV" not in header


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cenn predict: error: ") and err.count("\n") == 1, err
    return err


def test_qu_requests_are_refused_before_any_pixel_is_read(sky, tmp_path, capsys, monkeypatch, tiny_weights):
    paths = [_write(tmp_path / f"{f}.fits", sky, "COSMO") for f in (143, 217)]
    paths.append(_write(tmp_path / "353.fits", sky, None))
    for module in ("cenn.io.healpix_maps", "cenn.healpix.command"):
        monkeypatch.setattr(f"{module}.read_map", lambda *a, **k: pytest.fail("pixels read"))
    out = tmp_path / "o.fits"
    err = _refused(_argv(paths, out, "ilc", "--stokes", "QU"), capsys)
    assert "353.fits states no polarization convention (POLCCONV)" in err and "value='COSMO', ext=1" in err
    assert "the wiener method cannot make Q and U: does not separate Q and U" in _refused(
        _argv(paths, out, "wiener", "--stokes", "QU"), capsys)
    pixel_arcsec = float(_patch_setup()[3][3])
    temperature = str(tiny_weights(tmp_path / "t.safetensors", npix=NPIX, pixel_arcsec=pixel_arcsec))
    err = _refused(_argv(paths, out, "cenn-unbiased", "--stokes", "QU", "--weights", temperature), capsys)
    assert f"the polarization weights {temperature} separate the temperature" in err
    mask = ["--mask", str(tmp_path / "m.fits"), "--mask-above", "3"]
    assert "drop them with --stokes QU" in _refused(_argv(paths, out, "ilc", "--stokes", "QU", *mask), capsys)
    assert not out.exists()


def _qu_weights(path, pixel_arcsec: float):
    """Untrained small Q/U U-Net weights (seed 0) for 143/217/353 GHz, 32-pixel patches."""
    torch.manual_seed(0)
    params = {"widths": [4, 8], "out_channels": 2}
    card = WeightsCard(architecture="unet", architecture_params=params, in_channels=6, stokes="QU",
                       frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.3, 5.0, 4.9],
                       target_frequency_ghz=217.0, npix=NPIX, pixel_arcsec=pixel_arcsec,
                       normalization="asinh", normalization_params={"scale_uk": 10.0},
                       training={"noise_uk_per_pixel": [20.0, 30.0, 100.0]})
    save_weights(path, build_model("unet", 6, **params), card)
    return path


def test_unbiased_qu_weights_at_their_start_give_the_cmb_free_needlet_ilc_s_full_sky_q_u(sky, tmp_path,
                                                                                          tiny_unbiased_weights):
    """`--method cenn-unbiased --stokes QU --weights` untrained sp-nilc-unet Q/U weights (zero head: the
    CMB-free needlet ILC on Q and on U; a card without source SEDs, so without the compact-source
    fit): the file's Q and U are dnilc's full-sky Q and U (source_threshold = 0) for the same
    instrument and nominal noise, through the same patches."""
    _, _, geometry, _ = _patch_setup()
    weights = tiny_unbiased_weights(tmp_path / "uqu.safetensors", npix=NPIX,
                                    pixel_arcsec=geometry.pixel_arcsec, stokes="QU")
    paths = [_write(tmp_path / f"{f}.fits", sky, "COSMO") for f in (143, 217, 353)]
    out = tmp_path / "unbiased.fits"
    assert main(["predict", "--maps", *paths, "--out", str(out), "--method", "cenn-unbiased", "--stokes",
                 "QU", "--weights", str(weights), "--frequencies", "143,217,353", "--no-progress"]) == 0
    assert fits.getheader(out, 1)["WEIGHTS"] == "uqu.safetensors"
    info = card_info(build_separator("cenn-unbiased", polarization_weights=weights).polarization.card)
    classical = build_separator("dnilc", source_threshold=0.0)
    expected = full_sky_maps(np.repeat(sky[1:, None], 3, axis=1), NSIDE, classical, info,
                             geometry, NSIDE, progress=False, stokes="QU")
    found = hp.read_map(out, field=(0, 1), dtype=np.float64)
    np.testing.assert_allclose(found, expected.cmb, rtol=0, atol=1e-3 * np.abs(expected.cmb).max())
    assert np.abs(found - sky[1:]).max() > 1e-3 * np.abs(sky[1:]).max()  # it is not the input


def test_qu_network_weights_run_through_separate_polarization(sky, tmp_path):
    """`--method cenn --stokes QU --weights Q/U weights`: the file equals full_sky_maps of the
    NetworkSeparator holding them as its polarization weights (its separate_polarization, the
    training data's Q/U noise levels from the card), and names them in WEIGHTS; the same separator
    without Q/U weights is refused (Separator.polarization_refusal) before any patch is cut."""
    _, _, geometry, _ = _patch_setup()
    weights = _qu_weights(tmp_path / "qu.safetensors", geometry.pixel_arcsec)
    paths = [_write(tmp_path / f"{f}.fits", sky, "COSMO") for f in (143, 217, 353)]
    out = tmp_path / "net.fits"
    assert main(["predict", "--maps", *paths, "--out", str(out), "--stokes", "QU", "--weights", str(weights),
                 "--frequencies", "143,217,353", "--no-progress"]) == 0
    assert fits.getheader(out, 1)["WEIGHTS"] == "qu.safetensors"
    separator = NetworkSeparator(shipped_weights("reference"), polarization_weights=weights)
    assert separator.polarization is not None
    info = card_info(separator.polarization.card)
    expected = full_sky_maps(np.repeat(sky[1:, None], 3, axis=1), NSIDE, separator, info, geometry, NSIDE,
                             progress=False, stokes="QU")
    found = hp.read_map(out, field=(0, 1), dtype=np.float64)
    np.testing.assert_allclose(found, expected.cmb, rtol=1e-5, atol=1e-3 * np.abs(expected.cmb).max())
    assert np.abs(found).max() > 0
    temperature_only = NetworkSeparator(shipped_weights("reference"))
    with pytest.raises(ValueError, match=r"the cenn method cannot make Q and U: no Q/U weights given"):
        full_sky_maps(np.repeat(sky[1:, None], 3, axis=1), NSIDE, temperature_only, info, geometry, NSIDE,
                      progress=False, stokes="QU")
