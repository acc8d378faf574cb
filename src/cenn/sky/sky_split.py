"""Training and validation patches from disjoint parts of the sky.

When the sky itself is fixed (components cut from the same HEALPix maps in every dataset), a
validation set is only independent of the training set if no validation patch overlaps a
training patch. :class:`SkySplit` divides the sphere into HEALPix cells at a low ``nside`` (48
cells of ~29° at Nside 2, 192 of ~15° at Nside 4), holds out a seeded random ``validation_fraction``
of them, and keeps a patch centre only if the disc circumscribing the patch touches cells of its
own part alone: a training and a validation patch then never share a point of the sky.

Configured as ``[region.sky_split]`` in a simulation file; datasets with the same ``nside``,
``validation_fraction`` and ``seed`` but different ``part`` are disjoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import healpy as hp
import numpy as np

from cenn.sky.flat.geometry import PatchGeometry

PARTS = ("train", "validation")

CANDIDATES = 4096
"""Centres drawn per patch before a split is declared unable to hold it."""


@dataclass
class SkySplit:
    """Which part of the sky a dataset's patches come from.

    Attributes:
        part: ``"train"`` or ``"validation"``.
        validation_fraction: fraction of the cells held out for validation, in (0, 1).
        nside: HEALPix Nside of the cells (a power of 2 up to 64).
        seed: seed of the cells' assignment (not of the dataset).
    """

    part: str = "train"
    validation_fraction: float = 0.2
    nside: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"sky_split.part must be one of {', '.join(PARTS)}, got {self.part!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"sky_split.validation_fraction must lie in (0, 1), "
                             f"got {self.validation_fraction}")
        if self.nside not in {2**k for k in range(7)}:
            raise ValueError(f"sky_split.nside must be a power of 2 from 1 to 64, got {self.nside}")

    def validation_cells(self) -> np.ndarray:
        """Boolean ``(12 nside²,)``: True for the cells held out for validation."""
        n_cells = hp.nside2npix(self.nside)
        n_held = min(n_cells - 1, max(1, round(self.validation_fraction * n_cells)))
        order = np.random.default_rng(self.seed).permutation(n_cells)
        held = np.zeros(n_cells, dtype=bool)
        held[order[:n_held]] = True
        return held

    def own_cells(self) -> np.ndarray:
        """Boolean ``(12 nside²,)``: True for the cells of this split's part."""
        held = self.validation_cells()
        return held if self.part == "validation" else ~held


def patch_radius_rad(geometry: PatchGeometry) -> float:
    """Angular radius (radians) of the disc circumscribing a gnomonic patch: its half diagonal."""
    return math.atan(math.sqrt(2.0) * geometry.npix / 2.0 * geometry.pixel_rad)


def inside_part(lon_deg: np.ndarray, lat_deg: np.ndarray, split: SkySplit,
                geometry: PatchGeometry) -> np.ndarray:
    """Whether patches centred on (lon, lat) (degrees, any shape) lie wholly in ``split``'s part of
    the sky: bool, same shape. Conservative: the circumscribing disc touches no cell of the other part."""
    own, radius = split.own_cells(), patch_radius_rad(geometry)
    inside = [_disc_inside(v, radius, own, split.nside) for v in _unit_vectors(lon_deg, lat_deg)]
    return np.array(inside, dtype=bool).reshape(np.shape(lon_deg))


def _disc_inside(vector: np.ndarray, radius_rad: float, cells: np.ndarray, nside: int) -> bool:
    """Whether the disc of ``radius_rad`` about the unit ``vector`` touches only ``cells`` (bool,
    12 nside²); conservative (``query_disc`` inclusive)."""
    return bool(cells[hp.query_disc(nside, vector, radius_rad, inclusive=True)].all())


def first_inside(lon_deg: np.ndarray, lat_deg: np.ndarray, split: SkySplit,
                 geometry: PatchGeometry) -> np.ndarray:
    """Index, per row of candidate centres ``(N, K)`` (degrees), of the first that
    :func:`inside_part` accepts: int (N,). Refuses rows where none is."""
    own, radius = split.own_cells(), patch_radius_rad(geometry)
    chosen = np.full(len(lon_deg), -1)
    for row, vectors in enumerate(_unit_vectors(lon_deg, lat_deg).reshape(*np.shape(lon_deg), 3)):
        for k, v in enumerate(vectors):
            if _disc_inside(v, radius, own, split.nside):
                chosen[row] = k
                break
    if (chosen < 0).any():
        raise ValueError(f"none of {np.shape(lon_deg)[1]} candidate centres in the latitude band lies "
                         f"wholly in the {split.part} part of the sky split (nside {split.nside}, "
                         f"validation_fraction {split.validation_fraction}) for a patch of radius "
                         f"{math.degrees(radius):.1f}°: lower nside (larger cells), change "
                         "validation_fraction, or widen the latitude band")
    return chosen


def overlapping_pairs(lon_a: np.ndarray, lat_a: np.ndarray, lon_b: np.ndarray, lat_b: np.ndarray,
                      geometry: PatchGeometry) -> np.ndarray:
    """Pairs ``(i, j)`` (int array (M, 2)) of patches of set a and set b (centres in degrees) whose
    circumscribing discs intersect, so they may share sky; none means the sets are disjoint."""
    va, vb = _unit_vectors(lon_a, lat_a), _unit_vectors(lon_b, lat_b)
    cos_limit = math.cos(min(math.pi, 2.0 * patch_radius_rad(geometry)))
    return np.argwhere(va @ vb.T > cos_limit)


def _unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors ``(M, 3)`` of the directions (l, b) in degrees, flattened."""
    theta = np.radians(90.0 - np.asarray(lat_deg, dtype=np.float64)).ravel()
    return hp.ang2vec(theta, np.radians(np.asarray(lon_deg, dtype=np.float64)).ravel()).reshape(-1, 3)


def shared_sky(config_a: dict[str, Any], config_b: dict[str, Any]) -> list[str]:
    """Why two datasets (resolved simulation configurations, as saved in their stores) may hold the
    same sky: components cut from the same map files (by SHA-256) in both while their patches are
    free to overlap (they are not the two parts of one sky split). Empty if they cannot."""
    region_a, region_b = config_a.get("region", {}), config_b.get("region", {})
    if _complementary(region_a.get("sky_split"), region_b.get("sky_split")):
        return []
    components_a, components_b = config_a.get("components", {}), config_b.get("components", {})
    problems = []
    for name in sorted(set(components_a) & set(components_b)):
        a, b = components_a[name], components_b[name]
        common = set(a.get("sha256", {}).values()) & set(b.get("sha256", {}).values())
        if common and a.get("enabled", True) and b.get("enabled", True):
            problems.append(f"{name} is cut from the same map file(s) in both and their patches may "
                            "overlap on the sky (use other maps, or the two parts of one sky_split)")
    return problems


def _complementary(split_a: dict[str, Any] | None, split_b: dict[str, Any] | None) -> bool:
    """Whether two ``sky_split`` tables describe one split and its two parts."""
    if not split_a or not split_b:
        return False
    same = all(split_a.get(k) == split_b.get(k) for k in ("nside", "validation_fraction", "seed"))
    return same and {split_a.get("part"), split_b.get("part")} == set(PARTS)
