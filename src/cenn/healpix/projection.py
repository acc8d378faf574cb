"""Flat-sky projections between patch pixels and directions on the sphere, and patches cut from maps.

Both projections work in the local frame of the patch centre (l0, b0): unit vectors have components
(a, e, n) along the centre, the local east (increasing l) and the local north (increasing b), and
the plane has x towards the east and y towards the north, in radians:

- ``"gnomonic"``: the tangent plane, as :func:`cenn.sky.projection.pixel_coordinates` (simulated
  patches use it): (a, e, n) ∝ (1, x, y).
- ``"cartesian"``: a plate carrée of the frame rotated so that the centre sits on the equator, x and
  y being that frame's longitude and latitude; well defined at the poles too.

Pixel ``[row, col]`` of an ``n × n`` patch sits at y = (row − (n−1)/2)·θ_pix and
x = −(col − (n−1)/2)·θ_pix: rows run towards the north, columns towards the west, as in
:mod:`cenn.sky.projection`. Directions are Galactic (l, b) in degrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import healpy as hp
import numpy as np

from cenn.sky.geometry import PatchGeometry

Components = tuple[np.ndarray, np.ndarray, np.ndarray]


class Projection(NamedTuple):
    """A projection as its pair of maps: plane (x, y) → local components (a, e, n) and back."""

    from_plane: Callable[[np.ndarray, np.ndarray], Components]
    to_plane: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _gnomonic_from_plane(x: np.ndarray, y: np.ndarray) -> Components:
    a = 1.0 / np.sqrt(1.0 + x**2 + y**2)
    return a, x * a, y * a


def _gnomonic_to_plane(a: np.ndarray, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane (x, y); NaN for directions 90° or more from the centre (no image)."""
    ahead = a > 0
    safe = np.where(ahead, a, 1.0)
    return np.where(ahead, e / safe, np.nan), np.where(ahead, n / safe, np.nan)


def _cartesian_from_plane(x: np.ndarray, y: np.ndarray) -> Components:
    return np.cos(y) * np.cos(x), np.cos(y) * np.sin(x), np.sin(y)


def _cartesian_to_plane(a: np.ndarray, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.arctan2(e, a), np.arcsin(np.clip(n, -1.0, 1.0))


PROJECTIONS = {
    "gnomonic": Projection(_gnomonic_from_plane, _gnomonic_to_plane),
    "cartesian": Projection(_cartesian_from_plane, _cartesian_to_plane),
}


def get_projection(name: str) -> Projection:
    """The projection called ``name`` (gnomonic or cartesian)."""
    if name not in PROJECTIONS:
        raise ValueError(f"unknown projection {name!r}; choose one of {', '.join(PROJECTIONS)}")
    return PROJECTIONS[name]


def unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors of directions (l, b) in degrees, shape ``(*lon.shape, 3)``."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def local_axes(lon0_deg: np.ndarray, lat0_deg: np.ndarray) -> np.ndarray:
    """Centre, east and north unit vectors of centres (l0, b0) in degrees, shape ``(*lon0.shape, 3, 3)``."""
    lon, lat = np.radians(lon0_deg), np.radians(lat0_deg)
    zero = np.zeros_like(lon)
    east = np.stack([-np.sin(lon), np.cos(lon), zero], axis=-1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=-1)
    return np.stack([unit_vectors(lon0_deg, lat0_deg), east, north], axis=-2)


def patch_vectors(lon0_deg: np.ndarray, lat0_deg: np.ndarray, row: np.ndarray, col: np.ndarray,
                  geometry: PatchGeometry, projection: str = "gnomonic") -> np.ndarray:
    """Unit vectors of fractional ``(row, col)`` in the patches centred on (lon0, lat0) (degrees):
    the inverse of :func:`vector_position`. Centres and positions broadcast together to a shape
    ``S``; returns ``(*S, 3)``."""
    centre = (geometry.npix - 1) / 2.0
    x_east, y_north = np.broadcast_arrays(-(np.asarray(col) - centre) * geometry.pixel_rad,
                                          (np.asarray(row) - centre) * geometry.pixel_rad)
    local = np.stack(get_projection(projection).from_plane(x_east, y_north), axis=-1)
    return np.einsum("...c,...cd->...d", local, local_axes(lon0_deg, lat0_deg))


def pixel_directions(lon0_deg: np.ndarray, lat0_deg: np.ndarray, geometry: PatchGeometry,
                     projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray]:
    """(l, b) in degrees of every pixel centre of the patches centred on (lon0, lat0) (shape (N,)).

    Returns two float64 arrays ``(N, n, n)``, l in [0, 360).
    """
    index = np.arange(geometry.npix, dtype=np.float64)
    centres = (np.atleast_1d(lon0_deg)[:, None, None], np.atleast_1d(lat0_deg)[:, None, None])
    v = patch_vectors(*centres, index[:, None], index[None, :], geometry, projection)
    return vector_directions(v)


def vector_directions(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(l, b) in degrees of unit vectors ``(..., 3)``, l in [0, 360)."""
    vx, vy, vz = np.moveaxis(vectors, -1, 0)
    # atan2 for b keeps full precision next to the poles, where arcsin(z) loses ~eps/distance
    return np.degrees(np.arctan2(vy, vx)) % 360.0, np.degrees(np.arctan2(vz, np.hypot(vx, vy)))


def patch_position(lon_deg: np.ndarray, lat_deg: np.ndarray, lon0_deg: float, lat0_deg: float,
                   geometry: PatchGeometry, projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray]:
    """Fractional ``(row, col)`` of directions (l, b) in degrees in the patch centred on (lon0, lat0).

    The exact inverse of :func:`pixel_directions`; pixel centres sit at integers. Same shape as
    ``lon_deg``; NaN where the projection has no image (gnomonic, 90° or more away).
    """
    return vector_position(unit_vectors(lon_deg, lat_deg), lon0_deg, lat0_deg, geometry, projection)


def vector_position(vectors: np.ndarray, lon0_deg: float | np.ndarray, lat0_deg: float | np.ndarray,
                    geometry: PatchGeometry, projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray]:
    """:func:`patch_position` of unit vectors ``(..., 3)``; the centres (degrees) may be arrays that
    broadcast with ``vectors.shape[:-1]``."""
    a, e, n = np.moveaxis(np.einsum("...d,...cd->...c", vectors, local_axes(lon0_deg, lat0_deg)), -1, 0)
    x, y = get_projection(projection).to_plane(a, e, n)
    centre = (geometry.npix - 1) / 2.0
    return centre + y / geometry.pixel_rad, centre - x / geometry.pixel_rad


def forward_gnomonic(lon_deg: np.ndarray, lat_deg: np.ndarray, lon0_deg: float, lat0_deg: float,
                     geometry: PatchGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Fractional ``(row, col)`` of directions in the gnomonic patch centred on (lon0, lat0), degrees
    in: the exact inverse of :func:`cenn.sky.projection.pixel_coordinates`."""
    return patch_position(lon_deg, lat_deg, lon0_deg, lat0_deg, geometry, "gnomonic")


@dataclass(frozen=True)
class PatchCut:
    """Patches cut from maps: ``values`` ``(N, n, n)`` or ``(N, C, n, n)`` float32 in the maps' units,
    NaN where the interpolation touched an UNSEEN map pixel; ``unseen`` ``(N, n, n)`` bool, True
    there (in any channel)."""

    values: np.ndarray
    unseen: np.ndarray

    @property
    def unseen_count(self) -> np.ndarray:
        """Number of pixels touching UNSEEN in each patch, shape (N,)."""
        return self.unseen.sum(axis=(-2, -1))


def cut_patches(values: np.ndarray, nside: int, lon_deg: np.ndarray, lat_deg: np.ndarray,
                geometry: PatchGeometry, interpolation: str = "bilinear",
                projection: str = "gnomonic") -> PatchCut:
    """Patches of ``geometry`` centred on (lon, lat) (degrees, shape (N,)) cut from RING maps.

    ``values`` is one map ``(12·nside²,)`` or a stack ``(C, 12·nside²)``; ``interpolation`` is
    ``"bilinear"`` or ``"nearest"`` (see :func:`interpolation_weights`).
    """
    maps = np.atleast_2d(values)
    if maps.ndim != 2 or maps.shape[1] != hp.nside2npix(nside):
        raise ValueError(f"maps of shape {values.shape} do not match Nside {nside} "
                         f"({hp.nside2npix(nside)} pixels); pass (npix,) or (C, npix) RING arrays")
    lon, lat = pixel_directions(lon_deg, lat_deg, geometry, projection)
    pixels, weights = interpolation_weights(nside, lon.ravel(), lat.ravel(), interpolation)
    out = np.empty((maps.shape[0], lon.size), dtype=np.float32)
    unseen = np.zeros(lon.size, dtype=bool)
    for channel, band in enumerate(maps):
        samples = band[pixels]
        bad = (~np.isfinite(samples) | (samples == hp.UNSEEN)) & (weights > 0)
        unseen |= bad.any(axis=0)
        out[channel] = (np.where(bad, 0.0, samples) * weights).sum(axis=0)
    out[:, unseen] = np.nan
    patches = np.moveaxis(out.reshape(maps.shape[0], *lon.shape), 0, 1)
    patches = patches[:, 0] if values.ndim == 1 else patches
    return PatchCut(np.ascontiguousarray(patches), unseen.reshape(lon.shape))


def interpolation_weights(nside: int, lon_deg: np.ndarray, lat_deg: np.ndarray,
                          interpolation: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """RING pixels and weights ``(K, M)`` that interpolate a map at the M directions (l, b)
    (degrees, shape (M,)): ``"bilinear"`` (``healpy.get_interp_weights``, K = 4) or ``"nearest"``
    (``healpy.ang2pix``, K = 1, weight 1). The weights of each direction sum to 1."""
    theta, phi = np.radians(90.0 - lat_deg), np.radians(lon_deg)
    if interpolation == "bilinear":
        return hp.get_interp_weights(nside, theta, phi)
    if interpolation == "nearest":
        return hp.ang2pix(nside, theta, phi)[None], np.ones((1, theta.size))
    raise ValueError(f"unknown interpolation {interpolation!r}; choose 'bilinear' or 'nearest'")
