"""Training runs: the run folder, exact resume, streaming, the CLI, DDP on two CPU processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cenn.cli import main
from cenn.config import ConfigError, read_toml
from cenn.data.simulate import simulate
from cenn.model import load_weights
from cenn.sky.simulator import GeometryConfig, SimulationConfig
from cenn.train import TrainConfig, train
from cenn.train.data import STREAM_SEED_OFFSET
from cenn.train.task import CENNTask

GEOMETRY = GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    simulate(root / "train.zarr", 48, SimulationConfig(seed=1, geometry=GEOMETRY), chunk_size=16,
             progress=False)
    simulate(root / "val.zarr", 16, SimulationConfig(seed=2, geometry=GEOMETRY), chunk_size=16,
             progress=False)
    return root


def _config(stores, **trainer) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"name": "cenn-small"},
        "data": {"train": str(stores / "train.zarr"), "val": str(stores / "val.zarr"),
                 "shuffle_window": 2},
        "trainer": {"epochs": 2, "batch_size": 8, "accelerator": "cpu", "devices": 1,
                    "progress": False, "log_every_n_steps": 1, **trainer},
    })


def _last_state(run) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_a_run_folder_holds_config_checkpoints_logs_weights_and_metrics(stores, tmp_path):
    cfg = _config(stores)
    weights = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert TrainConfig.from_dict(read_toml(run / "config.toml")) == cfg
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert (run / "logs" / "csv" / "version_0" / "metrics.csv").read_text().count("\n") > 6
    assert any((run / "logs" / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    model, card = load_weights(weights)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(v, best[f"net.{k}"]) for k, v in model.state_dict().items())
    assert card.architecture == "cenn-small" and card.frequencies_ghz == [143.0, 217.0, 353.0]
    assert card.target_frequency_ghz == 217.0 and card.npix == 64 and card.pixel_arcsec == 90.0
    assert card.training["train"]["seed"] == 1 and card.training["val"]["n_patches"] == 16
    assert card.normalization == "minmax" and card.normalization_params == {"reference_channel": 1}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["loss"] == pytest.approx(card.metrics["loss"])
    assert metrics["rms_input_uk"] == pytest.approx(metrics["mse_input_uk2"] ** 0.5)
    assert metrics["global_step"] == 2 * (48 // 8)


def test_the_checkpoint_holds_each_tensor_once_with_or_without_compile(stores, tmp_path):
    cfg = _config(stores, epochs=1)
    train(cfg, tmp_path / "run")
    task = CENNTask(cfg, in_channels=3, reference_channel=1)
    expected = {f"net.{k}" for k in task.net.state_dict()}
    assert set(_last_state(tmp_path / "run")) == expected  # nothing under `_forward.`, nothing twice
    # compiled (torch.compile is lazy: nothing is compiled until the first call), the same keys
    compiled = CENNTask(_config(stores, compile=True), in_channels=3, reference_channel=1)
    compiled.configure_model()
    assert compiled._forward is not compiled.net
    assert set(compiled.state_dict()) == expected


def test_a_resumed_run_reaches_the_weights_of_an_uninterrupted_one(stores, tmp_path):
    train(_config(stores, epochs=3), tmp_path / "whole")
    train(_config(stores, epochs=1), tmp_path / "resumed")
    train(_config(stores, epochs=3), tmp_path / "resumed")  # same folder: resumes from last.ckpt
    whole, resumed = _last_state(tmp_path / "whole"), _last_state(tmp_path / "resumed")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    launches = sorted(p.name for p in (tmp_path / "resumed" / "logs" / "csv").iterdir())
    assert launches == ["version_0", "version_1"]


def test_last_checkpoint_is_every_epoch_even_without_improvement(stores, tmp_path):
    # learning rate ~0: the validation loss never improves after the first epoch
    cfg = _config(stores, epochs=3)
    cfg.optim.lr = 1e-30
    train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3 * (48 // 8) and best["epoch"] == 0
    # the per-epoch callback (monitor None) wrote last.ckpt itself, not only the final save
    states = [v for k, v in ckpt["callbacks"].items() if "'monitor': None" in k]
    assert len(states) == 1 and states[0]["best_model_path"].endswith("last.ckpt")


def _train_command(stores, run, epochs: int) -> list[str]:
    return [sys.executable, "-m", "cenn", "train", str(run), "--train", str(stores / "train.zarr"),
            "--val", str(stores / "val.zarr"), "--model", "cenn-small", "--epochs", str(epochs),
            "--batch-size", "8", "--accelerator", "cpu", "--set", "data.shuffle_window=2", "--no-progress"]


@pytest.mark.slow
def test_a_killed_cenn_train_resumes_to_the_uninterrupted_weights(stores, tmp_path):
    """SIGKILL ``cenn train`` once its first epoch's checkpoint is written, rerun the command: the
    final checkpoint equals an uninterrupted run's bit for bit (CPU, the same thread count)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_command(stores, tmp_path / "whole", 4), check=True, capture_output=True, env=env)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(stores, run, 4), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    last, deadline = run / "checkpoints" / "last.ckpt", time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "weights.safetensors").exists(), "the kill must land before the end"
    subprocess.run(_train_command(stores, run, 4), check=True, capture_output=True, env=env)
    whole, resumed = _last_state(tmp_path / "whole"), _last_state(run)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert (run / "weights.safetensors").exists()


def test_a_damaged_last_checkpoint_is_refused_with_the_ways_forward(stores, tmp_path):
    train(_config(stores, epochs=1), tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"last\.ckpt is damaged or truncated.*best\.ckpt.*--overwrite"):
        train(_config(stores, epochs=2), tmp_path / "run")


def test_a_run_folder_refuses_another_configuration(stores, tmp_path):
    train(_config(stores, epochs=1), tmp_path / "run")
    other = _config(stores, epochs=1)
    other.optim.lr = 0.01
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        train(other, tmp_path / "run")
    train(other, tmp_path / "run", overwrite=True)
    assert read_toml(tmp_path / "run" / "config.toml")["optim"]["lr"] == 0.01


def test_streaming_trains_on_fresh_patches_never_from_the_validation_seed(stores, tmp_path):
    cfg = _config(stores, epochs=1)
    cfg.data.stream, cfg.data.train, cfg.data.samples_per_epoch = True, None, 16
    train(cfg, tmp_path / "run")
    streamed = read_toml(tmp_path / "run" / "stream-simulation.toml")
    assert streamed["seed"] == 2 + STREAM_SEED_OFFSET
    assert streamed["geometry"]["npix"] == 64
    assert _last_state(tmp_path / "run")  # trained and checkpointed
    cfg.data.stream_seed = 2
    with pytest.raises(ConfigError, match="validation"):
        train(cfg, tmp_path / "other")


def test_train_and_validation_stores_must_match(stores, tmp_path):
    coarse = GeometryConfig(npix=64, pixel_arcsec=120.0, margin=16)  # another patch side is allowed
    simulate(tmp_path / "coarse.zarr", 4, SimulationConfig(seed=5, geometry=coarse), progress=False)
    cfg = _config(stores)
    cfg.data.val = str(tmp_path / "coarse.zarr")
    with pytest.raises(ConfigError, match=r"pixels of 90\.0″ but .* has 120\.0″"):
        train(cfg, tmp_path / "run")
    cfg.data.val = None
    with pytest.raises(ConfigError, match="validation dataset store is required"):
        train(cfg, tmp_path / "run")


def test_cenn_train_command_runs_a_few_steps(stores, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", str(run), "--train", str(stores / "train.zarr"), "--val", str(stores / "val.zarr"),
                 "--model", "cenn-small", "--max-steps", "3", "--batch-size", "8", "--accelerator", "cpu",
                 "--set", "data.shuffle_window=2", "--set", "optim.l2=0.0", "--no-progress"])
    assert code == 0 and "weights" in capsys.readouterr().out
    saved = read_toml(run / "config.toml")
    assert saved["trainer"]["max_steps"] == 3 and saved["optim"]["l2"] == 0.0
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 3
    assert main(["train", str(tmp_path / "bad"), "--val", str(stores / "val.zarr")]) == 2
    assert main(["train", str(tmp_path / "none"), "--stream", "--val", str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr is not a dataset store" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_bf16_and_channels_last_training_follows_float32(stores, tmp_path):
    """Six steps under bf16-mixed autocast with channels_last against the same six in float32: the
    biases (zero at the start, so the sum of the updates) agree to 5 % (measured 0.9 %) and the
    validation loss to 5 % (measured 1.8 %), and neither is float32's exactly (bf16 did run)."""
    train(_config(stores, epochs=1, precision="bf16-mixed", channels_last=True), tmp_path / "bf16")
    train(_config(stores, epochs=1), tmp_path / "f32")
    runs = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("bf16", "f32")}
    assert runs["bf16"]["global_step"] == runs["f32"]["global_step"] == 48 // 8
    assert runs["bf16"]["loss_input"] == runs["f32"]["loss_input"]  # the same validation patches
    assert runs["bf16"]["loss"] != runs["f32"]["loss"]
    assert runs["bf16"]["loss"] == pytest.approx(runs["f32"]["loss"], rel=0.05)
    states = {name: _last_state(tmp_path / name) for name in ("bf16", "f32")}
    biases = {name: torch.cat([v.flatten() for k, v in state.items() if k.endswith(".bias")])
              for name, state in states.items()}
    moved = biases["f32"].norm().item()
    assert moved > 0.01  # six steps moved the biases (0.046)
    assert 0 < (biases["bf16"] - biases["f32"]).norm().item() < 0.05 * moved


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(stores, tmp_path):
    # torchrun from the running interpreter: never skipped for want of a `torchrun` on PATH
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "cenn", "train", str(run),
         "--train", str(stores / "train.zarr"), "--val", str(stores / "val.zarr"), "--model", "cenn-small",
         "--epochs", "1", "--batch-size", "8", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--set", "data.shuffle_window=2", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 48 // (8 * 2)  # each process took half of every epoch
    assert (run / "weights.safetensors").exists()
