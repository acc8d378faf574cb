"""Patch centres that cover the whole sphere, poles included.

Centres lie on rings of constant latitude from pole to pole (one patch on each pole). Each patch
owns a *cell*: the centred square of side (1 − overlap) × patch side, so neighbouring patches
overlap by at least ``overlap`` of their side. Rings are spaced by at most ``RING_MARGIN`` × the
cell's angular side; a ring holds the fewest equally spaced patches whose cells cover its whole
latitude band, checked with the projection itself (cells stretch in latitude away from their
centre's meridian, more so near the poles, which is what the margin leaves room for).
"""

from __future__ import annotations

import math

import numpy as np

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import get_projection, patch_position

RING_MARGIN = 0.9
"""Ring spacing as a fraction of the cell's angular side."""

_BAND_SAMPLES = 33
"""Latitudes per ring band at which the cells' coverage is checked."""


def tile_centres(geometry: PatchGeometry, overlap: float,
                 projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(lon_deg, lat_deg)`` (float64, shape (N,)) of patches of ``geometry`` whose cells
    cover the sphere, each point lying at least overlap/2 × side inside some patch."""
    check_overlap(overlap)
    half_cell = (1.0 - overlap) * geometry.npix / 2.0
    half_angle = float(np.arcsin(get_projection(projection).from_plane(
        np.array(0.0), np.array(half_cell * geometry.pixel_rad))[2]))
    n_rings = math.ceil(math.pi / (2.0 * half_angle * RING_MARGIN))
    band_half = 90.0 / n_rings
    lon, lat = [], []
    for ring_lat in np.linspace(-90.0, 90.0, n_rings + 1):
        # a polar patch's cell holds the disc of radius half_angle > band_half around the pole
        m = 1 if abs(ring_lat) == 90.0 else _ring_size(ring_lat, band_half, half_cell, geometry, projection)
        lon.append(360.0 * np.arange(m) / m)
        lat.append(np.full(m, ring_lat))
    return np.concatenate(lon), np.concatenate(lat)


def check_overlap(overlap: float) -> None:
    """Refuse an overlap of neighbouring patches outside [0, 1) (a fraction of the patch side)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1) (a fraction of the patch side), got {overlap!r}")


def _ring_size(lat0: float, band_half: float, half_cell: float, geometry: PatchGeometry,
               projection: str) -> int:
    """Fewest patches on the ring at latitude ``lat0`` (degrees) whose cells (half side
    ``half_cell`` pixels) cover the band lat0 ± band_half (degrees)."""
    lats = lat0 + np.linspace(-band_half, band_half, _BAND_SAMPLES)
    # lower bound: a cell is at most tan(u) wide in e (u its plane half side) on the widest latitude
    widest = math.radians(np.abs(lats).min())
    reach = min(1.0, math.tan(half_cell * geometry.pixel_rad) / math.cos(widest))
    m = math.ceil(math.pi / math.asin(reach))
    while not _cells_cover(lats, 180.0 / m, lat0, half_cell, geometry, projection):
        m += 1
    return m


def _cells_cover(lats: np.ndarray, half_step: float, lat0: float, half_cell: float,
                 geometry: PatchGeometry, projection: str) -> bool:
    """Whether the cell of the patch at (0, lat0) holds the points at longitudes 0 and
    ``half_step`` (degrees) of latitudes ``lats``: both coordinates are monotonic in longitude
    between them, so then it holds the whole half step."""
    lon = np.concatenate([np.zeros_like(lats), np.full_like(lats, half_step)])
    row, col = patch_position(lon, np.concatenate([lats, lats]), 0.0, lat0, geometry, projection)
    centre = (geometry.npix - 1) / 2.0
    return bool(np.all(np.abs(row - centre) <= half_cell) and np.all(np.abs(col - centre) <= half_cell))
