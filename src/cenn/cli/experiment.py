"""``cenn experiment``: simulate, train and evaluate from one TOML file (:mod:`cenn.experiment`)."""

from __future__ import annotations

import argparse

from cenn.cli.options import LateHelp, add_device, add_no_progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", formatter_class=LateHelp,
                       help="simulate, train and evaluate from one TOML file (the paper's protocol: "
                            "`cenn experiment paper --out runs/paper`)")
    p.add_argument("config", help="experiment TOML, or a shipped one: paper, paper-smoke")
    p.add_argument("--out", required=True, help="experiment folder (rerun the command to resume)")
    p.add_argument("--steps", help="comma-separated subset of {steps} (default: all of them)")
    add_device(p, help="simulation and evaluation device (training: [train.trainer] accelerator)")
    p.add_argument("--workers", type=int, default=0, help="simulation worker processes")
    p.add_argument("--overwrite", action="store_true", help="if the folder holds another experiment, redo "
                   "the stores, run and report its changes concern (only they are removed)")
    add_no_progress(p)


def run(args: argparse.Namespace) -> int:
    from cenn.experiment import STEPS, run_experiment_command

    if args.steps is None:
        args.steps = ",".join(STEPS)
    return run_experiment_command(args)
