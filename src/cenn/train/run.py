"""A training run: its folder, resuming, the Lightning Trainer, and the exported weights.

Run folder::

    .cenn-output              marks the folder as a cenn run (cenn.outputs)
    config.toml               resolved training configuration
    stream-simulation.toml    the streaming simulation (streaming runs)
    checkpoints/last.ckpt     end of the latest epoch (resume point)
    checkpoints/best.ckpt     lowest validation loss
    logs/csv/version_K/       metrics.csv, one version per launch
    logs/tensorboard/version_K/
    weights.safetensors       best network with its card (cenn.model.load_weights)
    metrics.json              validation metrics of the best checkpoint

Running the same command again on the same folder resumes from ``last.ckpt``; a run killed at
any point loses at most the current epoch, and resumes to exactly the weights an uninterrupted
run would reach (same data order, same optimiser state). Everything the run could refuse is
checked before its folder is made or changed; ``--overwrite`` only ever removes a cenn run folder
(:mod:`cenn.outputs`). While it trains, a run holds ``.NAME.cenn-train.lock`` beside its folder
(:func:`run_lock`), so a second training of the same folder is refused naming the first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from cenn._version import __version__
from cenn.config import ConfigError, dumps_toml, read_toml
from cenn.data.stokes import maps_per_band
from cenn.io.atomic import atomic_write_text
from cenn.io.disk import write_bytes
from cenn.io.locks import exclusive_lock, lock_holder
from cenn.model.hybrid import instrument_params
from cenn.model.registry import model_parameters
from cenn.model.weights import WeightsCard, load_grown, load_weights, save_weights
from cenn.outputs import KNOWN, MARKER, Inputs, check_output, clear_stale, mark, remove_output
from cenn.runtime import check_device, tune_cpu_allocator
from cenn.sky.instrument import target_channel
from cenn.train.config import ModelConfig, TrainConfig
from cenn.train.data import PatchDataModule, RunData, open_run_data
from cenn.train.task import CENNTask, TrainingDiverged, nonfinite_tensors

CONFIG_FILE = "config.toml"
STREAM_CONFIG_FILE = "stream-simulation.toml"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.json"
#: Settings that may change when a run is resumed (to train longer, or on other hardware).
RESUMABLE = {("trainer", k) for k in ("epochs", "max_steps", "max_minutes", "progress", "log_every_n_steps",
                                      "accelerator", "devices", "num_nodes", "strategy")} | {
    ("data", "num_workers")}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written under a temporary name in their own folder and renamed: a kill never
    leaves a half-written ``last.ckpt``, and only the run folder's disk needs room (Lightning's own
    writer stages every checkpoint in $TMPDIR first). The checkpoint is serialised in memory and
    written by Python, so a full disk is one line naming the file and the room it needs
    (:func:`cenn.io.disk.write_bytes`), not torch's writer error."""

    def save_checkpoint(self, checkpoint: dict, path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("cenn's checkpoint writer takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getbuffer(), "checkpoint", "rerun the same cenn train command: it resumes "
                    "from the last checkpoint written (checkpoints/last.ckpt)")


def _differences(old: dict, new: dict) -> list[str]:
    """``section.key`` of every setting that differs and may not change on resume."""
    out = []
    for section in new:
        for key in set(old.get(section, {})) | set(new[section]):
            if (section, key) not in RESUMABLE and old.get(section, {}).get(key) != new[section].get(key):
                out.append(f"{section}.{key}: {old.get(section, {}).get(key)!r} → {new[section].get(key)!r}")
    return out


def run_inputs(cfg: TrainConfig, others: Inputs = ()) -> list[tuple[str, str | None]]:
    """The files and stores a run reads, (role, path), which its folder may never hold."""
    d = cfg.data
    return [("data.train", None if d.stream else d.train), ("data.val", d.val),
            ("data.simulation", d.simulation), ("model.init_weights", cfg.model.init_weights), *others]


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, overwrite: bool, inputs: Inputs = ()) -> Path | None:
    """Create (and mark as cenn's) or check the run folder; returns the checkpoint to resume from,
    if any. ``overwrite`` removes a run folder first, never a folder that is not a cenn run or holds
    one of ``inputs`` (:func:`cenn.outputs.remove_output`); temporary files a killed run left are
    removed.

    Only the first process writes (under torchrun or SLURM every process runs this); the others
    only decide, as it does, whether the run resumes."""
    writer = rank_zero_only.rank == 0
    last = run_dir / "checkpoints" / "last.ckpt"
    if overwrite:
        if writer and run_dir.exists():
            remove_output(run_dir, "run", inputs)
    else:
        saved = run_dir / CONFIG_FILE
        if saved.exists():
            changed = _differences(TrainConfig.from_dict(read_toml(saved)).to_dict(), cfg.to_dict())
            if changed:
                raise ConfigError(f"{run_dir} holds a run with another configuration "
                                  f"({'; '.join(changed)}): resume it with its own settings, or pass "
                                  "--overwrite, or use a new folder")
    if writer:
        run_dir.mkdir(exist_ok=True)
        if not (run_dir / MARKER).exists():
            mark(run_dir, "run")
        last.parent.mkdir(exist_ok=True)
        _clear_temporaries(run_dir)
        atomic_write_text(run_dir / CONFIG_FILE, dumps_toml(cfg.to_dict()))
    if overwrite or not last.exists():
        return None
    check_checkpoint(last)
    return last


def _clear_temporaries(run_dir: Path) -> None:
    """Remove the temporary files a killed run left in its folder (and a half-removed old folder)."""
    clear_stale(run_dir.parent, [run_dir.name])
    clear_stale(run_dir, KNOWN["run"] | {MARKER})
    clear_stale(run_dir / "checkpoints", ["last.ckpt", "best.ckpt"])


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint that cannot be read (truncated or damaged) with the ways forward."""
    try:
        torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # torch raises RuntimeError, pickle and zip errors alike
        raise ValueError(f"{path} is damaged or truncated ({type(err).__name__}: {err}); delete it and rerun "
                         "to start over, copy checkpoints/best.ckpt over it to resume from the best epoch, "
                         "or pass --overwrite") from err


def _store_provenance(path: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("seed", "n_patches", "sky_components", "frequencies_ghz", "cenn_version")
    return {"path": path, **{k: meta.get(k) for k in keys},
            "region": meta.get("config", {}).get("region")}


def _target_channel(meta: dict[str, Any]) -> int:
    """Index of the target band among a store's input channels."""
    return target_channel(meta["band_names"], meta["target_band"])


def resolve_model_params(cfg: TrainConfig, meta: dict[str, Any],
                         initial: WeightsCard | None = None) -> TrainConfig:
    """``cfg`` with the architecture of the card ``initial`` of ``model.init_weights`` (if any) and
    the instrument parameters its model takes (beams, pixel size, reference band, foreground SEDs;
    :func:`cenn.model.hybrid.instrument_params`) filled in from the data where not given; for Q/U
    (``data.stokes = "QU"``) also ``out_channels = 2``, refused for architectures without it."""
    if initial is not None:
        cfg = _with_initial_architecture(cfg, initial)
    accepted = model_parameters(cfg.model.name)
    found = instrument_params(accepted, meta["beam_fwhm_arcmin"], meta["geometry"]["pixel_arcsec"],
                              _target_channel(meta), meta["frequencies_ghz"], meta["band_names"])
    maps = maps_per_band(cfg.data.stokes)
    if maps == 2:
        if "out_channels" not in accepted:
            raise ConfigError(f"model {cfg.model.name!r} separates temperature only (it has no out_channels "
                              "parameter), so it cannot return Q and U: use unet, unet-small, cenn-paper or "
                              "cenn-small for data.stokes = \"QU\"")
        found["out_channels"] = maps
    missing = {k: v for k, v in found.items() if k not in cfg.model.params}
    if not missing:
        return cfg
    model = dataclasses.replace(cfg.model, params={**cfg.model.params, **missing})
    return dataclasses.replace(cfg, model=model)


def _with_initial_architecture(cfg: TrainConfig, card: WeightsCard) -> TrainConfig:
    """``cfg`` whose model is that of its ``init_weights`` (whose card is ``card``) without their σ
    calibration curve; refuses a contradicting name or parameter."""
    m = cfg.model
    if card.stokes != cfg.data.stokes:
        raise ConfigError(f"model.init_weights {m.init_weights} separate Stokes {card.stokes} but the run "
                          f"has data.stokes = {cfg.data.stokes!r}: start from weights of the same Stokes "
                          "maps")
    clash = {k: v for k, v in m.params.items() if card.architecture_params.get(k, v) != v}
    if (m.name != card.architecture and m.name != ModelConfig.name) or clash:
        raise ConfigError(f"model.init_weights {m.init_weights} hold a {card.architecture!r} model with "
                          f"{card.architecture_params}, but the run asks for {m.name!r} with {m.params}: "
                          "drop --model/model.params or use matching weights")
    # a σ curve was fitted on the initial weights' residuals, which training changes: calibrate anew
    initial = {k: v for k, v in card.architecture_params.items() if k != "sigma_curve"}
    model = dataclasses.replace(m, name=card.architecture, params={**initial, **m.params})
    return dataclasses.replace(cfg, model=model)


def _card(cfg: TrainConfig, data: RunData, task: CENNTask, metrics: dict[str, float],
          trainer: L.Trainer) -> WeightsCard:
    meta = data.val_meta
    norm = task.normalization
    target = _target_channel(meta)
    training = {
        "config": cfg.to_dict(),
        "train": _store_provenance(cfg.data.train, data.train_meta) if data.stream is None else
        {"stream": True, "seed": data.stream.seed,
         "sky_components": data.train_meta["sky_components"]},
        "val": _store_provenance(cfg.data.val, meta),
        "epochs": trainer.current_epoch, "global_step": trainer.global_step,
        "noise_uk_per_pixel": [float(n) for n in meta["noise_uk_per_pixel"]],
    }
    return WeightsCard(
        architecture=cfg.model.name, architecture_params=cfg.model.params,
        in_channels=len(meta["frequencies_ghz"]) * maps_per_band(cfg.data.stokes), stokes=cfg.data.stokes,
        frequencies_ghz=meta["frequencies_ghz"],
        beams_arcmin=meta["beam_fwhm_arcmin"], target_frequency_ghz=meta["frequencies_ghz"][target],
        npix=meta["geometry"]["npix"], pixel_arcsec=meta["geometry"]["pixel_arcsec"],
        units=meta["units"], normalization=norm.name, normalization_params=norm.params(),
        training=training, metrics=metrics, cenn_version=__version__,
    )


def _summarise(raw: dict[str, float]) -> dict[str, float]:
    """Validation metrics for people: losses, and RMS residuals in µK."""
    out = {k.removeprefix("val/"): float(v) for k, v in raw.items() if k.startswith("val/")}
    for key in ("mse_uk2", "mse_input_uk2"):
        if key in out:
            out[key.replace("mse", "rms").replace("_uk2", "_uk")] = math.sqrt(out[key])
    return out


#: Lightning warnings that say nothing about a cenn run (resuming reuses the checkpoint folder).
_QUIET = (".*LeafSpec.*", ".*exists and is not empty.*", ".*litlogger.*")


def train(cfg: TrainConfig, run_dir: Path | str, overwrite: bool = False, inputs: Inputs = ()) -> Path:
    """Train (or resume) the run in ``run_dir``; returns the exported weights file.

    Everything is checked before the run folder is made or changed: the folder
    (:func:`cenn.outputs.check_output`) and that no other training holds it (:func:`run_lock`), the
    stores (complete and intact), the accelerator, the model and the Trainer's settings. Each store
    is opened and verified once, the initial weights are read once, and the configuration is passed
    down as it is. ``inputs``: other files the run reads, (role, path), e.g. its configuration file,
    which ``overwrite`` never removes. A NaN or infinite loss stops the run
    (:class:`TrainingDiverged`) and no weights are exported."""
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    run_dir = Path(run_dir)
    cfg.check_data()
    check_device(cfg.trainer.accelerator, "--accelerator", accelerator=True)
    inputs = run_inputs(cfg, inputs)
    writer = rank_zero_only.rank == 0  # the other processes of a distributed run only read
    check_output(run_dir, "run", inputs, overwrite)  # first: it names a folder the lock cannot be beside
    if writer:  # the others run beside it, in the folder it holds
        check_not_running(run_dir)
    with run_lock(run_dir) if writer else contextlib.nullcontext():
        return _train_held(cfg, run_dir, overwrite, inputs, writer)


def _train_held(cfg: TrainConfig, run_dir: Path, overwrite: bool, inputs: Inputs, writer: bool) -> Path:
    """:func:`train` once its folder is checked and held (``writer``: the first process of a run)."""
    data = open_run_data(cfg, verify=writer)
    initial, card = load_weights(cfg.model.init_weights) if cfg.model.init_weights else (None, None)
    cfg = resolve_model_params(cfg, data.val_meta, card)
    tune_cpu_allocator()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    task = CENNTask(cfg, in_channels=len(data.val_meta["frequencies_ghz"]),
                    reference_channel=_target_channel(data.val_meta))
    best = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss",
                           mode="min", save_top_k=1, enable_version_counter=False)
    # every epoch's end, after validation: Lightning's own save_last only writes when ``best`` does,
    # so a run killed after an epoch that did not improve would resume from an older one
    latest = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                             save_on_train_epoch_end=False, enable_version_counter=False)
    trainer = _trainer(cfg, run_dir, [best, latest])
    resume = prepare_run_dir(run_dir, cfg, overwrite, inputs)  # the first change to the run folder
    if data.stream is not None and writer:
        atomic_write_text(run_dir / STREAM_CONFIG_FILE, dumps_toml(data.stream.to_dict()))
    if resume is None and initial is not None:  # a resumed run continues from its checkpoint
        load_grown(task.net, initial.state_dict())  # a grown network starts as they were
    try:
        return _fit_and_export(cfg, run_dir, trainer, task, data, best, resume)
    except TrainingDiverged as err:
        raise TrainingDiverged(f"run {run_dir}: {err}") from None


def _lock_file(run_dir: Path) -> Path:
    """The lock file of the run folder ``run_dir``, beside it (the folder itself may be replaced)."""
    run_dir = run_dir.resolve()
    return run_dir.with_name(f".{run_dir.name}.cenn-train.lock")


def _busy(run_dir: Path, holder: str) -> ValueError:
    return ValueError(f"{run_dir} is being trained by another cenn train ({holder}): two trainings never "
                      "share a run folder; wait for it to finish (or stop it), then rerun this command to "
                      "resume the run, or train into another folder")


def check_not_running(run_dir: Path) -> None:
    """Refuse, creating nothing, a run folder that another training holds (:func:`run_lock`)."""
    holder = lock_holder(_lock_file(run_dir))
    if holder:
        raise _busy(run_dir, holder)


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the run folder ``run_dir`` for one training (:func:`cenn.io.locks.exclusive_lock` on
    ``.NAME.cenn-train.lock`` beside it, removed at the end; a killed run's lock is free again), or
    refuse naming the training that holds it."""
    return exclusive_lock(_lock_file(run_dir), lambda holder: _busy(run_dir, holder), remove=True)


def _fit_and_export(cfg: TrainConfig, run_dir: Path, trainer: L.Trainer, task: CENNTask,
                    data: RunData, best: ModelCheckpoint, resume: Path | None) -> Path:
    """Train, then export the best checkpoint's weights and metrics; returns the weights file."""
    loaders = PatchDataModule(cfg, data)
    try:
        trainer.fit(task, datamodule=loaders, ckpt_path=resume)
    except SystemExit:  # Lightning's answer to Ctrl-C (after its own shutdown): an interruption again
        if not trainer.interrupted:
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it meanwhile
        raise KeyboardInterrupt from None
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)  # the final state, also when max_steps stopped before any validation
    best_path = best.best_model_path or str(last)
    raw = trainer.validate(task, datamodule=loaders, ckpt_path=best_path, verbose=False)[0]
    weights = run_dir / WEIGHTS_FILE
    if trainer.is_global_zero:
        _check_exportable(task, best_path)
        metrics = _summarise(raw)
        save_weights(weights, task.net, _card(cfg, data, task, metrics, trainer))
        atomic_write_text(run_dir / METRICS_FILE, json.dumps(
            {**metrics, "best_checkpoint": Path(best_path).name, "epochs": trainer.current_epoch,
             "global_step": trainer.global_step}, indent=2) + "\n")
    return weights


def _trainer(cfg: TrainConfig, run_dir: Path, callbacks: list[ModelCheckpoint]) -> L.Trainer:
    """The Lightning Trainer of the run (it writes nothing until it runs); its own refusals of the
    hardware settings as ConfigError."""
    t = cfg.trainer
    try:
        return L.Trainer(
            max_epochs=t.epochs, max_steps=t.max_steps,
            accelerator=t.accelerator, devices=t.devices,
            num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
            callbacks=[*callbacks, *_timer(t.max_minutes)], plugins=[AtomicCheckpointIO()],
            logger=[CSVLogger(run_dir / "logs", name="csv"),
                    TensorBoardLogger(run_dir / "logs", name="tensorboard", default_hp_metric=False)],
            use_distributed_sampler=False, enable_progress_bar=t.progress,
            log_every_n_steps=t.log_every_n_steps, limit_val_batches=t.limit_val_batches,
            num_sanity_val_steps=0, default_root_dir=run_dir, enable_model_summary=t.progress,
        )
    except MisconfigurationException as err:
        raise ConfigError(f"trainer: {err}") from err


class _InvocationTimer(Timer):
    """Lightning's time limit counted from this invocation's start: a resumed run gets its own
    minutes, where Lightning's would restore the time already spent and stop at once."""

    def load_state_dict(self, state_dict: dict) -> None:
        """Keep the offset at zero whatever the checkpoint says."""


def _timer(max_minutes: float) -> list[Timer]:
    """The clean stop after max_minutes of this invocation (none for 0)."""
    return [_InvocationTimer(duration={"minutes": max_minutes}, interval="step")] if max_minutes else []


def _check_exportable(task: CENNTask, checkpoint: str) -> None:
    """Refuse to export weights that hold NaN or infinite values."""
    bad = nonfinite_tensors(task.net)
    if bad:
        raise TrainingDiverged(f"the weights of {Path(checkpoint).name} hold NaN or infinite values "
                               f"({', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}), so none were "
                               "exported: training diverged; lower the learning rate (optim.lr, --lr) or "
                               "check the training data, then start again with --overwrite or in a new "
                               "folder")
