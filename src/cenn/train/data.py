"""Training and validation data for Lightning: a fixed store or fresh simulated patches."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cenn.config import ConfigError
from cenn.data.dataset import PatchDataset
from cenn.data.samplers import ChunkShuffleSampler, ShardSampler, StreamSampler
from cenn.data.simulate import dataset_metadata
from cenn.data.stokes import batch_maps, maps_per_band
from cenn.data.store import UNITS, DatasetStore, open_finished
from cenn.data.stream import SimulatedBatches
from cenn.sky.simulator import PatchSimulator, SimulationConfig
from cenn.sky.sky_split import shared_sky
from cenn.train.config import TrainConfig

#: Offset between the validation seed and the default seed of streamed training patches.
STREAM_SEED_OFFSET = 1_000_003
#: What must agree between every source of patches in one run.
_MATCHING_KEYS = ("frequencies_ghz", "target_band", "units")
_BEAM_KEYS = ("beam_fwhm_arcmin", "target_beam_fwhm_arcmin")


def check_compatible(meta: dict[str, Any], reference: dict[str, Any], what: str, ref_what: str) -> None:
    """Refuse patches whose bands, target, units, beams or pixel size differ from ``reference``'s (the
    weights' card states the validation store's, so it would misdescribe a network trained on others;
    the patch side may differ: training on smaller crops of the same pixels is allowed)."""
    for key in _MATCHING_KEYS:
        if meta.get(key) != reference.get(key):
            raise ConfigError(f"{what} has {key} = {meta.get(key)} but {ref_what} has "
                              f"{reference.get(key)}: simulate both with the same instrument")
    for key in _BEAM_KEYS:
        found, expected = np.atleast_1d(meta.get(key, [])), np.atleast_1d(reference.get(key, []))
        if found.shape != expected.shape or not np.allclose(found, expected, rtol=1e-6, atol=0.0):
            raise ConfigError(f"{what} has beams ({key}) of {meta.get(key)}′ but {ref_what} has "
                              f"{reference.get(key)}′: the weights' card would state the validation store's "
                              "beams for a network trained on others; simulate both with the same instrument")
    geo, ref_geo = meta["geometry"], reference["geometry"]
    if geo["pixel_arcsec"] != ref_geo["pixel_arcsec"]:  # the networks are fully convolutional: any npix
        raise ConfigError(f"{what} has pixels of {geo['pixel_arcsec']}″ but {ref_what} has "
                          f"{ref_geo['pixel_arcsec']}″: simulate both with the same pixel size")


def warn_shared_sky(meta: dict[str, Any], reference: dict[str, Any], what: str, ref_what: str) -> None:
    """Warn when training patches share map-based sky with the validation patches."""
    problems = shared_sky(meta.get("config", {}), reference.get("config", {}))
    if problems:
        warnings.warn(f"{what} and {ref_what} are not independent: {'; '.join(problems)}. The validation "
                      "loss will flatter the network", stacklevel=2)


def warn_same_patches(meta: dict[str, Any], reference: dict[str, Any], what: str, ref_what: str) -> None:
    """Warn when the training store holds the validation store's patches (the same store, or one
    simulated with the same configuration and seed)."""
    if meta.get("config") == reference.get("config"):
        warnings.warn(f"{what} and {ref_what} hold the same patches (the same store, or the same simulation "
                      "and seed): validation is not independent of training and the validation loss will "
                      "flatter the network; simulate a validation store with another --seed", stacklevel=2)


def checked_store(path: str, role: str, verify: bool, progress: bool = False) -> DatasetStore:
    """The store at ``path`` (``role``: data.train or data.val), refused before any work when it is
    incomplete or, with ``verify``, damaged (every chunk read and its SHA-256 checked, with a
    progress bar)."""
    def bar(chunks: range) -> tqdm:
        return tqdm(chunks, unit="chunk", desc=f"verify {Path(path).name}", disable=not progress)

    return open_finished(path, role, checksums=verify, progress=bar)


@dataclasses.dataclass(frozen=True)
class RunData:
    """Where one run's patches come from, each store opened (and verified) once and passed down.

    Attributes:
        val: the validation store.
        train: the training store; None when training patches are streamed.
        stream: the streaming simulation (:func:`stream_simulation`); None for a training store.
        train_meta: the training patches' metadata (the store's attrs, or the simulation's).
    """

    val: DatasetStore
    train: DatasetStore | None
    stream: SimulationConfig | None
    train_meta: dict[str, Any]

    @property
    def val_meta(self) -> dict[str, Any]:
        return self.val.meta


def open_run_data(cfg: TrainConfig, verify: bool = True) -> RunData:
    """The run's stores, each opened once and, with ``verify`` (the first process of a run), every
    chunk checked (:func:`checked_store`), and the streaming simulation; training patches whose
    bands, beams, pixels or units differ from the validation store's are refused, and patches not
    independent of the validation patches warned about."""
    cfg.check_data()
    d, progress = cfg.data, cfg.trainer.progress
    val = checked_store(d.val, "data.val", verify, progress)
    stream = stream_simulation(cfg, val.meta) if d.stream else None
    train = None if d.stream else checked_store(d.train, "data.train", verify, progress)
    if maps_per_band(d.stokes) == 2:
        for role, store in (("data.val", val), ("data.train", train)):
            if store is not None and store.stokes != "IQU":
                raise ConfigError(f"{role} {store.path} holds temperature only, but data.stokes = \"QU\" "
                                  "trains on Q and U: simulate it with cenn simulate --stokes IQU")
    if train is None:
        meta, what = {**dataset_metadata(PatchSimulator(stream)), "units": UNITS}, "the streaming simulation"
    else:
        meta, what = train.meta, f"{d.train}"
    check_compatible(meta, val.meta, what, f"{d.val}")
    warn_shared_sky(meta, val.meta, what, f"{d.val}")
    if train is not None:
        warn_same_patches(meta, val.meta, what, f"{d.val}")
    return RunData(val, train, stream, meta)


def stream_simulation(cfg: TrainConfig, val_meta: dict[str, Any]) -> SimulationConfig:
    """The simulation that streams training patches: ``data.simulation`` or the validation
    store's own, with a seed different from the validation seed, and with Q and U
    (``stokes = "IQU"``) for a Q/U run."""
    d = cfg.data
    if d.simulation:
        base = SimulationConfig.load(d.simulation)
    else:
        base = SimulationConfig.from_stored(val_meta["config"])
        split = base.region.sky_split
        if split is not None and split.part == "validation":  # train on the rest of the sky
            base.region.sky_split = dataclasses.replace(split, part="train")
    seed = d.stream_seed if d.stream_seed is not None else val_meta["seed"] + STREAM_SEED_OFFSET
    if seed == val_meta["seed"]:
        raise ConfigError(f"data.stream_seed = {seed} is the validation store's seed: training "
                          "would see the validation patches; choose another seed")
    stokes = "IQU" if maps_per_band(d.stokes) == 2 else base.stokes
    return dataclasses.replace(base, seed=seed, stokes=stokes)


class PatchDataModule(L.LightningDataModule):
    """Loaders for one run; each rank gets its own share (see :mod:`cenn.data.samplers`).

    Args:
        cfg: the run's configuration.
        data: the run's stores and streaming simulation (:func:`open_run_data`).
    """

    def __init__(self, cfg: TrainConfig, data: RunData):
        super().__init__()
        self.cfg = cfg
        self.data = data
        self._device_simulator: PatchSimulator | None = None

    def _split(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        d, bs = self.cfg.data, self.cfg.trainer.batch_size
        rank, world = self._split()
        if d.stream:
            on_workers = d.simulate_on == "workers"
            batches = SimulatedBatches(self.data.stream, bs, simulate=on_workers, stokes=d.stokes)
            sampler = StreamSampler(d.samples_per_epoch // (bs * world), rank, world)
            workers = d.num_workers if on_workers else 0
            return DataLoader(batches, batch_size=None, sampler=sampler, num_workers=workers,
                              persistent_workers=workers > 0)
        dataset = PatchDataset(self.data.train, cache_chunks=d.shuffle_window, stokes=d.stokes)
        sampler = ChunkShuffleSampler(len(dataset), dataset.store.chunk_size, d.shuffle_window,
                                      self.cfg.trainer.seed, rank, world)
        if len(sampler) < bs:
            raise ConfigError(f"{d.train} holds {len(dataset)} patches, fewer than one batch of {bs} "
                              "per process: simulate more or lower trainer.batch_size")
        return DataLoader(dataset, batch_size=bs, sampler=sampler, drop_last=True,
                          num_workers=d.num_workers, persistent_workers=d.num_workers > 0)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """``simulate_on = "device"``: the loader sent sample indices only; simulate them here,
        on the training device."""
        if "inputs" in batch:
            return batch
        if self._device_simulator is None:
            self._device_simulator = PatchSimulator(self.data.stream, batch["indices"].device)
        sim = self._device_simulator.simulate(batch["indices"].tolist())
        return {**batch_maps(sim, self.cfg.data.stokes), "indices": batch["indices"]}

    def val_dataloader(self) -> DataLoader:
        dataset = PatchDataset(self.data.val, cache_chunks=1, stokes=self.cfg.data.stokes)
        rank, world = self._split()
        return DataLoader(dataset, batch_size=self.cfg.trainer.batch_size,
                          sampler=ShardSampler(len(dataset), rank, world),
                          num_workers=self.cfg.data.num_workers)
