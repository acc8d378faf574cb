"""Predicting the CMB with trained weights: the Predictor, its refusals, map files, ``cenn predict``."""

import argparse
import re

import numpy as np
import pytest
import torch

from cenn.cli import build_parser, main
from cenn.data.normalization import build_normalization
from cenn.model.apply import apply_network
from cenn.predict import (
    Predictor,
    check_channel_order,
    read_input,
    run_predict,
    write_output,
)

FREQS = [143.0, 217.0, 353.0]
META = {"frequencies_ghz": FREQS, "pixel_arcsec": 90.0, "units": "uK_CMB"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tiny_weights, tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def predictor(weights):
    return Predictor(weights)


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    """Five 3-band 64×64 patches of white fields, std ~100 µK_CMB."""
    return (100 * np.random.default_rng(1).standard_normal((5, 3, 64, 64))).astype(np.float32)


# --- the Predictor ----------------------------------------------------------------------------------

def test_output_is_float32_microkelvin_equal_to_apply_network(predictor, maps):
    out = predictor.predict(maps, **META)
    assert out.shape == (5, 1, 64, 64) and out.dtype == np.float32
    norm = build_normalization("minmax", reference_channel=1)
    with torch.no_grad():
        expected = apply_network(predictor.model, norm, torch.from_numpy(maps))[0].numpy()
    np.testing.assert_array_equal(out, expected)


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to float32 rounding: outputs of hundreds of µK differ by ~1e-4 µK between batch sizes."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_batching_float64_torch_and_single_patch_agree(weights, predictor, maps):
    full = predictor.predict(maps, **META)
    _assert_close(Predictor(weights, batch_size=2).predict(maps, **META), full)
    _assert_close(predictor.predict(maps.astype(np.float64), **META), full)
    np.testing.assert_array_equal(predictor.predict(torch.from_numpy(maps), **META), full)
    one = predictor.predict(maps[2], **META)
    assert one.shape == (1, 64, 64)
    _assert_close(one, full[2])


def test_bf16_is_close_to_fp32(weights, predictor, maps):
    full = predictor.predict(maps, **META)
    half = Predictor(weights, precision="bf16").predict(maps, **META)
    assert half.dtype == np.float32
    assert np.abs(half - full).max() < 0.1 * full.std()


@pytest.mark.parametrize("change, words", [
    ({"frequencies_ghz": [100.0, 143.0, 217.0]}, r"\[143, 217, 353\].*\[100, 143, 217\]"),
    ({"pixel_arcsec": 60.0}, r"90 arcsec.*60 arcsec.*reproject"),
    ({"units": "K_CMB"}, r"look like uK_CMB but are labelled K_CMB.*--units uK_CMB"),
])
def test_metadata_mismatches_are_refused(predictor, maps, change, words):
    with pytest.raises(ValueError, match=words):
        predictor.predict(maps, **{**META, **change})


def test_maps_labelled_kelvin_are_converted(predictor, maps):
    np.testing.assert_array_equal(predictor.predict(maps * np.float32(1e-6), **{**META, "units": "K_CMB"}),
                                  predictor.predict(maps * np.float32(1e-6) * np.float32(1e6), **META))


def test_maps_in_kelvin_labelled_microkelvin_are_refused(predictor, maps):
    words = r"look like K_CMB but are labelled uK_CMB.*217 GHz.*label them K_CMB \(--units K_CMB\), or "
    with pytest.raises(ValueError, match=words + "multiply them by 1e6"):
        predictor.predict(maps / 1e6, **META)


def test_bad_values_and_shapes_are_refused(predictor, maps):
    bad = maps.copy()
    bad[3, 0, 5, 5] = np.nan
    bad[3, 2, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite values \(1 NaN\) in 1 patch\(es\): 3;.*inpaint"):
        predictor.predict(bad, **META)
    with pytest.raises(ValueError, match=r"2 channels but these weights take 3.*one map per frequency"):
        predictor.predict(maps[:, :2], **META)
    big = np.zeros((1, 3, 100, 100), np.float32)
    with pytest.raises(ValueError, match=r"multiple of 64.*100: crop or pad"):
        predictor.predict(big, **META)
    with pytest.raises(ValueError, match=r"64×128 pixels.*square.*crop or pad"):
        predictor.predict(np.zeros((1, 3, 64, 128), np.float32), **META)


def test_nonfinite_pixels_are_filled_on_request_with_the_fraction_reported(predictor, maps):
    bad = maps.copy()
    bad[3, 0, 5, 5], bad[3, 2, 1, 1], bad[1, 1, 0, :4] = np.nan, np.inf, -np.inf
    with pytest.warns(UserWarning, match=r"0\.009766 % of the input pixels"):  # 6 of 5·3·64²
        out = predictor.predict(bad, **META, fill_nonfinite=True)
    filled = bad.copy()
    for n, c in ((3, 0), (3, 2), (1, 1)):
        finite = np.isfinite(bad[n, c])
        # torch's median of an even count is the lower of the two middle values
        filled[n, c][~finite] = np.sort(bad[n, c][finite])[(finite.sum() - 1) // 2]
    np.testing.assert_array_equal(out, predictor.predict(filled, **META))
    empty = maps.copy()
    empty[2, 1] = np.nan
    with pytest.raises(ValueError, match="patch 2 has no finite pixel in channel 1"):
        predictor.predict(empty, **META, fill_nonfinite=True)


# --- map files --------------------------------------------------------------------------------------

def test_npy_needs_frequencies_and_pixel_size(tmp_path, maps):
    path = tmp_path / "maps.npy"
    np.save(path, maps)
    with pytest.raises(ValueError, match=r"frequencies: pass it with --frequencies"):
        read_input(path)
    with pytest.raises(ValueError, match=r"pixel size: pass it with --pixel-arcsec"):
        read_input(path, frequencies_ghz=FREQS)
    read, meta = read_input(path, frequencies_ghz=FREQS, pixel_arcsec=90)
    np.testing.assert_array_equal(read, maps)
    assert meta == META


def test_fits_round_trip_and_overrides(tmp_path, maps):
    from astropy.io import fits

    header = fits.Header({"FREQ1": 143.0, "FREQ2": 217.0, "FREQ3": 353.0, "PIXSIZE": 90.0,
                          "BUNIT": "uK_CMB"})
    path = tmp_path / "maps.fits.gz"
    fits.PrimaryHDU(maps, header=header).writeto(path)
    read, meta = read_input(path)
    np.testing.assert_array_equal(read, maps)
    assert meta == META
    assert read_input(path, pixel_arcsec=60, units="K_CMB")[1] == {**META, "pixel_arcsec": 60.0,
                                                                   "units": "K_CMB"}
    del header["FREQ2"], header["BUNIT"]
    fits.PrimaryHDU(maps, header=header).writeto(tmp_path / "partial.fits")
    with pytest.raises(ValueError, match="frequencies: pass it with --frequencies"):
        read_input(tmp_path / "partial.fits")
    with pytest.raises(ValueError, match="units: pass it with --units"):
        read_input(tmp_path / "partial.fits", frequencies_ghz=FREQS)


def test_dataset_store_is_read_with_its_metadata(tmp_path):
    from cenn.data.simulate import simulate
    from cenn.data.store import DatasetStore, StoreError
    from cenn.sky.components import COMPONENTS
    from cenn.sky.simulator import GeometryConfig, SimulationConfig

    config = SimulationConfig(seed=7, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16),
                              components={n: {"enabled": n == "cmb"} for n in COMPONENTS})
    simulate(tmp_path / "s.zarr", 4, config, progress=False)
    read, meta = read_input(tmp_path / "s.zarr")
    assert read.shape == (4, 3, 64, 64) and read.dtype == np.float32
    assert meta == META
    store = DatasetStore.open(tmp_path / "s.zarr", mode="r+")
    store.meta["complete"] = False
    store.group.attrs["cenn"] = store.meta
    with pytest.raises(StoreError, match=r"incomplete.*rerun"):
        read_input(tmp_path / "s.zarr")


def test_write_output_is_atomic_and_labelled(tmp_path, predictor, maps):
    from astropy.io import fits

    cmb = predictor.predict(maps, **META)
    write_output(tmp_path / "cmb.npy", cmb, predictor.card, source="maps.npy")
    write_output(tmp_path / "cmb.fits", cmb, predictor.card, source="maps.npy", precision="bf16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmb.fits", "cmb.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "cmb.npy"), cmb)
    with fits.open(tmp_path / "cmb.fits") as hdus:
        np.testing.assert_array_equal(hdus[0].data, cmb)
        header = hdus[0].header
        assert (header["BUNIT"], header["FREQ"], header["PIXSIZE"]) == ("uK_CMB", 217.0, 90.0)
        assert "cenn-small" in str(header["HISTORY"])
        assert "network precision: bf16 (32: float32; bf16: bfloat16 autocast)" in str(header["HISTORY"])
    with pytest.raises(ValueError, match=r"supported: \.npy, \.fits, \.fits\.gz"):
        write_output(tmp_path / "cmb.h5", cmb, predictor.card, source="maps.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmb.fits", "cmb.npy"]


# --- cenn predict -----------------------------------------------------------------------------------

def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_cli_predicts_npy_to_npy(tmp_path, weights, maps, capsys):
    np.save(tmp_path / "maps.npy", maps)
    out = tmp_path / "cmb.npy"
    args = _parse(["predict", "--weights", str(weights), str(tmp_path / "maps.npy"), str(out),
                   "--frequencies", "143,217,353", "--pixel-arcsec", "90", "--batch-size", "2"])
    assert run_predict(args) == 0
    assert np.load(out).shape == (5, 1, 64, 64)
    assert f"{out}: CMB of 5 patches of 64×64 pixels" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run_predict(args)
    with pytest.raises(ValueError, match=r"\[143, 217, 353\].*\[100, 217, 353\]"):
        run_predict(_parse(["predict", "--weights", str(weights), str(tmp_path / "maps.npy"), str(out),
                            "--frequencies", "100,217,353", "--pixel-arcsec", "90", "--overwrite"]))
    with pytest.raises(SystemExit):
        _parse(["predict", "--weights", str(weights), "in.npy", "out.npy", "--frequencies", "143,x"])


# --- refusals before the work, and no silent wrong answers (issue 17) -------------------------------

def _main_error(argv: list[str], capsys) -> str:
    """Run ``cenn`` expecting exit 2 and return its one-line error (no traceback)."""
    from cenn.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cenn predict: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(("spread_uk", "scale", "words"), [
    (31.0, 1e-3, r"look like mK_CMB but are labelled uK_CMB: the 217 GHz maps vary by 0\.03\d* µK "
                 r"\(median per-patch standard deviation\), where sky maps at 217 GHz vary by 10 µK or more; "
                 r"label them mK_CMB \(--units mK_CMB\), or multiply them by 1e3"),  # noise alone, in mK
    (1500.0, 1e-3, r"look like mK_CMB but are labelled uK_CMB.*by 1\.\d* µK.*multiply them by 1e3"),  # plane
    (1500.0, 1e-6, r"look like K_CMB but are labelled uK_CMB.*0\.001\d* µK.*multiply them by 1e6"),
    (31.0, 1e-6, r"look like K_CMB but are labelled uK_CMB.*3\.\d*e-05 µK.*multiply them by 1e6"),
])
def test_maps_in_mk_or_k_labelled_microkelvin_are_refused(predictor, spread_uk, scale, words):
    """Simulated 217 GHz patches vary by 85-1550 µK (median per-patch standard deviation, high
    latitudes to the Galactic plane) and their noise alone by 31 µK: both pass in µK, and are refused
    in mK or K, with the factor that fixes them."""
    sky = (spread_uk * np.random.default_rng(2).standard_normal((3, 3, 64, 64))).astype(np.float32)
    assert predictor.predict(sky, **META).shape == (3, 1, 64, 64)
    with pytest.raises(ValueError, match=words):
        predictor.predict(sky * np.float32(scale), **META)


def test_maps_labelled_millikelvin_are_converted(predictor, maps):
    in_mk = maps * np.float32(1e-3)
    np.testing.assert_array_equal(predictor.predict(in_mk, **{**META, "units": "mK_CMB"}),
                                  predictor.predict(in_mk * np.float32(1e3), **META))
    with pytest.raises(ValueError, match=r"look 1e6 times too large for mK_CMB.*multiply them by 1e-6"):
        predictor.predict(maps * np.float32(1e5), **{**META, "units": "mK_CMB"})


def test_empty_constant_complex_and_boolean_inputs_are_refused(predictor, maps):
    with pytest.raises(ValueError, match=r"inputs are empty \(shape \(0, 3, 64, 64\)\): give at least one"):
        predictor.predict(maps[:0], **META)
    with pytest.raises(ValueError, match=r"217 GHz maps are constant in most patches.*hold no sky"):
        predictor.predict(np.zeros((2, 3, 64, 64), np.float32), **META)
    with pytest.raises(ValueError, match=r"holds complex64 values, not real numbers.*imaginary part"):
        predictor.predict(maps.astype(np.complex64), **META)
    with pytest.raises(ValueError, match=r"holds complex64 values"):
        predictor.predict(torch.from_numpy(maps.astype(np.complex64)), **META)
    with pytest.raises(ValueError, match=r"holds bool values, not real numbers"):
        predictor.predict(maps > 0, **META)
    one = predictor.predict(maps.astype(np.int32), **META)  # integers are numbers
    np.testing.assert_array_equal(one, predictor.predict(maps.astype(np.int32).astype(np.float32), **META))


@pytest.mark.parametrize(("content", "words"), [
    (b"", r"empty\.npy is not a readable \.npy array \(No data left in file\): it is empty, truncated"),
    (b"hello world" * 10, r"empty\.npy is not a readable \.npy array"),
    ("truncated", r"empty\.npy is not a readable \.npy array \(Failed to read all data.*write it again"),
    ("no patches", r"empty\.npy holds an empty array \(shape \(0, 3, 64, 64\)\): it has no patches"),
    ("complex", r"empty\.npy holds complex128 values, not real numbers.*numpy\.real"),
])
def test_bad_npy_files_are_refused_naming_them(tmp_path, maps, capsys, content, words):
    path = tmp_path / "empty.npy"
    if content == "truncated":
        np.save(path, maps)
        path.write_bytes(path.read_bytes()[:1000])
    elif content == "no patches":
        np.save(path, maps[:0])
    elif content == "complex":
        np.save(path, maps.astype(np.complex128))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        read_input(path, FREQS, 90.0)
    err = _main_error(["predict", str(path), str(tmp_path / "cmb.npy"), "--frequencies", "143,217,353",
                       "--pixel-arcsec", "90"], capsys)
    assert "empty.npy" in err and not (tmp_path / "cmb.npy").exists()


def _fits_patches(path, maps, **cards):
    from astropy.io import fits

    fits.PrimaryHDU(maps, header=fits.Header({"PIXSIZE": 90.0, "BUNIT": "uK_CMB", **cards})).writeto(path)
    return path


def test_fits_frequencies_are_parsed_in_any_spelling(tmp_path, maps):
    path = _fits_patches(tmp_path / "maps.fits", maps, FREQ1="143GHz", FREQ2=" 217 GHz", FREQ3=3.53e11)
    assert read_input(path)[1] == META
    with pytest.raises(ValueError, match=r"bad\.fits: cannot read a frequency from FREQ2 = 'HFI' \(not a "
                                         r"number.*fix the header \(e\.g\. FREQ2 = '143 GHz'\)"):
        read_input(_fits_patches(tmp_path / "bad.fits", maps, FREQ1=143, FREQ2="HFI", FREQ3=353))


def test_bands_in_another_order_are_refused_with_the_order(tmp_path, predictor, maps):
    path = _fits_patches(tmp_path / "maps.fits", maps, FREQ1="353 GHz", FREQ2="217 GHz", FREQ3="143 GHz")
    read, meta = read_input(path)
    with pytest.raises(ValueError, match=r"\[143, 217, 353\] GHz but the inputs have \[353, 217, 143\] GHz, "
                                         r"the same bands in another order: put the channels \(axis 1"):
        predictor.predict(read, **meta)


def test_garbage_or_truncated_fits_is_refused_naming_it(tmp_path, maps):
    path = tmp_path / "maps.fits"
    path.write_bytes(b"not a FITS file" * 100)
    with pytest.raises(ValueError, match=r"maps\.fits is not a readable FITS file \(No SIMPLE card"):
        read_input(path)
    whole = _fits_patches(tmp_path / "whole.fits", maps, FREQ1=143, FREQ2=217, FREQ3=353).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"maps\.fits is not a readable FITS file \(.*\): download or"):
        read_input(path)
    np.savez(tmp_path / "z.npz", maps=maps)
    (tmp_path / "z.npz").rename(tmp_path / "z.npy")
    with pytest.raises(ValueError, match=r"z\.npy is a \.npz archive, not a \.npy array"):
        read_input(tmp_path / "z.npy", FREQS, 90.0)


def test_channel_order_on_realistic_spreads():
    """Median per-patch spreads (µK) of simulated 143/217/353 GHz patches of 256 × 90″: in order they
    pass; reversed, the plane's and intermediate latitudes' are refused, the high latitudes' doubted;
    143 and 217 GHz swapped on a CMB-dominated sky cannot be told."""
    freqs = [143.0, 217.0, 353.0]
    plane, middle, high = [462.8, 1552.6, 11883.4], [99.4, 112.1, 355.2], [101.1, 106.7, 180.5]
    assert all(check_channel_order(s, freqs, "x", "fix") is None for s in (plane, middle, high))
    with pytest.raises(ValueError) as refused:
        check_channel_order(plane[::-1], freqs, "median per-patch standard deviation", "reorder them")
    assert str(refused.value) == (
        "the map given as 143 GHz varies by 1.19e+04 µK but the one given as 353 GHz by 463 µK (median "
        "per-patch standard deviation): above 100 GHz dust and noise make a higher band vary more, so the "
        "maps are not in the order [143, 217, 353] GHz; reorder them")
    with pytest.raises(ValueError, match="not in the order"):
        check_channel_order(middle[::-1], freqs, "x", "fix")
    with pytest.raises(ValueError, match=r"given as 143 GHz varies by 1\.55e\+03 µK but the one given as 2"):
        check_channel_order([plane[1], plane[0], plane[2]], freqs, "x", "fix")  # 143 and 217 swapped
    doubt = check_channel_order(high[::-1], freqs, "x", "fix")
    assert doubt is not None
    assert doubt.endswith("probably not in the order [143, 217, 353] GHz; check their order")
    assert check_channel_order([high[1], high[0], high[2]], freqs, "x", "fix") is None  # CMB-dominated
    assert check_channel_order([3000.0, 100.0, 100.0], [30.0, 44.0, 70.0], "x", "fix") is None  # synchrotron


def test_cli_refuses_npy_channels_that_are_reversed_before_any_work(tmp_path, weights, capsys):
    rng = np.random.default_rng(4)
    spreads = np.array([11883.0, 1552.0, 463.0], np.float32)[None, :, None, None]  # 353, 217, 143 GHz
    np.save(tmp_path / "maps.npy", (spreads * rng.standard_normal((2, 3, 64, 64))).astype(np.float32))
    err = _main_error(["predict", "--weights", str(weights), str(tmp_path / "maps.npy"),
                       str(tmp_path / "cmb.npy"), "--frequencies", "143,217,353", "--pixel-arcsec", "90"],
                      capsys)
    assert re.search(r"given as 143 GHz varies by 1\.\d+e\+04 µK but the one given as 353 GHz by 4\d\d "
                     r"µK.*not in the order \[143, 217, 353\] GHz; give the channels along axis 1", err)
    assert not (tmp_path / "cmb.npy").exists()
    doubtful = np.array([180.0, 107.0, 101.0], np.float32)[None, :, None, None]  # high latitudes, reversed
    np.save(tmp_path / "high.npy", (doubtful * rng.standard_normal((2, 3, 64, 64))).astype(np.float32))
    args = _parse(["predict", "--weights", str(weights), str(tmp_path / "high.npy"),
                   str(tmp_path / "cmb.npy"), "--frequencies", "143,217,353", "--pixel-arcsec", "90"])
    with pytest.warns(UserWarning, match=r"given as 143 GHz varies by 1\d\d µK .*probably not in the order"):
        assert run_predict(args) == 0


def _writable_only_by_root(folder, monkeypatch) -> None:
    """Make ``folder`` read-only, also for root (who ignores permissions), as ``os.access`` sees it."""
    import os

    folder.chmod(0o500)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and not (
            mode & os.W_OK and os.path.samefile(p, folder)))


def test_cli_outputs_are_checked_before_any_work(tmp_path, maps, capsys, monkeypatch):
    """A missing input would be the first thing read: the output is refused before it."""
    absent = str(tmp_path / "absent.npy")
    common = ["--frequencies", "143,217,353", "--pixel-arcsec", "90"]
    err = _main_error(["predict", absent, str(tmp_path / "nodir" / "cmb.npy"), *common], capsys)
    assert f"the folder {tmp_path / 'nodir'} of the output cmb.npy does not exist: create it" in err
    assert not (tmp_path / "nodir").exists()
    (tmp_path / "cmb.npy").mkdir()
    err = _main_error(["predict", absent, str(tmp_path / "cmb.npy"), *common], capsys)
    assert f"{tmp_path / 'cmb.npy'} is a folder: name the output file in it" in err
    locked = tmp_path / "locked"
    locked.mkdir()
    _writable_only_by_root(locked, monkeypatch)
    err = _main_error(["predict", absent, str(locked / "cmb.npy"), *common], capsys)
    assert f"{locked} is not writable (no permission to create files there)" in err


def test_nonfinite_outputs_are_not_written(tmp_path, weights, predictor, maps, monkeypatch):
    cmb = predictor.predict(maps, **META)
    cmb[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"refusing to write .*cmb\.npy: the CMB would hold 1 NaN or inf"):
        write_output(tmp_path / "cmb.npy", cmb, predictor.card, source="maps.npy")
    np.save(tmp_path / "maps.npy", maps)
    monkeypatch.setattr(Predictor, "predict", lambda self, inputs, **kw: np.full((5, 1, 64, 64), np.inf))
    with pytest.raises(ValueError, match=r"20480 NaN or infinite values \(100 % of them\)"):
        run_predict(_parse(["predict", "--weights", str(weights), str(tmp_path / "maps.npy"),
                            str(tmp_path / "cmb.fits"), "--frequencies", "143,217,353",
                            "--pixel-arcsec", "90"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.npy"]


def test_maps_varying_more_than_any_sky_are_refused(predictor, maps):
    with pytest.raises(ValueError, match=r"look 1e6 times too large for uK_CMB: the 217 GHz maps vary by "
                                         r"9\.\d+e\+07 µK .*at most 1e\+07 µK; multiply them by 1e-6"):
        predictor.predict(maps * np.float32(1e6), **META)


@pytest.fixture(scope="module")
def sigma_weights(tiny_sigma_weights, tmp_path_factory):
    """Untrained noise-aware weights with a σ output (unet-small, 64² patches of 90″)."""
    return tiny_sigma_weights(tmp_path_factory.mktemp("sigma") / "sigma.safetensors")


def test_sigma_output_and_noise_input_are_checked(sigma_weights, predictor, maps):
    """Weights without a σ output refuse --uncertainty's request, naming why; noise-aware weights
    without σ given use the card's nominal level (with a warning) and refuse σ of the wrong shape."""
    with pytest.raises(ValueError, match="no σ output"):
        predictor.predict(maps, [143.0, 217.0, 353.0], 90.0, return_sigma=True)
    aware = Predictor(sigma_weights)
    levels = np.array([22.0, 31.2, 102.4], dtype=np.float32)[None, :, None, None]
    nominal = np.broadcast_to(levels, maps.shape)
    with pytest.warns(UserWarning, match="nominal per-pixel levels"):
        cmb, sigma = aware.predict(maps, [143.0, 217.0, 353.0], 90.0, return_sigma=True)
    given, given_sigma = aware.predict(maps, [143.0, 217.0, 353.0], 90.0, noise_sigma=nominal.copy(),
                                       return_sigma=True)
    np.testing.assert_array_equal(cmb, given)
    assert sigma.shape == cmb.shape and np.all(sigma > 0)
    with torch.no_grad():  # σ in µK is 100 µK (the asinh scale) × e^(the network's second channel)
        raw = aware.model(torch.cat([torch.asinh(torch.from_numpy(maps) / 100.0),
                                     torch.asinh(torch.from_numpy(nominal.copy()) / 100.0)], dim=1))
    np.testing.assert_allclose(given_sigma, 100.0 * torch.exp(raw[:, 1:2]).numpy(), rtol=1e-4)
    with pytest.raises(ValueError, match="one σ map per input map"):
        aware.predict(maps, [143.0, 217.0, 353.0], 90.0, noise_sigma=nominal[:, :2].copy())
    with pytest.raises(ValueError, match="positive standard deviation"):
        aware.predict(maps, [143.0, 217.0, 353.0], 90.0, noise_sigma=np.zeros_like(maps))


def test_uncertainty_is_written_beside_the_cmb_and_refused_without_a_sigma_output(
        tmp_path, weights, sigma_weights, maps, capsys):
    inp = tmp_path / "maps.npy"
    np.save(inp, maps)
    base = ["predict", str(inp), str(tmp_path / "cmb.npy"), "--frequencies", "143,217,353",
            "--pixel-arcsec", "90"]
    assert main([*base, "--weights", str(weights), "--uncertainty", str(tmp_path / "s.npy")]) == 2
    assert "--uncertainty needs weights with a σ output" in capsys.readouterr().err
    assert not (tmp_path / "cmb.npy").exists() and not (tmp_path / "s.npy").exists()
    noise = np.full(maps.shape, 30.0, dtype=np.float32)
    np.save(tmp_path / "noise.npy", noise)
    args = [*base, "--weights", str(sigma_weights), "--uncertainty", str(tmp_path / "s.npy"),
            "--noise-sigma", str(tmp_path / "noise.npy")]
    assert main(args) == 0
    cmb, sigma = np.load(tmp_path / "cmb.npy"), np.load(tmp_path / "s.npy")
    expected, expected_sigma = Predictor(sigma_weights).predict(maps, **META, noise_sigma=noise,
                                                                return_sigma=True)
    np.testing.assert_array_equal(cmb, expected)
    np.testing.assert_array_equal(sigma, expected_sigma)
    np.save(tmp_path / "noise.npy", noise[:, :2])
    assert main([*args, "--overwrite"]) == 2
    assert "has shape (5, 2, 64, 64) but the maps (5, 3, 64, 64)" in capsys.readouterr().err
    np.save(tmp_path / "noise.npy", noise * 1e-6)  # σ in K labelled as the maps' µK
    assert main([*args, "--overwrite"]) == 2
    assert "its units are wrong" in capsys.readouterr().err
