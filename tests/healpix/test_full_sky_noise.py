"""`cenn predict --maps` with a network that takes the noise σ: σ from each Planck-layout file's
II_COV column without being asked (per patch pixel), the nominal level where a file has none,
bad II_COV refused before any work, and σ cut like the maps and handed to the separator."""

import argparse

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits

from cenn.healpix import command
from cenn.healpix.reproject import predict_full_sky
from cenn.io.healpix_maps import read_map
from cenn.separators import InputInfo, NetworkSeparator, Separator
from cenn.sky.flat.geometry import PatchGeometry

pytestmark = pytest.mark.usefixtures("one_thread")

NSIDE = 32
NOMINAL = [22.0, 31.2, 102.4]


def _planck_file(path, sky_uk, sigma_uk=None):
    """Temperature map in K_CMB (I_STOKES) with II_COV in K_CMB² when ``sigma_uk`` is given."""
    cols = [fits.Column(name="I_STOKES", format="E", unit="Kcmb", array=(sky_uk * 1e-6).astype(np.float32))]
    if sigma_uk is not None:
        cols.append(fits.Column(name="II_COV", format="E", unit="Kcmb^2",
                                array=((sigma_uk * 1e-6) ** 2).astype(np.float32)))
    table = fits.BinTableHDU.from_columns(cols)
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": NSIDE, "INDXSCHM": "IMPLICIT"})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return str(path)


@pytest.fixture(scope="module")
def noise_weights(tiny_sigma_weights, tmp_path_factory):
    """Weights that take the noise σ and state none, for 32² patches of 90″."""
    return tiny_sigma_weights(tmp_path_factory.mktemp("w") / "noise.safetensors", npix=32, sigma_output=False)


def _sky(seed):
    return 100.0 * np.random.default_rng(seed).standard_normal(hp.nside2npix(NSIDE))


def test_sigma_comes_from_ii_cov_per_patch_pixel_and_nominal_elsewhere(tmp_path, noise_weights):
    sigma_hp = 30.0 + 20.0 * np.random.default_rng(1).random(hp.nside2npix(NSIDE))
    paths = [_planck_file(tmp_path / "143.fits", _sky(2), sigma_hp),
             _planck_file(tmp_path / "217.fits", _sky(3), 2.0 * sigma_hp),
             _planck_file(tmp_path / "353.fits", _sky(4))]
    maps = [read_map(p) for p in paths]
    separator = NetworkSeparator(noise_weights)
    geometry = PatchGeometry(32, 90.0)
    with pytest.warns(UserWarning, match="353.fits has no II_COV"):
        sigma = command.read_noise(argparse.Namespace(maps=paths), separator, maps, geometry)
    area = np.sqrt(hp.nside2pixarea(NSIDE) / geometry.pixel_area_sr)  # white noise: σ² Ω is kept
    stored = np.sqrt(((sigma_hp * 1e-6) ** 2).astype(np.float32).astype(np.float64)) * 1e6
    np.testing.assert_allclose(sigma[0], stored * area, rtol=1e-6)
    np.testing.assert_allclose(sigma[1], 2.0 * stored * area, rtol=1e-6)
    assert np.all(sigma[2] == NOMINAL[2])


def test_bad_ii_cov_is_refused_naming_file_and_column(tmp_path, noise_weights):
    sigma_hp = np.full(hp.nside2npix(NSIDE), 30.0)
    sigma_hp[:5] = 0.0
    paths = [_planck_file(tmp_path / f"{b}.fits", _sky(b), sigma_hp) for b in (143, 217, 353)]
    maps = [read_map(p) for p in paths]
    with pytest.raises(ValueError, match=r"143.fits.*II_COV"):
        command.read_noise(argparse.Namespace(maps=paths), NetworkSeparator(noise_weights), maps,
                           PatchGeometry(32, 90.0))


class _Recorder(Separator):
    name = "recorder"

    def __init__(self):
        self.seen = []

    def separate(self, inputs, info, noise_sigma=None):
        self.seen.append(noise_sigma)
        return inputs[:, 1:2].float()


def test_sigma_is_cut_like_the_maps_and_given_to_the_separator():
    npix = hp.nside2npix(NSIDE)
    maps = np.stack([_sky(5), _sky(6), _sky(7)])
    sigma = np.stack([np.full(npix, 10.0), np.full(npix, 20.0), np.full(npix, 40.0)])
    info = InputInfo(frequencies_ghz=(143.0, 217.0, 353.0), band_names=("143", "217", "353"),
                     beam_fwhm_arcmin=(7.22, 4.9, 4.92), target_band="217", target_beam_fwhm_arcmin=4.9,
                     pixel_arcsec=300.0, noise_uk_per_pixel=(1.0, 1.0, 1.0))
    recorder = _Recorder()
    predict_full_sky(maps, NSIDE, recorder, info, PatchGeometry(16, 300.0), NSIDE, batch_size=64,
                     progress=False, noise_sigma=sigma)
    assert recorder.seen and all(s is not None for s in recorder.seen)
    cut = torch.cat(recorder.seen)
    assert cut.shape[1:] == (3, 16, 16)
    torch.testing.assert_close(cut.mean(dim=(0, 2, 3)), torch.tensor([10.0, 20.0, 40.0]))


@pytest.fixture(scope="module")
def sigma_weights(tiny_sigma_weights, tmp_path_factory):
    """Noise-aware weights with a σ output, for 32² patches of pixels 0.8 × the Nside-32 pixel."""
    return tiny_sigma_weights(tmp_path_factory.mktemp("w") / "sigma.safetensors", npix=32,
                              pixel_arcsec=hp.nside2resol(NSIDE, arcmin=True) * 48)


def test_full_sky_writes_sigma_beside_the_cmb_and_the_confidence_mask(tmp_path, sigma_weights, capsys):
    from cenn.cli import main

    sigma_hp = np.full(hp.nside2npix(NSIDE), 30.0)
    paths = [_planck_file(tmp_path / f"{b}.fits", _sky(b), sigma_hp) for b in (143, 217, 353)]
    out, mask = tmp_path / "cmb.fits", tmp_path / "mask.fits"
    base = ["predict", "--maps", *paths, "--out", str(out), "--weights", str(sigma_weights), "--no-progress"]
    assert main([*base, "--mask-above", "100"]) == 2
    assert "--mask-above UK and --mask FILE.fits go together" in capsys.readouterr().err
    assert main([*base, "--mask-above", "100", "--mask", str(mask)]) == 0
    _cmb, weight, sigma = hp.read_map(out, field=(0, 1, 2))
    assert fits.getheader(out, 1)["TTYPE3"] == "SIGMA" and np.all(sigma > 0) and np.all(weight > 0)
    threshold = float(np.median(sigma))
    assert main([*base, "--mask-above", str(threshold), "--mask", str(mask), "--overwrite"]) == 0
    kept = hp.read_map(mask)
    np.testing.assert_array_equal(kept, (hp.read_map(out, field=2) <= threshold).astype(float))
    assert 0.3 < kept.mean() < 0.7
    assert "confidence mask" in capsys.readouterr().out


def test_mask_needs_a_method_that_states_sigma(tmp_path, noise_weights, capsys):
    from cenn.cli import main

    paths = [_planck_file(tmp_path / f"{b}.fits", _sky(b)) for b in (143, 217, 353)]
    args = ["predict", "--maps", *paths, "--out", str(tmp_path / "c.fits"), "--weights", str(noise_weights),
            "--mask-above", "50", "--mask", str(tmp_path / "m.fits"), "--no-progress"]
    assert main(args) == 2
    assert "needs a method that states the σ" in capsys.readouterr().err
    assert not (tmp_path / "c.fits").exists()
