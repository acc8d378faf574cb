"""Fixed-budget ablation of the learning problem: every variant trained on the same streamed patches,
evaluated with `cenn evaluate` beside NILC, the Wiener oracle and the unseparated 217 GHz map.

    python benchmarks/ablation.py [--samples 24576] [--out runs/ablation] [--variants a,b,...]
        [--val-patches 256] [--stokes I|QU] [--quick]

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

``--stokes QU`` runs the same comparison on Q and U (issue 28; use another ``--out``): the stores are
simulated with Q and U (``--stokes IQU``), the variants in :data:`QU_VARIANTS` train on the bands'
Q/U with the inputs' asinh scale at :data:`QU_SCALE_UK` (Q and U are about ten times fainter than
the temperature), and each is read from the report's polarization section: the mean Q/U residual
RMS per patch, the residual D_ℓ^EE and D_ℓ^BB averaged over 50 ≤ ℓ < 1500 and the recovered EE over
the input's at |b| > 30°, beside NILC and ILC on Q and U.
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

from cenn.evaluate.document import markdown_table
from cenn.evaluate.labels import fmt
from cenn.evaluate.report import headline_table
from cenn.evaluate.summary import headline_figures

HERE = Path(__file__).parent / "ablation"
VARIANTS = ("paper", "uk-cenn-paper", "uk-unet", "sp-unet", "hilc-unet", "sp-nilc-unet")
SETS = {"all": ("all", 9201), "inner": ("inner", 9202), "intermediate": ("intermediate", 9203),
        "high": ("high", 9204)}
WATCH_SEED, STREAM_SEED = 9200, 7001
BASELINES = ("nilc", "dnilc", "wiener", "target-band")
#: The variants that run on Q and U (the paper's min-max and the hybrids without a Q/U form are not),
#: their inputs' asinh scale (µK), and the classical methods beside them.
QU_VARIANTS = ("uk-unet", "uk-cenn-paper")
QU_SCALE_UK = 10.0
QU_BASELINES = ("nilc", "ilc")


def cenn(*args: str) -> None:
    """Run a `cenn` command with this interpreter; stop the ablation if it fails."""
    subprocess.run([sys.executable, "-m", "cenn", *args], check=True)


def simulate_sets(out: Path, n_patches: int, n_watch: int, stokes: str) -> dict[str, Path]:
    """The four evaluation stores and the watch store (reused when complete), with Q and U when
    ``stokes`` is ``"QU"``."""
    extra = ["--stokes", "IQU"] if stokes == "QU" else []
    stores = {}
    for name, (band, seed) in SETS.items():
        stores[name] = out / f"val_{name}.zarr"
        cenn("simulate", str(stores[name]), "-n", str(n_patches), "--band", band, "--seed", str(seed),
             "--no-progress", *extra)
    stores["watch"] = out / "watch.zarr"
    cenn("simulate", str(stores["watch"]), "-n", str(n_watch), "--seed", str(WATCH_SEED), "--no-progress",
         *extra)
    return stores


def train(variant: str, run: Path, watch: Path, samples: int, per_epoch: int, batch: int,
          stokes: str) -> float:
    """Train (or resume) one variant on ``stokes`` (``"I"`` or ``"QU"``); returns the wall time of
    this call in seconds."""
    start = time.perf_counter()
    extra = (["--set", 'data.stokes="QU"', "--set", f"normalization.params.scale_uk={QU_SCALE_UK}"]
             if stokes == "QU" else [])
    cenn("train", str(run), "--config", str(HERE / f"{variant}.toml"), "--stream",
         "--simulation", str(HERE / "simulation.toml"), "--set", f"data.stream_seed={STREAM_SEED}",
         "--val", str(watch), "--samples-per-epoch", str(per_epoch), "--epochs", str(samples // per_epoch),
         "--batch-size", str(batch), "--no-progress", *extra)
    return time.perf_counter() - start


def evaluate(report: Path, stores: dict[str, Path], methods: str, weights: Path | None = None,
             stokes: str = "I") -> dict:
    """`cenn evaluate` on the four sets (reused when the report exists) of ``methods``, ``cenn``
    running ``weights`` (Q/U weights when ``stokes`` is ``"QU"``); its metrics.json."""
    if not (report / "metrics.json").is_file():
        option = "--polarization-weights" if stokes == "QU" else "--weights"
        extra = [option, str(weights)] if weights else []
        cenn("evaluate", *(f"{name}={stores[name]}" for name in SETS), "--methods", methods,
             "--out", str(report), "--noise-factors", "none", "--no-progress", *extra)
    return json.loads((report / "metrics.json").read_text())


def polarization_figures(result: dict) -> dict[str, float | None]:
    """The Q/U figures of one ``polarization.results.<method>.<dataset>`` entry of metrics.json: the
    mean per-patch residual RMS of Q and U (µK), the residual D_ℓ^EE and D_ℓ^BB averaged over the
    residual range (µK²), and the recovered EE over the input's at |b| > 30° (None without such
    patches)."""
    pixel = result["pixel"]
    return {"residual_rms_uk": (pixel["q"]["residual_rms_mean_uk"] + pixel["u"]["residual_rms_mean_uk"]) / 2,
            "residual_ee_uk2": result["residual_ee_dl"]["mean"],
            "residual_bb_uk2": result["residual_bb_dl"]["mean"],
            "ee_out_over_in": result["ee_recovery"]["ratio"]}


def polarization_table(rows: dict[str, dict[str, dict[str, float | None]]]) -> str:
    """Markdown table of :func:`polarization_figures`, ``rows[method][dataset]``."""
    datasets = list(next(iter(rows.values())))
    header = (["method"] + [f"Q/U RMS {d} [µK]" for d in datasets] + [f"res. EE {d} [µK²]" for d in datasets]
              + [f"res. BB {d} [µK²]" for d in datasets] + ["EE out / in, |b| > 30°"])
    return markdown_table(header, [
        [method] + [fmt(per[d][k]) for k in ("residual_rms_uk", "residual_ee_uk2", "residual_bb_uk2")
                    for d in datasets] + [fmt(per["high"]["ee_out_over_in"])]
        for method, per in rows.items()])


def figures(metrics: dict, method: str, stokes: str) -> dict[str, dict]:
    """One method's figures per set: :func:`headline_figures` (temperature) or
    :func:`polarization_figures` (``stokes`` ``"QU"``)."""
    if stokes == "QU":
        return {s: polarization_figures(metrics["polarization"]["results"][method][s]) for s in SETS}
    return {s: headline_figures(metrics["results"][method][s]) for s in SETS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=24_576, help="streamed training samples per variant")
    p.add_argument("--samples-per-epoch", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-patches", type=int, default=256, help="patches per evaluation set")
    p.add_argument("--watch-patches", type=int, default=64, help="validation patches during training")
    p.add_argument("--variants", help=f"comma-separated (default: {', '.join(VARIANTS)}; with --stokes QU "
                                      f"{', '.join(QU_VARIANTS)})")
    p.add_argument("--stokes", choices=("I", "QU"), default="I", help="temperature (default) or Q and U")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, nothing recorded")
    args = p.parse_args()
    if args.quick:
        args.samples, args.samples_per_epoch, args.val_patches, args.watch_patches = 64, 32, 8, 8
    allowed = QU_VARIANTS if args.stokes == "QU" else VARIANTS
    variants = (args.variants or ",".join(allowed)).split(",")
    unknown = sorted(set(variants) - set(allowed))
    if unknown:
        raise SystemExit(f"variants {unknown} do not run with --stokes {args.stokes}; choose from "
                         f"{', '.join(allowed)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stores = simulate_sets(args.out, args.val_patches, args.watch_patches, args.stokes)
    classical = QU_BASELINES if args.stokes == "QU" else BASELINES
    baselines = evaluate(args.out / "report-baselines", stores, ",".join(classical))
    rows = {m: figures(baselines, m, args.stokes) for m in classical}
    table = polarization_table if args.stokes == "QU" else headline_table
    timing = {}
    for variant in variants:
        run = args.out / variant
        seconds = train(variant, run, stores["watch"], args.samples, args.samples_per_epoch, args.batch_size,
                        args.stokes)
        metrics = evaluate(run / "report", stores, "cenn", run / "weights.safetensors", args.stokes)
        rows[variant] = figures(metrics, "cenn", args.stokes)
        timing[variant] = seconds
        print(table(rows), flush=True)
    text = (f"Ablation ({'Q and U' if args.stokes == 'QU' else 'temperature'}): {args.samples} streamed "
            f"samples per variant (128² crops, batch {args.batch_size}), evaluated on {args.val_patches} "
            f"patches per set.\n\n{table(rows)}\n")
    (args.out / "ablation.md").write_text(text)
    (args.out / "ablation.json").write_text(json.dumps({"rows": rows, "train_s": timing}, indent=2) + "\n")
    print(text)
    if not args.quick:
        for variant in variants:
            record("ablation" if args.stokes == "I" else "ablation-qu", "cpu",
                   {"variant": variant, "samples": args.samples, "val_patches": args.val_patches,
                    "train_s": round(timing[variant], 1), **rows[variant],
                    **{m: rows[m] for m in classical if m in ("nilc", "wiener", "ilc")}})


if __name__ == "__main__":
    main()
