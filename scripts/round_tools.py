"""The Python steps of ``scripts/gpu_round.sh``.

    python scripts/round_tools.py smoke DEVICE OUT_JSON [--npix 128] [--batch 32] [--model unet-small]
    python scripts/round_tools.py sets WORK_DIR DEVICE --npix 256 --val 256 --eval 64
    python scripts/round_tools.py summary WORK_DIR OUT_DIR

``smoke``: simulate one batch on DEVICE and take five training steps on it (bf16 autocast on CUDA);
writes the timings and losses as JSON and fails on a non-finite loss. ``sets``: simulates, in one
process, the store watched during training (``val.zarr``, all sky) and one store per latitude region
with component maps (``eval-<region>.zarr``), as ``cenn simulate`` would. ``summary``: gathers the round's
step statuses, smoke check, training metrics, evaluation headline and the exported weights' card into
``OUT_DIR/metrics.json`` (compact; needs neither torch nor cenn).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
from pathlib import Path
from typing import Any

SMOKE_STEPS = 5
WEIGHTS_NAME = "weights-fp16.safetensors"


def smoke(device: str, npix: int, batch: int, model: str) -> dict[str, Any]:
    """Simulate ``batch`` patches of ``npix``² on ``device``, then :data:`SMOKE_STEPS` AdamW steps of
    ``model`` on them (min-max normalised, MSE). Times in seconds, losses dimensionless."""
    import torch
    import torch.nn.functional as F

    from cenn.data.normalization import build_normalization
    from cenn.model import build_model
    from cenn.sky.simulator import GeometryConfig, PatchSimulator, SimulationConfig

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    start = time.perf_counter()
    sim = PatchSimulator(SimulationConfig(seed=1, geometry=GeometryConfig(npix=npix)), device)
    patches = sim.simulate(range(batch))
    sync()
    simulate_s = time.perf_counter() - start
    norm = build_normalization("minmax")
    stats = norm.fit(patches.inputs)
    x, y = norm.normalize_inputs(patches.inputs, stats), norm.normalize_target(patches.target, stats)
    torch.manual_seed(0)
    net = build_model(model, x.shape[1]).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    start = time.perf_counter()
    for _ in range(SMOKE_STEPS):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.mse_loss(net(x).float(), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    sync()
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda, "npix": npix, "batch": batch, "model": model,
            "simulate_s": round(simulate_s, 3), "train_steps": SMOKE_STEPS,
            "train_s": round(time.perf_counter() - start, 3), "losses": [round(v, 6) for v in losses],
            "max_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None}


def simulate_sets(work: Path, device: str, npix: int, n_val: int, n_eval: int) -> list[Path]:
    """``work/val.zarr`` (``n_val`` all-sky patches of ``npix``², seed 9100) and ``work/eval-<region>.zarr``
    (``n_eval`` patches in each of the four latitude regions, components stored, seeds 9201-9204)."""
    from cenn.data.simulate import simulate
    from cenn.sky.simulator import LATITUDE_BANDS, GeometryConfig, RegionConfig, SimulationConfig

    geometry = GeometryConfig(npix=npix)
    sets = [("val", n_val, 9100, "all", False)] + [
        (f"eval-{region}", n_eval, 9201 + k, region, True)
        for k, region in enumerate(("all", "inner", "intermediate", "high"))]
    paths = []
    work.mkdir(parents=True, exist_ok=True)  # simulate() writes a store only into an existing folder
    for name, n, seed, region, components in sets:
        config = SimulationConfig(seed=seed, geometry=geometry, region=RegionConfig(*LATITUDE_BANDS[region]))
        store = simulate(work / f"{name}.zarr", n, config, device=device, chunk_size=min(64, n),
                         batch_size=min(64, n), with_components=components, progress=False, overwrite=True)
        print(f"{store.path}: {n} patches of {npix}², {region}")
        paths.append(store.path)
    return paths


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def steps(path: Path) -> dict[str, dict[str, int]]:
    """``name → {"rc", "seconds"}`` from the round's tab-separated step log (name, exit code, seconds)."""
    if not path.is_file():
        return {}
    rows = (line.split("\t") for line in path.read_text().splitlines() if line.strip())
    return {name: {"rc": int(rc), "seconds": int(seconds)} for name, rc, seconds in rows}


def headline(report: Any) -> dict[str, dict[str, dict[str, float]]] | None:
    """``dataset → method → figures`` from ``cenn evaluate``'s metrics.json: mean per-patch residual RMS
    and Table 1's mean-residual-patch RMS (µK), all-ℓ ΔD_ℓ and residual D_ℓ (µK², mean ± error as two
    numbers)."""
    if not report:
        return None
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, per_dataset in report["results"].items():
        for dataset, r in per_dataset.items():
            spectra = r["spectra"]
            out.setdefault(dataset, {})[method] = {
                "patch_rms_uk": r["pixel"]["residual_rms_mean_uk"],
                "table1_rms_uk": r["mean_residual_patch"]["rms_uk"],
                "delta_dl_uk2": spectra["delta_dl"]["all"], "residual_dl_uk2": spectra["residual_dl"]["all"]}
    return out


def weights_card(path: Path) -> dict[str, Any] | None:
    """Size, tensor dtypes and the card's architecture, training length and metrics of a weights file,
    read from its safetensors header alone (8-byte little-endian length, then JSON)."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    card = json.loads(header.get("__metadata__", {}).get("cenn", "{}"))
    training = card.get("training", {})
    return {"file": path.name, "bytes": path.stat().st_size,
            "dtypes": sorted({v["dtype"] for k, v in header.items() if k != "__metadata__"}),
            "architecture": card.get("architecture"), "epochs": training.get("epochs"),
            "global_step": training.get("global_step"),
            "init_weights": training.get("config", {}).get("model", {}).get("init_weights"),
            "metrics": card.get("metrics")}


def summary(work: Path, out: Path) -> dict[str, Any]:
    """The round's compact metrics, from the files its steps left in ``work`` and ``out``."""
    return {"steps": steps(work / "steps.tsv"), "settings": _read_json(work / "settings.json"),
            "smoke": _read_json(work / "smoke.json"), "train": _read_json(work / "run" / "metrics.json"),
            "evaluate": headline(_read_json(work / "report" / "metrics.json")),
            "weights": weights_card(out / WEIGHTS_NAME)}


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as strings, so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("smoke")
    s.add_argument("device")
    s.add_argument("out_json", type=Path)
    s.add_argument("--npix", type=int, default=128)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--model", default="unet-small")
    d = sub.add_parser("sets")
    d.add_argument("work", type=Path)
    d.add_argument("device")
    d.add_argument("--npix", type=int, required=True)
    d.add_argument("--val", type=int, required=True)
    d.add_argument("--eval", type=int, required=True)
    m = sub.add_parser("summary")
    m.add_argument("work", type=Path)
    m.add_argument("out", type=Path)
    args = p.parse_args()
    if args.command == "smoke":
        result = smoke(args.device, args.npix, args.batch, args.model)
        args.out_json.write_text(json.dumps(_finite(result)))
        print(json.dumps(result))
        return 0 if all(math.isfinite(v) for v in result["losses"]) else 1
    if args.command == "sets":
        simulate_sets(args.work, args.device, args.npix, args.val, args.eval)
        return 0
    (args.out / "metrics.json").write_text(json.dumps(_finite(summary(args.work, args.out)),
                                                      separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
