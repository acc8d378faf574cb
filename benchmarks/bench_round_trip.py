"""Identity round trip at full resolution: a lensed CMB map cut into patches and put back.

    python benchmarks/bench_round_trip.py [--nside 2048] [--beam-arcmin 5.02] [--bin 10]
        [--reprojection cubic|bilinear]

The map: the shipped lensed CMB spectrum smoothed by the 217 GHz beam (5.02′), drawn at Nside
2048. The identity separator ("target-band") sends it through ``predict_full_sky`` with the real
patches (256 × 90″, bilinear cut, the chosen back-projection) back onto Nside 2048. At another
``--nside`` (a quick check) the pixel, the beam and the multipoles scale with the HEALPix pixel.
Reported:

- ``max_dev_per_ell`` and ``max_dev_binned``: max |C_ℓ(out) / (C_ℓ(in) T_ℓ²) − 1| over
  60 ≤ ℓ ≤ 2500, per ℓ and in bins of ``--bin`` multipoles (T_ℓ from ``round_trip_transfer``; both
  spectra of the same realisation, so cosmic variance cancels); ``max_dev_cross_per_ell`` the same
  for the cross-spectrum, C_ℓ(out × in) / (C_ℓ(in) T_ℓ); ``raw_ratio_top`` is C_ℓ(out) / C_ℓ(in)
  over the last bin below ℓ = 2500, without the window, and ``window_squared_top`` T²(2500);
- ``seam_ratio``: RMS of the residual beyond the window (out minus the input filtered by T_ℓ) where
  patches overlap, over that where a single patch has full weight: above 1 would show seams;
- the time of the round trip and of the window, and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import healpy as hp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from cenn.healpix.reproject import predict_full_sky, round_trip_transfer
from cenn.separators import InputInfo, build_separator
from cenn.sky.components.cmb.spectrum import lensed_tt
from cenn.sky.flat.geometry import PatchGeometry

ELL_MIN, ELL_MAX = 60, 2500
"""Multipoles compared at Nside 2048."""


def cmb_alm(nside: int, beam_arcmin: float, seed: int = 0) -> np.ndarray:
    """Harmonic coefficients (µK, ℓ ≤ min(3 Nside − 1, 6000)) of a lensed CMB sky smoothed by a
    Gaussian beam of FWHM ``beam_arcmin``."""
    lmax = min(3 * nside - 1, 6000)
    ell, cl = lensed_tt()
    cl = np.interp(np.arange(lmax + 1), ell, cl, left=0.0, right=0.0)
    np.random.seed(seed)  # noqa: NPY002 (healpy.synalm draws from the global generator)
    return hp.almxfl(hp.synalm(cl, lmax=lmax), hp.gauss_beam(np.radians(beam_arcmin / 60.0), lmax))


def identity_info(geometry: PatchGeometry, beam_arcmin: float) -> InputInfo:
    """One 217 GHz band, returned unchanged by the target-band separator."""
    return InputInfo(frequencies_ghz=(217.0,), band_names=("217",), beam_fwhm_arcmin=(beam_arcmin,),
                     target_band="217", target_beam_fwhm_arcmin=beam_arcmin,
                     pixel_arcsec=geometry.pixel_arcsec, noise_uk_per_pixel=(0.0,))


def binned_max_deviation(band: np.ndarray, width: int) -> float:
    """max |mean − 1| of ``band`` (consecutive multipoles) over bins of ``width`` of them."""
    usable = band[: band.size // width * width]
    return float(np.abs(usable.reshape(-1, width).mean(axis=1) - 1.0).max())


def bin_means(ratio: np.ndarray, ell_min: int, ends: np.ndarray, width: int) -> list[float]:
    """Means of ``ratio`` (its first entry at ``ell_min``) over the ``width`` multipoles ending at each
    of ``ends``."""
    return [round(float(ratio[end - ell_min - width + 1 : end - ell_min + 1].mean()), 4) for end in ends]


def seam_ratio(out: np.ndarray, expected: np.ndarray, weight: np.ndarray) -> float:
    """RMS of out − expected where patches overlap over that where one patch has full weight."""
    error = out - expected
    single = np.abs(weight - 1.0) < 1e-9
    return float(error[~single].std() / error[single].std())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nside", type=int, default=2048)
    p.add_argument("--beam-arcmin", type=float, default=5.02)
    p.add_argument("--bin", type=int, default=10, help="bin width in ℓ for max_dev_binned")
    p.add_argument("--reprojection", default="cubic", choices=["cubic", "bilinear"])
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    scale = 2048 / args.nside
    geometry, beam = PatchGeometry(256, 90.0 * scale), args.beam_arcmin * scale
    ell_min, ell_max = round(ELL_MIN / scale), round(ELL_MAX / scale)
    alm = cmb_alm(args.nside, beam)
    sky = hp.alm2map(alm, args.nside)

    start = time.perf_counter()
    out, weight = predict_full_sky(sky[None], args.nside, build_separator("target-band"),
                                   identity_info(geometry, beam), geometry, args.nside, progress=False,
                                   reprojection=args.reprojection)
    round_trip_s = time.perf_counter() - start
    start = time.perf_counter()
    window = round_trip_transfer(args.nside, args.nside, geometry, hp.Alm.getlmax(alm.size),
                                 reprojection=args.reprojection)
    transfer_s = time.perf_counter() - start

    alm_in, alm_out = hp.map2alm(sky, lmax=ell_max), hp.map2alm(out, lmax=ell_max)
    cl_in = hp.alm2cl(alm_in)
    band = slice(ell_min, ell_max + 1)
    raw = (hp.alm2cl(alm_out) / cl_in)[band]
    ratio = raw / window[band] ** 2
    cross = (hp.alm2cl(alm_out, alm_in) / cl_in)[band] / window[band]
    expected = hp.alm2map(hp.almxfl(alm, window), args.nside)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    figures = {"nside": args.nside, "patches_npix": geometry.npix,
               "pixel_arcsec": round(geometry.pixel_arcsec, 1), "beam_arcmin": round(beam, 2),
               "interpolation": "bilinear", "reprojection": args.reprojection,
               "ell_range": [ell_min, ell_max], "bin_width": args.bin,
               "max_dev_per_ell": round(float(np.abs(ratio - 1).max()), 4),
               "max_dev_binned": round(binned_max_deviation(ratio, args.bin), 4),
               "max_dev_cross_per_ell": round(float(np.abs(cross - 1).max()), 4),
               "binned_ratio_at_500_to_2500": bin_means(ratio, ell_min, np.linspace(ell_max / 5, ell_max, 5)
                                                        .round().astype(int), args.bin),
               "raw_ratio_top": round(float(raw[-args.bin :].mean()), 4),
               "window_squared_top": round(float(window[ell_max] ** 2), 4),
               "seam_ratio": round(seam_ratio(out, expected, weight), 3),
               "round_trip_s": round(round_trip_s, 1), "transfer_s": round(transfer_s, 1),
               "peak_memory_gb": round(peak_gb, 2)}
    print(figures)
    if not args.no_record:
        record("round_trip", "cpu", figures)


if __name__ == "__main__":
    main()
