"""`cenn predict --maps`: full-sky band maps in, a full-sky CMB FITS (CMB and weight columns, header)
out, with a baseline or trained weights; bad requests refused."""

import os
import re

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits

from cenn.cli import main
from cenn.healpix import command
from cenn.separators import InputInfo, Separator

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


def test_trained_weights_make_a_full_sky_map(band_maps, tmp_path, tiny_weights, mollweide_of):
    paths, _ = band_maps
    weights = tiny_weights(tmp_path / "w.safetensors", pixel_arcsec=2 * _pixel_arcsec())
    out = tmp_path / "cenn.fits"
    assert main(["predict", "--maps", *paths, "--out", str(out), "--weights", str(weights),
                 "--nside", "32", "--mollweide", str(tmp_path / "cenn.png"), "--no-progress"]) == 0
    cmb = hp.read_map(out)
    assert hp.get_nside(cmb) == 32 and np.all(np.isfinite(cmb)) and np.all(cmb != hp.UNSEEN)
    header = fits.getheader(out, 1)
    assert header["WEIGHTS"] == "w.safetensors" and header["PRECISN"] == "32"  # auto, no bf16 (conftest)
    mollweide_of(tmp_path / "cenn.png", cmb)


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


# --- refusals before the work, and no silent wrong answers (issue 17) -------------------------------

def _refused(argv: list[str], capsys) -> str:
    """Run ``cenn`` expecting exit 2 and return its one-line error (no traceback)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cenn predict: error: ") and err.count("\n") == 1, err
    return err


def _ilc(paths: list[str], out, *extra: str) -> list[str]:
    return ["predict", "--maps", *paths, "--out", str(out), "--method", "ilc", "--npix", "32",
            "--pixel-arcsec", f"{_pixel_arcsec():.3f}", "--no-progress", *extra]


def test_outputs_and_options_are_refused_before_any_work(band_maps, tmp_path, capsys, monkeypatch):
    """A missing map would be read before the work: each refusal below comes before it."""
    paths = [*band_maps[0][:2], str(tmp_path / "absent.fits")]
    out = tmp_path / "cmb.fits"
    view = tmp_path / "cmb.png"
    view.write_bytes(b"an earlier view")
    err = _refused(_ilc(paths, out, "--mollweide", str(view)), capsys)
    assert f"{view} exists: choose another output or pass --overwrite" in err
    assert view.read_bytes() == b"an earlier view" and not out.exists()
    err = _refused(_ilc(paths, tmp_path / "nodir" / "x.fits"), capsys)
    assert f"the folder {tmp_path / 'nodir'} of the output x.fits does not exist: create it" in err
    err = _refused(_ilc(paths, out, "--mollweide", str(tmp_path / "nodir" / "x.png")), capsys)
    assert "the folder" in err and "of the output x.png does not exist" in err
    assert "name the image with one of the extensions" in _refused(
        _ilc(paths, out, "--mollweide", str(tmp_path / "view.fits")), capsys)
    assert "name it .fits or .fits.gz" in _refused(_ilc(paths, tmp_path / "cmb.npy"), capsys)
    for nside in ("0", "-4", "48"):
        assert f"--nside must be a power of two >= 1 (e.g. 512, 1024, 2048), got {nside}" in _refused(
            _ilc(paths, out, "--nside", nside), capsys)
    assert "overlap must lie in [0, 1)" in _refused(_ilc(paths, out, "--overlap", "1"), capsys)
    assert "apodisation width must lie in [0, 0.5]" in _refused(_ilc(paths, out, "--apodisation", "0.7"),
                                                                capsys)
    assert "--batch-size must be at least 1, got 0" in _refused(_ilc(paths, out, "--batch-size", "0"), capsys)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes anywhere: make os.access see the folder as read-only
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and not (
            mode & os.W_OK and os.path.samefile(p, locked)))
    err = _refused(_ilc(paths, locked / "x.fits"), capsys)
    assert f"{locked} is not writable (no permission to create files there)" in err
    assert "absent.fits" in _refused(_ilc(paths, out), capsys)  # all the above passed: the map is read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmb.png", "locked"]


def _with_freq(folder, name: str, sky: np.ndarray, freq, units: str = "uK_CMB") -> str:
    path = folder / f"{name}.fits"
    hp.write_map(path, sky, column_units=units, dtype=np.float64, extra_header=[("FREQ", freq)])
    return str(path)


def test_bands_in_the_wrong_order_are_refused_by_their_headers(band_maps, tmp_path, capsys):
    sky = band_maps[1]
    paths = [_with_freq(tmp_path, name, sky, freq) for name, freq in
             (("a", "353GHz"), ("b", 2.17e11), ("c", "143 GHz"))]
    err = _refused(_ilc(paths, tmp_path / "x.fits"), capsys)
    assert (f"the maps are in the wrong order (a.fits: 353 GHz, b.fits: 217 GHz, c.fits: 143 GHz, from its "
            f"header) but the ilc method takes [143, 217, 353] GHz, in that order: pass --maps {paths[2]} "
            f"{paths[1]} {paths[0]}") in err
    err = _refused(_ilc(paths, tmp_path / "x.fits", "--frequencies", "353,217,545"), capsys)
    assert "c.fits is a 545 GHz map (from --frequencies) but the ilc method takes" in err
    bad = _with_freq(tmp_path, "bad", sky, "HFI")
    err = _refused(_ilc([paths[2], paths[1], bad], tmp_path / "x.fits"), capsys)
    assert "bad.fits: cannot read a frequency from FREQ = 'HFI' (not a number with an optional unit" in err
    assert not (tmp_path / "x.fits").exists()


def test_files_that_are_not_healpix_maps_are_refused_in_one_line(band_maps, tmp_path, capsys):
    paths = band_maps[0]
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((3, 64, 64))).writeto(image)
    err = _refused(_ilc([*paths[:2], str(image)], tmp_path / "x.fits"), capsys)
    assert f"{image} is not a HEALPix map: it holds PrimaryHDU but no binary table" in err
    short = tmp_path / "short.fits"
    column = fits.Column(name="T", format="E", array=np.ones(1000, np.float32))
    table = fits.BinTableHDU.from_columns([column])
    table.header.update({"ORDERING": "RING", "TUNIT1": "uK_CMB"})
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(short)  # 1000 is no 12·Nside²
    assert f"{short} holds 1000 pixels in column 1, not 12·Nside²" in _refused(
        _ilc([*paths[:2], str(short)], tmp_path / "x.fits"), capsys)


def test_maps_in_mk_read_as_uk_are_refused(band_maps, tmp_path, capsys):
    sky = band_maps[1]
    paths = [_with_freq(tmp_path, name, sky * 1e-3, name) for name in ("143", "217", "353")]
    err = _refused(_ilc(paths, tmp_path / "x.fits"), capsys)
    assert "143.fits looks like mK_CMB but is labelled uK_CMB: it varies by" in err
    assert "label it mK_CMB (TUNIT1, or --units mK_CMB if all maps are), or multiply it by 1e3" in err


def test_channel_spreads_that_contradict_the_order_are_refused_and_doubtful_ones_warned(band_maps, tmp_path,
                                                                                       capsys):
    """Without frequencies in the headers, a '143 GHz' map varying far more than the '353 GHz' one
    (dust rises with frequency) is refused before any work; one varying 1.5 times more is warned
    about, and the run goes on; the order assumed is named in a warning."""
    sky = band_maps[1]
    noise = sky.std() * np.random.default_rng(0).standard_normal(sky.size)
    folder = tmp_path / "maps"
    folder.mkdir()

    def bands(first: np.ndarray) -> list[str]:
        paths = []
        for name, values in (("353", first), ("217", sky), ("143", sky)):
            hp.write_map(folder / f"{name}.fits", values, column_units="uK_CMB", dtype=np.float64,
                         overwrite=True)
            paths.append(str(folder / f"{name}.fits"))
        return paths

    err = _refused(_ilc(bands(sky + 30 * noise), tmp_path / "x.fits"), capsys)
    assert re.search(r"the map given as 143 GHz varies by .* but the one given as 217 GHz by .*robust "
                     r"standard deviation of the seen pixels.*not in the order \[143, 217, 353\] GHz; give "
                     r"--maps in that order", err)
    assert not (tmp_path / "x.fits").exists()
    with pytest.warns(UserWarning) as caught:
        assert main(_ilc(bands(sky + 1.2 * noise), tmp_path / "x.fits")) == 0
    texts = [str(w.message) for w in caught]
    assert any(re.search(r"given as 143 GHz varies by .* probably not in the order", t) for t in texts), texts
    assumed = ("3 of the maps state no frequency (no FREQ key): taken in the order given, 353.fits as "
               "143 GHz, 217.fits as 217 GHz, 143.fits as 353 GHz")
    assert any(assumed in t for t in texts), texts


class _NanSeparator(Separator):
    name = "nan"

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        out = inputs[:, :1].clone()
        out[-1, 0, 3, 3] = float("nan")
        return out


def test_nonfinite_patches_stop_the_run_and_nothing_is_written(band_maps, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(command, "build_separator", lambda name: _NanSeparator())
    out = tmp_path / "x.fits"
    err = _refused(_ilc(band_maps[0], out, "--mollweide", str(tmp_path / "x.png")), capsys)
    assert "the nan method returned NaN or infinite values for 1 patch(es), the first centred on" in err
    assert "run in float32 (--precision 32)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    cmb = np.zeros(hp.nside2npix(4))
    cmb[5] = np.inf
    with pytest.raises(ValueError, match=r"refusing to write .*x\.fits: the CMB would hold 1 NaN or inf"):
        command.write_full_sky(out, cmb, np.ones_like(cmb), [], overwrite=False)
    assert not out.exists()
