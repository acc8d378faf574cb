"""Helpers shared by the benchmarks: machine description and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import torch

#: Where results are appended: benchmarks/results.jsonl, or the file named by $CENN_BENCH_RESULTS
#: (scripts/gpu_round.sh collects a round's rows there).
RESULTS = Path(os.environ.get("CENN_BENCH_RESULTS") or Path(__file__).parent / "results.jsonl")


def machine(device: str) -> dict:
    """Where a benchmark ran: CPU model and cores, torch version, GPU name."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(name: str, device: str, figures: dict, results: Path = RESULTS) -> dict:
    """Append one result line (name, figures, machine, date, commit) to the results file."""
    entry = {"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"),
             "commit": git_commit(), "machine": machine(device), **figures}
    with results.open("a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry
