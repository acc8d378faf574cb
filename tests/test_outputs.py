"""Folders cenn owns (cenn.outputs): what --overwrite may remove, the refusals before any work,
staging beside the destination, and the temporary files a killed run leaves."""

import json
import subprocess

import pytest

from cenn.io.atomic import staged
from cenn.outputs import (
    MARKER,
    OutputError,
    check_output,
    check_removable,
    clear_stale,
    kind_of,
    mark,
    remove_output,
)
from cenn.runtime import check_device


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _run_folder(path):
    """A run folder as cenn writes it (marked)."""
    (path / "checkpoints").mkdir(parents=True)
    mark(path, "run")
    (path / "config.toml").write_text("[model]\n")
    (path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return path


def test_marked_and_older_folders_are_recognised(tmp_path):
    run = _run_folder(tmp_path / "run")
    assert kind_of(run) == "run"
    assert json.loads((run / MARKER).read_text())["kind"] == "run"
    old = tmp_path / "old"  # written before markers: recognised by its files
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.toml").write_text("")
    assert kind_of(old) == "run"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.toml").write_text("")  # a user's own configuration is no run
    assert kind_of(tmp_path / "mine") is None


def test_only_a_cenn_folder_of_cenn_files_is_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run_folder(tmp_path / "run")
    (run / "logs").mkdir()
    (run / ".last.ckpt.tmp12").write_bytes(b"")  # cenn's temporary files are cenn's
    report = run / "report"  # a report cenn wrote inside the run folder is cenn's too
    report.mkdir()
    mark(report, "report")
    remove_output(run, "run")
    assert not run.exists() and not list(tmp_path.glob(".run.old*"))

    run = _run_folder(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds notes\.txt, which cenn did not write: move it out"):
        remove_output(run, "run")
    assert (run / "notes.txt").exists()

    (tmp_path / "runs" / "old").mkdir(parents=True)
    _run_folder(tmp_path / "runs" / "new")
    with pytest.raises(OutputError, match="runs is not a cenn run folder: cenn only replaces the run"):
        check_removable(tmp_path / "runs", "run")


def test_a_folder_holding_or_inside_an_input_or_the_working_folder_is_never_removed(tmp_path, monkeypatch):
    run = _run_folder(tmp_path / "run")
    (run / "weights.safetensors").write_bytes(b"w")
    with pytest.raises(OutputError, match=r"run holds .*weights\.safetensors \(--init-weights\), an input"):
        check_removable(run, "run", [("--init-weights", run / "weights.safetensors")])
    with pytest.raises(OutputError, match=r"lies inside .*store \(--train\)"):
        check_output(tmp_path / "store" / "run", "run", [("--train", tmp_path / "store")])
    monkeypatch.chdir(run)
    with pytest.raises(OutputError, match="holds the working folder"):
        check_removable(run, "run")
    assert (run / "weights.safetensors").exists()


def test_outputs_are_refused_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"missing does not exist: create it first \(mkdir -p"):
        check_output(tmp_path / "missing" / "run", "run")
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="is a file, not a run folder"):
        check_output(tmp_path / "file", "run")
    (tmp_path / "stores").mkdir()
    (tmp_path / "stores" / "a.zarr").mkdir()
    with pytest.raises(FileExistsError, match="stores exists and is not a cenn run folder: choose a new or"):
        check_output(tmp_path / "stores", "run")
    check_output(tmp_path / "new", "run")  # a new folder in a writable one
    monkeypatch.setattr("cenn.outputs.os.access", lambda path, mode: False)
    with pytest.raises(OutputError, match=r"is not writable \(no permission to create files there\)"):
        check_output(tmp_path / "new", "run")


def test_staged_files_are_written_beside_their_destination(tmp_path):
    target = tmp_path / "last.ckpt"
    with staged(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".last.ckpt.tmp")
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    with pytest.raises(RuntimeError), staged(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"done" and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_temporaries_of_ended_processes_are_cleared(tmp_path):
    dead = _dead_pid()
    left = [tmp_path / f".last.ckpt.tmp{dead}", tmp_path / ".weights.safetensors.0123abcd.tmp"]
    for path in left:
        path.write_bytes(b"")
    (tmp_path / f".report.old{dead}").mkdir()
    left.append(tmp_path / f".report.old{dead}")
    kept = [tmp_path / ".last.ckpt.tmp1", tmp_path / f".other.tmp{dead}", tmp_path / "last.ckpt"]
    for path in kept:  # pid 1 runs; "other" is not an output of this run
        path.write_bytes(b"")
    removed = clear_stale(tmp_path, ["last.ckpt", "weights.safetensors", "report"])
    assert sorted(removed) == sorted(left)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_a_missing_gpu_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match=r"--device cuda: no CUDA GPU is available .*: use --device cpu"):
        check_device("cuda", "--device")
    with pytest.raises(ValueError, match=r"--accelerator gpu: no CUDA GPU .*use --accelerator cpu"):
        check_device("gpu", "--accelerator", accelerator=True)
    with pytest.raises(ValueError, match="--device gpu: unknown; use one of cpu, cuda, mps"):
        check_device("gpu", "--device")
    check_device("cpu", "--device")
    check_device("auto", "--accelerator", accelerator=True)
