"""The dataset store: contents, metadata, resume after interruption, shards and workers."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import zarr

from cenn import PatchDataset, PatchSimulator, simulate
from cenn.data.store import DatasetStore, StoreError

N, CHUNK = 10, 4


def _arrays(path):
    g = zarr.open_group(path, mode="r")
    return {k: g[k][:] for k in ("inputs", "target", "lon", "lat")}


def test_store_holds_the_simulated_patches_and_metadata(tmp_path, small_config):
    store = simulate(tmp_path / "d.zarr", N, small_config, chunk_size=CHUNK, batch_size=3,
                     with_components=True, progress=False)
    assert store.complete and store.n_chunks == 3
    g = zarr.open_group(tmp_path / "d.zarr", mode="r")  # readable without cenn
    assert g["inputs"].shape == (N, 3, 64, 64) and g["inputs"].dtype == np.float32
    assert g["target"].shape == (N, 1, 64, 64)
    meta = g.attrs["cenn"]
    assert meta["units"] == "uK_CMB" and meta["frequencies_ghz"] == [143.0, 217.0, 353.0]
    assert meta["beam_fwhm_arcmin"] == [7.22, 4.90, 4.92] and meta["seed"] == 7
    assert meta["config"]["geometry"]["npix"] == 64 and "cenn_version" in meta
    assert (tmp_path / "d.zarr" / ".cenn" / "simulation.toml").exists()
    expected = PatchSimulator(small_config).simulate(range(N), with_components=True)
    ds = PatchDataset(tmp_path / "d.zarr", components=True)
    item = ds[7]
    torch.testing.assert_close(item["inputs"], expected.inputs[7], rtol=0, atol=1e-3)  # FFT rounding by batch
    torch.testing.assert_close(item["target"], expected.target[7], rtol=0, atol=1e-3)
    assert item["lat"] == pytest.approx(expected.lat[7].item())
    total = sum(item["components"].values())
    assert torch.allclose(total, item["inputs"], atol=0.05)


def test_interrupted_write_resumes_to_the_same_store(tmp_path, small_config, monkeypatch):
    reference = _arrays(simulate(tmp_path / "ref.zarr", N, small_config, chunk_size=CHUNK,
                                 progress=False).path)
    real_write = DatasetStore.write_chunk
    calls = []

    def failing_write(self, chunk, arrays):
        calls.append(chunk)
        if len(calls) == 2:
            self.group["inputs"][self.chunk_range(chunk).start] = 0.0  # half-written chunk
            raise KeyboardInterrupt
        real_write(self, chunk, arrays)

    monkeypatch.setattr(DatasetStore, "write_chunk", failing_write)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "run.zarr", N, small_config, chunk_size=CHUNK, progress=False)
    monkeypatch.setattr(DatasetStore, "write_chunk", real_write)
    partial = DatasetStore.open(tmp_path / "run.zarr")
    assert not partial.complete and partial.pending_chunks() == [1, 2]
    with pytest.raises(StoreError, match="incomplete"):
        PatchDataset(tmp_path / "run.zarr")
    store = simulate(tmp_path / "run.zarr", N, small_config, chunk_size=CHUNK, progress=False)
    assert store.complete
    for k, v in _arrays(store.path).items():
        assert np.array_equal(v, reference[k]), k


def test_plain_zarr_sees_only_arrays(tmp_path, small_config):
    """cenn's own files live in ``.cenn``, a zero-size array zarr does not look into: listing the
    whole store with plain zarr raises no warning (it warns about any other file beside arrays)."""
    simulate(tmp_path / "d.zarr", N, small_config, chunk_size=CHUNK, with_components=True, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = zarr.open_group(tmp_path / "d.zarr", mode="r")
        names = {name for name, _ in g.members(max_depth=None)}
    assert {"inputs", "target", "lon", "lat", "components/cmb", ".cenn"} <= names
    assert g[".cenn"].shape == (0,)
    assert sorted(p.name for p in (tmp_path / "d.zarr" / ".cenn" / "progress").glob("*.done")) == [
        "chunk-000000.done", "chunk-000001.done", "chunk-000002.done"]


def test_a_store_of_the_earlier_layout_is_read_verified_and_resumed(tmp_path, small_config):
    """Stores written before ``.cenn`` kept their markers in ``.cenn-progress`` and the configuration
    beside the arrays: they are read and verified there, and resumed in place."""
    path = tmp_path / "old.zarr"
    simulate(path, N, small_config, chunk_size=CHUNK, progress=False)
    reference = _arrays(path)
    os.rename(path / ".cenn" / "progress", path / ".cenn-progress")
    os.rename(path / ".cenn" / "simulation.toml", path / "simulation.toml")
    shutil.rmtree(path / ".cenn")
    store = DatasetStore.open(path, mode="r+")
    assert store.complete and store.verify() == [] and DatasetStore.written_by_cenn(path)
    store.drop_chunks([1])
    assert store.pending_chunks() == [1]
    simulate(path, N, small_config, chunk_size=CHUNK, progress=False)  # resumes chunk 1
    assert not (path / ".cenn").exists() and (path / ".cenn-progress" / "chunk-000001.done").exists()
    for name, values in _arrays(path).items():
        assert np.array_equal(values, reference[name]), name


def test_killed_cli_run_resumes_identically(tmp_path):
    """SIGKILL a `cenn simulate` process mid-run, rerun it, compare with an uninterrupted run."""
    args = [sys.executable, "-m", "cenn", "simulate", "-n", "120", "--npix", "64",
            "--chunk-size", "2", "--batch-size", "2", "--seed", "11", "--no-progress"]
    subprocess.run([*args, str(tmp_path / "ref.zarr")], check=True, capture_output=True)
    proc = subprocess.Popen([*args, str(tmp_path / "run.zarr")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    progress = tmp_path / "run.zarr" / ".cenn/progress"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(progress.glob("*.done")) if progress.exists() else []) < 5:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(progress.glob("*.done")))
    assert 5 <= done < 60, "the kill must land mid-run"
    subprocess.run([*args, str(tmp_path / "run.zarr")], check=True, capture_output=True)
    ref, run = _arrays(tmp_path / "ref.zarr"), _arrays(tmp_path / "run.zarr")
    for k in ref:
        assert np.array_equal(ref[k], run[k]), k
    assert DatasetStore.open(tmp_path / "run.zarr").complete


def test_existing_store_with_other_configuration_is_refused(tmp_path, small_config):
    simulate(tmp_path / "d.zarr", N, small_config, chunk_size=CHUNK, progress=False)
    small_config.seed = 99
    with pytest.raises(StoreError, match=r"config.*overwrite"):
        simulate(tmp_path / "d.zarr", N, small_config, chunk_size=CHUNK, progress=False)
    store = simulate(tmp_path / "d.zarr", N, small_config, chunk_size=CHUNK, overwrite=True,
                     progress=False)
    assert store.meta["seed"] == 99
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a dataset store"):
        simulate(tmp_path / "notes", N, small_config, overwrite=True, progress=False)
    assert (tmp_path / "notes" / "keep.txt").exists()


def test_shards_and_workers_write_the_same_store(tmp_path, small_config):
    reference = _arrays(simulate(tmp_path / "ref.zarr", N, small_config, chunk_size=CHUNK,
                                 progress=False).path)
    first = simulate(tmp_path / "sh.zarr", N, small_config, chunk_size=CHUNK, shard=(1, 2),
                     progress=False)
    assert not first.complete and first.pending_chunks() == [0, 2]
    last = simulate(tmp_path / "sh.zarr", N, small_config, chunk_size=CHUNK, shard=(0, 2),
                    progress=False)
    assert last.complete
    par = simulate(tmp_path / "par.zarr", N, small_config, chunk_size=CHUNK, workers=2,
                   progress=False)
    for k, v in _arrays(last.path).items():
        assert np.array_equal(v, reference[k]), k
    # the same bytes in fact (test_store_integrity.py checks that); a tolerance suffices here
    for k, v in _arrays(par.path).items():
        np.testing.assert_allclose(v, reference[k], rtol=1e-5, atol=1e-4, err_msg=k)


def test_not_a_store_is_reported(tmp_path):
    with pytest.raises(StoreError, match="not a dataset store"):
        DatasetStore.open(tmp_path)
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(StoreError, match="not a cenn dataset"):
        DatasetStore.open(tmp_path / "plain.zarr")
    assert json.loads((tmp_path / "plain.zarr" / "zarr.json").read_text())["node_type"] == "group"


def test_noise_sigma_is_stored_and_an_older_store_reads_as_its_nominal_level(tmp_path, small_config):
    store = simulate(tmp_path / "s.zarr", 4, small_config, chunk_size=2, progress=False)
    expected = PatchSimulator(small_config).simulate(range(4)).noise_sigma
    assert store.has_noise_sigma
    torch.testing.assert_close(torch.from_numpy(store.noise_sigma(slice(0, 4))), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(PatchDataset(tmp_path / "s.zarr")[3]["noise_sigma"], expected[3], rtol=1e-6,
                               atol=0)
    # a store of an earlier cenn: no noise_sigma array, no flag; each band's nominal white level
    del store.meta["noise_sigma"]
    assert not store.has_noise_sigma and "noise_sigma" not in store.array_names
    levels = store.noise_sigma(slice(1, 3))
    assert levels.shape == (2, 3, 64, 64)
    assert np.allclose(levels[:, :, 5, 7], [[22.0, 31.2, 102.4]] * 2, rtol=2e-3)
    assert store.noise_sigma(0).shape == (3, 64, 64)
