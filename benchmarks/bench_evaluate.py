"""Evaluation time: `cenn evaluate` on a store of N patches with the CENN network and the target-band
reference, report included.

    python benchmarks/bench_evaluate.py [--patches 6000] [--components] [--device cpu|cuda]
        [--store PATH] [--weights FILE]   # default: untrained cenn-paper weights (same cost)

Simulates the store first (all components) unless --store is given; --components also stores
the component maps (Fig. 5, the noise test), 6.5 MB per patch (39 GB for 6,000). Appends the
figures to benchmarks/results.jsonl with the machine's description.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.model import WeightsCard, build_model, save_weights
from cenn.separators import build_separator
from cenn.sky.simulator import SimulationConfig


def untrained_weights(path: Path, meta: dict) -> Path:
    """cenn-paper weights at initialisation with a card matching the store."""
    torch.manual_seed(0)
    card = WeightsCard(
        architecture="cenn-paper", architecture_params={}, in_channels=len(meta["frequencies_ghz"]),
        frequencies_ghz=meta["frequencies_ghz"], beams_arcmin=meta["beam_fwhm_arcmin"],
        target_frequency_ghz=217.0, npix=meta["geometry"]["npix"],
        pixel_arcsec=meta["geometry"]["pixel_arcsec"], normalization="minmax",
        normalization_params={"reference_channel": 1})
    save_weights(path, build_model("cenn-paper", card.in_channels), card)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patches", type=int, default=6000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--components", action="store_true", help="store and evaluate component maps")
    p.add_argument("--store", help="existing store (default: simulate one)")
    p.add_argument("--weights")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = Path(args.store) if args.store else simulate(
            tmp / "val.zarr", args.patches, SimulationConfig(seed=2024), device=args.device,
            with_components=args.components, progress=False).path
        meta = DatasetStore.open(store).meta
        weights = args.weights or untrained_weights(tmp / "w.safetensors", meta)
        methods = {"cenn": build_separator("cenn", weights=weights, device=args.device),
                   "target-band": build_separator("target-band")}
        config = EvaluationConfig(max_patches=args.patches)
        start = time.perf_counter()
        metrics = evaluate([(None, store)], methods, tmp / "report", config, device=args.device,
                           progress=False)
        total = time.perf_counter() - start
    n = metrics["datasets"]["all"]["n_patches"]
    figures = {"patches": n, "methods": list(methods), "components": bool(metrics["datasets"]["all"][
        "stored_components"]), "noise_test_patches": config.noise_max_patches,
               "noise_factors": config.noise_factors, "seconds": round(total, 1),
               "dataset_seconds": round(metrics["timing_s"]["all"], 1),
               "report_seconds": round(total - metrics["timing_s"]["all"], 1),
               "patches_per_s": round(n / total, 1)}
    print(figures)
    if not args.no_record:
        record("evaluate", args.device, figures)


if __name__ == "__main__":
    main()
