"""``cenn experiment``: a whole experiment from one TOML file: simulate the datasets, train, evaluate.

The paper's protocol ships as ``paper`` (``src/cenn/configs/paper.toml``): 60,000 training patches,
6,000 test patches watched during training, validation sets of 6,000 (all sky) and 3 × 2,000
(latitude bands), 500 epochs of Adagrad at 0.05 with batch 32, then the evaluation against the
classical methods. ``paper-smoke`` is the same pipeline in miniature (CI runs it).

Every step's settings are checked before the first store is simulated. Every step resumes: stores
keep their finished chunks, training restarts from ``last.ckpt``, and a report folder, written
atomically, is only written once. A folder holding another experiment keeps the outputs the change
leaves as they were; those made with changed settings are refused, or redone with ``--overwrite``
(which removes only them, and only what cenn wrote: :mod:`cenn.outputs`). Output folder::

    experiment.toml     the resolved experiment (refused if it changes, unless --overwrite)
    data/<name>.zarr    one store per dataset
    run/                the training run (cenn train)
    report/             the evaluation (cenn evaluate)
"""

from __future__ import annotations

import argparse
import inspect
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cenn.config import ConfigBase, ConfigError, dumps_toml, from_dict, read_toml
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore, StoreError
from cenn.io.atomic import atomic_write_text
from cenn.outputs import MARKER, Inputs, check_apart, check_output, mark, remove_output
from cenn.runtime import check_device
from cenn.sky.simulator import LATITUDE_BANDS, SimulationConfig

STEPS = ("simulate", "train", "evaluate")
CONFIG_FILE = "experiment.toml"
WEIGHTS_FILE = "weights.safetensors"


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
class ExperimentConfig(ConfigBase):
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

    SECTION = "experiment"

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
        return cls.from_dict(read_toml(resolve_config(name_or_path)))

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


def _stale(out: Path, config: ExperimentConfig) -> list[Path]:
    """The outputs in ``out`` made with settings other than ``config``'s (:func:`_stale_outputs`);
    none when ``out`` holds no experiment or this one."""
    text = dumps_toml(config.to_dict())
    saved = out / CONFIG_FILE
    if not saved.is_file() or saved.read_text() == text:
        return []
    return _stale_outputs(read_toml(saved), tomllib.loads(text), out)


def _check_stale(out: Path, config: ExperimentConfig, overwrite: bool) -> list[Path]:
    """The outputs ``overwrite`` redoes where ``out`` holds another experiment (:func:`_stale`);
    refused without ``overwrite``."""
    stale = _stale(out, config)
    if stale and not overwrite:
        names = ", ".join(str(p.relative_to(out)) for p in stale)
        raise ConfigError(f"{out} holds a different experiment ({out / CONFIG_FILE}): {names} were made "
                          "with other settings; use another folder, or --overwrite to redo them (only they "
                          "are removed)")
    return stale


def _prepare_out(out: Path, config: ExperimentConfig, stale: list[Path], inputs: Inputs = ()) -> None:
    """Create ``out`` (marked as cenn's) with the resolved configuration, removing the ``stale``
    outputs (:func:`_check_stale`); the others are kept and reused."""
    for path in stale:
        _remove_output(path, inputs)
    out.mkdir(exist_ok=True)
    if not (out / MARKER).exists():
        mark(out, "experiment")
    atomic_write_text(out / CONFIG_FILE, dumps_toml(config.to_dict()))


def _finished_store(path: Path) -> bool:
    """Whether ``path`` holds a complete dataset store."""
    try:
        return DatasetStore.open(path).complete
    except StoreError:
        return False


def check_step_order(config: ExperimentConfig, out: Path, steps: tuple[str, ...],
                     config_file: str | Path | None = None, stale: list[Path] | None = None) -> None:
    """Refuse, before any work, steps whose inputs no earlier step made: ``train`` or ``evaluate``
    without ``simulate`` where a store they read is missing or unfinished, ``evaluate`` without
    ``train`` where the network's weights are missing; the message names the missing step and the
    command that makes it. Outputs that ``--overwrite`` would redo (changed settings) count as
    missing."""
    stale = set(_stale(out, config) if stale is None else stale)
    command = f"cenn experiment {config_file or 'CONFIG'} --out {out}"
    weights = out / "run" / WEIGHTS_FILE
    trains = "train" in steps and not (weights.exists() and weights.parent not in stale)
    evaluates = "evaluate" in steps and not ((out / "report").exists() and out / "report" not in stale)
    if "simulate" not in steps:
        needed = ({config.train_dataset, config.val_dataset} if trains else set()) | (
            set(config.evaluate.datasets) if evaluates else set())
        missing = [n for n in sorted(needed)
                   if _store(out, n) in stale or not _finished_store(_store(out, n))]
        if missing:
            raise ValueError(f"--steps {','.join(steps)} needs the dataset(s) {', '.join(missing)} "
                             f"({out / 'data'}), which the simulate step makes and which are missing or "
                             f"unfinished: run `{command} --steps simulate` first, or add simulate to "
                             "--steps")
    network = "cenn" in config.evaluate.methods and "weights" not in config.evaluate.options.get("cenn", {})
    if evaluates and network and "train" not in steps and (not weights.exists() or weights.parent in stale):
        raise ValueError(f"--steps {','.join(steps)} evaluates the trained network, but {weights}, which the "
                         f"train step makes, is missing: run `{command} --steps train` first (after the "
                         "simulate step), or add train to --steps")


def _stale_outputs(old: dict[str, Any], new: dict[str, Any], out: Path) -> list[Path]:
    """The outputs in ``out`` that the experiment ``new`` would make otherwise than ``old`` did
    (both as read from TOML): the stores of changed datasets (or of all, when the shared simulation
    changed), the run when its settings or stores changed, the report when anything it shows did."""
    shared = any(old.get(k) != new.get(k) for k in ("simulation", "chunk_size"))
    datasets = {n for n, spec in new["datasets"].items() if shared or old.get("datasets", {}).get(n) != spec}
    run = (any(old.get(k) != new.get(k) for k in ("train", "train_dataset", "val_dataset"))
           or bool({new["train_dataset"], new["val_dataset"]} & datasets))
    shown = set(new["evaluate"]["datasets"])
    report = run or old.get("evaluate") != new.get("evaluate") or bool(shown & datasets)
    outputs = [_store(out, n) for n in sorted(datasets)] + [out / "run"] * run + [out / "report"] * report
    return [p for p in outputs if p.exists()]


def _remove_output(path: Path, inputs: Inputs) -> None:
    """Remove a store, the run or the report of an experiment (only if cenn wrote it and it holds no
    input)."""
    if path.parent.name == "data":
        check_apart(path, inputs, "store")
        DatasetStore.open(path)  # a cenn store, nothing else
        DatasetStore.remove(path)
    else:
        remove_output(path, path.name, inputs)


def input_files(config: ExperimentConfig, config_file: str | Path | None = None) -> list[tuple[str, Any]]:
    """(role, path) of the files the experiment reads, which no output may hold: its configuration
    file, the maps of its simulation, and the weights and simulation files of its steps."""
    found: list[tuple[str, Any]] = [("the experiment's configuration", config_file)]
    for name, entry in config.simulation.get("components", {}).items():
        maps = entry.get("maps") if isinstance(entry, dict) else None
        for path in (maps.values() if isinstance(maps, dict) else [maps]):
            found.append((f"simulation.components.{name}.maps", path))
    found.append(("train.model.init_weights", config.train.get("model", {}).get("init_weights")))
    found.append(("train.data.simulation", config.train.get("data", {}).get("simulation")))
    for method, options in config.evaluate.options.items():
        found.append((f"evaluate.options.{method}.weights", options.get("weights")))
    return [(role, path) for role, path in found if isinstance(path, str | Path)]


def check_steps(config: ExperimentConfig, out: Path, device: str) -> None:
    """Build every step's settings, so that a mistake in any step is refused before the first store
    is simulated: the device, each dataset's simulation, the training configuration (its model's
    name and parameters, its accelerator), the evaluation settings and each method's options."""
    from cenn.evaluate.config import EvaluationConfig
    from cenn.model.registry import model_parameters

    check_device(device, "--device")
    for name in config.datasets:
        config.simulation_config(name).resolved_components()
    train = train_config(config, out, progress=False)
    accepted = model_parameters(train.model.name)
    unknown = sorted(set(train.model.params) - set(accepted))
    if unknown:
        raise ConfigError(f"train.model.params: model {train.model.name!r} has no parameter(s) "
                          f"{', '.join(unknown)}; its parameters are: {', '.join(accepted)}")
    check_device(train.trainer.accelerator, "[train.trainer] accelerator", accelerator=True)
    EvaluationConfig.from_dict(config.evaluate.settings)
    _check_methods(config.evaluate)


def _check_methods(spec: EvaluateSpec) -> None:
    """Refuse an unknown method (among the methods or the options) or options a method does not take
    (the network's weights are those trained, so they are only checked once they exist)."""
    from cenn.separators import NetworkSeparator, build_separator

    for name in [*spec.methods, *sorted(set(spec.options) - set(spec.methods))]:
        options = dict(spec.options.get(name, {}))
        if name != "cenn" or "weights" in options:
            build_separator(name, **options)
            continue
        try:
            inspect.signature(NetworkSeparator).bind(weights="", **options)
        except TypeError as err:
            raise ValueError(f"method 'cenn': bad options {sorted(options)}: {err}") from err


def run_simulate(config: ExperimentConfig, out: Path, device: str, workers: int, progress: bool) -> None:
    (out / "data").mkdir(exist_ok=True)
    for name, spec in config.datasets.items():
        simulate(_store(out, name), spec.patches, config.simulation_config(name), device=device,
                 workers=workers, chunk_size=config.chunk_size, with_components=spec.components,
                 progress=progress)


def train_config(config: ExperimentConfig, out: Path, progress: bool) -> Any:
    """The ``cenn train`` configuration of the experiment's training step."""
    from cenn.train import TrainConfig

    tables = {k: dict(v) if isinstance(v, dict) else v for k, v in config.train.items()}
    tables.setdefault("data", {}).update(train=str(_store(out, config.train_dataset)),
                                         val=str(_store(out, config.val_dataset)), stream=False)
    tables.setdefault("trainer", {}).setdefault("progress", progress)
    return TrainConfig.from_dict(tables, "experiment.train")


def run_train(config: ExperimentConfig, out: Path, progress: bool) -> Path:
    from cenn.train import train

    weights = out / "run" / WEIGHTS_FILE
    if weights.exists():  # exported once training has finished
        return weights
    return train(train_config(config, out, progress), out / "run")


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
                   overwrite: bool = False, config_file: str | Path | None = None) -> Path:
    """Run (or resume) the ``steps`` of the experiment into ``out``; returns ``out``. Every step's
    settings are checked first (:func:`check_steps`); ``config_file``, the experiment's TOML, is
    never removed with ``overwrite``."""
    out = Path(out)
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    check_device(device, "--device")
    inputs = input_files(config, config_file)
    check_output(out, "experiment", inputs)  # a file, a missing or unwritable parent, a folder not cenn's
    check_steps(config, out, device)
    stale = _check_stale(out, config, overwrite)
    check_step_order(config, out, steps, config_file, stale)
    _prepare_out(out, config, stale, inputs)
    if "simulate" in steps:
        run_simulate(config, out, device, workers, progress)
    if "train" in steps:
        run_train(config, out, progress)
    if "evaluate" in steps:
        run_evaluate(config, out, device, progress)
    return out


def check_step_options(steps: tuple[str, ...], workers: int, device: str) -> None:
    """Refuse ``--workers`` below 0, or given without the simulate step, and ``--device`` given
    with only the train step (which runs on ``[train.trainer] accelerator``): they would be ignored."""
    if workers < 0:
        raise ValueError(f"--workers must be >= 0 (0: simulate in this process), got {workers}")
    if workers and "simulate" not in steps:
        raise ValueError(f"--workers sets the simulate step's processes, but --steps {','.join(steps)} "
                         "does not simulate: drop --workers or add simulate to --steps")
    if device != "cpu" and set(steps) == {"train"}:
        raise ValueError(f"--device {device} is the simulate and evaluate steps' device; the train step "
                         "runs on [train.trainer] accelerator of the experiment file: set it there")


def run_experiment_command(args: argparse.Namespace) -> int:
    config = ExperimentConfig.load(args.config)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    check_step_options(steps, args.workers, args.device)
    out = run_experiment(config, args.out, steps, device=args.device, workers=args.workers,
                         progress=not args.no_progress, overwrite=args.overwrite,
                         config_file=resolve_config(args.config))
    if (out / "report" / "report.md").exists():
        print(f"report: {out / 'report' / 'report.html'}")
    return 0
