"""`cenn train` loses no data and gives no silent wrong answer: --overwrite removes only a cenn run
folder, everything is refused before the run folder is made, a diverged run stops with an error
and exports no weights, stores are verified first, checkpoints are staged beside themselves."""

import errno
import re
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch

from cenn.cli import main
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore, StoreError
from cenn.outputs import MARKER
from cenn.sky.simulator import GeometryConfig, SimulationConfig
from cenn.train import TrainConfig, train
from cenn.train.run import _check_exportable
from cenn.train.task import CENNTask, TrainingDiverged

GEOMETRY = GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16)  # the shared stores' (conftest)

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(stores, optim=None, **trainer) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"name": "cenn-small"},
        "data": {"train": str(stores / "train.zarr"), "val": str(stores / "val.zarr"), "shuffle_window": 1},
        "optim": optim or {},
        "trainer": {"epochs": 1, "batch_size": 8, "accelerator": "cpu", "devices": 1, "progress": False,
                    "log_every_n_steps": 1, **trainer},
    })


def _args(stores, run, *more) -> list[str]:
    return ["train", str(run), "--train", str(stores / "train.zarr"), "--val", str(stores / "val.zarr"),
            "--model", "cenn-small", "--epochs", "1", "--batch-size", "8", "--accelerator", "cpu",
            "--set", "data.shuffle_window=1", "--no-progress", *more]


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_overwrite_never_removes_a_folder_of_inputs_or_other_files(stores, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # `cenn train STORES --overwrite`: the folder of the input stores
    assert main(_args(stores, stores, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cenn train: error: {stores} holds {stores / 'train.zarr'} (data.train), an input")
    assert DatasetStore.open(stores / "train.zarr").complete
    # `cenn train runs --overwrite`: a folder of runs is no run
    (tmp_path / "runs" / "old" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "config.toml").write_text("")
    assert main(_args(stores, tmp_path / "runs", "--overwrite")) == 2
    assert "runs is not a cenn run folder: cenn only replaces the run folders" in capsys.readouterr().err
    assert (tmp_path / "runs" / "old" / "config.toml").exists()
    # a run folder holding a file of the user's, and one holding the weights it starts from
    run = tmp_path / "run"
    assert main(_args(stores, run)) == 0
    assert (run / MARKER).exists()
    (run / "notes.txt").write_text("mine")
    assert main(_args(stores, run, "--overwrite")) == 2
    assert "holds notes.txt, which cenn did not write: move it out of the folder" in capsys.readouterr().err
    (run / "notes.txt").unlink()
    init = ["--init-weights", str(run / "weights.safetensors")]
    assert main(_args(stores, run, "--overwrite", *init)) == 2
    assert "(model.init_weights), an input of this command" in capsys.readouterr().err
    assert (run / "weights.safetensors").exists()
    assert main(_args(stores, run, "--overwrite")) == 0  # a cenn run folder of its own files is replaced


def test_bad_settings_are_refused_before_the_run_folder_is_made(stores, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(stores, run, "--set", "model.params.widths=[4]")) == 2
    assert "model 'cenn-small' has no parameter(s) widths" in capsys.readouterr().err
    assert main(_args(stores, run, "--strategy", "nonsense")) == 2
    assert "cenn train: error: You selected an invalid strategy name" in capsys.readouterr().err
    assert not run.exists()
    assert main(_args(stores, run)) == 0  # the corrected command is not refused
    assert main(_args(stores, tmp_path / "missing" / "run")) == 2
    assert "missing does not exist: create it first (mkdir -p" in capsys.readouterr().err


def test_a_missing_gpu_is_one_line_with_the_fix(stores, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = _args(stores, tmp_path / "run")
    args[args.index("--accelerator") + 1] = "gpu"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == ("cenn train: error: --accelerator gpu: no CUDA GPU is available on this machine "
                   "(torch.cuda.is_available() is False): use --accelerator cpu\n")
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_stops_with_an_error_and_exports_no_weights(stores, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(stores, run, "--optimizer", "sgd", "--lr", "1e30")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cenn train: error: run {run}: training diverged: the training loss became ")
    assert "lower the learning rate (optim.lr = 1e+30, --lr) or check the training data" in err
    assert not (run / "weights.safetensors").exists() and not (run / "metrics.json").exists()


def test_ctrl_c_during_training_is_one_line_saying_how_to_resume(stores, tmp_path, capsys, monkeypatch):
    """Lightning answers Ctrl-C with its own shutdown and SystemExit(1): cenn reports it as the
    interruption it is (exit 130, one line), and no weights are exported."""
    import signal

    def interrupted(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(CENNTask, "training_step", interrupted)
    run = tmp_path / "run"
    try:
        assert main(_args(stores, run)) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning ignored it
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cenn train: interrupted: the run folder keeps the checkpoint of the last finished")
    assert "rerun the same command to resume" in err
    assert not (run / "weights.safetensors").exists()


def test_nonfinite_patches_are_named_and_nonfinite_weights_never_exported(stores, tmp_path):
    cfg = _config(stores)
    task = CENNTask(cfg, in_channels=3, reference_channel=1)
    inputs = torch.zeros(3, 3, 64, 64)
    inputs[1, 0, 5, 5] = float("nan")
    batch = {"inputs": inputs, "target": torch.zeros(3, 1, 64, 64), "index": torch.tensor([4, 9, 2])}
    with pytest.raises(TrainingDiverged, match=r"training patches \[9\] of .*train\.zarr hold NaN or inf"):
        task.check_finite(torch.tensor(float("nan")), batch, "training")
    task.check_finite(torch.tensor(1.0), batch, "training")
    with torch.no_grad():
        next(task.net.parameters())[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"hold NaN or infinite values \(.*\), so none were exported"):
        _check_exportable(task, "best.ckpt")


def test_stores_are_verified_before_any_work(stores, tmp_path):
    damaged = tmp_path / "damaged.zarr"
    simulate(damaged, 16, SimulationConfig(seed=1, geometry=GEOMETRY), chunk_size=8, progress=False)
    for chunk in (damaged / "inputs" / "c" / "1").rglob("*"):
        if chunk.is_file():
            chunk.unlink()  # a lost chunk file reads back as NaN: only its checksum tells
    cfg = _config(stores)
    cfg.data.train = str(damaged)
    with pytest.raises(StoreError, match=r"damaged\.zarr \(data\.train\): chunks \[1\] are damaged"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_same_store_for_training_and_validation_is_warned_about(stores, tmp_path):
    cfg = _config(stores, max_steps=1)
    cfg.data.val = cfg.data.train
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, tmp_path / "run")
    messages = [str(w.message) for w in caught]
    assert any("hold the same patches" in m and "validation is not independent of training" in m
               for m in messages), messages


def test_nothing_is_staged_in_tmpdir_and_a_killed_runs_temporaries_are_cleared(stores, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(_config(stores), run)
    dead = _dead_pid()
    left = [run / "checkpoints" / f".last.ckpt.tmp{dead}", run / f".config.toml.tmp{dead}",
            tmp_path / f".run.old{dead}"]
    for path in left[:2]:
        path.write_bytes(b"half")
    left[2].mkdir()
    # $TMPDIR unusable (a full disk there): checkpoints are staged in the run folder itself
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmpdir"))
    train(_config(stores, epochs=2), run)
    assert not any(path.exists() for path in left)
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == 2


def test_a_second_training_of_one_run_folder_is_refused_naming_the_first(stores, tmp_path, capsys):
    run = tmp_path / "run"
    hold = ("import sys, time; from pathlib import Path; from cenn.train.run import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for more in ((), ("--overwrite",)):
            assert main(_args(stores, run, *more)) == 2
            err = capsys.readouterr().err
            assert err == (f"cenn train: error: {run} is being trained by another cenn train (pid "
                           f"{holder.pid} on {socket.gethostname()}): two trainings never share a run "
                           "folder; wait for it to finish (or stop it), then rerun this command to resume "
                           "the run, or train into another folder\n")
            assert not run.exists()
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in tmp_path.iterdir()] == [".run.cenn-train.lock"]  # left by the killed holder
    train(_config(stores, max_steps=1), run)  # free again once its holder is gone, and removed at the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


#: A checkpoint or the weights onto a full disk: the file named, and what to do once there is room.
_FULL = {
    "checkpoint": (r"checkpoints/(best|last)\.ckpt",
                   r"rerun the same cenn train command: it resumes from the last checkpoint written "
                   r"\(checkpoints/last.ckpt\)"),
    "weights file": (r"weights\.safetensors", r"rerun the same command \(nothing was left half-written\)"),
}


@pytest.mark.parametrize(("name", "what"), [(".ckpt", "checkpoint"), (".safetensors", "weights file")])
def test_a_full_disk_during_training_is_one_line_with_the_room_needed(stores, tmp_path, capsys, monkeypatch,
                                                                      name, what):
    write = Path.write_bytes

    def full_disk(path, data):
        if name in path.name:
            path.write_text("partial")  # a part was written before the disk filled
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    run = tmp_path / "run"
    assert main(_args(stores, run)) == 2
    err = capsys.readouterr().err
    file, then = _FULL[what]
    words = (rf"cenn train: error: {re.escape(str(run))}/{file}: the disk is full \(No space left on "
             rf"device\) writing the {what}, which needs [\d.]+ [kM]B \([\d.]+ [kMGT]B were free there\): "
             rf"free at least that much there, or move the folder to a disk with room, then {then}\n")
    assert re.fullmatch(words, err), err
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # the partial file was removed
    assert not (run / "weights.safetensors").exists()
