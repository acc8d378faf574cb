"""``cenn demo``: small validation sets separated by the reference network and the classical
methods, with the paper's evaluation report."""

from __future__ import annotations

import argparse
from pathlib import Path

from cenn.cli.options import LateHelp, add_device, add_no_progress, add_precision


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", formatter_class=LateHelp,
                       help="simulate small validation sets, separate them with the reference network and "
                            "the classical methods, and write the paper's evaluation report")
    p.add_argument("--out", default="cenn-demo", help="output folder (default ./cenn-demo)")
    p.add_argument("--patches", type=int, default=24, help="patches per region (all sky and the "
                   "three latitude bands)")
    p.add_argument("--methods", help="comma-separated methods (default: {demo_methods}; "
                   "cenn-unbiased where its weights are shipped)")
    p.add_argument("--weights", help="network weights (default: the reference model shipped with cenn)")
    p.add_argument("--seed", type=int, default=0)
    add_device(p)
    add_precision(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace data simulated by an earlier demo with other --patches or --seed")
    add_no_progress(p)


def run(args: argparse.Namespace) -> int:
    from cenn.demo import run_demo
    from cenn.evaluate.report import format_table, summary_table

    if args.seed < 0:
        raise ValueError(f"--seed must be a whole number >= 0, got {args.seed}")
    methods = None if args.methods is None else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    metrics = run_demo(args.out, args.patches, args.seed, args.device, methods, args.weights,
                       not args.no_progress, args.overwrite, args.precision)
    print(format_table(*summary_table(metrics)))
    print(f"report: {Path(args.out) / 'report' / 'report.html'}")
    return 0
