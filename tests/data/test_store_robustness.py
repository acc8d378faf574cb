"""The dataset store under damage, interrupted creation, concurrent writers, a full disk and kills.

Tiny CMB-only stores (6 patches of 16×16 pixels of 24′ in 3 chunks) keep this module fast; runs go
through the ``cenn simulate`` command line, in this process or in subprocesses.
"""

import errno
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from cenn import PatchDataset
from cenn.cli import main
from cenn.data.store import DatasetStore, StoreError
from cenn.predict import read_input
from cenn.sky.components import COMPONENTS

TINY = ["-n", "6", "--npix", "16", "--pixel-arcsec", "1440", "--chunk-size", "2", "--batch-size", "2",
        "--seed", "5", "--no-progress", *(a for c in COMPONENTS if c != "cmb" for a in ("--disable", c))]
NAMES = ("inputs", "target", "noise_sigma", "lon", "lat")

#: ``cenn simulate`` whose first chunk write touches the file argv[1], then waits for argv[2] to exist.
PAUSED = """
import sys, time
from pathlib import Path
from cenn.cli import main
from cenn.data.store import DatasetStore
waiting, go = Path(sys.argv[1]), Path(sys.argv[2])
write = DatasetStore.write_chunk
def paused(self, chunk, arrays):
    waiting.touch()
    while not go.exists():
        time.sleep(0.01)
    write(self, chunk, arrays)
DatasetStore.write_chunk = paused
sys.exit(main(sys.argv[3:]))
"""
#: ``cenn simulate`` started once the file argv[1] exists.
AFTER = """
import sys, time
from pathlib import Path
from cenn.cli import main
while not Path(sys.argv[1]).exists():
    time.sleep(0.01)
sys.exit(main(sys.argv[2:]))
"""


def _cli(path, *extra) -> int:
    return main(["simulate", str(path), *TINY, *extra])


def _arrays(path) -> dict[str, np.ndarray]:
    g = zarr.open_group(path, mode="r")
    return {k: g[k][:] for k in NAMES}


def _assert_same(path, reference) -> None:
    for k, v in _arrays(path).items():
        assert np.array_equal(v, reference[k]), k
    assert DatasetStore.open(path).complete


def _chunk_file(path, name, chunk):
    return path / name / "c" / str(chunk) / ("0/0/0" if name in ("inputs", "target") else "")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    assert _cli(path) == 0
    return _arrays(path)


def test_damaged_chunks_are_reported_found_and_rewritten(tmp_path, reference):
    path = tmp_path / "run.zarr"
    assert _cli(path) == 0
    store = DatasetStore.open(path)
    assert store.verify() == []
    marker = json.loads((path / ".cenn/progress" / "chunk-000001.done").read_text())
    assert marker["patches"] == 2 and set(marker["sha256"]) == set(NAMES)
    _chunk_file(path, "lon", 0).unlink()  # a lost file reads as NaN: only its checksum tells
    garbled = _chunk_file(path, "target", 1)
    data = bytearray(garbled.read_bytes())
    data[100] ^= 0xFF
    garbled.write_bytes(bytes(data))  # still decodes
    truncated = _chunk_file(path, "inputs", 2)
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert store.verify() == [0, 1, 2] and store.verify([1]) == [1]
    message = rf"{path}: array 'inputs', chunk 2 \(patches 4-5\) cannot be read .*rerun the same `cenn simu"
    with pytest.raises(StoreError, match=message):
        PatchDataset(path)[5]
    with pytest.raises(StoreError, match=message):
        PatchDataset(path, cache_chunks=1)[4]
    with pytest.raises(StoreError, match=message):
        read_input(path)
    assert PatchDataset(path)[3]["lon"] == pytest.approx(float(reference["lon"][3]))
    with pytest.warns(UserWarning, match=r"chunks \[0, 1, 2\] were damaged"):
        assert _cli(path) == 0
    assert DatasetStore.open(path).verify() == []
    _assert_same(path, reference)


def test_stores_without_checksums_open_verify_and_resume(tmp_path, reference):
    """Markers written before checksums hold the patch count only: unknown, not damaged."""
    path = tmp_path / "old.zarr"
    assert _cli(path, "--shard", "0/3") == 0 and _cli(path, "--shard", "2/3") == 0
    for k in (0, 2):
        (path / ".cenn/progress" / f"chunk-{k:06d}.done").write_text("2\n")
    assert DatasetStore.open(path).verify() == []
    _chunk_file(path, "inputs", 2).write_bytes(b"\0" * 10)
    assert DatasetStore.open(path).verify() == [2]
    with pytest.warns(UserWarning, match=r"chunks \[2\] were damaged"):
        assert _cli(path) == 0
    _assert_same(path, reference)


def test_damaged_metadata_is_reported_on_open(tmp_path, capsys):
    path = tmp_path / "run.zarr"
    assert _cli(path) == 0
    (path / "target" / "zarr.json").unlink()
    lacks = rf"{path} lacks the array 'target' .*damaged; recreate the store with `cenn simulate \.\.\. --ov"
    with pytest.raises(StoreError, match=lacks):
        DatasetStore.open(path)
    with pytest.raises(StoreError, match="is a zarr array, not a dataset store: give the store's folder"):
        DatasetStore.open(path / "inputs")
    assert _cli(path) == 2
    assert "cenn simulate: error: " in capsys.readouterr().err
    assert _cli(path, "--overwrite") == 0
    root = path / "zarr.json"
    meta = json.loads(root.read_text())
    del meta["attributes"]["cenn"]["chunk_size"]
    root.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"'cenn' attrs lack chunk_size: .*damaged; recreate"):
        DatasetStore.open(path)
    root.write_text(root.read_text()[:50])
    with pytest.raises(StoreError, match=rf"its metadata {root} cannot be read .*damaged; recreate"):
        DatasetStore.open(path)


def test_interrupted_creation_leaves_no_store(tmp_path, reference, monkeypatch):
    path = tmp_path / "run.zarr"
    create_array = zarr.Group.create_array
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return create_array(self, *args, **kwargs)

    monkeypatch.setattr(zarr.Group, "create_array", interrupted)
    assert _cli(path) == 130  # Ctrl-C: one line, what was kept and how to resume
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [tmp_path / ".run.zarr.cenn-create.lock"]
    build = tmp_path / ".run.zarr.cenn-creating"  # what a creation killed outright leaves
    build.mkdir()
    (build / "zarr.json").write_text("{")
    assert _cli(path) == 0
    assert list(tmp_path.iterdir()) == [path]
    _assert_same(path, reference)


def test_full_disk_stops_without_marking_and_a_rerun_finishes(tmp_path, reference, monkeypatch, capsys):
    path = tmp_path / "run.zarr"
    store_set = zarr.storage.LocalStore.set

    async def full_at_chunk_1(self, key, value, *args, **kwargs):
        if key.startswith("inputs/c/1/"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return await store_set(self, key, value, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full_at_chunk_1)
    assert _cli(path) == 2
    assert capsys.readouterr().err == (
        f"cenn simulate: error: {path}: the disk is full ([Errno 28] No space left on device) writing "
        "chunk 1 of array 'inputs': free space there or choose another path, then rerun the same "
        "`cenn simulate` command to resume (chunks already written are kept)\n")
    assert sorted(p.name for p in (path / ".cenn/progress").glob("*.done")) == ["chunk-000000.done"]
    monkeypatch.undo()
    assert _cli(path) == 0
    _assert_same(path, reference)


def test_a_second_writer_of_the_same_chunks_is_refused(tmp_path, reference, capsys):
    """A real `cenn simulate` holds shard 0/2 (paused before its first chunk): another process on
    that shard exits at once with code 2, so do --shard 0/1 and --overwrite; shard 1/2 runs beside
    it; the store ends identical to an uninterrupted run."""
    path, waiting, go = tmp_path / "run.zarr", tmp_path / "waiting", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", PAUSED, str(waiting), str(go), "simulate", str(path),
                              *TINY, "--shard", "0/2"], stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-c", AFTER, str(waiting), "simulate", str(path), *TINY,
                               "--shard", "0/2"], stderr=subprocess.PIPE, text=True)
    try:
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert err == (
            f"cenn simulate: error: {path} is being written by another `cenn simulate` (pid {first.pid} "
            f"on {socket.gethostname()}) writing the same shard 0/2; two processes never write one chunk: "
            "wait for it to finish, or write another shard of the store with --shard I/N\n")
        assert _cli(path, "--shard", "0/1") == 2
        assert "writing shard 0/2, which shares chunks with shard 0/1;" in capsys.readouterr().err
        assert _cli(path, "--overwrite") == 2
        assert f"{path} is being written by pid {first.pid} on " in capsys.readouterr().err
        assert _cli(path, "--shard", "1/2") == 0
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        for proc in (first, second):
            proc.kill()
            proc.communicate()
    _assert_same(path, reference)


def test_a_creation_lock_left_by_a_kill_after_the_rename_goes_with_the_next_run(tmp_path, reference):
    """A creation killed between putting its store in place and removing its lock file leaves
    ``.NAME.cenn-create.lock``: the rerun that resumes the store removes it; only reading leaves it."""
    path = tmp_path / "store.zarr"
    assert _cli(path) == 0
    lock = tmp_path / ".store.zarr.cenn-create.lock"
    lock.touch()
    DatasetStore.open(path, mode="r")
    assert lock.exists()
    assert _cli(path) == 0
    assert not lock.exists()
    _assert_same(path, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


def test_kills_around_creation_resume_identically(tmp_path, reference):
    """SIGKILL `cenn simulate` just after it starts, while it builds the store and once the store is in
    place (before its first chunk); a rerun of each matches an uninterrupted run."""
    def exists(*names):
        return lambda: any((tmp_path / n).exists() for n in names)

    start = time.time()
    triggers = {
        "started.zarr": lambda: time.time() > start + 0.3,
        "building.zarr": exists(".building.zarr.cenn-creating", "building.zarr"),
        "created.zarr": exists("created.zarr"),
    }
    # the run killed once its store is in place waits before its first chunk (PAUSED, never released),
    # so the kill cannot race the end of a run this tiny
    waiting, never = tmp_path.parent / f"{tmp_path.name}.waiting", tmp_path.parent / f"{tmp_path.name}.go"
    commands = {name: [sys.executable, "-m", "cenn", "simulate", str(tmp_path / name), *TINY]
                for name in triggers}
    commands["created.zarr"] = [sys.executable, "-c", PAUSED, str(waiting), str(never), "simulate",
                                str(tmp_path / "created.zarr"), *TINY]
    procs = {name: subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, command in commands.items()}
    deadline = time.time() + 120
    try:
        while triggers and time.time() < deadline:
            for name, fired in list(triggers.items()):
                if fired():
                    procs[name].kill()
                    del triggers[name]
            time.sleep(0.002)
        assert not triggers, f"never reached: {list(triggers)}"
        assert all(p.wait() == -9 for p in procs.values()), "each kill must land before the run ends"
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
    for name in procs:
        assert _cli(tmp_path / name) == 0
        _assert_same(tmp_path / name, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(procs)
