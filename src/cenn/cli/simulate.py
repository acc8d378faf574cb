"""``cenn simulate``: simulated sky patches into a dataset store, or (``--describe``) each
component's spectra printed instead."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cenn.cli.options import add_device, add_no_progress
from cenn.config import given_options

if TYPE_CHECKING:
    from cenn.sky.simulator import SimulationConfig

#: Options that only concern the store, which ``--describe`` does not write, with their defaults (and
#: --stokes: it describes the temperature only).
_STORE_ONLY = {"components": False, "workers": 0, "chunk_size": 64, "shard": (0, 1), "compression": "none",
               "overwrite": False, "stokes": None}


def _parse_band(text: str) -> tuple[float, float]:
    from cenn.sky.simulator import LATITUDE_BANDS

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


def _parse_map(text: str) -> tuple[str, str | None, str]:
    target, sep, path = text.partition("=")
    name, _, band = target.partition(":")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--map takes COMPONENT=FILE or COMPONENT:BAND=FILE, e.g. "
                                         f"cmb=cmb.fits or dust:353=dust_353.fits, got {text!r}")
    return name, band or None, path


def _parse_scale(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--scale takes NAME=FACTOR, e.g. dust=2, got {text!r}") from err


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--map", action="append", type=_parse_map, metavar="COMPONENT[:BAND]=FILE",
                   help="cut a component from a HEALPix map instead of simulating it: one file for every "
                        "band (cmb=cmb.fits) or one per band (dust:143=d143.fits, repeated per band)")
    p.add_argument("--sky-split", choices=["train", "validation"],
                   help="draw patches only where they lie wholly in this part of a fixed split of the "
                        "sky, so training and validation patches never overlap")
    p.add_argument("--validation-fraction", type=float,
                   help="fraction of the sky held out for validation by --sky-split (default 0.2)")
    p.add_argument("--components", action="store_true", help="also store each component's maps")
    p.add_argument("--splits", type=int, metavar="2",
                   help="also store two half-mission maps per patch (array splits): the same sky with "
                        "independent noise of σ √2, averaging to the inputs; only 2 is supported")
    add_device(p)
    p.add_argument("--stokes", choices=["I", "IQU"],
                   help="I: temperature (default); IQU: also Stokes Q and U (arrays polarization and "
                        "target_polarization; the temperature arrays are the same bytes as with I)")
    p.add_argument("--workers", type=int, default=0, help="worker processes, one thread each (0: in this "
                   "process); the store's bytes are the same for any number")
    p.add_argument("--chunk-size", type=int, default=64, help="patches per stored chunk")
    p.add_argument("--batch-size", type=int, default=32, help="patches simulated at once")
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="write only shard i of N")
    p.add_argument("--compression", choices=["none", "zstd"], default="none",
                   help="chunk compression (default none); a store keeps its own: give the same to resume")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    add_no_progress(p)


def simulation_config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The configuration file (if any) with the command-line options applied on top."""
    from cenn.sky.simulator import SimulationConfig, read_simulation_toml

    data: dict[str, Any] = read_simulation_toml(args.config) if args.config else {}
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
    for name, band, path in args.map or []:
        entry = components.setdefault(name, {})
        if band is None:
            entry["maps"] = path
        else:
            maps = entry.get("maps")
            entry["maps"] = {**(maps if isinstance(maps, dict) else {}), band: path}
    if args.splits is not None:
        data["splits"] = args.splits
    if args.stokes is not None:
        data["stokes"] = args.stokes
    if args.sky_split is not None:
        data.setdefault("region", {}).setdefault("sky_split", {})["part"] = args.sky_split
    if args.validation_fraction is not None:
        split = data.get("region", {}).get("sky_split")
        if not isinstance(split, dict):
            raise ValueError("--validation-fraction sets the part of the sky that --sky-split holds out for "
                             "validation; without --sky-split (or a [region.sky_split] table in --config) no "
                             "sky is held out: add --sky-split train or --sky-split validation, or drop "
                             "--validation-fraction")
        split["validation_fraction"] = args.validation_fraction
    config = SimulationConfig.from_dict(data)
    config.resolved_components()  # validate component names and parameters now
    return config


def _refuse_with_describe(args: argparse.Namespace) -> None:
    """Refuse ``--describe`` with a store path or an option of the store, which it would ignore (it
    prints spectra and writes nothing)."""
    given = ([args.out] if args.out is not None else []) + given_options(args, _STORE_ONLY)
    if given:
        raise ValueError(f"--describe prints each component's spectra and writes no store, so "
                         f"{', '.join(given)} would be ignored: drop {'them' if len(given) > 1 else 'it'}, "
                         "or drop --describe to simulate a store")


def run(args: argparse.Namespace) -> int:
    from cenn.data.simulate import simulate
    from cenn.runtime import check_device

    check_device(args.device, "--device")
    if args.describe:
        _refuse_with_describe(args)
    config = simulation_config_from_args(args)
    if args.describe:
        from cenn.sky.describe import describe_table, measure_spectra

        measured = measure_spectra(config, n_patches=args.patches or 64,
                                   batch_size=args.batch_size, device=args.device)
        print(describe_table(measured))
        return 0
    if args.out is None or args.patches is None:
        raise ValueError("cenn simulate needs an output path and -n/--patches (or --describe)")
    instrument = args.instrument if args.instrument and Path(args.instrument).is_file() else None
    store = simulate(
        args.out, args.patches, config, device=args.device, workers=args.workers,
        chunk_size=args.chunk_size, batch_size=args.batch_size, with_components=args.components,
        shard=args.shard, overwrite=args.overwrite, compression=args.compression,
        progress=not args.no_progress, inputs=[("--config", args.config), ("--instrument", instrument)],
    )
    state = "complete" if store.complete else "this shard done; other shards pending"
    print(f"{args.out}: {store.n_patches} patches, {state}")
    return 0
