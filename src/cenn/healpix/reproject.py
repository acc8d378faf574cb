"""Patches back onto the sphere: apodised, weighted averaging of overlapping patches on HEALPix.

A patch's footprint is the square between its outer pixel edges (fractional row and column in
[−0.5, n − 0.5]). Each map pixel centre in a footprint takes the patch's bilinear interpolation at
its (row, col) (extrapolated linearly over the outer half pixel, where the weight is tiny) with the
weight of the apodisation window there; the map is Σ w·v / Σ w.
"""

from __future__ import annotations

import warnings

import healpy as hp
import numpy as np
import torch
from scipy.ndimage import map_coordinates
from tqdm.auto import tqdm

from cenn.healpix.projection import cut_patches, get_projection, unit_vectors, vector_position
from cenn.healpix.tiling import tile_centres
from cenn.separators import UNITS, InputInfo, Separator
from cenn.sky.geometry import PatchGeometry


def taper(row: np.ndarray, col: np.ndarray, npix: int, width_fraction: float) -> np.ndarray:
    """Apodisation weight at fractional (row, col) of an ``npix`` patch: the product of one cosine
    taper per axis, 0 on the footprint's edge (and outside), 1 from ``width_fraction × npix``
    pixels inside it on."""
    _check_width(width_fraction)
    width = width_fraction * npix

    def one_axis(u: np.ndarray) -> np.ndarray:
        depth = np.clip(np.minimum(u + 0.5, npix - 0.5 - u), 0.0, None)
        if width == 0.0:
            return (depth > 0).astype(np.float64)
        return 0.5 - 0.5 * np.cos(np.pi * np.clip(depth / width, 0.0, 1.0))

    return one_axis(row) * one_axis(col)


def _check_width(width_fraction: float) -> None:
    if not 0.0 <= width_fraction <= 0.5:
        raise ValueError(f"apodisation width must lie in [0, 0.5] (a fraction of the patch side), "
                         f"got {width_fraction!r}")


def apodisation(geometry: PatchGeometry, width_fraction: float) -> np.ndarray:
    """The apodisation window on the pixel centres, ``(n, n)`` float64 (see :func:`taper`)."""
    index = np.arange(geometry.npix, dtype=np.float64)
    return taper(index[:, None], index[None, :], geometry.npix, width_fraction)


def footprint(nside: int, lon0_deg: float, lat0_deg: float, geometry: PatchGeometry,
              projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RING pixels whose centres lie in the footprint of the patch centred on (lon0, lat0)
    (degrees), with their fractional ``(row, col)`` in it: three arrays of shape (M,)."""
    half = geometry.npix / 2.0 * geometry.pixel_rad
    a = get_projection(projection).from_plane(np.array(half), np.array(half))[0]
    radius = float(np.arccos(a)) * (1.0 + 1e-6)
    pixels = hp.query_disc(nside, unit_vectors(lon0_deg, lat0_deg), radius)
    vectors = np.stack(hp.pix2vec(nside, pixels), axis=-1)
    row, col = vector_position(vectors, lon0_deg, lat0_deg, geometry, projection)
    edge = geometry.npix - 0.5
    inside = (row >= -0.5) & (row <= edge) & (col >= -0.5) & (col <= edge)
    return pixels[inside], row[inside], col[inside]


def _bilinear(patch: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``patch`` (n, n) at fractional (row, col) in [−0.5, n − 0.5]: linear
    extrapolation (an odd reflection) over the outer half pixel."""
    padded = np.pad(patch.astype(np.float64), 1, mode="reflect", reflect_type="odd")
    return map_coordinates(padded, [row + 1.0, col + 1.0], order=1)


class FullSkyAccumulator:
    """Σ w·value and Σ w over a HEALPix map (RING, ``nside``) from patches of ``geometry``
    apodised over ``apodisation_width`` × their side."""

    def __init__(self, nside: int, geometry: PatchGeometry, apodisation_width: float,
                 projection: str = "gnomonic"):
        _check_width(apodisation_width)
        get_projection(projection)  # refuses unknown names now rather than at the first patch
        self.nside, self.geometry = nside, geometry
        self.apodisation_width, self.projection = apodisation_width, projection
        self.weighted_sum = np.zeros(hp.nside2npix(nside))
        self.weight = np.zeros(hp.nside2npix(nside))

    def add(self, patches: np.ndarray, lon_deg: np.ndarray, lat_deg: np.ndarray,
            valid: np.ndarray | None = None) -> None:
        """Add patches ``(N, n, n)`` centred on (lon, lat) (degrees, shape (N,)). ``valid``
        ``(N, n, n)`` bool, if given, zeroes the weight of invalid pixels (interpolated)."""
        n = self.geometry.npix
        if patches.ndim != 3 or patches.shape[1:] != (n, n) or len(patches) != len(lon_deg):
            raise ValueError(f"patches of shape {patches.shape} do not match {len(lon_deg)} centres of "
                             f"{n}×{n} pixels; pass (N, {n}, {n})")
        for k, (lon0, lat0) in enumerate(zip(lon_deg, lat_deg, strict=True)):
            pixels, row, col = footprint(self.nside, float(lon0), float(lat0), self.geometry, self.projection)
            w = taper(row, col, n, self.apodisation_width)
            if valid is not None and not valid[k].all():
                w *= map_coordinates(valid[k].astype(np.float64), [row, col], order=1, mode="nearest")
            value = _bilinear(patches[k], row, col)
            self.weighted_sum[pixels] += w * value
            self.weight[pixels] += w

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(map, weight)``: Σ w·v / Σ w (UNSEEN where Σ w = 0) and Σ w, float64 RING arrays."""
        covered = self.weight > 0
        out = np.full(self.weight.shape, hp.UNSEEN)
        out[covered] = self.weighted_sum[covered] / self.weight[covered]
        return out, self.weight.copy()


def predict_full_sky(maps: np.ndarray, nside_in: int, separator: Separator, info: InputInfo,
                     geometry: PatchGeometry, nside_out: int, overlap: float = 0.25,
                     apodisation_width: float = 0.125, batch_size: int = 32,
                     interpolation: str = "bilinear", progress: bool = True,
                     projection: str = "gnomonic") -> tuple[np.ndarray, np.ndarray]:
    """The CMB map ``separator`` makes from the bands ``maps`` ``(C, 12·nside_in²)`` µK_CMB RING.

    The sphere is tiled (:func:`tile_centres`), patches are cut and separated ``batch_size`` at a
    time and accumulated on Nside ``nside_out``. Patch pixels touching UNSEEN are set to 0 µK for
    the separator and get no weight. Returns ``(cmb, weight)``, float64 RING, cmb UNSEEN where no
    patch had weight.
    """
    if maps.ndim != 2 or maps.shape[0] != len(info.band_names):
        raise ValueError(f"maps of shape {maps.shape} do not match the {len(info.band_names)} bands "
                         f"{info.band_names}; pass (C, npix) in the bands' order")
    if info.units != UNITS:
        raise ValueError(f"the separator's inputs are in {info.units!r}; maps here are in {UNITS}: "
                         "describe them with InputInfo(units='uK_CMB')")
    if not np.isclose(geometry.pixel_arcsec, info.pixel_arcsec):
        raise ValueError(f"patch pixels of {geometry.pixel_arcsec}″ differ from the separator's "
                         f"{info.pixel_arcsec}″; build the PatchGeometry with "
                         f"pixel_arcsec={info.pixel_arcsec}")
    lon, lat = tile_centres(geometry, overlap, projection)
    accumulator = FullSkyAccumulator(nside_out, geometry, apodisation_width, projection)
    touched = 0
    for start in tqdm(range(0, len(lon), batch_size), desc="full sky", unit="batch", disable=not progress):
        batch = slice(start, start + batch_size)
        cut = cut_patches(maps, nside_in, lon[batch], lat[batch], geometry, interpolation, projection)
        inputs = torch.from_numpy(np.nan_to_num(cut.values, nan=0.0))
        with torch.no_grad():
            cmb = separator.separate(inputs, info)[:, 0].cpu().numpy()
        accumulator.add(cmb, lon[batch], lat[batch], valid=~cut.unseen)
        touched += int(np.count_nonzero(cut.unseen_count))
    if touched:
        warnings.warn(f"{touched} of {len(lon)} patches touch UNSEEN pixels: those patch pixels were set "
                      "to 0 µK for the separator and got no weight in the map", stacklevel=2)
    return accumulator.result()
