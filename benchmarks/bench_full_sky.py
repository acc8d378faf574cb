"""Full-sky prediction time: three simulated HEALPix band maps in, the CMB map out.

    python benchmarks/bench_full_sky.py [--nside 2048] [--method cenn] [--device cpu|cuda]
        [--precision auto|32|bf16] [--mollweide cmb.png]

The band maps: the shipped lensed CMB spectrum (beam of each band), a power-law Galactic-like
foreground (C_ℓ ∝ ℓ^-2.4, brighter towards the plane, scaled by a dust-like SED) and white noise
at the Planck levels. Times the prediction alone (tiling, cutting, the separator, back-projection)
and records it with the peak memory of the process in benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import healpy as hp
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from cenn.healpix.command import card_info, instrument_info, write_mollweide
from cenn.healpix.reproject import predict_full_sky
from cenn.pretrained import default_weights
from cenn.runtime import DEFAULT_PRECISION, PRECISIONS
from cenn.separators import NetworkSeparator, build_separator
from cenn.sky.components.cmb.spectrum import lensed_tt
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument

#: Foreground amplitude per band relative to 217 GHz, K_CMB (roughly thermal dust, β ≈ 1.5, T ≈ 20 K).
SED = (0.25, 1.0, 7.5)


def band_maps(nside: int, seed: int = 0) -> np.ndarray:
    """``(3, 12 nside²)`` µK_CMB maps at 143, 217 and 353 GHz (RING)."""
    instrument = load_instrument("planck_hfi")
    lmax = min(3 * nside - 1, 6000)
    ell, cl = lensed_tt()
    cmb_cl = np.interp(np.arange(lmax + 1), ell, cl, left=0.0, right=0.0)
    fg_cl = np.zeros(lmax + 1)
    fg_cl[2:] = 50.0 * 2 * np.pi / (80 * 81) * (np.arange(2, lmax + 1) / 80.0) ** -2.4
    np.random.seed(seed)  # noqa: NPY002 (healpy.synalm draws from the global generator)
    cmb_alm = hp.synalm(cmb_cl, lmax=lmax)
    fg_alm = hp.synalm(fg_cl, lmax=lmax)
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    latitude_boost = 1.0 + 30.0 * np.exp(-(((np.pi / 2 - theta) / np.radians(10.0)) ** 2))
    rng = np.random.default_rng(seed)
    pixel_arcmin = hp.nside2resol(nside, arcmin=True)
    maps = []
    for band, sed in zip(instrument.bands, SED, strict=True):
        beam = hp.gauss_beam(np.radians(band.beam_fwhm_arcmin / 60.0), lmax)
        sky = hp.alm2map(hp.almxfl(cmb_alm, beam), nside) + sed * latitude_boost * hp.alm2map(
            hp.almxfl(fg_alm, beam), nside)
        noise = band.noise_uk_deg / (pixel_arcmin / 60.0)
        maps.append(sky + noise * rng.standard_normal(sky.size))
    return np.stack(maps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nside", type=int, default=2048)
    p.add_argument("--method", default="cenn")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="the network's, as cenn predict --precision (default auto)")
    p.add_argument("--mollweide", help="also write a Mollweide view of the CMB (PNG)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    start = time.perf_counter()
    maps = band_maps(args.nside)
    simulate_s = time.perf_counter() - start
    if args.method == "cenn":
        separator = NetworkSeparator(default_weights(), device=args.device, precision=args.precision,
                                     batch_size=args.batch_size)
        card = separator.predictor.card
        info, geometry = card_info(card), PatchGeometry(card.npix, card.pixel_arcsec)
    else:
        geometry = PatchGeometry(256, 90.0)
        separator = build_separator(args.method)
        info = instrument_info(load_instrument("planck_hfi"), geometry)
    start = time.perf_counter()
    cmb, weight = predict_full_sky(maps, args.nside, separator, info, geometry, args.nside,
                                   batch_size=args.batch_size, progress=False)
    predict_s = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    figures = {"nside": args.nside, "method": args.method, "patches_npix": geometry.npix,
               "pixel_arcsec": geometry.pixel_arcsec, "simulate_maps_s": round(simulate_s, 1),
               "predict_s": round(predict_s, 1), "peak_memory_gb": round(peak_gb, 2),
               "covered_fraction": float(np.mean(weight > 0))}
    if isinstance(separator, NetworkSeparator):
        figures["precision"] = separator.predictor.precision
    print(figures)
    if args.mollweide:
        write_mollweide(Path(args.mollweide), cmb, f"{args.method} CMB, simulated Nside {args.nside} sky")
    if not args.no_record:
        record("full_sky", args.device, figures)


if __name__ == "__main__":
    main()
