"""``cenn evaluate``: the paper's Sect. 4 analysis of one or more methods on dataset stores
(:mod:`cenn.evaluate.run`)."""

from __future__ import annotations

import argparse

from cenn.cli.options import LateHelp, add_device, add_no_progress, add_precision


def _noise_factors(text: str) -> list[float]:
    if text.lower() in ("", "none"):
        return []
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--noise-factors takes e.g. 5,10 or none, got {text!r}") from err


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", formatter_class=LateHelp,
                       help="the paper's Sect. 4 analysis of one or more methods on dataset stores: "
                            "metrics.json, CSV tables, figures, report.md/html")
    p.add_argument("data", nargs="+", metavar="[NAME=]STORE",
                   help="dataset stores from `cenn simulate` (use --components for Fig. 5 and the noise "
                        "test); names default to the latitude region: all, inner, intermediate, high")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument("--alternative", nargs="+", default=[], metavar="[NAME=]STORE",
                   help="stores of another sky model (e.g. --config src/cenn/configs/sky-alternative.toml "
                        "in cenn simulate), each paired with the store of the same name: the report shows "
                        "every method on both skies and the ratio")
    p.add_argument("--methods", default="cenn", help="comma-separated methods (available: {methods})")
    p.add_argument("--weights", help="trained weights for the 'cenn' method, or for 'cenn-unbiased' when it "
                   "is the only network evaluated (default: the models shipped with cenn)")
    p.add_argument("--polarization-weights", metavar="WEIGHTS",
                   help="Q/U weights for the 'cenn' method on stores with Q and U (cenn simulate --stokes "
                        "IQU): a file from cenn train with data.stokes = \"QU\", or 'polarization', the "
                        "shipped model; --weights stays the temperature network (default: the shipped "
                        "polarization model)")
    p.add_argument("--config", help="TOML with [evaluation] settings and [methods.<name>] options")
    add_device(p)
    add_precision(p)
    p.add_argument("--network-batch-size", type=int, default=32, help="patches per network pass")
    p.add_argument("--batch-size", type=int, help="patches read and evaluated at once")
    p.add_argument("--max-patches", type=int, help="use only the first N patches of each store")
    p.add_argument("--noise-factors", type=_noise_factors, help="noise test factors, e.g. 5,10, or none")
    p.add_argument("--no-half-split", action="store_true",
                   help="skip the half-split cross-spectra on stores with half-mission maps (cenn simulate "
                        "--splits 2), which run every method twice more")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    add_no_progress(p)


def run(args: argparse.Namespace) -> int:
    from cenn.evaluate.run import run_evaluate

    return run_evaluate(args)
