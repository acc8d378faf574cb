"""`cenn demo`: the first experience, on built-in defaults.

Simulates a few patches in each of the paper's latitude bands, writes them as dataset stores,
draws the patches (the paper's Fig. 1, columns 1–2, with every band), and prints a summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cenn.config import dumps_toml
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore, atomic_write_text
from cenn.evaluate.figures import plot_patch_grid
from cenn.sky.simulator import LATITUDE_BANDS, RegionConfig, SimulationConfig

DEMO_BANDS = ("inner", "intermediate", "high")
BAND_LABELS = {"inner": "|b| < 5°", "intermediate": "5° < |b| < 30°", "high": "|b| > 30°"}


def _band_summary(store: DatasetStore) -> dict[str, Any]:
    inputs = store.array("inputs")[:]
    target = store.array("target")[:]
    names = store.meta["band_names"]
    t = names.index(store.meta["target_band"])
    fg = inputs[:, t] - target[:, 0]
    return {
        "patches": store.n_patches,
        "mean_abs_lat_deg": float(np.mean(np.abs(store.array("lat")[:]))),
        "rms_cmb_uk": float(np.sqrt(np.mean(target**2))),
        "rms_foreground_and_noise_uk": float(np.sqrt(np.mean(fg**2))),
        **{f"rms_input_{n}_uk": float(np.sqrt(np.mean(inputs[:, i] ** 2)))
           for i, n in enumerate(names)},
    }


def run_demo(
    out: Path | str = "cenn-demo",
    n_per_band: int = 8,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also written to ``summary.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    rows = []
    for k, band in enumerate(DEMO_BANDS):
        lat_min, lat_max = LATITUDE_BANDS[band]
        config = SimulationConfig(seed=seed + k, region=RegionConfig(lat_min, lat_max))
        store = simulate(out / "data" / f"{band}.zarr", n_per_band, config, device=device,
                         chunk_size=n_per_band, with_components=True, progress=progress)
        summary[band] = _band_summary(store)
        inputs, target = store.array("inputs")[0], store.array("target")[0, 0]
        names = store.meta["band_names"]
        lat = float(store.array("lat")[0])
        rows.append((f"{BAND_LABELS[band]} (b = {lat:+.1f}°)", [*inputs, target]))
    titles = [f"Total {n} GHz" for n in names] + [f"CMB label ({store.meta['target_band']} GHz beam)"]
    figure = plot_patch_grid(rows, titles, out / "figures" / "patches.png")
    atomic_write_text(out / "demo.toml", dumps_toml(
        {"n_per_band": n_per_band, "seed": seed, "device": device, "bands": list(DEMO_BANDS)}))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    summary["figure"] = str(figure)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The demo's terminal table (rms in µK_CMB)."""
    bands = [b for b in DEMO_BANDS if b in summary]
    keys = [k for k in summary[bands[0]] if k.startswith("rms_")]
    heads = [k.removeprefix("rms_").removesuffix("_uk").replace("_", " ") for k in keys]
    width = max(len(h) for h in heads) + 2
    lines = [f"{'region':<16}{'patches':>8}{'<|b|>':>7}" + "".join(f"{h:>{width}}" for h in heads)]
    for b in bands:
        s = summary[b]
        lines.append(f"{BAND_LABELS[b]:<16}{s['patches']:>8}{s['mean_abs_lat_deg']:>7.1f}"
                     + "".join(f"{s[k]:>{width}.1f}" for k in keys))
    lines.append("rms in µK_CMB; 'foreground and noise' = target-band input minus the CMB label")
    return "\n".join(lines)
