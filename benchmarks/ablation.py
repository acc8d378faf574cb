"""Fixed-budget ablation of the learning problem: every variant trained on the same streamed patches,
evaluated with `cenn evaluate` beside NILC, the Wiener oracle and the unseparated 217 GHz map.

    python benchmarks/ablation.py [--samples 24576] [--out runs/ablation] [--variants a,b,...]
        [--val-patches 256] [--quick]

Variants are the training TOML files in ``benchmarks/ablation/`` (``paper``, ``uk-cenn-paper``,
``uk-unet``, ``sp-unet``, ``hilc-unet``, ``sp-nilc-unet``); every one streams the same patches
(``ablation/simulation.toml``: 128² crops of 90″ pixels, seed 7001, a third of them in each latitude
band) for the same number of samples, in batches of 16, and is validated during training on a small
store (seed 9200). The evaluation sets are 256² patches in the paper's four regions, seeds 9201–9204,
never used in training. Everything resumes: stores keep their chunks, runs restart from
``last.ckpt``, finished reports are reused.

Per variant and set it reports the per-patch residual RMS, the residual D_ℓ and ΔD_ℓ = D_ℓ(CMB) −
D_ℓ(output) averaged over 300 ≤ ℓ < 2500, and the transfer function t_ℓ at ℓ = 500, 1500, 2500;
writes ``OUT/ablation.md`` and ``OUT/ablation.json`` and appends one line per variant to
``benchmarks/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from cenn.evaluate.report import headline_table
from cenn.evaluate.summary import headline_figures

HERE = Path(__file__).parent / "ablation"
VARIANTS = ("paper", "uk-cenn-paper", "uk-unet", "sp-unet", "hilc-unet", "sp-nilc-unet")
SETS = {"all": ("all", 9201), "inner": ("inner", 9202), "intermediate": ("intermediate", 9203),
        "high": ("high", 9204)}
WATCH_SEED, STREAM_SEED = 9200, 7001
BASELINES = ("nilc", "dnilc", "wiener", "target-band")


def cenn(*args: str) -> None:
    """Run a `cenn` command with this interpreter; stop the ablation if it fails."""
    subprocess.run([sys.executable, "-m", "cenn", *args], check=True)


def simulate_sets(out: Path, n_patches: int, n_watch: int) -> dict[str, Path]:
    """The four evaluation stores and the watch store (reused when complete)."""
    stores = {}
    for name, (band, seed) in SETS.items():
        stores[name] = out / f"val_{name}.zarr"
        cenn("simulate", str(stores[name]), "-n", str(n_patches), "--band", band, "--seed", str(seed),
             "--no-progress")
    stores["watch"] = out / "watch.zarr"
    cenn("simulate", str(stores["watch"]), "-n", str(n_watch), "--seed", str(WATCH_SEED), "--no-progress")
    return stores


def train(variant: str, run: Path, watch: Path, samples: int, per_epoch: int, batch: int) -> float:
    """Train (or resume) one variant; returns the wall time of this call in seconds."""
    start = time.perf_counter()
    cenn("train", str(run), "--config", str(HERE / f"{variant}.toml"), "--stream",
         "--simulation", str(HERE / "simulation.toml"), "--set", f"data.stream_seed={STREAM_SEED}",
         "--val", str(watch), "--samples-per-epoch", str(per_epoch), "--epochs", str(samples // per_epoch),
         "--batch-size", str(batch), "--no-progress")
    return time.perf_counter() - start


def evaluate(report: Path, stores: dict[str, Path], methods: str, weights: Path | None = None) -> dict:
    """`cenn evaluate` on the four sets (reused when the report exists); its metrics.json."""
    if not (report / "metrics.json").is_file():
        extra = ["--weights", str(weights)] if weights else []
        cenn("evaluate", *(f"{name}={stores[name]}" for name in SETS), "--methods", methods,
             "--out", str(report), "--noise-factors", "none", "--no-progress", *extra)
    return json.loads((report / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=24_576, help="streamed training samples per variant")
    p.add_argument("--samples-per-epoch", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-patches", type=int, default=256, help="patches per evaluation set")
    p.add_argument("--watch-patches", type=int, default=64, help="validation patches during training")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, nothing recorded")
    args = p.parse_args()
    if args.quick:
        args.samples, args.samples_per_epoch, args.val_patches, args.watch_patches = 64, 32, 8, 8
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stores = simulate_sets(args.out, args.val_patches, args.watch_patches)
    baselines = evaluate(args.out / "report-baselines", stores, ",".join(BASELINES))
    rows = {m: {s: headline_figures(baselines["results"][m][s]) for s in SETS} for m in BASELINES}
    timing = {}
    for variant in variants:
        run = args.out / variant
        seconds = train(variant, run, stores["watch"], args.samples, args.samples_per_epoch, args.batch_size)
        metrics = evaluate(run / "report", stores, "cenn", run / "weights.safetensors")
        rows[variant] = {s: headline_figures(metrics["results"]["cenn"][s]) for s in SETS}
        timing[variant] = seconds
        print(headline_table(rows), flush=True)
    text = (f"Ablation: {args.samples} streamed samples per variant (128² crops, batch {args.batch_size}), "
            f"evaluated on {args.val_patches} patches per set.\n\n{headline_table(rows)}\n")
    (args.out / "ablation.md").write_text(text)
    (args.out / "ablation.json").write_text(json.dumps({"rows": rows, "train_s": timing}, indent=2) + "\n")
    print(text)
    if not args.quick:
        for variant in variants:
            record("ablation", "cpu", {"variant": variant, "samples": args.samples,
                                       "val_patches": args.val_patches, "train_s": round(timing[variant], 1),
                                       **{s: rows[variant][s] for s in SETS},
                                       "nilc": rows["nilc"], "wiener": rows["wiener"]})


if __name__ == "__main__":
    main()
