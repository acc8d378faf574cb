"""Small seeded HEALPix skies and coarse patch geometries, so tests/healpix runs in seconds, and a
check that a Mollweide PNG shows a given sky."""

from collections.abc import Callable
from pathlib import Path

import healpy as hp
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib import colormaps

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




def _colour_scale_values(path: Path) -> np.ndarray:
    """The value each pixel of a PNG shows on the RdBu_r colour scale, as a fraction (−1 to 1) of the
    scale's limit; NaN where its colour is not on the scale (background, text, antialiased edges, the
    grey of UNSEEN). Shape (height, width) of the PNG."""
    image = np.round(mpimg.imread(path)[..., :3] * 255).astype(int) @ [65536, 256, 1]
    colours, index = np.unique(image, return_inverse=True)
    rgb = np.stack([colours // 65536, colours // 256 % 256, colours % 256], axis=1) / 255
    distance = np.linalg.norm(rgb[:, None] - colormaps["RdBu_r"](np.linspace(0.0, 1.0, 256))[:, :3], axis=-1)
    values = np.where(distance.min(axis=1) < 0.01, (2.0 * distance.argmin(axis=1) + 1.0) / 256 - 1.0, np.nan)
    return values[index.reshape(image.shape)]


def _ellipse(values: np.ndarray) -> np.ndarray:
    """The Mollweide ellipse's bounding box in the output of :func:`_colour_scale_values`: the longest
    run of rows with values on the scale (the colour bar is a shorter one below), cut to its columns."""
    rows = np.mean(np.isfinite(values), axis=1) > 0.05
    run = np.cumsum(np.diff(rows, prepend=False)) * rows
    top, bottom = np.flatnonzero(run == np.bincount(run[rows]).argmax())[[0, -1]]
    columns = np.flatnonzero(np.isfinite(values[top:bottom + 1]).any(axis=0))
    return values[top:bottom + 1, columns[0]:columns[-1] + 1]


def assert_mollweide_of(path: Path, sky: np.ndarray) -> None:
    """``path`` is the PNG ``cenn predict --mollweide`` draws of ``sky`` (RING, µK): healpy's 8.5 × 5.4
    in Mollweide figure at 120 dpi, its ellipse all drawn in the RdBu_r colours of ``sky`` on the scale
    ± the 99.5th percentile of |sky|. Each pixel of the ellipse is read back at its direction (healpy's
    astronomical flip: east on the left); 99 % of them show, to 2 of the scale's 256 colours, the
    HEALPix pixel there or one of its neighbours (a drawn pixel may straddle their border)."""
    values = _colour_scale_values(path)
    assert values.shape == (round(5.4 * 120), round(8.5 * 120))
    ellipse = _ellipse(values)
    height, width = ellipse.shape
    y, x = np.meshgrid(1.0 - (2.0 * np.arange(height) + 1.0) / height,
                       (4.0 * np.arange(width) + 2.0) / width - 2.0, indexing="ij")
    vec = np.stack(hp.projector.MollweideProj().xy2vec(x.ravel(), y.ravel()), axis=1)
    shown = ellipse.ravel()[np.isfinite(vec[:, 2])]
    drawn = np.isfinite(shown)
    assert drawn.mean() > 0.99
    theta, phi = hp.vec2ang(vec[np.isfinite(vec[:, 2])][drawn])
    nside = hp.get_nside(sky)
    near = np.vstack([hp.ang2pix(nside, theta, phi), hp.get_all_neighbours(nside, theta, phi)])
    limit = np.percentile(np.abs(sky), 99.5)
    there = np.where(near >= 0, np.clip(sky[near] / limit, -1.0, 1.0), np.inf)  # -1: no such neighbour
    assert np.mean(np.min(np.abs(there - shown[drawn]), axis=0) < 2 / 128) > 0.99

@pytest.fixture(scope="session")
def mollweide_of() -> Callable[[Path, np.ndarray], None]:
    """``mollweide_of(path, sky)``: see :func:`assert_mollweide_of`."""
    return assert_mollweide_of
