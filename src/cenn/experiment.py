"""``cenn experiment``: a whole experiment from one TOML file: simulate the datasets, train, evaluate.

The paper's protocol ships as ``paper`` (``src/cenn/configs/paper.toml``): 60,000 training patches,
6,000 test patches watched during training, validation sets of 6,000 (all sky) and 3 × 2,000
(latitude bands), 500 epochs of Adagrad at 0.05 with batch 32, then the evaluation against the
classical methods. ``paper-smoke`` is the same pipeline in miniature (CI runs it).

Every step resumes: stores keep their finished chunks, training restarts from ``last.ckpt``, and a
report folder, written atomically, is only written once. Output folder::

    experiment.toml     the resolved experiment (refused if it changes, unless --overwrite)
    data/<name>.zarr    one store per dataset
    run/                the training run (cenn train)
    report/             the evaluation (cenn evaluate)
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cenn.config import ConfigError, dumps_toml, from_dict, read_toml
from cenn.data.simulate import simulate
from cenn.data.store import atomic_write_text
from cenn.sky.simulator import LATITUDE_BANDS, SimulationConfig

STEPS = ("simulate", "train", "evaluate")
CONFIG_FILE = "experiment.toml"


@dataclass
class DatasetSpec:
    """One dataset store: ``patches`` in latitude band ``band`` (all, inner, intermediate, high) with
    its own ``seed`` (so its CMB and noise are other realisations); ``components`` stores the
    component maps (needed for the paper's Fig. 5 and the noise test)."""

    patches: int
    band: str = "all"
    seed: int = 0
    components: bool = False

    def __post_init__(self) -> None:
        if self.patches < 1:
            raise ValueError(f"patches must be >= 1, got {self.patches}")
        if self.band not in LATITUDE_BANDS:
            raise ValueError(f"band must be one of {sorted(LATITUDE_BANDS)}, got {self.band!r}")


@dataclass
class EvaluateSpec:
    """The evaluation step: ``datasets`` by name, ``methods`` (``cenn`` uses the trained weights),
    ``settings`` (the ``[evaluation]`` table of ``cenn evaluate``) and per-method ``options``."""

    datasets: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["cenn"])
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """An experiment (see the module docstring).

    Attributes:
        simulation: settings shared by every dataset (a ``cenn simulate --config`` table without
            seed and region, which each dataset sets).
        datasets: name → :class:`DatasetSpec`.
        train_dataset, val_dataset: the datasets training reads and watches.
        train: the ``cenn train`` configuration tables (``[train.model]``, ``[train.optim]``, …);
            its data stores are filled in from ``train_dataset`` and ``val_dataset``.
        evaluate: the evaluation step.
        chunk_size: patches per stored chunk.
    """

    datasets: dict[str, DatasetSpec]
    train_dataset: str
    val_dataset: str
    simulation: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)
    chunk_size: int = 64

    def __post_init__(self) -> None:
        self.datasets = {k: v if isinstance(v, DatasetSpec) else from_dict(DatasetSpec, v, f"datasets.{k}")
                         for k, v in self.datasets.items()}
        for role, name in (("train_dataset", self.train_dataset), ("val_dataset", self.val_dataset),
                           *(("evaluate.datasets", d) for d in self.evaluate.datasets)):
            if name not in self.datasets:
                raise ValueError(f"{role}: no dataset named {name!r}; defined: {sorted(self.datasets)}")
        if {"seed", "region"} & set(self.simulation):
            raise ValueError("simulation: seed and region are set per dataset, not in [simulation]")
        seeds = [d.seed for d in self.datasets.values()]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"datasets need distinct seeds (other CMB and noise realisations), got {seeds}")

    @classmethod
    def load(cls, name_or_path: str | Path) -> ExperimentConfig:
        """A shipped experiment by name (``paper``, ``paper-smoke``) or a TOML file."""
        return from_dict(cls, read_toml(resolve_config(name_or_path)), "experiment")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def simulation_config(self, name: str) -> SimulationConfig:
        spec = self.datasets[name]
        lat_min, lat_max = LATITUDE_BANDS[spec.band]
        return SimulationConfig.from_dict({**self.simulation, "seed": spec.seed,
                                           "region": {"lat_min": lat_min, "lat_max": lat_max}})


def shipped_configs() -> list[str]:
    """Names of the experiments shipped with the package."""
    folder = resources.files("cenn").joinpath("configs")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_config(name_or_path: str | Path) -> Path:
    """The TOML file of a shipped experiment name, or the given path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    shipped = resources.files("cenn").joinpath("configs", f"{name_or_path}.toml")
    if not shipped.is_file():
        raise ConfigError(f"no experiment {name_or_path!r}: give a TOML file or one of {shipped_configs()}")
    return Path(str(shipped))


def _store(out: Path, name: str) -> Path:
    return out / "data" / f"{name}.zarr"


def _prepare_out(out: Path, config: ExperimentConfig, overwrite: bool) -> None:
    """Create ``out`` with the resolved configuration, or check it matches the one already there."""
    text = dumps_toml(config.to_dict())
    saved = out / CONFIG_FILE
    if saved.exists() and saved.read_text() != text:
        if not overwrite:
            raise ConfigError(f"{out} holds a different experiment ({saved}): use another folder, or "
                              "--overwrite to start over")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, text)


def run_simulate(config: ExperimentConfig, out: Path, device: str, workers: int, progress: bool) -> None:
    for name, spec in config.datasets.items():
        simulate(_store(out, name), spec.patches, config.simulation_config(name), device=device,
                 workers=workers, chunk_size=config.chunk_size, with_components=spec.components,
                 progress=progress)


def run_train(config: ExperimentConfig, out: Path, progress: bool) -> Path:
    from cenn.train import TrainConfig, train

    weights = out / "run" / "weights.safetensors"
    if weights.exists():  # exported once training has finished
        return weights
    tables = {k: dict(v) if isinstance(v, dict) else v for k, v in config.train.items()}
    tables.setdefault("data", {}).update(train=str(_store(out, config.train_dataset)),
                                         val=str(_store(out, config.val_dataset)), stream=False)
    tables.setdefault("trainer", {}).setdefault("progress", progress)
    return train(TrainConfig.from_dict(tables, "experiment.train"), out / "run")


def run_evaluate(config: ExperimentConfig, out: Path, device: str, progress: bool) -> Path:
    from cenn.evaluate.config import EvaluationConfig
    from cenn.evaluate.run import evaluate
    from cenn.separators import build_separator

    report = out / "report"
    if report.exists():  # written atomically: it exists only once complete
        return report
    spec = config.evaluate
    separators = {}
    for name in spec.methods:
        options = dict(spec.options.get(name, {}))
        if name == "cenn":
            options.setdefault("weights", str(out / "run" / "weights.safetensors"))
        if name in ("cenn", "wiener"):
            options.setdefault("device", device)
        separators[name] = build_separator(name, **options)
    evaluate([(name, _store(out, name)) for name in spec.datasets], separators, report,
             EvaluationConfig.from_dict(spec.settings), device=device, progress=progress)
    return report


def run_experiment(config: ExperimentConfig, out: Path | str, steps: tuple[str, ...] = STEPS,
                   device: str = "cpu", workers: int = 0, progress: bool = True,
                   overwrite: bool = False) -> Path:
    """Run (or resume) the ``steps`` of the experiment into ``out``; returns ``out``."""
    out = Path(out)
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    _prepare_out(out, config, overwrite)
    if "simulate" in steps:
        run_simulate(config, out, device, workers, progress)
    if "train" in steps:
        run_train(config, out, progress)
    if "evaluate" in steps:
        run_evaluate(config, out, device, progress)
    return out


def add_experiment_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="simulate, train and evaluate from one TOML file (the paper's "
                       "protocol: `cenn experiment paper --out runs/paper`)")
    p.add_argument("config", help="experiment TOML, or a shipped one: paper, paper-smoke")
    p.add_argument("--out", required=True, help="experiment folder (rerun the command to resume)")
    p.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of "
                   f"{','.join(STEPS)}")
    p.add_argument("--device", default="cpu", help="simulation and evaluation device (training: "
                   "[train.trainer] accelerator)")
    p.add_argument("--workers", type=int, default=0, help="simulation worker processes")
    p.add_argument("--overwrite", action="store_true", help="start over if the folder holds another "
                   "experiment")
    p.add_argument("--no-progress", action="store_true")


def run_experiment_command(args: argparse.Namespace) -> int:
    config = ExperimentConfig.load(args.config)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    out = run_experiment(config, args.out, steps, device=args.device, workers=args.workers,
                         progress=not args.no_progress, overwrite=args.overwrite)
    if (out / "report" / "report.md").exists():
        print(f"report: {out / 'report' / 'report.html'}")
    return 0
