"""`cenn predict --maps`: full-sky band maps in, a full-sky CMB FITS (CMB and weight columns, header)
out, with a baseline or trained weights; bad requests refused."""

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from cenn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

NSIDE = 64


@pytest.fixture(scope="module")
def band_maps(tmp_path_factory, cmb_like_map):
    """Three bands of the same CMB-like sky in µK_CMB (FITS), and that sky."""
    folder = tmp_path_factory.mktemp("maps")
    sky = cmb_like_map(NSIDE, seed=3)
    paths = []
    for name in ("143", "217", "353"):
        path = folder / f"{name}.fits"
        hp.write_map(path, sky, column_units="uK_CMB", dtype=np.float64)
        paths.append(str(path))
    return paths, sky


def _pixel_arcsec() -> float:
    return hp.nside2resol(NSIDE, arcmin=True) * 60.0 * 0.8


def test_a_baseline_returns_the_common_sky(band_maps, tmp_path, capsys):
    paths, sky = band_maps
    out = tmp_path / "ilc.fits"
    args = ["predict", "--maps", *paths, "--out", str(out), "--method", "ilc", "--npix", "32",
            "--pixel-arcsec", f"{_pixel_arcsec():.3f}", "--no-progress"]
    assert main(args) == 0
    assert "100.00 % of the sky covered" in capsys.readouterr().out
    cmb, weight = hp.read_map(out, field=(0, 1))
    assert weight.min() > 0
    # ILC of identical bands is the sky itself, up to the beam matching of 143 GHz and the
    # interpolation to patches and back
    assert np.corrcoef(cmb, sky)[0, 1] > 0.98
    header = fits.getheader(out, 1)
    assert header["METHOD"] == "ilc" and header["TUNIT1"] == "uK_CMB" and header["ORDERING"] == "RING"
    assert header["BEAMFWHM"] == pytest.approx(4.9, abs=0.01)
    assert header["CUTINTP"] == "bilinear" and header["REPROJ"] == "cubic"
    assert main(args) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--interpolation", "nearest", "--reprojection", "bilinear"]) == 0
    header = fits.getheader(out, 1)
    assert header["CUTINTP"] == "nearest" and header["REPROJ"] == "bilinear"
    assert np.corrcoef(hp.read_map(out), sky)[0, 1] > 0.98


def test_trained_weights_make_a_full_sky_map(band_maps, tmp_path, tiny_weights):
    paths, _ = band_maps
    weights = tiny_weights(tmp_path / "w.safetensors", pixel_arcsec=2 * _pixel_arcsec())
    out = tmp_path / "cenn.fits"
    assert main(["predict", "--maps", *paths, "--out", str(out), "--weights", str(weights),
                 "--nside", "32", "--mollweide", str(tmp_path / "cenn.png"), "--no-progress"]) == 0
    cmb = hp.read_map(out)
    assert hp.get_nside(cmb) == 32 and np.all(np.isfinite(cmb)) and np.all(cmb != hp.UNSEEN)
    assert fits.getheader(out, 1)["WEIGHTS"] == "w.safetensors"
    assert (tmp_path / "cenn.png").read_bytes().startswith(b"\x89PNG")


def test_bad_requests_are_refused(band_maps, tmp_path, capsys):
    paths, _ = band_maps
    assert main(["predict", "--maps", *paths[:2], "--out", str(tmp_path / "x.fits"), "--method", "ilc",
                 "--no-progress"]) == 2
    assert "2 maps given" in capsys.readouterr().err
    assert main(["predict", "--maps", *paths, "--method", "ilc"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["predict", "--maps", paths[0], paths[1], str(tmp_path / "none.fits"), "--out",
                 str(tmp_path / "y.fits"), "--method", "ilc", "--no-progress"]) == 2
    assert "none.fits" in capsys.readouterr().err
