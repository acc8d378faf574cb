"""`cenn demo`: the first experience, on built-in defaults.

Simulates small validation sets in the paper's four regions (all sky and the three latitude
bands, component maps stored), separates them with the reference network shipped in the package
and with the classical baselines, writes the evaluation report (the paper's Sect. 4 tables and
figures, its published numbers beside ours) and returns the metrics for the terminal summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cenn.config import dumps_toml
from cenn.data.simulate import simulate
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.io.atomic import atomic_write_text
from cenn.pretrained import resolve_weights
from cenn.separation import Separator
from cenn.separators import build_separator
from cenn.sky.simulator import LATITUDE_BANDS, RegionConfig, SimulationConfig

REGIONS = ("all", "inner", "intermediate", "high")
METHODS = ("cenn", "ilc", "hilc", "nilc", "wiener", "target-band")
#: Simulations per dataset that calibrate the oracle Wiener filter in the demo (256 by default).
WIENER_CALIBRATION = 64


def demo_separators(methods: tuple[str, ...], weights: str | Path | None,
                    device: str) -> dict[str, Separator]:
    """The demo's methods: the network (``weights``, default the shipped reference model) and the
    baselines."""
    separators = {}
    for name in methods:
        options: dict[str, Any] = {}
        if name == "cenn":
            options = {"weights": resolve_weights(weights), "device": device}
        elif name == "wiener":
            options = {"calibration_patches": WIENER_CALIBRATION, "device": device}
        separators[name] = build_separator(name, **options)
    return separators


def run_demo(
    out: Path | str = "cenn-demo",
    n_per_band: int = 24,
    seed: int = 0,
    device: str = "cpu",
    methods: tuple[str, ...] = METHODS,
    weights: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the demo into ``out`` (``data/``, ``report/``, ``demo.toml``); returns the metrics. A rerun
    with the same settings reuses the simulated data; other sizes or seeds need ``overwrite``."""
    if n_per_band < 1:
        raise ValueError(f"the demo needs at least one patch per region, got {n_per_band}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    separators = demo_separators(tuple(methods), weights, device)
    data = []
    for k, region in enumerate(REGIONS):
        config = SimulationConfig(seed=seed + 101 + k, region=RegionConfig(*LATITUDE_BANDS[region]))
        store = simulate(out / "data" / f"{region}.zarr", n_per_band, config, device=device,
                         chunk_size=min(64, n_per_band), with_components=True, progress=progress,
                         overwrite=overwrite)
        data.append((region, store.path))
    settings = EvaluationConfig(noise_max_patches=min(8, n_per_band), batch_size=min(32, n_per_band))
    atomic_write_text(out / "demo.toml", dumps_toml(
        {"n_per_band": n_per_band, "seed": seed, "device": device, "methods": list(separators),
         "weights": str(resolve_weights(weights)) if "cenn" in separators else "none"}))
    return evaluate(data, separators, out / "report", settings, device=device, progress=progress,
                    overwrite=True)
