"""Patch centres on the sphere and the projections between patch pixels and directions.

Coordinates are Galactic longitude l and latitude b in degrees at the interface. Pixel ``[row, col]``
of an ``n × n`` patch sits at y = (row − (n−1)/2)·θ_pix and x = −(col − (n−1)/2)·θ_pix (radians, x
towards the east, y towards the north): rows run towards increasing latitude and columns towards
decreasing longitude (east to the left when shown with ``origin="lower"``, as HEALPix ``gnomview``
does). Projections work in the local frame of the patch centre (l0, b0): unit vectors have
components (a, e, n) along the centre, the local east (increasing l) and the local north:

- ``"gnomonic"``: the tangent plane, (a, e, n) ∝ (1, x, y). Simulated patches use it.
- ``"cartesian"``: a plate carrée of the frame rotated so that the centre sits on the equator, x and
  y being that frame's longitude and latitude; well defined at the poles too.

The gnomonic projection is written twice, on purpose: :func:`pixel_coordinates` in torch, for the
simulator, which needs its grids' directions on its own device, batched over centres; and
:func:`pixel_directions` with its exact inverse :func:`patch_position` in numpy, for cutting patches
out of HEALPix maps with healpy and putting them back (fractional positions, the cartesian
projection too). Tests check that the two agree to 1e-6 pixel.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.rng import SampleRandom
from cenn.sky.sky_split import CANDIDATES, SkySplit, first_inside


def band_sky_fraction(lat_min_deg: float, lat_max_deg: float) -> float:
    """Fraction of the sphere with lat_min ≤ |b| ≤ lat_max (0.087 for |b| < 5°)."""
    return math.sin(math.radians(lat_max_deg)) - math.sin(math.radians(lat_min_deg))


def draw_centres(
    random: SampleRandom, lat_min_deg: float = 0.0, lat_max_deg: float = 90.0,
    split: SkySplit | None = None, geometry: PatchGeometry | None = None,
    strata: tuple[Sequence[float], Sequence[float]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch centres uniform in area with lat_min ≤ |b| ≤ lat_max, both hemispheres; with a
    ``split``, uniform over the centres whose patch of ``geometry`` lies wholly in its part of the
    sky (the first of :data:`~cenn.sky.sky_split.CANDIDATES` draws that does). With ``strata =
    (edges, probabilities)`` each centre first picks the |b| band ``[edges[k], edges[k+1])`` with
    probability ``probabilities[k]`` (stream ``position_stratum``), then is uniform in area in it.

    Returns ``(lon, lat)`` in degrees, float64, shape (batch,); lon in [0, 360).
    """
    if not 0.0 <= lat_min_deg < lat_max_deg <= 90.0:
        raise ValueError(
            f"latitude band must satisfy 0 <= min < max <= 90 degrees, got [{lat_min_deg}, "
            f"{lat_max_deg}]"
        )
    lo, hi = (lat_min_deg, lat_max_deg) if strata is None else _stratum_bounds(random, *strata)
    if split is None:
        return _centres(random.uniform("position", (3,)), lo, hi)
    if geometry is None:
        raise ValueError("a sky split needs the patch geometry, to know how far a patch reaches")
    if strata is not None:
        lo, hi = lo[:, None], hi[:, None]
    lon, lat = _centres(random.uniform("position", (CANDIDATES, 3)), lo, hi)
    chosen = torch.from_numpy(first_inside(lon.cpu().numpy(), lat.cpu().numpy(), split, geometry))
    rows, chosen = torch.arange(len(chosen), device=lon.device), chosen.to(lon.device)
    return lon[rows, chosen], lat[rows, chosen]


def _stratum_bounds(random: SampleRandom, edges: Sequence[float],
                    probabilities: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the |b| bounds (degrees, ``(batch,)`` each) of a stratum drawn with
    ``probabilities``."""
    cumulative = torch.tensor(list(itertools.accumulate(probabilities)), dtype=torch.float64,
                              device=random.device)
    k = torch.searchsorted(cumulative, random.uniform("position_stratum", ()) * cumulative[-1], right=True)
    k = k.clamp(max=len(probabilities) - 1)
    bounds = torch.tensor(list(edges), dtype=torch.float64, device=random.device)
    return bounds[k], bounds[k + 1]


def _centres(u: torch.Tensor, lat_min_deg: float | torch.Tensor,
             lat_max_deg: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``(lon, lat)`` in degrees from uniform draws ``(..., 3)``: |b| uniform in sin, the
    hemisphere, then l. The bounds are numbers or tensors broadcasting against ``u[..., 0]``."""
    s0, s1 = (torch.sin(torch.deg2rad(torch.as_tensor(b, dtype=u.dtype, device=u.device)))
              for b in (lat_min_deg, lat_max_deg))
    abs_b = torch.rad2deg(torch.asin(s0 + (s1 - s0) * u[..., 0]))
    sign = torch.where(u[..., 1] < 0.5, -1.0, 1.0).to(abs_b)
    return 360.0 * u[..., 2], sign * abs_b


def pixel_coordinates(
    lon0_deg: torch.Tensor, lat0_deg: torch.Tensor, geometry: PatchGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Galactic (l, b) in degrees of every pixel centre of patches centred on (lon0, lat0).

    Inverse gnomonic projection in torch, on the centres' device (the numpy twin is
    :func:`pixel_directions`). Returns two float64 tensors ``(batch, npix, npix)``.
    """
    device = lon0_deg.device
    off = geometry.offsets_rad(device)
    y = off[None, :, None].expand(1, geometry.npix, geometry.npix)
    x_east = -off[None, None, :].expand(1, geometry.npix, geometry.npix)
    l0 = torch.deg2rad(lon0_deg.to(torch.float64))[:, None, None]
    b0 = torch.deg2rad(lat0_deg.to(torch.float64))[:, None, None]
    rho = torch.sqrt(x_east**2 + y**2)
    c = torch.atan(rho)
    sin_c, cos_c = torch.sin(c), torch.cos(c)
    safe_rho = torch.where(rho > 0, rho, torch.ones_like(rho))
    sin_b = cos_c * torch.sin(b0) + torch.where(rho > 0, y * sin_c * torch.cos(b0) / safe_rho, 0.0)
    # cos b · (sin Δl, cos Δl), times ρ: atan2 for b too keeps full precision next to the poles
    east = x_east * sin_c
    towards = rho * torch.cos(b0) * cos_c - y * torch.sin(b0) * sin_c
    cos_b = torch.where(rho > 0, torch.hypot(east, towards) / safe_rho, torch.cos(b0))
    lat = torch.atan2(sin_b, cos_b)
    lon = l0 + torch.atan2(east, towards)
    return torch.rad2deg(lon) % 360.0, torch.rad2deg(lat)


# --- numpy: directions of patch pixels and positions of directions ---------------------------------

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
    in: the exact inverse of :func:`pixel_coordinates`."""
    return patch_position(lon_deg, lat_deg, lon0_deg, lat0_deg, geometry, "gnomonic")
