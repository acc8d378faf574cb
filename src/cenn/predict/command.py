"""``cenn predict INPUT OUTPUT``: the CMB of patches, with trained weights (default: the reference
model). The options of ``cenn predict`` are declared in :mod:`cenn.cli.predict`, which sends the calls
with full-sky maps (``--maps``) to :mod:`cenn.healpix.command` and the others here."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from cenn.outputs import check_file_outputs
from cenn.predict.api import Predictor
from cenn.predict.files import file_kind, read_input, read_noise_input, write_output
from cenn.predict.units import check_channel_order, patch_spreads
from cenn.pretrained import resolve_weights
from cenn.runtime import check_device


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


def check_weights_stokes(predictor: Predictor, stokes: str | None, weights: str | None) -> str:
    """The Stokes maps to separate: ``stokes`` (``--stokes``) when the weights' card agrees, else a
    refusal naming both; the card's when not given."""
    card = predictor.card.stokes
    if stokes is not None and stokes != card:
        kinds = {"I": "temperature", "QU": "Q and U"}
        raise ValueError(f"--stokes {stokes} asks for {kinds[stokes]} but the weights {weights} separate "
                         f"{kinds[card]} (their card's stokes = {card!r}): give weights trained with "
                         f"data.stokes = {stokes!r}, or --stokes {card}")
    return card


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
    predictor = Predictor(resolve_weights(args.weights, args.stokes or "I"), device=args.device,
                          precision=args.precision, batch_size=args.batch_size)
    stokes = check_weights_stokes(predictor, args.stokes, args.weights)
    if args.uncertainty and not predictor.gives_sigma:
        raise ValueError(f"--uncertainty needs weights with a σ output; {args.weights or 'these weights'} "
                         f"({predictor.card.architecture!r}) return the CMB only: use the shipped reference "
                         "model or weights trained with model.params.sigma_output = true")
    maps, meta = read_input(args.input, args.frequencies, args.pixel_arcsec, args.units, stokes)
    check_order(maps, meta["frequencies_ghz"])
    noise = read_noise_input(args.input, args.noise_sigma, maps.shape, meta["units"], stokes)
    if noise is not None and not predictor.takes_noise:
        warnings.warn("these weights do not take the noise σ: the σ maps given are not used", stacklevel=1)
        noise = None
    result = predictor.predict(maps, **meta, fill_nonfinite=args.fill_nonfinite, noise_sigma=noise,
                               return_sigma=bool(args.uncertainty))
    cmb, sigma = result if args.uncertainty else (result, None)
    write_output(args.output, cmb, predictor.card, source=args.input, precision=predictor.precision)
    n_patches = 1 if cmb.ndim == 3 else cmb.shape[0]
    what = "CMB" if stokes == "I" else "CMB Q and U"
    print(f"{args.output}: {what} of {n_patches} patches of {cmb.shape[-2]}×{cmb.shape[-1]} pixels "
          f"(µK_CMB, {predictor.card.target_frequency_ghz:g} GHz beam) from {args.input}")
    if sigma is not None:
        write_output(args.uncertainty, sigma, predictor.card, source=args.input,
                     precision=predictor.precision)
        print(f"{args.uncertainty}: the standard deviation of that CMB's residual per pixel (µK_CMB)")
    return 0
