"""``cenn predict``: the CMB from patches (``INPUT OUTPUT``, :mod:`cenn.predict.command`) or from
full-sky HEALPix maps (``--maps ... --out``, :mod:`cenn.healpix.command`)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from cenn.cli.options import add_device, add_no_progress, add_precision
from cenn.config import given_options


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


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cenn predict`` to ``sub``: the options of patches (``INPUT OUTPUT``), those both kinds of
    input share, and the full sky's (:func:`add_full_sky_arguments`)."""
    p = sub.add_parser("predict", help="extract the CMB from patches, or from full-sky HEALPix maps "
                       "(--maps), with trained weights (default: the reference model) or a baseline")
    p.add_argument("input", nargs="?",
                   help="maps (N, C, H, W) in µK_CMB: a dataset store, .npy or .fits[.gz]")
    p.add_argument("output", nargs="?", help="CMB maps (N, 1, H, W) in µK_CMB: .npy, .fits or .fits.gz")
    p.add_argument("--weights", help="weights file (.safetensors) from cenn train (default: the reference "
                   "model shipped with cenn)")
    p.add_argument("--stokes", choices=["I", "QU"],
                   help="I: temperature maps (N, C, H, W); QU: the bands' Q then U (N, 2C, H, W), or a "
                        "store's Q and U (--stokes IQU stores), giving the CMB's Q and U (N, 2, H, W) "
                        "(default: what the weights separate; without --weights, the shipped model for "
                        "it). With --maps, QU reads each file's Q_STOKES and U_STOKES columns and writes "
                        "the CMB's (COSMO), --weights naming Q/U weights (default I: the first column)")
    p.add_argument("--frequencies", type=_parse_frequencies, metavar="GHZ,GHZ,...",
                   help="frequency of each input channel (or --maps file), e.g. 143,217,353 (overrides "
                        "what the files say)")
    p.add_argument("--pixel-arcsec", type=float, help="pixel side in arcsec (overrides the file's)")
    p.add_argument("--units", help="units of the input maps: uK_CMB, mK_CMB or K_CMB (default: the file's, "
                   "else uK_CMB for .npy)")
    p.add_argument("--batch-size", type=int, default=32, help="patches per forward pass")
    add_device(p)
    add_precision(p)
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
    return add_full_sky_arguments(p)


def add_full_sky_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The full-sky options (``--maps ... --out``) of ``cenn predict``."""
    full = parser.add_argument_group("full sky (HEALPix)")
    full.add_argument("--maps", nargs="+", metavar="FITS", help="one HEALPix map per band, in the "
                      "weights' frequency order (e.g. 143, 217, 353 GHz)")
    full.add_argument("--out", help="output HEALPix FITS: CMB and weight columns")
    full.add_argument("--method", default="cenn", help="cenn or a baseline (ilc, hilc, nilc, ...)")
    full.add_argument("--nside", type=int, help="output Nside, a power of two (default: the inputs')")
    full.add_argument("--overlap", type=float, default=0.25, help="overlap of neighbouring patches")
    full.add_argument("--apodisation", type=float, default=0.125,
                      help="width of the patches' cosine weight ramp, as a fraction of the side")
    full.add_argument("--interpolation", choices=["bilinear", "nearest"], default="bilinear",
                      help="how patches are cut from the maps (default bilinear, like the network's inputs)")
    full.add_argument("--reprojection", choices=["cubic", "bilinear"], default="cubic",
                      help="how patch outputs are put back on the sphere (default cubic spline)")
    full.add_argument("--instrument", default="planck_hfi", help="instrument preset for baselines")
    full.add_argument("--npix", type=int, default=256, help="patch side in pixels for baselines")
    full.add_argument("--mollweide", help="also write a Mollweide view of the CMB (.png, .pdf, .svg, ...)")
    full.add_argument("--mask-above", type=float, metavar="UK",
                      help="with --mask: a confidence mask keeping the pixels whose σ is at most UK µK_CMB "
                           "(weights with a σ output; their σ map is the SIGMA column of --out)")
    full.add_argument("--mask", metavar="FITS", help="where --mask-above writes the confidence mask")
    add_no_progress(full)
    return parser


def full_sky_defaults() -> dict[str, Any]:
    """The defaults of the full-sky options (:func:`add_full_sky_arguments`)."""
    return vars(add_full_sky_arguments(argparse.ArgumentParser()).parse_args([]))


def check_full_sky_options_unused(args: argparse.Namespace) -> None:
    """Refuse, without ``--maps``, the full-sky options (``cenn predict INPUT OUTPUT`` would ignore
    them; ``--no-progress`` is harmless)."""
    defaults = full_sky_defaults()
    given = given_options(args, {n: d for n, d in defaults.items() if n not in ("maps", "no_progress")})
    if given:
        apply, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
        raise ValueError(f"{', '.join(given)} {apply} to full-sky maps (cenn predict --maps FITS ... --out "
                         "FILE.fits) only; patches (INPUT OUTPUT) are separated by the network of --weights: "
                         f"drop {them}, or give --maps")


def run(args: argparse.Namespace) -> int:
    """Full-sky maps (``--maps``) go to :func:`cenn.healpix.command.run_full_sky`, patches to
    :func:`cenn.predict.command.run_predict` (refused with full-sky options, which they would ignore)."""
    if args.maps:
        from cenn.healpix.command import run_full_sky

        return run_full_sky(args)
    from cenn.predict.command import run_predict

    check_full_sky_options_unused(args)
    return run_predict(args)
