"""``cenn export-weights``: a weights file rewritten in another storage precision."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Storage precisions (the keys of :data:`cenn.model.weights.DTYPES`).
DTYPE_NAMES = ("fp32", "fp16", "bf16")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-weights", help="rewrite a weights file in another precision (fp16 or bf16: "
                                              "half the size; loaded back as float32)")
    p.add_argument("weights_in", help="weights file (cenn train's weights.safetensors)")
    p.add_argument("weights_out", help="output weights file")
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="fp16",
                   help="storage precision of the floating-point tensors (default fp16)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (never the input)")


def run(args: argparse.Namespace) -> int:
    from cenn.model.weights import DTYPES, export_weights

    export_weights(args.weights_in, args.weights_out, DTYPES[args.dtype], overwrite=args.overwrite)
    size_mb = Path(args.weights_out).stat().st_size / 1e6
    print(f"{args.weights_out}: {args.dtype}, {size_mb:.1f} MB")
    return 0
