"""No silent wrong stores: refusals before the work (non-finite scales, another compression), no
non-finite chunk ever marked written, the same bytes for any number of workers or threads, no
worker left writing once `cenn simulate` is stopped, and a deleted chunk file named on reading.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from cenn import PatchDataset, PatchSimulator, simulate
from cenn.cli import main
from cenn.data.store import ATTRS_SHA256, DatasetStore, StoreError, open_finished
from cenn.sky.components import COMPONENTS

CMB_ONLY = [a for c in COMPONENTS if c != "cmb" for a in ("--disable", c)]
TINY = ["--npix", "16", "--pixel-arcsec", "1440", "--chunk-size", "2", "--batch-size", "2", "--seed", "5",
        "--no-progress", *CMB_ONLY]


def _markers(path: Path) -> dict[str, dict]:
    """Every chunk marker of a store: file name → its JSON (the SHA-256 of each array)."""
    return {p.name: json.loads(p.read_text()) for p in sorted((path / ".cenn/progress").glob("*.done"))}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    store = DatasetStore.open(path)
    return {name: store.read(name) for name in store.array_names}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_a_non_finite_or_negative_scale_is_refused_before_any_work(tmp_path, capsys, value):
    out = tmp_path / "d.zarr"
    assert main(["simulate", str(out), "-n", "2", *TINY, "--scale", f"cmb={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cenn simulate: error: simulation.components.cmb: component 'cmb': scale must be "
                          "a finite number >= 0")
    assert err.rstrip().endswith(f"got {float(value)}")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "message"), [
    (["--noise-scale", "inf"], "noise_scale must be finite, got inf"),
    (["--noise-scale", "nan"], "noise_scale must be >= 0, got nan"),
    (["--pixel-arcsec", "inf"], "pixel_arcsec must be positive and finite, got inf"),
])
def test_non_finite_instrument_or_geometry_is_refused_before_any_work(tmp_path, capsys, option, message):
    out = tmp_path / "d.zarr"
    assert main(["simulate", str(out), "-n", "2", *TINY, *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cenn simulate: error: ") and err.endswith(f"{message}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_with_non_finite_values_is_never_written(tmp_path, small_config, monkeypatch):
    real = PatchSimulator.simulate

    def broken(self, indices, *args, **kwargs):
        batch = real(self, indices, *args, **kwargs)
        if 5 in batch.indices:
            batch.inputs[batch.indices.index(5), 1, 3, 3] = float("nan")
        return batch

    monkeypatch.setattr(PatchSimulator, "simulate", broken)
    path = tmp_path / "d.zarr"
    with pytest.raises(ValueError, match=r"NaN or infinite values in 'inputs' for patches \[5\]; nothing of "
                                         r"that chunk was written.*simulation.toml"):
        simulate(path, 8, small_config, chunk_size=4, progress=False)
    store = DatasetStore.open(path)
    assert not store.complete and store.pending_chunks() == [1]
    assert list(_markers(path)) == ["chunk-000000.done"]


def test_resuming_with_another_compression_is_refused(tmp_path, capsys):
    path = tmp_path / "d.zarr"
    assert main(["simulate", str(path), "-n", "4", *TINY, "--compression", "zstd", "--shard", "0/2"]) == 0
    assert DatasetStore.open(path).compression == "zstd"
    assert main(["simulate", str(path), "-n", "4", *TINY]) == 2
    assert ("already holds a dataset with a different compression (the store's 'zstd', asked 'none'); "
            "pass overwrite=True (--overwrite)") in capsys.readouterr().err
    assert DatasetStore.open(path).pending_chunks() == [1]
    assert main(["simulate", str(path), "-n", "4", *TINY, "--compression", "zstd"]) == 0
    store = DatasetStore.open(path)
    assert store.complete and store.compression == "zstd"


def test_the_store_is_the_same_bytes_for_any_number_of_workers_or_threads(tmp_path, small_config):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = PatchSimulator(small_config).simulate(range(6), with_components=True)
        torch.set_num_threads(1)
        one = PatchSimulator(small_config).simulate(range(6), with_components=True)
        torch.set_num_threads(2)
        here = simulate(tmp_path / "w0.zarr", 8, small_config, chunk_size=2, with_components=True,
                        progress=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert torch.equal(one.inputs, two.inputs)  # differed by up to 1e-4 µK (dust) before
    assert all(torch.equal(one.components[k], two.components[k]) for k in one.components)
    pool = simulate(tmp_path / "w2.zarr", 8, small_config, chunk_size=2, with_components=True, workers=2,
                    progress=False)
    assert here.complete and pool.complete
    assert _markers(here.path) == _markers(pool.path)  # the SHA-256 of every array of every chunk
    arrays = _arrays(pool.path)
    for name, values in _arrays(here.path).items():
        assert np.array_equal(values, arrays[name]), name


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, ended but not yet reaped, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _default_sigint() -> None:
    """In the child before it runs: SIGINT back to its default, which Python turns into
    KeyboardInterrupt. A test run started in the background by a shell without job control
    inherits SIGINT ignored, and so would every command it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_simulate_stops_its_workers(tmp_path, sig):
    path = tmp_path / "d.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "cenn", "simulate", str(path), "-n", "4000", *TINY,
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_default_sigint)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and len(list(
                path.glob(".cenn/progress/*.done"))) < 4:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert proc.poll() is None and len(workers) >= 2, "the signal must land mid-run"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.time() + 10
        while time.time() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
    written = len(list(path.glob(".cenn/progress/*.done")))
    time.sleep(1.0)
    assert len(list(path.glob(".cenn/progress/*.done"))) == written < 2000  # nobody writes any more


def test_a_deleted_chunk_file_is_named_found_and_rewritten(tmp_path):
    path = tmp_path / "d.zarr"
    assert main(["simulate", str(path), "-n", "6", *TINY]) == 0
    reference = _arrays(path)
    (path / "inputs" / "c" / "1" / "0" / "0" / "0").unlink()
    message = (rf"{path}: array 'inputs', chunk 1 \(patches 2-3\) is missing \(no file inputs/c/1/0/0/0, "
               r"though marked written\): the store is damaged there; rerun the same `cenn simulate` "
               r"command to rewrite that chunk")
    store = DatasetStore.open(path)
    with pytest.raises(StoreError, match=message):
        store.read("inputs")
    with pytest.raises(StoreError, match=message):
        PatchDataset(path)[3]
    assert PatchDataset(path)[4]["inputs"].isfinite().all()
    # a marker without checksums (stores written before them) finds it too
    (path / ".cenn/progress" / "chunk-000001.done").write_text("2\n")
    assert store.verify() == [1]
    with pytest.warns(UserWarning, match=r"chunks \[1\] were damaged"):
        assert main(["simulate", str(path), "-n", "6", *TINY]) == 0
    for name, values in _arrays(path).items():
        assert np.array_equal(values, reference[name]), name


def _drop_region_key(path: Path) -> None:
    """Make ``path`` look like a store begun before the region was part of the random key."""
    group = zarr.open_group(path, mode="r+")
    meta = dict(group.attrs["cenn"])
    del meta["random_region_key"], meta[ATTRS_SHA256]  # neither was recorded then
    group.attrs["cenn"] = meta


def test_a_store_begun_without_region_keys_is_resumed_only_on_the_whole_sky(tmp_path, capsys):
    band, sky = tmp_path / "band.zarr", tmp_path / "sky.zarr"
    for path, extra in ((band, ["--band", "30,90"]), (sky, [])):
        assert main(["simulate", str(path), "-n", "4", *TINY, *extra, "--shard", "0/2"]) == 0
        _drop_region_key(path)
    assert main(["simulate", str(band), "-n", "4", *TINY, "--band", "30,90"]) == 2
    assert "was begun by a cenn whose random draws did not depend on the region" in capsys.readouterr().err
    assert main(["simulate", str(sky), "-n", "4", *TINY]) == 0  # the whole sky's draws did not change
    assert DatasetStore.open(sky).complete and not DatasetStore.open(band).complete


def test_changed_bytes_are_refused_by_the_commands_that_read_whole_stores(tmp_path, capsys):
    path = tmp_path / "d.zarr"
    assert main(["simulate", str(path), "-n", "6", *TINY]) == 0
    assert open_finished(path, "data.val", checksums=True).n_patches == 6
    zarr.open_array(path / "inputs", mode="r+")[2:4] = 0.0  # decodes, but not the bytes simulated
    assert open_finished(path).n_patches == 6  # completeness alone does not read the chunks
    with pytest.raises(StoreError, match=r"d\.zarr \(data\.val\): chunks \[1\] are damaged .*rerun the same"):
        open_finished(path, "data.val", checksums=True)
    out = tmp_path / "report"
    assert main(["evaluate", str(path), "--methods", "target-band", "--out", str(out), "--no-progress"]) == 2
    assert "(a store to evaluate): chunks [1] are damaged" in capsys.readouterr().err
    assert not out.exists()
