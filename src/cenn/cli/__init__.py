"""The ``cenn`` command line: ``cenn simulate``, ``train``, ``predict``, ``evaluate``, ``experiment``,
``demo`` and ``export-weights``, one module each with its options and its run function. Building the
parser imports no command's modules (torch, healpy, zarr, ...); a command imports them when it runs."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from cenn._version import __version__
from cenn.cli import demo, evaluate, experiment, export_weights, predict, simulate, train

#: Each command's module (with ``add_parser`` and ``run``), in the order of ``cenn --help``.
COMMANDS = {"simulate": simulate, "train": train, "predict": predict, "evaluate": evaluate,
            "experiment": experiment, "demo": demo, "export-weights": export_weights}

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cenn", description="CMB extraction with a fully convolutional neural network (CENN)."
    )
    parser.add_argument("--version", action="version", version=f"cenn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _expected_errors() -> tuple[type[Exception], ...]:
    """The errors that name the problem and the fix, reported as one line."""
    from cenn.config import ConfigError
    from cenn.data.store import StoreError
    from cenn.outputs import OutputWriteError

    return ConfigError, StoreError, FileNotFoundError, FileExistsError, ValueError, OutputWriteError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cenn`` console script. Every refusal and failure is one line on stderr
    (exit 2); Ctrl-C is one line saying what was kept and how to resume (exit 130)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        import logging

        # zarr's writes still pending on its event loop are abandoned (a chunk not marked done is
        # written again on resume); asyncio would report each one as a destroyed task at exit
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        print(f"\ncenn {args.command}: interrupted: {_INTERRUPTED[args.command]}", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _expected_errors()):
            print(f"cenn {args.command}: error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):  # a full disk, a read-only folder, ...
            full = err.errno == errno.ENOSPC
            hint = "the disk is full: free space or write elsewhere" if full else "fix that"
            print(f"cenn {args.command}: error: {err}; {hint}, then rerun the same command (finished work "
                  "is kept, and no output was left half-written)", file=sys.stderr)
            return 2
        raise
