"""`cenn demo`: the first experience, on built-in defaults.

Simulates small validation sets in the paper's four regions (all sky and the three latitude
bands, component maps stored; with Q and U where the package ships a polarization model), separates
them with the networks shipped in the package and with the classical baselines, writes the
evaluation report (the paper's Sect. 4 tables and figures, its published numbers beside ours, and
its polarization section) and returns the metrics for the terminal summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cenn.config import ConfigError, dumps_toml, read_toml
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.report import check_report_out
from cenn.evaluate.run import evaluate
from cenn.io.atomic import atomic_write_text
from cenn.outputs import MARKER, Inputs, OutputError, check_output, foreign_entries, mark
from cenn.pretrained import is_shipped, resolve_weights, shipped_weights
from cenn.runtime import DEFAULT_PRECISION, check_device
from cenn.separation import Separator
from cenn.separators import build_separator
from cenn.sky.simulator import LATITUDE_BANDS, RegionConfig, SimulationConfig

REGIONS = ("all", "inner", "intermediate", "high")
METHODS = ("cenn", "cenn-unbiased", "ilc", "hilc", "nilc", "dnilc", "wiener", "target-band")
#: Simulations per dataset that calibrate the oracle Wiener filter in the demo (256 by default).
WIENER_CALIBRATION = 64


def default_methods() -> tuple[str, ...]:
    """:data:`METHODS`, less the unbiased network where this installation ships no weights for it."""
    return tuple(m for m in METHODS if m != "cenn-unbiased" or is_shipped("unbiased"))


def demo_separators(methods: tuple[str, ...], weights: str | Path | None, device: str,
                    precision: str = DEFAULT_PRECISION) -> dict[str, Separator]:
    """The demo's methods: the networks (``cenn``: ``weights``, default the shipped reference model,
    and the shipped polarization model for Q and U where there is one; ``cenn-unbiased``: the shipped
    unbiased model; all in ``precision``) and the baselines."""
    separators = {}
    for name in methods:
        options: dict[str, Any] = {}
        if name == "cenn":
            options = {"weights": resolve_weights(weights), "device": device, "precision": precision}
            if is_shipped("polarization"):
                options["polarization_weights"] = shipped_weights("polarization")
        elif name == "cenn-unbiased":
            options = {"device": device, "precision": precision}
        elif name == "wiener":
            options = {"calibration_patches": WIENER_CALIBRATION, "device": device}
        separators[name] = build_separator(name, **options)
    return separators


#: What ``demo.toml`` holds: a file of that name with anything else is the user's.
SETTINGS_KEYS = frozenset({"n_per_band", "seed", "device", "methods", "weights"})


def _demo_entry(path: Path) -> bool:
    """Whether ``path``, in the demo's ``data/``, is a store the demo wrote (or cenn's temporary
    folder or lock file beside one)."""
    stores = {f"{region}.zarr" for region in REGIONS}
    if path.name.startswith("."):
        name = path.name[1:].removesuffix(".cenn-creating").removesuffix(".cenn-create.lock")
        return name in stores
    return path.name in stores and path.is_dir() and DatasetStore.written_by_cenn(path)


def check_demo_out(out: Path, inputs: Inputs = ()) -> None:
    """Refuse, before any work, a demo folder ``out`` that is a file, lies in a missing or unwritable
    folder, is, holds or lies inside an input, or exists and is not a demo folder of cenn's files only
    (a new or empty folder is fine): the demo writes ``demo.toml``, ``data/`` and ``report/`` there,
    and never over a file of the user's, with or without ``--overwrite`` (which only lets it replace
    the data of an earlier demo with other ``--patches`` or ``--seed``)."""
    check_output(out, "demo", inputs)  # an existing, non-empty folder must be a cenn demo folder
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = foreign_entries(out, "demo")
    data, settings = out / "data", out / "demo.toml"
    if data.is_dir():
        foreign += [f"data/{p.name}" for p in sorted(data.iterdir()) if not _demo_entry(p)]
    elif data.exists():
        foreign.append("data")
    if settings.exists():
        try:
            ours = set(read_toml(settings)) == SETTINGS_KEYS
        except (ConfigError, OSError, ValueError):
            ours = False
        foreign += [] if ours else ["demo.toml"]
    if foreign:
        listed = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        them = "it" if len(foreign) == 1 else "them"
        raise OutputError(f"{out} holds {listed}, which cenn did not write: move {them} out of the folder, "
                          "or choose another --out")
    if (out / "report").exists():
        check_report_out(out / "report", True, inputs)  # only a cenn report of cenn's own files


def run_demo(
    out: Path | str = "cenn-demo",
    n_per_band: int = 24,
    seed: int = 0,
    device: str = "cpu",
    methods: tuple[str, ...] | None = None,
    weights: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """Run the demo into ``out`` (``data/``, ``report/``, ``demo.toml``); returns the metrics. A rerun
    with the same settings reuses the simulated data; other sizes or seeds need ``overwrite``. The
    networks run in ``precision`` (:data:`cenn.runtime.PRECISIONS`; the report's method settings
    record the one chosen). The device and the folder are checked before any work
    (:func:`check_demo_out`)."""
    if n_per_band < 1:
        raise ValueError(f"the demo needs at least one patch per region, got {n_per_band}")
    check_device(str(device), "--device")
    out = Path(out)
    inputs = [("--weights", weights)]
    check_demo_out(out, inputs)
    separators = demo_separators(default_methods() if methods is None else tuple(methods), weights, device,
                                 precision)
    (out / "data").mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).exists():
        mark(out, "demo")
    stokes = "IQU" if getattr(separators.get("cenn"), "polarization", None) is not None else "I"
    data = []
    for k, region in enumerate(REGIONS):
        config = SimulationConfig(seed=seed + 101 + k, region=RegionConfig(*LATITUDE_BANDS[region]),
                                  stokes=stokes)
        store = simulate(out / "data" / f"{region}.zarr", n_per_band, config, device=device,
                         chunk_size=min(64, n_per_band), with_components=True, progress=progress,
                         overwrite=overwrite, inputs=inputs)
        data.append((region, store.path))
    settings = EvaluationConfig(noise_max_patches=min(8, n_per_band), batch_size=min(32, n_per_band))
    atomic_write_text(out / "demo.toml", dumps_toml(
        {"n_per_band": n_per_band, "seed": seed, "device": device, "methods": list(separators),
         "weights": str(resolve_weights(weights)) if "cenn" in separators else "none"}))
    return evaluate(data, separators, out / "report", settings, device=device, progress=progress,
                    overwrite=True, inputs=inputs)
