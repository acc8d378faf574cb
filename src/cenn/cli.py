"""The ``cenn`` command line: ``cenn simulate``, ``train``, ``predict``, ``evaluate``, ``experiment``,
``demo`` and ``export-weights``."""

from __future__ import annotations

import argparse
import errno
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cenn import __version__
from cenn.config import ConfigError, given_options, read_toml
from cenn.data.store import StoreError
from cenn.demo import METHODS
from cenn.evaluate.run import add_evaluate_parser, run_evaluate
from cenn.experiment import add_experiment_parser, run_experiment_command
from cenn.healpix.command import add_full_sky_arguments, check_full_sky_options_unused, run_full_sky
from cenn.outputs import OutputWriteError
from cenn.predict.command import add_predict_parser, run_predict
from cenn.sky.simulator import LATITUDE_BANDS, SimulationConfig, read_simulation_toml


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


def simulation_config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The configuration file (if any) with the command-line options applied on top."""
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
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workers", type=int, default=0, help="worker processes, one thread each (0: in this "
                   "process); the store's bytes are the same for any number")
    p.add_argument("--chunk-size", type=int, default=64, help="patches per stored chunk")
    p.add_argument("--batch-size", type=int, default=32, help="patches simulated at once")
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="write only shard i of N")
    p.add_argument("--compression", choices=["none", "zstd"], default="none",
                   help="chunk compression (default none); a store keeps its own: give the same to resume")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-progress", action="store_true")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate small validation sets, separate them with the reference "
                       "network and the classical methods, and write the paper's evaluation report")
    p.add_argument("--out", default="cenn-demo", help="output folder (default ./cenn-demo)")
    p.add_argument("--patches", type=int, default=24, help="patches per region (all sky and the "
                   "three latitude bands)")
    p.add_argument("--methods", help=f"comma-separated methods (default: {','.join(METHODS)}; "
                   "cenn-unbiased where its weights are shipped)")
    p.add_argument("--weights", help="network weights (default: the reference model shipped with cenn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true",
                   help="replace data simulated by an earlier demo with other --patches or --seed")
    p.add_argument("--no-progress", action="store_true")


def _parse_setting(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes SECTION.KEY=VALUE, e.g. optim.lr=0.01, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare string
    return key.split("."), parsed


#: ``cenn train`` options and the configuration key each one sets.
_TRAIN_OPTIONS = {
    "train": ("data", "train"), "val": ("data", "val"), "stream": ("data", "stream"),
    "simulation": ("data", "simulation"), "samples_per_epoch": ("data", "samples_per_epoch"),
    "simulate_on": ("data", "simulate_on"), "workers": ("data", "num_workers"),
    "model": ("model", "name"), "lr": ("optim", "lr"), "optimizer": ("optim", "name"),
    "epochs": ("trainer", "epochs"), "max_steps": ("trainer", "max_steps"),
    "batch_size": ("trainer", "batch_size"), "accelerator": ("trainer", "accelerator"),
    "devices": ("trainer", "devices"), "num_nodes": ("trainer", "num_nodes"),
    "strategy": ("trainer", "strategy"), "precision": ("trainer", "precision"),
    "compile": ("trainer", "compile"), "channels_last": ("trainer", "channels_last"),
    "seed": ("trainer", "seed"), "init_weights": ("model", "init_weights"),
    "max_time": ("trainer", "max_minutes"),
}


def train_config_from_args(args: argparse.Namespace) -> Any:
    """The training configuration file (if any), then --set, then the named options."""
    from cenn.train import TrainConfig

    data: dict[str, Any] = read_toml(args.config) if args.config else {}
    for path, value in args.set or []:
        table = data
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    for option, (section, key) in _TRAIN_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            data.setdefault(section, {})[key] = value
    if args.no_progress:
        data.setdefault("trainer", {})["progress"] = False
    return TrainConfig.from_dict(data)


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network; the run folder holds checkpoints, logs, "
                                     "config and the exported weights (rerun to resume)")
    p.add_argument("run_dir", help="run folder, e.g. runs/paper")
    p.add_argument("--config", help="training configuration TOML (options below override it)")
    p.add_argument("--set", action="append", type=_parse_setting, metavar="SECTION.KEY=VALUE",
                   help="any configuration value, e.g. --set optim.l2=0 (TOML syntax for values)")
    p.add_argument("--train", help="training dataset store (cenn simulate)")
    p.add_argument("--val", help="validation dataset store")
    p.add_argument("--stream", action="store_const", const=True,
                   help="train on fresh simulated patches instead of a store")
    p.add_argument("--simulation", help="simulation TOML for --stream (default: the val store's)")
    p.add_argument("--samples-per-epoch", type=int, help="streamed patches per epoch")
    p.add_argument("--simulate-on", choices=["workers", "device"], help="where --stream simulates")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--model", help="architecture name (cenn-paper, unet, hilc-unet, sp-unet, ...)")
    p.add_argument("--init-weights", help="start from these weights (e.g. the shipped model's, to train "
                                          "it further); their architecture is the run's")
    p.add_argument("--optimizer", choices=["adagrad", "adam", "adamw", "sgd"])
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--max-time", type=float, metavar="MINUTES",
                   help="stop cleanly after this many minutes (checkpoint, weights and metrics written)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--accelerator", help="cpu, gpu or auto")
    p.add_argument("--devices", type=_devices, help="devices per node (a count or auto)")
    p.add_argument("--num-nodes", type=int)
    p.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
    p.add_argument("--precision", help="32-true or bf16-mixed")
    p.add_argument("--compile", action="store_const", const=True, help="torch.compile the network")
    p.add_argument("--channels-last", action="store_const", const=True)
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true", help="start over: remove the run folder (only ever a "
                   "cenn run folder that holds no input) and train again")
    p.add_argument("--no-progress", action="store_true")


def _add_export_weights(sub: argparse._SubParsersAction) -> None:
    from cenn.model.weights import DTYPES

    p = sub.add_parser("export-weights", help="rewrite a weights file in another precision (fp16 or bf16: "
                                              "half the size; loaded back as float32)")
    p.add_argument("weights_in", help="weights file (cenn train's weights.safetensors)")
    p.add_argument("weights_out", help="output weights file")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp16",
                   help="storage precision of the floating-point tensors (default fp16)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (never the input)")


def _run_predict(args: argparse.Namespace) -> int:
    """``cenn predict``: full-sky HEALPix maps (``--maps``) go to :mod:`cenn.healpix.command`,
    patches to :mod:`cenn.predict.command` (refused with full-sky options, which they would ignore)."""
    if args.maps:
        return run_full_sky(args)
    check_full_sky_options_unused(args)
    return run_predict(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cenn", description="CMB extraction with a fully convolutional neural network (CENN)."
    )
    parser.add_argument("--version", action="version", version=f"cenn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_train(sub)
    add_full_sky_arguments(add_predict_parser(sub))
    add_evaluate_parser(sub)
    add_experiment_parser(sub)
    _add_demo(sub)
    _add_export_weights(sub)
    return parser


def _run_simulate(args: argparse.Namespace) -> int:
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


#: ``cenn simulate`` options that only concern the store, which ``--describe`` does not write.
_STORE_ONLY = {"components": False, "workers": 0, "chunk_size": 64, "shard": (0, 1), "compression": "none",
               "overwrite": False}


def _refuse_with_describe(args: argparse.Namespace) -> None:
    """Refuse ``cenn simulate --describe`` with a store path or an option of the store, which it
    would ignore (it prints spectra and writes nothing)."""
    given = ([args.out] if args.out is not None else []) + given_options(args, _STORE_ONLY)
    if given:
        raise ValueError(f"--describe prints each component's spectra and writes no store, so "
                         f"{', '.join(given)} would be ignored: drop {'them' if len(given) > 1 else 'it'}, "
                         "or drop --describe to simulate a store")


def _run_train(args: argparse.Namespace) -> int:
    from cenn.train import train

    weights = train(train_config_from_args(args), args.run_dir, overwrite=args.overwrite,
                    inputs=[("--config", args.config)])
    if weights.exists():
        print(f"{args.run_dir}: weights {weights}")
    return 0


def _run_export_weights(args: argparse.Namespace) -> int:
    from cenn.model.weights import DTYPES, export_weights

    export_weights(args.weights_in, args.weights_out, DTYPES[args.dtype], overwrite=args.overwrite)
    size_mb = Path(args.weights_out).stat().st_size / 1e6
    print(f"{args.weights_out}: {args.dtype}, {size_mb:.1f} MB")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from cenn.demo import run_demo
    from cenn.evaluate.report import format_table, summary_table

    if args.seed < 0:
        raise ValueError(f"--seed must be a whole number >= 0, got {args.seed}")
    methods = None if args.methods is None else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    metrics = run_demo(args.out, args.patches, args.seed, args.device, methods, args.weights,
                       not args.no_progress, args.overwrite)
    print(format_table(*summary_table(metrics)))
    print(f"report: {Path(args.out) / 'report' / 'report.html'}")
    return 0


#: What an interrupted command (Ctrl-C) kept, and how to go on.
_INTERRUPTED = {
    "simulate": "the chunks already written are kept (a store is never left half-written); rerun the same "
                "command to resume",
    "train": "the run folder keeps the checkpoint of the last finished epoch (checkpoints/last.ckpt); rerun "
             "the same command to resume from it",
    "evaluate": "no report was written (it is written whole at the end); rerun the same command",
    "predict": "no output was left half-written; rerun the same command (with --overwrite if an output was "
               "already written)",
    "experiment": "the finished steps, the chunks of the stores and the run's last checkpoint are kept; "
                  "rerun the same command to resume",
    "demo": "the data already simulated are kept; rerun the same command to resume",
    "export-weights": "no output was written; rerun the same command",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cenn`` console script. Every refusal and failure is one line on stderr
    (exit 2); Ctrl-C is one line saying what was kept and how to resume (exit 130)."""
    args = build_parser().parse_args(argv)
    try:
        runners = {"simulate": _run_simulate, "train": _run_train, "predict": _run_predict,
                   "evaluate": run_evaluate, "experiment": run_experiment_command, "demo": _run_demo,
                   "export-weights": _run_export_weights}
        return runners[args.command](args)
    except KeyboardInterrupt:
        print(f"\ncenn {args.command}: interrupted: {_INTERRUPTED[args.command]}", file=sys.stderr)
        return 130
    except (ConfigError, StoreError, FileNotFoundError, FileExistsError, ValueError,
            OutputWriteError) as err:  # each names the problem and the fix
        print(f"cenn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder, ...
        hint = "the disk is full: free space or write elsewhere" if err.errno == errno.ENOSPC else "fix that"
        print(f"cenn {args.command}: error: {err}; {hint}, then rerun the same command (finished work is "
              "kept, and no output was left half-written)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
