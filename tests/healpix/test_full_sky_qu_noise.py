"""`cenn predict --maps --stokes QU` with Q/U weights that take the noise σ: σ of Q and U from each
Planck-layout file's QQ_COV and UU_COV columns (per patch pixel), √2 × the nominal level where a file
has neither, bad or half-present columns refused naming the file and column, and the σ maps turned
into each patch's frame with the Q/U maps and handed to the separator."""

import argparse

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits

from cenn.cli import main
from cenn.healpix import command
from cenn.healpix.polarization import cut_qu_sigma
from cenn.healpix.reproject import full_sky_maps
from cenn.io.healpix_maps import read_map, read_polarization
from cenn.io.noise_maps import read_noise_sigma
from cenn.model import WeightsCard, build_model, save_weights
from cenn.pretrained import shipped_weights
from cenn.separators import InputInfo, NetworkSeparator, Separator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_directions

pytestmark = pytest.mark.usefixtures("one_thread")

NSIDE, NPIX = 32, 32
NOMINAL = [22.0, 31.2, 102.4]
#: Patch pixels of 0.8 HEALPix pixel at Nside 32, arcsec
PIXEL_ARCSEC = hp.nside2resol(NSIDE, arcmin=True) * 48.0


def _planck_file(path, seed: int, sigma_i_uk: np.ndarray, qq_over_ii: float | None = None,
                 uu_over_ii: float | None = None) -> str:
    """A Planck-layout table (K_CMB): I, Q and U maps (seeded), II_COV of σ ``sigma_i_uk`` and, when
    given, QQ_COV and UU_COV that many times II_COV; POLCCONV = 'COSMO'."""
    rng = np.random.default_rng(seed)
    npix = hp.nside2npix(NSIDE)
    maps = {"I_STOKES": 100.0, "Q_STOKES": 3.0, "U_STOKES": 3.0}
    cols = [fits.Column(name=name, format="E", unit="Kcmb", array=(scale * 1e-6 * rng.standard_normal(npix)))
            for name, scale in maps.items()]
    variance = (sigma_i_uk * 1e-6) ** 2
    for name, factor in (("II_COV", 1.0), ("QQ_COV", qq_over_ii), ("UU_COV", uu_over_ii)):
        if factor is not None:
            cols.append(fits.Column(name=name, format="E", unit="Kcmb^2", array=factor * variance))
    table = fits.BinTableHDU.from_columns(cols)
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": NSIDE, "INDXSCHM": "IMPLICIT",
                         "POLCCONV": "COSMO"})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return str(path)


def _sigma_hp(seed: int = 1) -> np.ndarray:
    """A temperature noise σ per HEALPix pixel, 30-50 µK_CMB."""
    return 30.0 + 20.0 * np.random.default_rng(seed).random(hp.nside2npix(NSIDE))


@pytest.fixture(scope="module")
def qu_noise_weights(tmp_path_factory):
    """Untrained small Q/U U-Net weights (seed 0) that take the noise σ, for 32² patches of 0.8
    HEALPix pixel at Nside 32, with the Planck nominal temperature noise levels on the card."""
    torch.manual_seed(0)
    params = {"widths": [4, 8], "out_channels": 2, "noise_input": True}
    card = WeightsCard(architecture="unet", architecture_params=params, in_channels=6, stokes="QU",
                       frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.3, 5.0, 4.9],
                       target_frequency_ghz=217.0, npix=NPIX, pixel_arcsec=PIXEL_ARCSEC,
                       normalization="asinh", normalization_params={"scale_uk": 10.0},
                       training={"noise_uk_per_pixel": NOMINAL})
    path = tmp_path_factory.mktemp("w") / "qu_noise.safetensors"
    save_weights(path, build_model("unet", 6, **params), card)
    return path


def _separator(weights) -> NetworkSeparator:
    return NetworkSeparator(shipped_weights("reference"), polarization_weights=weights)


def _q_maps(paths):
    return [read_polarization(p)[0] for p in paths]


def test_q_and_u_sigma_come_from_qq_cov_and_uu_cov_not_root_two_times_ii_cov(tmp_path, qu_noise_weights):
    """QQ_COV = 4 × II_COV gives Q a σ of 2 × the temperature's (not √2 ×), UU_COV = 9 × II_COV gives U
    3 ×, both per patch pixel as the temperature's; a file with neither column gets √2 × the nominal
    level, with a warning that says so."""
    sigma_i = _sigma_hp()
    paths = [_planck_file(tmp_path / "143.fits", 2, sigma_i, 4.0, 9.0),
             _planck_file(tmp_path / "217.fits", 3, sigma_i, 2.0, 2.0),
             _planck_file(tmp_path / "353.fits", 4, sigma_i)]
    args, geometry = argparse.Namespace(maps=paths), PatchGeometry(NPIX, PIXEL_ARCSEC)
    with pytest.warns(UserWarning, match=r"353\.fits has no QQ_COV and UU_COV columns: the network gets its "
                                         r"nominal Q/U noise σ, √2 × 102 = 145 µK_CMB"):
        sigma = command.read_polarization_noise(args, _separator(qu_noise_weights), _q_maps(paths), geometry)
    area = np.sqrt(hp.nside2pixarea(NSIDE) / geometry.pixel_area_sr)  # white noise: σ² Ω is kept
    stored = np.sqrt(((sigma_i * 1e-6) ** 2).astype(np.float32).astype(np.float64)) * 1e6
    temperature = command.patch_pixel_sigma(read_noise_sigma(paths[0]), read_map(paths[0]), geometry)
    np.testing.assert_allclose(temperature, stored * area, rtol=1e-6)
    assert sigma.shape == (2, 3, hp.nside2npix(NSIDE))
    np.testing.assert_allclose(sigma[0, 0], 2.0 * temperature, rtol=1e-6)
    np.testing.assert_allclose(sigma[1, 0], 3.0 * temperature, rtol=1e-6)
    np.testing.assert_allclose(sigma[:, 1], np.sqrt(2.0) * temperature * np.ones((2, 1)), rtol=1e-6)
    np.testing.assert_allclose(sigma[:, 2], np.sqrt(2.0) * NOMINAL[2], rtol=1e-12)


@pytest.mark.parametrize(("bad", "kinds"),
                         [(0.0, "1 zero"), (-1.0, "1 negative"), (np.nan, "1 NaN or infinite")])
def test_bad_qq_cov_is_refused_naming_file_and_column(tmp_path, qu_noise_weights, bad, kinds):
    paths = [_planck_file(tmp_path / f"{b}.fits", b, _sigma_hp(), 2.0, 2.0) for b in (143, 217, 353)]
    with fits.open(paths[1], mode="update") as hdus:
        hdus[1].data["QQ_COV"][7] = bad
    with pytest.raises(ValueError, match=rf"217\.fits: column QQ_COV has 1 observed pixel\(s\) with zero, "
                                         rf"negative or non-finite variance \({kinds}\)"):
        command.read_polarization_noise(argparse.Namespace(maps=paths), _separator(qu_noise_weights),
                                        _q_maps(paths), PatchGeometry(NPIX, PIXEL_ARCSEC))


def test_a_file_with_only_one_of_qq_cov_and_uu_cov_is_refused(tmp_path, qu_noise_weights):
    paths = [_planck_file(tmp_path / "143.fits", 1, _sigma_hp(), 2.0, 2.0),
             _planck_file(tmp_path / "217.fits", 2, _sigma_hp(), None, 2.0),
             _planck_file(tmp_path / "353.fits", 3, _sigma_hp(), 2.0, 2.0)]
    with pytest.raises(ValueError, match=r"217\.fits has UU_COV but no QQ_COV column"):
        command.read_polarization_noise(argparse.Namespace(maps=paths), _separator(qu_noise_weights),
                                        _q_maps(paths), PatchGeometry(NPIX, PIXEL_ARCSEC))


def test_predict_maps_stokes_qu_gives_the_network_the_files_q_and_u_sigma(tmp_path, qu_noise_weights,
                                                                         monkeypatch, capsys):
    """`cenn predict --maps --stokes QU`: the Q/U network's σ input is, channel by channel (Q of each band
    then U), the files' QQ_COV and UU_COV σ per patch pixel (uniform σ here, which the frame's turn
    keeps), and a bad QQ_COV stops the command before any output is written."""
    from cenn.predict.api import Predictor

    seen = []
    predict = Predictor.predict

    def recording(self, maps, *args, noise_sigma=None, **kwargs):
        seen.append(noise_sigma)
        return predict(self, maps, *args, noise_sigma=noise_sigma, **kwargs)

    monkeypatch.setattr(Predictor, "predict", recording)
    flat = np.full(hp.nside2npix(NSIDE), 40.0)
    paths = [_planck_file(tmp_path / "143.fits", 1, flat, 4.0, 4.0),
             _planck_file(tmp_path / "217.fits", 2, flat, 2.0, 2.0),
             _planck_file(tmp_path / "353.fits", 3, flat, 9.0, 9.0)]
    out = tmp_path / "cmb.fits"
    argv = ["predict", "--maps", *paths, "--out", str(out), "--stokes", "QU", "--weights",
            str(qu_noise_weights), "--frequencies", "143,217,353", "--no-progress"]
    assert main(argv) == 0
    area = np.sqrt(hp.nside2pixarea(NSIDE) / PatchGeometry(NPIX, PIXEL_ARCSEC).pixel_area_sr)
    per_band = 40.0 * area * np.array([2.0, np.sqrt(2.0), 3.0])
    sigma = torch.cat([torch.as_tensor(s) for s in seen]).double()
    assert sigma.shape[1:] == (6, NPIX, NPIX)
    np.testing.assert_allclose(sigma.mean(dim=(0, 2, 3)).numpy(), np.tile(per_band, 2), rtol=1e-5)
    with fits.open(paths[2], mode="update") as hdus:
        hdus[1].data["UU_COV"][0] = -1.0
    out.unlink()
    assert main(argv) == 2
    assert "353.fits: column UU_COV has 1 observed pixel(s) with zero, negative" in capsys.readouterr().err
    assert not out.exists()


def test_cut_sigma_of_q_and_u_turns_with_the_patch_frame():
    """σ_Q = 1 and σ_U = 2 µK everywhere: in a patch frame turned by ψ from the local meridian, Q' =
    Q cos 2ψ + U sin 2ψ has σ² = cos²2ψ + 4 sin²2ψ (U' the other way round), ψ from healpy's
    Rotator at each patch pixel; σ² of Q' and U' sums to 5, and equal σ of Q and U are kept."""
    npix_map = hp.nside2npix(NSIDE)
    geometry = PatchGeometry(NPIX, PIXEL_ARCSEC)
    lon0, lat0 = np.array([30.0, 200.0]), np.array([75.0, -20.0])
    sigma = np.stack([np.ones((1, npix_map)), np.full((1, npix_map), 2.0)])
    cut = cut_qu_sigma(sigma, NSIDE, lon0, lat0, geometry).astype(np.float64)  # (2, 2, 1, n, n)
    lon, lat = pixel_directions(lon0, lat0, geometry)
    psi = np.stack([hp.Rotator(rot=(l0, b0, 0.0), deg=True).angle_ref(lon[i].ravel(), lat[i].ravel(),
                                                                      lonlat=True).reshape(lon[i].shape)
                    for i, (l0, b0) in enumerate(zip(lon0, lat0, strict=True))])
    turn = np.cos(2.0 * psi) ** 2
    np.testing.assert_allclose(cut[:, 0, 0] ** 2, turn + 4.0 * (1.0 - turn), rtol=1e-5)
    np.testing.assert_allclose(cut[:, 1, 0] ** 2, (1.0 - turn) + 4.0 * turn, rtol=1e-5)
    assert np.ptp(turn[0]) > 0.1  # near the pole the frame turns across the patch
    equal = cut_qu_sigma(np.full((2, 3, npix_map), 7.0), NSIDE, lon0, lat0, geometry)
    np.testing.assert_allclose(equal, 7.0, rtol=1e-6)


class _Recorder(Separator):
    """Records the σ it is given with the Q/U maps, and returns their 217 GHz maps."""

    name = "recorder"

    def __init__(self):
        self.seen = []

    def separate(self, inputs, info, noise_sigma=None):
        return inputs[:, 1:2].float()

    def separate_polarization(self, polarization, info, noise_sigma=None):
        self.seen.append(noise_sigma)
        return polarization[:, :, 1].float()


def test_full_sky_maps_hand_each_patch_its_q_and_u_sigma():
    npix_map = hp.nside2npix(NSIDE)
    maps = np.random.default_rng(5).standard_normal((2, 3, npix_map))
    sigma = np.broadcast_to(np.array([10.0, 20.0, 40.0])[None, :, None], (2, 3, npix_map)).copy()
    info = InputInfo(frequencies_ghz=(143.0, 217.0, 353.0), band_names=("143", "217", "353"),
                     beam_fwhm_arcmin=(7.22, 4.9, 4.92), target_band="217", target_beam_fwhm_arcmin=4.9,
                     pixel_arcsec=PIXEL_ARCSEC, noise_uk_per_pixel=(1.0, 1.0, 1.0))
    recorder, geometry = _Recorder(), PatchGeometry(16, PIXEL_ARCSEC)
    full_sky_maps(maps, NSIDE, recorder, info, geometry, NSIDE, batch_size=64, progress=False,
                  noise_sigma=sigma, stokes="QU")
    cut = torch.cat(recorder.seen)
    assert cut.shape[1:] == (2, 3, 16, 16)
    torch.testing.assert_close(cut.mean(dim=(0, 3, 4)), torch.tensor([[10.0, 20.0, 40.0]] * 2))
    with pytest.raises(ValueError, match=r"noise σ maps of shape \(3, 12288\) do not match the maps' "):
        full_sky_maps(maps, NSIDE, recorder, info, geometry, NSIDE, progress=False, noise_sigma=sigma[0],
                      stokes="QU")
    with pytest.raises(ValueError, match="the σ of the CMB is for temperature maps"):
        full_sky_maps(maps, NSIDE, recorder, info, geometry, NSIDE, progress=False, with_sigma=True,
                      stokes="QU")
