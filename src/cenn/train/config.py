"""Training configuration: one TOML file (``cenn train --config``), saved resolved with every run.

Defaults are the paper's (Sect. 3.2 of Casas et al. 2022): ``cenn-paper``, min-max normalisation, MSE,
Adagrad with learning rate 0.05, L2 kernel regularisation 1e-5, batch 32, 500 epochs, best
checkpoint by validation loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cenn.config import ConfigBase, ConfigError, check_finite, read_toml
from cenn.data.normalization import build_normalization
from cenn.data.stokes import check_stokes, maps_per_band
from cenn.train.losses import LOSSES

OPTIMIZERS = ("adagrad", "adam", "adamw", "sgd")
#: Seeds are whole numbers in [0, 2³²): numpy's and Lightning's range (Lightning replaces others by 0).
MAX_SEED = 2**32 - 1
SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "64-true")
SIMULATE_ON = ("workers", "device")


def check_seed(where: str, seed: int) -> None:
    """Refuse a seed outside [0, :data:`MAX_SEED`], naming ``where`` it was set."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{where} must be a whole number from 0 to {MAX_SEED}, got {seed}")


@dataclass
class ModelConfig:
    """A registered architecture (``cenn.model.available_models()``) and its parameters;
    ``init_weights``: a weights file to start from (its card sets the architecture and parameters,
    which must agree with ``name``/``params`` where those are given)."""

    name: str = "cenn-paper"
    params: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None


@dataclass
class NormalizationConfig:
    """A registered normalisation (``cenn.data.normalization``) and its parameters (the
    normalisation's own defaults where not given: ``minmax`` scales the target with band 1, 217 GHz
    in 143/217/353)."""

    name: str = "minmax"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where patches come from.

    Either a fixed training store (``train``, the paper's mode) or fresh patches from the
    simulator at every step (``stream = true``); validation always uses the fixed store ``val``.

    Attributes:
        train: dataset store written by ``cenn simulate`` (store mode).
        val: validation dataset store (required).
        stream: simulate training patches on the fly instead of reading ``train``.
        simulation: simulation TOML for streaming; default: the validation store's own
            configuration with ``stream_seed``.
        stream_seed: seed of the streamed patches; must differ from the validation seed.
            Default: validation seed + 1,000,003.
        samples_per_epoch: streamed patches per epoch (an epoch ends with validation and a
            checkpoint).
        simulate_on: ``workers`` (CPU DataLoader workers) or ``device`` (on the training GPU).
        num_workers: DataLoader worker processes.
        shuffle_window: store mode: patches are shuffled within windows of this many stored
            chunks (a chunk is read whole), and the windows are shuffled.
        stokes: what the network separates: ``"I"`` (temperature) or ``"QU"`` (the bands' Q then U
            in, the CMB's Q and U out: :mod:`cenn.data.stokes`); ``"QU"`` reads stores simulated with
            ``--stokes IQU`` and streams a simulation with ``stokes = "IQU"`` (set for it).
    """

    train: str | None = None
    val: str | None = None
    stream: bool = False
    simulation: str | None = None
    stream_seed: int | None = None
    samples_per_epoch: int = 8192
    simulate_on: str = "workers"
    num_workers: int = 0
    shuffle_window: int = 8
    stokes: str = "I"

    def __post_init__(self) -> None:
        check_stokes(self.stokes, "data.stokes")
        if self.simulate_on not in SIMULATE_ON:
            raise ValueError(f"simulate_on must be one of {SIMULATE_ON}, got {self.simulate_on!r}")
        if self.samples_per_epoch < 1 or self.num_workers < 0 or self.shuffle_window < 1:
            raise ValueError("samples_per_epoch and shuffle_window must be >= 1, num_workers >= 0")
        if self.stream_seed is not None:
            check_seed("data.stream_seed (--set data.stream_seed)", self.stream_seed)

    def check_stream_options(self) -> None:
        """Refuse options of streamed training patches without ``stream`` (they would be ignored:
        training reads ``train``), and a ``train`` store with ``stream`` (it would not be read)."""
        if self.stream:
            if self.train is not None:
                raise ConfigError(f"data.train (--train {self.train}) is not read when training patches are "
                                  "streamed (data.stream, --stream): drop one of them")
            return
        streamed = {"simulation": self.simulation is not None, "stream_seed": self.stream_seed is not None,
                    "samples_per_epoch": self.samples_per_epoch != DataConfig.samples_per_epoch,
                    "simulate_on": self.simulate_on != DataConfig.simulate_on}
        given = [f"data.{k} (--{k.replace('_', '-')})" if k != "stream_seed" else f"data.{k}"
                 for k, v in streamed.items() if v]
        if given:
            apply, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
            raise ConfigError(f"{', '.join(given)} only {apply} to streamed training patches (data.stream "
                              f"= true, --stream); this run reads the store {self.train}: add --stream, or "
                              f"drop {them}")


@dataclass
class LossConfig:
    """The training loss (:mod:`cenn.train.losses`), computed in the normalisation's network space
    (µK_CMB for ``identity``, units of ``scale_uk`` for ``scale`` and ``asinh``). A network with a σ
    output also minimises ``sigma_weight`` × the Gaussian negative log-likelihood of the target
    under its mean (detached: the mean is trained by ``name`` alone) and its σ; the weight bounds how
    much the σ head's gradients move the layers it shares with the mean."""

    name: str = "mse"
    sigma_weight: float = 0.05

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"loss name must be one of {tuple(sorted(LOSSES))}, got {self.name!r}")
        if not (isinstance(self.sigma_weight, int | float) and 0 <= self.sigma_weight < float("inf")):
            raise ValueError(f"loss.sigma_weight must be a finite number >= 0, got {self.sigma_weight!r}")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    ``l2`` is Keras's kernel regulariser: ``l2 · Σ w²`` over convolution kernels (not biases) added
    to the loss. ``params`` go to the torch optimiser (e.g. ``weight_decay`` for AdamW); Adagrad
    defaults to Keras's initial accumulator 0.1 and epsilon 1e-7. ``schedule``: ``constant`` (the
    paper's), ``onecycle`` (warm-up over ``warmup_fraction`` of the steps to ``lr``, then cosine
    annealing to ``lr / 1e4``) or ``cosine`` (annealing from ``lr`` to 0), both over the run's
    planned steps.
    """

    name: str = "adagrad"
    lr: float = 0.05
    l2: float = 1e-5
    params: dict[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    warmup_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer name must be one of {OPTIMIZERS}, got {self.name!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        check_finite("optim.lr (--lr)", self.lr, 0.0, strict=True)
        check_finite("optim.l2", self.l2, 0.0)
        if not 0 < self.warmup_fraction < 1:
            raise ValueError(f"optim.warmup_fraction must lie in (0, 1), got {self.warmup_fraction!r}")


@dataclass
class TrainerConfig:
    """The training loop and the hardware it runs on (Lightning Trainer options).

    ``devices``: a count or "auto"; ``strategy``: "auto", "ddp", "ddp_spawn", …;
    ``num_nodes`` > 1 for clusters (SLURM and torchrun are detected by Lightning).
    ``compile``: ``torch.compile`` the network; ``channels_last``: NHWC memory format.
    ``max_steps`` > 0 stops early (smoke runs); ``max_minutes`` > 0 stops cleanly after that wall
    time (the last epoch's checkpoint, the best weights and the metrics are written as at any end);
    ``limit_val_batches`` caps validation.
    """

    epochs: int = 500
    max_steps: int = -1
    max_minutes: float = 0.0
    batch_size: int = 32
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    compile: bool = False
    channels_last: bool = False
    seed: int = 0
    log_every_n_steps: int = 50
    limit_val_batches: int | float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for key, value in (("epochs", self.epochs), ("batch_size", self.batch_size),
                           ("num_nodes", self.num_nodes), ("log_every_n_steps", self.log_every_n_steps)):
            if value < 1:
                untrained = ": a run of 0 epochs would export an untrained network" if key == "epochs" else ""
                raise ValueError(f"trainer.{key} (--{key.replace('_', '-')}) must be >= 1, got "
                                 f"{value}{untrained}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"trainer.max_steps (--max-steps) must be >= 1, or -1 for no limit, got "
                             f"{self.max_steps}: a run of 0 steps would export an untrained network")
        if not (self.max_minutes >= 0 and math.isfinite(self.max_minutes)):
            raise ValueError(f"trainer.max_minutes (--max-time) must be a finite number >= 0 (0: no time "
                             f"limit), got {self.max_minutes!r}")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError(f"trainer.devices (--devices) must be >= 1 or 'auto', got {self.devices}")
        if not (0 < self.limit_val_batches < math.inf):
            raise ValueError(f"trainer.limit_val_batches must be > 0 (a fraction of the validation store, "
                             f"or a number of batches), got {self.limit_val_batches!r}: the best network is "
                             "chosen by its validation loss")
        check_seed("trainer.seed (--seed)", self.seed)


@dataclass
class TrainConfig(ConfigBase):
    """Everything a training run needs; ``[model]``, ``[normalization]``, ``[loss]``, ``[data]``,
    ``[optim]`` and ``[trainer]`` tables in TOML."""

    model: ModelConfig = field(default_factory=ModelConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    SECTION = "train"

    @classmethod
    def load(cls, path: Path | str) -> TrainConfig:
        return cls.from_dict(read_toml(path), str(path))

    def check_data(self) -> None:
        """Refuse configurations that name no usable data."""
        d = self.data
        if d.val is None:
            raise ConfigError("data.val: a validation dataset store is required (cenn simulate "
                              "val.zarr -n 1024 --seed 1, then --val val.zarr)")
        if not d.stream and d.train is None:
            raise ConfigError("data: give a training store (data.train / --train) or stream fresh "
                              "patches from the simulator (data.stream = true / --stream)")
        d.check_stream_options()
        if maps_per_band(d.stokes) == 2:
            self.check_polarization()

    def check_polarization(self) -> None:
        """Refuse what a Q/U run (``data.stokes = "QU"``) cannot use: a normalisation unfit for signed
        maps (min-max) and a U-Net's σ output (one σ map for two Stokes maps)."""
        norm = self.normalization
        if not build_normalization(norm.name, **norm.params).signed:
            raise ConfigError(f"normalization {norm.name!r} is not meaningful for Q and U (signed, zero-mean "
                              "maps; see cenn.data.normalization): use asinh, scale or identity")
        if self.model.params.get("sigma_output"):
            raise ConfigError("model.params.sigma_output is for temperature U-Nets only: a Q/U U-Net has "
                              "no σ output (sp-nilc-unet has one for Q and one for U); drop it for "
                              "data.stokes = \"QU\"")
