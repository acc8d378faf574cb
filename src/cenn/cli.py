"""The ``cenn`` command line: ``cenn simulate`` and ``cenn demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from cenn import __version__
from cenn.config import ConfigError, read_toml
from cenn.data.store import StoreError
from cenn.sky.simulator import LATITUDE_BANDS, SimulationConfig


def _parse_band(text: str) -> tuple[float, float]:
    if text in LATITUDE_BANDS:
        return LATITUDE_BANDS[text]
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--band takes one of {', '.join(LATITUDE_BANDS)} or 'MIN,MAX' in degrees, got {text!r}"
        ) from err
    return lo, hi


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--shard takes i/N, e.g. 0/4, got {text!r}") from err
    return i, n


def _parse_scale(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--scale takes NAME=FACTOR, e.g. dust=2, got {text!r}") from err


def simulation_config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The configuration file (if any) with the command-line options applied on top."""
    data: dict[str, Any] = read_toml(args.config) if args.config else {}
    if args.seed is not None:
        data["seed"] = args.seed
    if args.band is not None:
        data.setdefault("region", {}).update(lat_min=args.band[0], lat_max=args.band[1])
    if args.instrument is not None:
        data.setdefault("instrument", {})["name"] = args.instrument
    if args.noise_scale is not None:
        data.setdefault("instrument", {})["noise_scale"] = args.noise_scale
    if args.npix is not None:
        data.setdefault("geometry", {})["npix"] = args.npix
    if args.pixel_arcsec is not None:
        data.setdefault("geometry", {})["pixel_arcsec"] = args.pixel_arcsec
    components = data.setdefault("components", {})
    for name in args.disable or []:
        components.setdefault(name, {})["enabled"] = False
    for name, factor in args.scale or []:
        components.setdefault(name, {})["scale"] = factor
    config = SimulationConfig.from_dict(data)
    config.resolved_components()  # validate component names and parameters now
    return config


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate sky patches into a dataset store (zarr)")
    p.add_argument("out", nargs="?", help="output store path, e.g. train.zarr")
    p.add_argument("-n", "--patches", type=int, help="number of patches (per region with --describe)")
    p.add_argument("--describe", action="store_true",
                   help="print each component's mean D_ell per band and latitude region instead "
                        "of writing a store")
    p.add_argument("--config", help="simulation configuration TOML (options below override it)")
    p.add_argument("--band", type=_parse_band,
                   help="latitude band: all, inner (|b|<5), intermediate (5-30), high (30-90) or MIN,MAX")
    p.add_argument("--seed", type=int)
    p.add_argument("--instrument", help="instrument preset name or TOML path (default planck_hfi)")
    p.add_argument("--noise-scale", type=float, help="factor on the instrument noise (paper: 1, 5, 10)")
    p.add_argument("--npix", type=int, help="pixels per patch side (default 256)")
    p.add_argument("--pixel-arcsec", type=float, help="pixel side in arcsec (default 90)")
    p.add_argument("--disable", action="append", metavar="COMPONENT", help="switch a component off")
    p.add_argument("--scale", action="append", type=_parse_scale, metavar="NAME=FACTOR",
                   help="rescale a component, e.g. --scale dust=2")
    p.add_argument("--components", action="store_true", help="also store each component's maps")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: in this process)")
    p.add_argument("--chunk-size", type=int, default=64, help="patches per stored chunk")
    p.add_argument("--batch-size", type=int, default=32, help="patches simulated at once")
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="write only shard i of N")
    p.add_argument("--compression", choices=["none", "zstd"], default="none")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-progress", action="store_true")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the end-to-end demonstration on built-in defaults")
    p.add_argument("--out", default="cenn-demo", help="output folder (default ./cenn-demo)")
    p.add_argument("--patches", type=int, default=8, help="patches per latitude band")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cenn", description="CMB extraction with a fully convolutional neural network (CENN)."
    )
    parser.add_argument("--version", action="version", version=f"cenn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_demo(sub)
    return parser


def _run_simulate(args: argparse.Namespace) -> int:
    from cenn.data.simulate import simulate

    config = simulation_config_from_args(args)
    if args.describe:
        from cenn.sky.describe import describe_table, measure_spectra

        measured = measure_spectra(config, n_patches=args.patches or 64,
                                   batch_size=args.batch_size, device=args.device)
        print(describe_table(measured))
        return 0
    if args.out is None or args.patches is None:
        raise ValueError("cenn simulate needs an output path and -n/--patches (or --describe)")
    store = simulate(
        args.out, args.patches, config, device=args.device, workers=args.workers,
        chunk_size=args.chunk_size, batch_size=args.batch_size, with_components=args.components,
        shard=args.shard, overwrite=args.overwrite, compression=args.compression,
        progress=not args.no_progress,
    )
    state = "complete" if store.complete else "this shard done; other shards pending"
    print(f"{args.out}: {store.n_patches} patches, {state}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from cenn.demo import format_summary, run_demo

    summary = run_demo(args.out, args.patches, args.seed, args.device, not args.no_progress)
    print(format_summary(summary))
    print(f"figure: {summary['figure']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cenn`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _run_simulate(args)
        return _run_demo(args)
    except (ConfigError, StoreError, FileNotFoundError, ValueError) as err:
        print(f"cenn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
