"""Patch centres on the sphere and the gnomonic projection of patch pixels.

Coordinates are Galactic longitude l and latitude b in degrees at the interface. In a patch
array ``[row, col]``, rows run towards increasing latitude and columns towards decreasing
longitude (east to the left when shown with ``origin="lower"``, as HEALPix ``gnomview`` does).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from cenn.sky.geometry import PatchGeometry
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

    Inverse gnomonic projection. Returns two float64 tensors ``(batch, npix, npix)``.
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
