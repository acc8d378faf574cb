"""Every benchmark on this machine, one after the other, each recorded in benchmarks/results.jsonl.

    python benchmarks/bench_all.py [--device cpu|cuda] [--quick]

Simulation patches/s (all components), network inference patches/s and training samples/s
(fp32 and the best CPU/GPU mode), the streaming training loop, the evaluation of 6,000 patches
and a full-sky prediction at Nside 2048. ``--quick`` shrinks the sizes for a smoke run and records
nothing. Prints the new entries at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
RESULTS = HERE / "results.jsonl"


def commands(device: str, quick: bool) -> list[list[str]]:
    """The benchmark scripts to run, with their arguments."""
    modes = "fp32,channels_last" if device == "cpu" else "fp32,bf16_channels_last,compiled_bf16"
    return [
        ["bench_simulate.py", "--device", device, "--patches", "64" if quick else "512"],
        ["bench_network.py", "--device", device, "--modes", modes, "--simulator",
         *(["--steps", "1", "--warmup", "1"] if quick else [])],
        ["bench_evaluate.py", "--device", device, "--patches", "64" if quick else "6000"],
        ["bench_full_sky.py", "--device", device, "--nside", "256" if quick else "2048"],
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    before = RESULTS.read_text().count("\n") if RESULTS.exists() else 0
    for script, *rest in commands(args.device, args.quick):
        print(f"--- {script} {' '.join(rest)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *rest, *(["--no-record"] if args.quick else [])],
                       check=True)
    new = [json.loads(line) for line in RESULTS.read_text().splitlines()[before:]]
    skip = {"date", "commit", "machine"}
    print(f"\n{len(new)} results on {new[0]['machine'] if new else '?'}:")
    for entry in new:
        print(" ", {k: v for k, v in entry.items() if k not in skip})


if __name__ == "__main__":
    main()
