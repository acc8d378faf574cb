"""``cenn train``: train a network into a run folder (rerun to resume)."""

from __future__ import annotations

import argparse
import tomllib
from typing import TYPE_CHECKING, Any

from cenn.cli.options import add_no_progress
from cenn.config import read_toml

if TYPE_CHECKING:
    from cenn.train import TrainConfig

#: Options and the configuration key each one sets.
_OPTIONS = {
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


def _parse_setting(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes SECTION.KEY=VALUE, e.g. optim.lr=0.01, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare string
    return key.split("."), parsed


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def add_parser(sub: argparse._SubParsersAction) -> None:
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
                   help="stop cleanly after this many minutes of this invocation (checkpoint, weights and "
                        "metrics written; a resumed run gets its own minutes)")
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
    add_no_progress(p)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training configuration file (if any), then --set, then the named options."""
    from cenn.train import TrainConfig

    data: dict[str, Any] = read_toml(args.config) if args.config else {}
    for path, value in args.set or []:
        table = data
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    for option, (section, key) in _OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            data.setdefault(section, {})[key] = value
    if args.no_progress:
        data.setdefault("trainer", {})["progress"] = False
    return TrainConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    from cenn.train import train

    weights = train(train_config_from_args(args), args.run_dir, overwrite=args.overwrite,
                    inputs=[("--config", args.config)])
    if weights.exists():
        print(f"{args.run_dir}: weights {weights}")
    return 0
