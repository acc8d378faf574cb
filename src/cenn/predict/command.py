"""``cenn predict INPUT OUTPUT``: the CMB of patches, with trained weights (default: the reference
model). The full-sky options (``--maps``) are added, and run, by :mod:`cenn.healpix.command`; the
CLI (:mod:`cenn.cli`) sends each call to the one it is for."""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np

from cenn.outputs import check_file_outputs
from cenn.predict.api import PRECISIONS, Predictor
from cenn.predict.files import file_kind, read_input, read_noise_input, write_output
from cenn.predict.units import check_channel_order, patch_spreads
from cenn.pretrained import resolve_weights
from cenn.runtime import check_device


def _parse_frequencies(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--frequencies takes GHz separated by commas, e.g. 143,217,353, got {text!r}"
        ) from err
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--frequencies must be positive GHz, got {text!r}")
    return values


def add_predict_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cenn predict`` to ``sub``, with the options of patches (``INPUT OUTPUT``) and those both
    kinds of input share; :func:`cenn.healpix.command.add_full_sky_arguments` adds the full sky's
    (``--maps ... --out``)."""
    p = sub.add_parser("predict", help="extract the CMB from patches, or from full-sky HEALPix maps "
                       "(--maps), with trained weights (default: the reference model) or a baseline")
    p.add_argument("input", nargs="?",
                   help="maps (N, C, H, W) in µK_CMB: a dataset store, .npy or .fits[.gz]")
    p.add_argument("output", nargs="?", help="CMB maps (N, 1, H, W) in µK_CMB: .npy, .fits or .fits.gz")
    p.add_argument("--weights", help="weights file (.safetensors) from cenn train (default: the reference "
                   "model shipped with cenn)")
    p.add_argument("--frequencies", type=_parse_frequencies, metavar="GHZ,GHZ,...",
                   help="frequency of each input channel (or --maps file), e.g. 143,217,353 (overrides "
                        "what the files say)")
    p.add_argument("--pixel-arcsec", type=float, help="pixel side in arcsec (overrides the file's)")
    p.add_argument("--units", help="units of the input maps: uK_CMB, mK_CMB or K_CMB (default: the file's, "
                   "else uK_CMB for .npy)")
    p.add_argument("--batch-size", type=int, default=32, help="patches per forward pass")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", choices=PRECISIONS, default="32",
                   help="32 (float32) or bf16 (bfloat16 autocast); the output is float32 either way")
    p.add_argument("--fill-nonfinite", action="store_true",
                   help="fill NaN and infinite input pixels with their patch and channel median (the "
                        "fraction filled is reported) instead of refusing them")
    p.add_argument("--noise-sigma", metavar="FILE",
                   help="per-pixel noise σ of the inputs, their shape and units (.npy or FITS), for "
                        "weights that take it (default: a dataset store's noise_sigma, else the weights' "
                        "nominal level)")
    p.add_argument("--uncertainty", metavar="SIGMA",
                   help="also write the per-pixel standard deviation of the CMB's residual (µK_CMB, the "
                        "output's format) to SIGMA; needs weights with a σ output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


def check_order(maps: np.ndarray, frequencies_ghz: list[float]) -> None:
    """Refuse, before any work, maps whose channels' spreads say clearly that they are not in the order
    of ``frequencies_ghz``, and warn when they make it doubtful (:func:`check_channel_order`); maps of
    another shape are left to :meth:`Predictor.check`."""
    if maps.ndim not in (3, 4) or maps.shape[-3] != len(frequencies_ghz):
        return
    fix = ("give the channels along axis 1 in that order, or state their frequencies as they are "
           "(--frequencies, or the file's FREQ1…FREQn)")
    doubt = check_channel_order(patch_spreads(maps), frequencies_ghz, "median per-patch standard deviation",
                                fix)
    if doubt:
        warnings.warn(doubt, stacklevel=2)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cenn predict``; problems with the inputs raise ``ValueError`` (or ``StoreError``,
    ``FileNotFoundError``) for the caller to report."""
    if args.input is None or args.output is None:
        raise ValueError("cenn predict needs INPUT and OUTPUT (patches), or --maps and --out (full sky)")
    check_device(args.device, "--device")
    outputs = [("OUTPUT", args.output), ("--uncertainty", args.uncertainty)]
    for _, path in outputs:  # fail before the work, not after
        if path is not None:
            file_kind(Path(path), "output")
    check_file_outputs(outputs, [("INPUT", args.input), ("--noise-sigma", args.noise_sigma),
                                 ("--weights", args.weights)], args.overwrite)
    predictor = Predictor(resolve_weights(args.weights), device=args.device, precision=args.precision,
                          batch_size=args.batch_size)
    if args.uncertainty and not predictor.gives_sigma:
        raise ValueError(f"--uncertainty needs weights with a σ output; {args.weights or 'these weights'} "
                         f"({predictor.card.architecture!r}) return the CMB only: use the shipped reference "
                         "model or weights trained with model.params.sigma_output = true")
    maps, meta = read_input(args.input, args.frequencies, args.pixel_arcsec, args.units)
    check_order(maps, meta["frequencies_ghz"])
    noise = read_noise_input(args.input, args.noise_sigma, maps.shape, meta["units"])
    if noise is not None and not predictor.takes_noise:
        warnings.warn("these weights do not take the noise σ: the σ maps given are not used", stacklevel=1)
        noise = None
    result = predictor.predict(maps, **meta, fill_nonfinite=args.fill_nonfinite, noise_sigma=noise,
                               return_sigma=bool(args.uncertainty))
    cmb, sigma = result if args.uncertainty else (result, None)
    write_output(args.output, cmb, predictor.card, source=args.input)
    n_patches = 1 if cmb.ndim == 3 else cmb.shape[0]
    print(f"{args.output}: CMB of {n_patches} patches of {cmb.shape[-2]}×{cmb.shape[-1]} pixels "
          f"(µK_CMB, {predictor.card.target_frequency_ghz:g} GHz beam) from {args.input}")
    if sigma is not None:
        write_output(args.uncertainty, sigma, predictor.card, source=args.input)
        print(f"{args.uncertainty}: the standard deviation of that CMB's residual per pixel (µK_CMB)")
    return 0
