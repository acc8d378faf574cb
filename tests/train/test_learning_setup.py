"""The learning problem's options: losses, schedules, hybrid networks filled in from the data,
smaller training crops, and latitude strata."""

import dataclasses
import math

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from cenn.config import ConfigError
from cenn.data.simulate import simulate
from cenn.model import load_weights
from cenn.sky.flat.projection import draw_centres
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import GeometryConfig, RegionConfig, SimulationConfig
from cenn.train import TrainConfig, train
from cenn.train.losses import build_loss, mse, patch_log_mse
from cenn.train.run import _timer
from cenn.train.task import CENNTask

pytestmark = pytest.mark.usefixtures("one_thread")


def test_patch_log_mse_is_the_mean_log_of_each_patch_error():
    pred = torch.zeros(2, 1, 4, 4)
    target = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 100.0)])
    assert mse(pred, target).item() == pytest.approx((1.0 + 1e4) / 2)
    assert patch_log_mse(pred, target).item() == pytest.approx((math.log(1.0) + math.log(1e4)) / 2, rel=1e-6)
    # scale-free balance: a 10 % smaller error counts the same in a faint and in a bright patch
    faint = patch_log_mse(pred, target * torch.tensor([0.9, 1.0])[:, None, None, None])
    bright = patch_log_mse(pred, target * torch.tensor([1.0, 0.9])[:, None, None, None])
    assert faint.item() == pytest.approx(bright.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"unknown loss 'l1'.*mse, patch-log-mse"):
        build_loss("l1")


def test_configuration_refuses_unknown_loss_and_schedule():
    with pytest.raises(ValueError, match="loss name must be one of"):
        TrainConfig.from_dict({"loss": {"name": "huber"}})
    with pytest.raises(ValueError, match=r"optim\.schedule must be one of"):
        TrainConfig.from_dict({"optim": {"schedule": "linear"}})
    with pytest.raises(ValueError, match=r"warmup_fraction must lie in \(0, 1\), got 1\.5"):
        TrainConfig.from_dict({"optim": {"schedule": "onecycle", "warmup_fraction": 1.5}})


def test_latitude_strata_give_each_band_its_fraction():
    strata = ([0.0, 5.0, 30.0, 90.0], [0.5, 0.25, 0.25])
    _, lat = draw_centres(SampleRandom(4, range(6000)), 0.0, 90.0, strata=strata)
    b = lat.abs()
    assert ((b < 5).float().mean().item()) == pytest.approx(0.5, abs=0.02)
    assert (((b >= 5) & (b < 30)).float().mean().item()) == pytest.approx(0.25, abs=0.02)
    # uniform in area inside a stratum: the median |b| of 30-90° is asin((sin30 + 1) / 2) = 48.6°
    assert b[b >= 30].median().item() == pytest.approx(48.59, abs=1.5)
    plain = draw_centres(SampleRandom(4, range(6000)), 0.0, 90.0)[1].abs()
    assert (plain < 5).float().mean().item() == pytest.approx(math.sin(math.radians(5)), abs=0.01)
    with pytest.raises(ValueError, match="increasing"):
        RegionConfig(strata=[0.0, 30.0, 5.0])
    with pytest.raises(ValueError, match="one per stratum"):
        RegionConfig(strata=[0.0, 5.0, 90.0], strata_weights=[1.0])


@pytest.fixture(scope="module")
def val_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stores") / "val.zarr"
    geometry = GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16)
    simulate(path, 8, SimulationConfig(seed=2, geometry=geometry), chunk_size=8, progress=False)
    return path


@pytest.mark.parametrize("model", ["hilc-unet", "sp-unet"])
def test_hybrid_trains_on_smaller_crops_with_the_instrument_from_the_data(val_store, tmp_path, model):
    """Streamed 32² crops, validated on 64² patches; beams, pixel size and reference band come from
    the store; AdamW with a one-cycle schedule; the weights rebuild the same network."""
    sim = tmp_path / "crops.toml"
    sim.write_text('seed = 5\n[geometry]\nnpix = 32\nmargin = 16\n[region]\nstrata = [0.0, 5.0, 90.0]\n')
    cfg = TrainConfig.from_dict({
        "model": {"name": model, "params": {"backbone": "unet-small", "bin_modes": 16} if model == "hilc-unet"
                  else {"backbone": "unet-small"}},
        "normalization": {"name": "identity"}, "loss": {"name": "patch-log-mse"},
        "optim": {"name": "adamw", "lr": 1e-3, "l2": 0.0, "schedule": "onecycle"},
        "data": {"val": str(val_store), "stream": True, "simulation": str(sim), "samples_per_epoch": 16},
        "trainer": {"epochs": 2, "batch_size": 8, "accelerator": "cpu", "devices": 1, "progress": False,
                    "log_every_n_steps": 1},
    })
    weights = train(cfg, tmp_path / "run")
    net, card = load_weights(weights)
    assert card.architecture == model
    assert card.architecture_params["beams_arcmin"] == pytest.approx([7.22, 4.90, 4.92], abs=0.2)
    assert card.architecture_params["pixel_arcsec"] == 90.0 and card.architecture_params["reference"] == 1
    assert TrainConfig.load(tmp_path / "run" / "config.toml").model.params["reference"] == 1
    # the network rebuilt from the weights file is the best checkpoint's, output for output, exactly;
    # built with other beams from the same tensors it is not (the card's instrument matters)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    saved = TrainConfig.load(tmp_path / "run" / "config.toml")
    task = CENNTask(saved, in_channels=3, reference_channel=1)
    task.load_state_dict(best["state_dict"])
    other = dataclasses.replace(saved, model=dataclasses.replace(
        saved.model, params={**saved.model.params, "beams_arcmin": [5.0, 5.0, 5.0]}))
    wrong = CENNTask(other, in_channels=3, reference_channel=1)
    wrong.load_state_dict(best["state_dict"])
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64) * 50
    with torch.no_grad():
        rebuilt, checkpoint, other_beams = net.eval()(x), task.net.eval()(x), wrong.net.eval()(x)
    assert rebuilt.shape == (2, 1, 64, 64) and rebuilt.abs().max() > 10
    assert torch.equal(rebuilt, checkpoint)
    assert (other_beams - checkpoint).abs().max() > 0.1
    rows = (tmp_path / "run" / "logs" / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in rows


def test_init_weights_continues_a_model_and_max_minutes_stops_cleanly(val_store, tmp_path):
    base = {"normalization": {"name": "identity"},
            "data": {"val": str(val_store), "stream": True, "samples_per_epoch": 16},
            "trainer": {"epochs": 1, "batch_size": 8, "accelerator": "cpu", "devices": 1, "progress": False}}
    first = train(TrainConfig.from_dict({**base, "model": {"name": "unet-small"}}), tmp_path / "a")
    cfg = TrainConfig.from_dict({**base, "model": {"init_weights": str(first)},
                                 "optim": {"name": "adamw", "lr": 1e-12, "l2": 0.0},
                                 "trainer": {**base["trainer"], "epochs": 50, "max_minutes": 1e-4}})
    second = train(cfg, tmp_path / "b")
    start, _ = load_weights(first)
    after, card = load_weights(second)
    assert card.architecture == "unet-small"  # taken from the initial weights
    for (name, a), b in zip(start.state_dict().items(), after.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name  # started there (a learning rate of 1e-12 moves nothing)
    metrics = (tmp_path / "b" / "metrics.json").read_text()
    assert '"epochs": 1' in metrics or '"epochs": 0' in metrics  # stopped by the clock, far before 50 epochs
    clash = TrainConfig.from_dict({**base, "model": {"name": "cenn-small", "init_weights": str(first)}})
    with pytest.raises(ConfigError, match="hold a 'unet-small' model"):
        train(clash, tmp_path / "c")


def test_max_minutes_counts_from_each_invocation_so_a_resumed_run_trains_on():
    """A checkpoint stopped by the clock holds the minutes it spent; resuming from it restores that
    (Lightning's own Timer would stop at once, with nothing left) but the limit is per invocation."""
    timer, = _timer(40.0)
    spent = {"time_elapsed": {"train": 45 * 60.0, "validate": 0.0}}
    timer.load_state_dict(spent)
    assert timer.time_elapsed("train") == 0.0 and timer.time_remaining("train") == pytest.approx(40 * 60.0)
    plain = Timer(duration={"minutes": 40.0})
    plain.load_state_dict(spent)
    assert plain.time_remaining("train") == pytest.approx(-5 * 60.0)  # what the override prevents
    assert _timer(0.0) == []
