"""Patches cut out of HEALPix maps: each pixel of a patch interpolated from the RING map at its
direction (:func:`cenn.sky.flat.projection.pixel_directions`)."""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_directions


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
