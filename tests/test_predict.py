"""Predicting the CMB with trained weights: the Predictor, its refusals, map files, ``cenn predict``."""

import argparse

import numpy as np
import pytest
import torch

from cenn.data.normalization import build_normalization
from cenn.model.apply import apply_network
from cenn.predict import Predictor, add_predict_parser, read_input, run_predict, write_output

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
        expected = apply_network(predictor.model, norm, torch.from_numpy(maps)).numpy()
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
    ({"units": "K_CMB"}, r"look like µK_CMB labelled K_CMB.*--units uK_CMB"),
])
def test_metadata_mismatches_are_refused(predictor, maps, change, words):
    with pytest.raises(ValueError, match=words):
        predictor.predict(maps, **{**META, **change})


def test_maps_labelled_kelvin_are_converted(predictor, maps):
    np.testing.assert_array_equal(predictor.predict(maps * np.float32(1e-6), **{**META, "units": "K_CMB"}),
                                  predictor.predict(maps * np.float32(1e-6) * np.float32(1e6), **META))


def test_maps_in_kelvin_labelled_microkelvin_are_refused(predictor, maps):
    with pytest.raises(ValueError, match=r"look like K_CMB.*217 GHz.*multiply the maps by 1e6"):
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
    write_output(tmp_path / "cmb.fits", cmb, predictor.card, source="maps.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmb.fits", "cmb.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "cmb.npy"), cmb)
    with fits.open(tmp_path / "cmb.fits") as hdus:
        np.testing.assert_array_equal(hdus[0].data, cmb)
        header = hdus[0].header
        assert (header["BUNIT"], header["FREQ"], header["PIXSIZE"]) == ("uK_CMB", 217.0, 90.0)
        assert "cenn-small" in str(header["HISTORY"])
    with pytest.raises(ValueError, match=r"supported: \.npy, \.fits, \.fits\.gz"):
        write_output(tmp_path / "cmb.h5", cmb, predictor.card, source="maps.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmb.fits", "cmb.npy"]


# --- cenn predict -----------------------------------------------------------------------------------

def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cenn")
    add_predict_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


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
