"""Stokes Q and U between HEALPix maps and patches: the spin-2 rotation from each map pixel's local
(θ, φ) basis to a patch's own axes, and cutting Q/U patches with it.

HEALPix Q/U (COSMO convention, :mod:`cenn.io.healpix_maps`) are measured at each pixel in the basis
(e_θ, e_φ) = (local south, local east), equivalently (local north, local west) turned by 180°; patch
Q/U are measured along the patch's (rows, cols) = (north, west) axes (:mod:`cenn.sky.flat.spin2`).
The two frames coincide only on the patch's centre column; elsewhere they differ by the angle
:func:`frame_angle`, one function for both directions: :func:`to_patch_frame` when cutting,
:func:`to_healpix_frame` when putting patches back (:class:`cenn.healpix.reproject.FullSkyAccumulator`).
The noise σ of Q and U turns with them (:func:`cut_qu_sigma`).
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from cenn.sky.flat.cutouts import PatchCut, cut_patches, interpolation_weights
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import local_axes, pixel_directions, unit_vectors


def frame_angle(vectors: np.ndarray, lon0_deg: np.ndarray | float,
                lat0_deg: np.ndarray | float) -> np.ndarray:
    """Angle ψ (radians) from the local HEALPix north at the unit vectors ``vectors`` ``(..., 3)``
    to the north (+row) axis of the patch centred on (lon0, lat0) (degrees, broadcasting with
    ``vectors.shape[:-1]``), measured towards the local west; shape ``vectors.shape[:-1]``.

    Derivation. Write the patch centre's frame as (c, e₀, n₀): centre, east and north unit vectors.

    * Gnomonic patches: pixel (x, y) of the tangent plane (x east, y north, radians) is the direction
      v = w/|w|, w = c + x e₀ + y n₀. Along a column (x fixed) the row axis is
      ∂v/∂y = (n₀ − v (v·n₀)) / |w|: the projection of n₀ onto the tangent plane at v.
    * Cartesian patches: (a, e, n) = (cos y cos x, cos y sin x, sin y) are the longitude x and
      latitude y of the frame whose pole is n₀, and ∂v/∂y is that frame's local north at v, again
      ∝ n₀ − v (v·n₀).

    So at every direction v the patch's north axis is n₀ projected onto the sky there, and its west
    axis completes the right-handed frame (north × west pointing out of the sphere, as HEALPix's
    e_θ × e_φ). Its angle from the HEALPix local north N(v) towards the local west W(v) (both ⊥ v,
    so the v-part of the projection drops out) is

        ψ = atan2(n₀ · W(v), n₀ · N(v)),   N = (−sin b cos l, −sin b sin l, cos b), W = (sin l, −cos l, 0).

    ψ = 0 on the patch's centre column (v in the plane of c and n₀); elsewhere the meridians
    converge towards the pole, by ψ ≈ −x tan b₀ near the centre (x towards the east, radians).
    It equals −``healpy.Rotator(rot=(l₀, b₀, 0), deg=True).angle_ref`` at v (tested). In a gnomonic patch
    the column axis ∂v/∂x leans from this west axis by at most about |x y| (2·10⁻³ rad at the corner
    of a 6.4° patch): the patch grid is not quite orthogonal on the sky, and its Q/U are taken in
    the orthogonal frame of its row axis. The frame is smooth everywhere except at ±n₀ (90° from the
    patch), so Q/U expressed in it may be interpolated between pixels, unlike HEALPix's own Q/U near
    a pole.

    A frame turned by ψ sees a polarization at angle α at α − ψ, so Q + iU in the patch frame is
    e^{−2iψ} (Q + iU) in the HEALPix one (:func:`to_patch_frame`), and back e^{+2iψ}
    (:func:`to_healpix_frame`).
    """
    v = np.asarray(vectors, dtype=np.float64)
    north0 = local_axes(np.asarray(lon0_deg, dtype=np.float64),
                        np.asarray(lat0_deg, dtype=np.float64))[..., 2, :]
    x, y, z = np.moveaxis(v, -1, 0)
    rho = np.hypot(x, y)
    safe = np.where(rho > 0, rho, 1.0)
    cos_l, sin_l = np.where(rho > 0, x / safe, 1.0), np.where(rho > 0, y / safe, 0.0)
    # N = (−z cos l, −z sin l, ρ) and W = (sin l, −cos l, 0) at v = (ρ cos l, ρ sin l, z)
    n0x, n0y, n0z = np.moveaxis(north0, -1, 0)
    along_north = -z * (n0x * cos_l + n0y * sin_l) + rho * n0z
    along_west = n0x * sin_l - n0y * cos_l
    return np.arctan2(along_west, along_north)


def to_patch_frame(q: np.ndarray, u: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q, U of the HEALPix basis → the patch frame turned by ``psi`` (radians,
    :func:`frame_angle`): Q' + iU' = e^{−2iψ} (Q + iU). Any broadcasting shapes, same units."""
    cos2, sin2 = np.cos(2.0 * psi), np.sin(2.0 * psi)
    return q * cos2 + u * sin2, u * cos2 - q * sin2


def to_healpix_frame(q: np.ndarray, u: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`to_patch_frame`: Q + iU = e^{+2iψ} (Q' + iU')."""
    return to_patch_frame(q, u, -psi)


def cut_qu_patches(qu_maps: np.ndarray, nside: int, lon_deg: np.ndarray, lat_deg: np.ndarray,
                   geometry: PatchGeometry, interpolation: str = "bilinear", projection: str = "gnomonic",
                   rotate: bool = True) -> PatchCut:
    """Q/U patches of ``geometry`` centred on (lon, lat) (degrees, shape (N,)) cut from RING maps
    ``qu_maps`` ``(2, npix)`` or ``(2, C, npix)`` (axis 0: Q, U in the HEALPix COSMO basis; any
    units). Each map pixel's Q/U is first turned into the patch frame at that pixel
    (:func:`frame_angle`), then interpolated as by :func:`cenn.sky.flat.cutouts.cut_patches`, so
    the frames of neighbouring map pixels, which differ by their longitudes near the poles, are
    never mixed. ``rotate=False`` skips the rotation (HEALPix Q/U taken as patch Q/U: wrong off the
    patch's centre column; kept for tests that show it).

    Returns values ``(N, 2, n, n)`` or ``(N, 2, C, n, n)`` float32 (NaN where a weighted map pixel
    is UNSEEN or non-finite in Q or U of any band) and ``unseen`` ``(N, n, n)``.
    """
    maps = np.asarray(qu_maps, dtype=np.float64)
    bands = maps[:, None] if maps.ndim == 2 else maps
    if bands.ndim != 3 or bands.shape[0] != 2 or bands.shape[2] != hp.nside2npix(nside):
        raise ValueError(f"Q/U maps of shape {maps.shape} do not match Nside {nside} "
                         f"({hp.nside2npix(nside)} pixels); pass (2, npix) or (2, C, npix) RING arrays, "
                         "axis 0 holding Q then U")
    lon, lat = pixel_directions(lon_deg, lat_deg, geometry, projection)  # (N, n, n)
    pixels, weights = interpolation_weights(nside, lon.ravel(), lat.ravel(), interpolation)  # (K, M)
    if rotate:
        centre = np.repeat(np.arange(lon.shape[0]), geometry.npix**2)  # patch of each of the M pixels
        vectors = np.stack(hp.pix2vec(nside, pixels), axis=-1)
        psi = frame_angle(vectors, np.asarray(lon_deg)[centre], np.asarray(lat_deg)[centre])
    out = np.empty((2, bands.shape[1], lon.size), dtype=np.float32)
    unseen = np.zeros(lon.size, dtype=bool)
    for band in range(bands.shape[1]):
        q, u = bands[0, band][pixels], bands[1, band][pixels]
        bad = (~np.isfinite(q) | (q == hp.UNSEEN) | ~np.isfinite(u) | (u == hp.UNSEEN)) & (weights > 0)
        unseen |= bad.any(axis=0)
        q, u = np.where(bad, 0.0, q), np.where(bad, 0.0, u)
        if rotate:
            q, u = to_patch_frame(q, u, psi)
        out[0, band], out[1, band] = (q * weights).sum(axis=0), (u * weights).sum(axis=0)
    out[..., unseen] = np.nan
    patches = np.moveaxis(out.reshape(2, bands.shape[1], *lon.shape), 2, 0)  # (N, 2, C, n, n)
    patches = patches[:, :, 0] if maps.ndim == 2 else patches
    return PatchCut(np.ascontiguousarray(patches), unseen.reshape(lon.shape))


def cut_qu_sigma(sigma_maps: np.ndarray, nside: int, lon_deg: np.ndarray, lat_deg: np.ndarray,
                 geometry: PatchGeometry, interpolation: str = "bilinear",
                 projection: str = "gnomonic") -> np.ndarray:
    """The per-pixel noise σ of Q and U in the frames of the patches centred on (lon, lat) (degrees,
    shape (N,)), ``(N, 2, C, n, n)`` float32, from their σ in the HEALPix basis ``sigma_maps``
    ``(2, C, npix)`` RING (axis 0: Q, U; any units; ``healpy.UNSEEN`` where none).

    Each variance map is cut as a scalar (:func:`cenn.sky.flat.cutouts.cut_patches`), then the turn
    of the frame by ψ at each patch pixel (:func:`frame_angle`, Q' + iU' = e^{−2iψ} (Q + iU)) mixes
    them, the noise of Q and U taken as uncorrelated (Planck's ``QU_COV`` is not read)::

        σ_Q'² = cos²2ψ σ_Q² + sin²2ψ σ_U²,   σ_U'² = sin²2ψ σ_Q² + cos²2ψ σ_U²

    NaN where a weighted map pixel has no σ."""
    sigma = np.asarray(sigma_maps, dtype=np.float64)
    if sigma.ndim != 3 or sigma.shape[0] != 2:
        raise ValueError(f"Q/U noise σ maps of shape {sigma.shape}: pass (2, C, npix) RING arrays, axis 0 "
                         "holding σ of Q then of U")
    variance = np.where(sigma == hp.UNSEEN, hp.UNSEEN, sigma**2).reshape(-1, sigma.shape[-1])
    cut = cut_patches(variance, nside, lon_deg, lat_deg, geometry, interpolation, projection).values
    var_q, var_u = np.moveaxis(cut.reshape(len(cut), 2, sigma.shape[1], *cut.shape[-2:]), 1, 0)
    lon, lat = pixel_directions(lon_deg, lat_deg, geometry, projection)
    psi = frame_angle(unit_vectors(lon, lat), np.asarray(lon_deg)[:, None, None],
                      np.asarray(lat_deg)[:, None, None])[:, None]  # (N, 1, n, n): every band
    cos2 = np.cos(2.0 * psi) ** 2
    mixed = [cos2 * var_q + (1.0 - cos2) * var_u, (1.0 - cos2) * var_q + cos2 * var_u]
    return np.sqrt(np.stack(mixed, axis=1)).astype(np.float32)
