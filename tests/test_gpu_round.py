"""scripts/gpu_round.sh end to end on the CPU with tiny sizes (CENN_ROUND_TINY=1): the same steps a GPU
node runs, and the files it brings back."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cenn.model import WeightsCard, build_model, save_weights

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 16_000_000
METHODS = {"cenn", "nilc", "target-band"}
REGIONS = {"all", "inner", "intermediate", "high"}


def _tiny_unet(path: Path) -> Path:
    """Untrained ``unet`` weights (reference-train.toml's architecture) of small widths, 90″ Planck bands."""
    torch.manual_seed(0)
    widths = [8, 8, 8, 16, 16, 16]
    card = WeightsCard(
        architecture="unet", architecture_params={"widths": widths}, in_channels=3,
        frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.22, 4.90, 4.92], target_frequency_ghz=217.0,
        npix=64, pixel_arcsec=90.0, normalization="asinh", normalization_params={"scale_uk": 100.0})
    save_weights(path, build_model("unet", 3, widths=widths), card)
    return path


def _finite(values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


@pytest.mark.slow
def test_round_on_cpu_writes_four_small_files_with_finite_metrics(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "CENN_ROUND_TINY": "1", "PYTHON": sys.executable,
           "CENN_ROUND_WORK": str(tmp_path / "work"),
           "CENN_ROUND_INIT": str(_tiny_unet(tmp_path / "init.safetensors"))}
    result = subprocess.run(["bash", "scripts/gpu_round.sh", "10", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert set(files) == {"weights-fp16.safetensors", "metrics.json", "benchmarks.jsonl", "round.log"}
    assert all(0 < size < MAX_BYTES for size in files.values())

    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: v["rc"] for k, v in metrics["steps"].items()} == dict.fromkeys(
        ["smoke", "bench", "simulate", "train", "evaluate", "export"], 0)  # cenn importable: no install
    assert len(metrics["smoke"]["losses"]) == 5 and _finite(metrics["smoke"]["losses"])
    assert metrics["train"]["global_step"] == 2 and metrics["train"]["rms_uk"] > 0
    assert _finite(metrics["train"][k] for k in ("loss", "rms_uk"))
    assert set(metrics["evaluate"]) == REGIONS
    for per_method in metrics["evaluate"].values():
        assert set(per_method) == METHODS
        for figures in per_method.values():
            assert figures["patch_rms_uk"] > 0 and _finite([figures["patch_rms_uk"], figures["table1_rms_uk"],
                                                            *figures["delta_dl_uk2"].values()])
    weights = metrics["weights"]
    assert weights["dtypes"] == ["F16"] and weights["architecture"] == "unet"
    assert weights["global_step"] == 2 and weights["init_weights"] == env["CENN_ROUND_INIT"]

    rows = [json.loads(line) for line in (out / "benchmarks.jsonl").read_text().splitlines()]
    assert {r["benchmark"] for r in rows} == {"simulate", "network"}
    assert rows[0]["simulator_patches_per_s"] > 0
    network = {r["mode"]: r for r in rows if r["benchmark"] == "network"}
    assert network["fp32"]["training_samples_per_s"] > 0 and network["fp32"]["inference_patches_per_s"] > 0
    assert network["streaming_fp32"]["loop_samples_per_s"] > 0
