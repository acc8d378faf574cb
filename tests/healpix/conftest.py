"""Small seeded HEALPix skies and coarse patch geometries, so tests/healpix runs in seconds."""

from collections.abc import Callable

import healpy as hp
import numpy as np
import pytest

from cenn.sky.flat.geometry import PatchGeometry


def _cmb_like_alm(nside: int, seed: int = 0, beam_pixels: float = 2.0) -> np.ndarray:
    """Harmonic coefficients (µK, ℓ ≤ 3 Nside − 1) of a Gaussian sky of C_ℓ = 1000 µK² (ℓ/100)⁻²,
    smoothed by a Gaussian beam of FWHM ``beam_pixels`` × the pixel size of ``nside``: a CMB-like
    power law resolved by the pixels."""
    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1)
    cl = np.zeros(lmax + 1)
    cl[2:] = 1e3 * (ell[2:] / 100.0) ** -2.0
    cl *= hp.gauss_beam(beam_pixels * hp.nside2resol(nside), lmax) ** 2
    l_of_alm, m_of_alm = hp.Alm.getlm(lmax)
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((2, l_of_alm.size))
    alm = np.where(m_of_alm == 0, draws[0], (draws[0] + 1j * draws[1]) / np.sqrt(2.0))
    return alm * np.sqrt(cl[l_of_alm])


def _cmb_like_map(nside: int, seed: int = 0, beam_pixels: float = 2.0) -> np.ndarray:
    """The map (RING, µK) of :func:`_cmb_like_alm` at ``nside``."""
    return hp.alm2map(_cmb_like_alm(nside, seed, beam_pixels), nside, lmax=3 * nside - 1)


@pytest.fixture(scope="session")
def cmb_like_alm() -> Callable[..., np.ndarray]:
    """``cmb_like_alm(nside, seed=0, beam_pixels=2.0)``: see :func:`_cmb_like_alm`."""
    return _cmb_like_alm


@pytest.fixture(scope="session")
def cmb_like_map() -> Callable[..., np.ndarray]:
    """``cmb_like_map(nside, seed=0, beam_pixels=2.0)``: see :func:`_cmb_like_map`."""
    return _cmb_like_map


def coarse_geometry(nside: int, npix: int, pixel_fraction: float = 0.8) -> PatchGeometry:
    """``npix`` patches whose pixels are ``pixel_fraction`` × the HEALPix pixel size of ``nside``."""
    return PatchGeometry(npix, hp.nside2resol(nside, arcmin=True) * 60.0 * pixel_fraction)


@pytest.fixture(scope="session")
def geometry_for() -> Callable[..., PatchGeometry]:
    """``geometry_for(nside, npix, pixel_fraction=0.8)``: see :func:`coarse_geometry`."""
    return coarse_geometry
