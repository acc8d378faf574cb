"""Data flows once through `cenn train` (issue 27): each store is opened and verified once and passed
down, the initial weights are read once, the normalisation is built once, and the typed
configuration is passed down, never rebuilt from a dict. Before: the validation store was opened
five times and the training store three, the initial weights read twice, the normalisation built
twice and the configuration rebuilt from a dict once more."""

from collections import Counter
from pathlib import Path

import pytest

import cenn.train.run as run_module
import cenn.train.task as task_module
from cenn.data.store import DatasetStore
from cenn.model import WeightsCard, build_model, save_weights
from cenn.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def stores(stores):
    """The shared stores and initial weights beside them."""
    root = stores
    card = WeightsCard(architecture="cenn-small", architecture_params={}, in_channels=3,
                       frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.22, 4.90, 4.92],
                       target_frequency_ghz=217.0, npix=64, pixel_arcsec=90.0, normalization="minmax",
                       normalization_params={"reference_channel": 1})
    save_weights(root / "init.safetensors", build_model("cenn-small", 3), card)
    return root


@pytest.fixture
def counts(monkeypatch) -> Counter:
    """Counts of store opens and verifications (by store name), initial-weight reads, normalisations
    built and configurations rebuilt from a dict, while the test runs."""
    found: Counter = Counter()

    def counted(key, call):
        def wrapper(*args, **kwargs):
            found[key(*args, **kwargs)] += 1
            return call(*args, **kwargs)
        return wrapper

    opener = DatasetStore.open.__func__
    monkeypatch.setattr(DatasetStore, "open", classmethod(
        counted(lambda cls, path, *a, **k: f"open {Path(path).name}", opener)))
    monkeypatch.setattr(DatasetStore, "verify", counted(lambda store, *a, **k: f"verify {store.path.name}",
                                                        DatasetStore.verify))
    monkeypatch.setattr(run_module, "load_weights", counted(lambda *a, **k: "load_weights",
                                                           run_module.load_weights))
    monkeypatch.setattr(task_module, "build_normalization", counted(lambda *a, **k: "build_normalization",
                                                                    task_module.build_normalization))
    monkeypatch.setattr(TrainConfig, "from_dict", classmethod(
        counted(lambda *a, **k: "TrainConfig.from_dict", TrainConfig.from_dict.__func__)))
    return found


def _config(stores, **data) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"name": "cenn-small", "init_weights": str(stores / "init.safetensors")},
        "data": {"val": str(stores / "val.zarr"), "shuffle_window": 1, **data},
        "trainer": {"epochs": 1, "batch_size": 8, "accelerator": "cpu", "devices": 1, "progress": False,
                    "log_every_n_steps": 1},
    })


def test_each_store_is_opened_and_verified_once_and_the_weights_read_once(stores, tmp_path, counts):
    cfg = _config(stores, train=str(stores / "train.zarr"))
    counts.clear()
    train(cfg, tmp_path / "run")
    assert counts == {"open val.zarr": 1, "verify val.zarr": 1, "open train.zarr": 1, "verify train.zarr": 1,
                      "load_weights": 1, "build_normalization": 1}


def test_streaming_opens_the_validation_store_once(stores, tmp_path, counts):
    cfg = _config(stores, stream=True, samples_per_epoch=8)
    counts.clear()
    train(cfg, tmp_path / "run")
    assert counts == {"open val.zarr": 1, "verify val.zarr": 1, "load_weights": 1, "build_normalization": 1}
