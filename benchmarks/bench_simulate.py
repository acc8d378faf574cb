"""Simulation throughput: patches per second of the simulator alone and of `cenn simulate`.

    python benchmarks/bench_simulate.py [--device cpu|cuda] [--patches 512] [--batch 64] [--npix 256]
        [--components cmb,dust]   # default: every registered component

Appends its figures to benchmarks/results.jsonl with the machine's description.
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
from cenn.sky.components import COMPONENTS
from cenn.sky.simulator import GeometryConfig, PatchSimulator, SimulationConfig


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--patches", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--npix", type=int, default=256, help="patch side, pixels of 90 arcsec")
    p.add_argument("--components", default=",".join(COMPONENTS))
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    wanted = set(args.components.split(","))
    config = SimulationConfig(geometry=GeometryConfig(npix=args.npix),
                              components={n: {"enabled": n in wanted} for n in COMPONENTS})
    sim = PatchSimulator(config, args.device)
    sim.simulate(range(args.batch))  # warm-up
    _sync(args.device)
    start = time.perf_counter()
    for s in range(0, args.patches, args.batch):
        sim.simulate(range(s, min(s + args.batch, args.patches)))
    _sync(args.device)
    in_memory = args.patches / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate(Path(tmp) / "bench.zarr", args.patches, config, device=args.device,
                 chunk_size=args.batch, batch_size=args.batch, progress=False)
        to_store = args.patches / (time.perf_counter() - start)

    figures = {"components": sorted(wanted & set(COMPONENTS)), "npix": args.npix, "patches": args.patches,
               "batch": args.batch, "simulator_patches_per_s": round(in_memory, 1),
               "cenn_simulate_patches_per_s": round(to_store, 1)}
    print(f"simulator: {in_memory:.1f} patches/s; cenn simulate to a store: {to_store:.1f} patches/s "
          f"({args.device}, components {','.join(figures['components'])})")
    if not args.no_record:
        record("simulate", args.device, figures)


if __name__ == "__main__":
    main()
