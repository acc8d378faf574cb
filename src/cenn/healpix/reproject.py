"""Patches back onto the sphere: apodised, weighted averaging of overlapping patches on HEALPix.

A patch's footprint is the square between its outer pixel edges (fractional row and column in
[−0.5, n − 0.5]). Each map pixel centre in a footprint takes the patch's value at its (row, col),
interpolated on the patch grid (:func:`interpolate_patch`: the cubic spline through the pixel values
by default, or bilinear), with the weight of the apodisation window there; the map is Σ w·v / Σ w.
:func:`round_trip_transfer` gives the multipole window of a cut followed by this back-projection.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import healpy as hp
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt, map_coordinates
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from cenn.data.stokes import check_stokes, maps_per_band
from cenn.healpix.polarization import cut_qu_patches, cut_qu_sigma, frame_angle, to_healpix_frame
from cenn.healpix.resolution import check_map_resolution
from cenn.healpix.tiling import tile_centres
from cenn.io.units import UNITS
from cenn.separation import InputInfo, Separator
from cenn.separators import NetworkSeparator
from cenn.sky.flat.cutouts import cut_patches, interpolation_weights
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import (
    get_projection,
    patch_vectors,
    unit_vectors,
    vector_directions,
    vector_position,
)

REPROJECTIONS = {"cubic": 3, "bilinear": 1}
"""Interpolations on the patch grid for the back-projection, with their spline orders."""

_PAD = 4
"""Pixels of odd reflection added around a patch before interpolating it."""

_KERNEL_HALF_WIDTH = {"cubic": 8, "bilinear": 1}
"""Patch pixels on each side of a position whose interpolation weights :func:`round_trip_transfer`
keeps: all of the bilinear's; the cubic spline's fall as 0.268^d, below 5·10⁻⁵ beyond 7 pixels
(those left out make T_0 short of 1 by 3·10⁻⁵)."""


def taper(row: np.ndarray, col: np.ndarray, npix: int, width_fraction: float) -> np.ndarray:
    """Apodisation weight at fractional (row, col) of an ``npix`` patch: the product of one cosine
    taper per axis, 0 on the footprint's edge (and outside), 1 from ``width_fraction × npix``
    pixels inside it on."""
    check_apodisation_width(width_fraction)
    width = width_fraction * npix

    def one_axis(u: np.ndarray) -> np.ndarray:
        depth = np.clip(np.minimum(u + 0.5, npix - 0.5 - u), 0.0, None)
        if width == 0.0:
            return (depth > 0).astype(np.float64)
        return 0.5 - 0.5 * np.cos(np.pi * np.clip(depth / width, 0.0, 1.0))

    return one_axis(row) * one_axis(col)


def check_apodisation_width(width_fraction: float) -> None:
    """Refuse an apodisation width outside [0, 0.5] (a fraction of the patch side)."""
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


def interpolate_patch(patch: np.ndarray, row: np.ndarray, col: np.ndarray,
                      reprojection: str = "cubic") -> np.ndarray:
    """Value of ``patch`` (n, n) at fractional (row, col) in [−0.5, n − 0.5] (any shape), float64.

    ``"cubic"``: the cubic spline through the pixel values (``scipy.ndimage.map_coordinates``,
    order 3), whose amplitude response per axis, sinc⁴(f)·3/(2 + cos 2πf) at f cycles per pixel, is
    0.998 at a third of the Nyquist frequency (ℓ = 2400 for 90″ pixels); ``"bilinear"`` (order 1)
    responds sinc²(f), 0.91 there. The patch is first extended by an odd reflection about its edge
    pixels (linear extrapolation over the outer half pixel); the spline's boundary condition then
    sits 4 pixels out, where its influence on the patch has decayed by 0.268⁴ ≈ 0.5 % (and the
    apodisation weight near the edge is small).
    """
    order = _spline_order(reprojection)
    padded = np.pad(patch.astype(np.float64), _PAD, mode="reflect", reflect_type="odd")
    row, col = np.broadcast_arrays(row, col)
    return map_coordinates(padded, [row + _PAD, col + _PAD], order=order, mode="mirror")


def _spline_order(reprojection: str) -> int:
    if reprojection not in REPROJECTIONS:
        raise ValueError(f"unknown reprojection {reprojection!r}; choose one of {', '.join(REPROJECTIONS)}")
    return REPROJECTIONS[reprojection]


def fill_invalid(patch: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``patch`` (n, n) with each pixel where ``valid`` (n, n) bool is False replaced by the value of
    its nearest valid pixel, so that an interpolation (the cubic spline reaches beyond its 4 × 4
    nearest pixels) does not carry invalid values into valid ones."""
    if not valid.any():
        return patch
    nearest = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return patch[tuple(nearest)]


class FullSkyAccumulator:
    """Σ w·value and Σ w over a HEALPix map (RING, ``nside``) from patches of ``geometry``
    apodised over ``apodisation_width`` × their side, read with ``reprojection`` (see
    :func:`interpolate_patch`). ``stokes="QU"``: patches of Q and U in their own frame
    (:mod:`cenn.sky.flat.spin2`), turned into each map pixel's HEALPix (COSMO) basis
    (:func:`cenn.healpix.polarization.to_healpix_frame`) before they are summed."""

    def __init__(self, nside: int, geometry: PatchGeometry, apodisation_width: float,
                 projection: str = "gnomonic", reprojection: str = "cubic", stokes: str = "I"):
        check_apodisation_width(apodisation_width)
        get_projection(projection)  # refuses unknown names now rather than at the first patch
        _spline_order(reprojection)
        self.nside, self.geometry = nside, geometry
        self.apodisation_width, self.projection = apodisation_width, projection
        self.reprojection, self.stokes = reprojection, check_stokes(stokes, "stokes")
        self.weighted_sum = np.zeros((maps_per_band(stokes), hp.nside2npix(nside)))
        self.weight = np.zeros(hp.nside2npix(nside))

    def add(self, patches: np.ndarray, lon_deg: np.ndarray, lat_deg: np.ndarray,
            valid: np.ndarray | None = None) -> None:
        """Add patches ``(N, n, n)`` (``stokes="QU"``: ``(N, 2, n, n)``, Q then U) centred on
        (lon, lat) (degrees, shape (N,)). ``valid`` ``(N, n, n)`` bool, if given, zeroes the weight of
        invalid pixels (interpolated), whose values are not used (see :func:`fill_invalid`)."""
        n, stokes = self.geometry.npix, self.weighted_sum.shape[0]
        maps = patches[:, None] if self.stokes == "I" and patches.ndim == 3 else patches
        if maps.ndim != 4 or maps.shape[1:] != (stokes, n, n) or len(maps) != len(lon_deg):
            shape = f"(N, {n}, {n})" if self.stokes == "I" else f"(N, 2, {n}, {n}) (Q, U)"
            raise ValueError(f"patches of shape {patches.shape} do not match {len(lon_deg)} centres of "
                             f"{n}×{n} pixels; pass {shape}")
        for k, (lon0, lat0) in enumerate(zip(lon_deg, lat_deg, strict=True)):
            pixels, row, col = footprint(self.nside, float(lon0), float(lat0), self.geometry, self.projection)
            w = taper(row, col, n, self.apodisation_width)
            patch = maps[k]
            if valid is not None and not valid[k].all():
                w *= map_coordinates(valid[k].astype(np.float64), [row, col], order=1, mode="nearest")
                patch = np.stack([fill_invalid(p, valid[k]) for p in patch])
            values = [interpolate_patch(p, row, col, self.reprojection) for p in patch]
            if self.stokes == "QU":
                psi = frame_angle(np.stack(hp.pix2vec(self.nside, pixels), axis=-1), lon0, lat0)
                values = to_healpix_frame(*values, psi)
            for s, value in enumerate(values):
                self.weighted_sum[s, pixels] += w * value
            self.weight[pixels] += w

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(map, weight)``: Σ w·v / Σ w (UNSEEN where Σ w = 0), ``(npix,)`` (``stokes="QU"``:
        ``(2, npix)``, Q and U in the COSMO basis) and Σ w ``(npix,)``, float64 RING arrays."""
        covered = self.weight > 0
        out = np.full(self.weighted_sum.shape, hp.UNSEEN)
        out[:, covered] = self.weighted_sum[:, covered] / self.weight[covered]
        return (out[0] if self.stokes == "I" else out), self.weight.copy()


@dataclass(frozen=True)
class FullSkyMaps:
    """What :func:`full_sky_maps` returns: the CMB, the summed patch weights and, for a separator that
    states it, the standard deviation of the CMB's residual (else None); float64 RING at Nside out,
    µK_CMB, UNSEEN where no patch had weight."""

    cmb: np.ndarray
    weight: np.ndarray
    sigma: np.ndarray | None = None


def predict_full_sky(maps: np.ndarray, nside_in: int, separator: Separator, info: InputInfo,
                     geometry: PatchGeometry, nside_out: int, **options) -> tuple[np.ndarray, np.ndarray]:
    """``(cmb, weight)`` of :func:`full_sky_maps` (same arguments, without σ)."""
    result = full_sky_maps(maps, nside_in, separator, info, geometry, nside_out, **options)
    return result.cmb, result.weight


def full_sky_maps(maps: np.ndarray, nside_in: int, separator: Separator, info: InputInfo,
                  geometry: PatchGeometry, nside_out: int, overlap: float = 0.25,
                  apodisation_width: float = 0.125, batch_size: int = 32,
                  interpolation: str = "bilinear", progress: bool = True, projection: str = "gnomonic",
                  reprojection: str = "cubic", noise_sigma: np.ndarray | None = None,
                  with_sigma: bool = False, stokes: str = "I") -> FullSkyMaps:
    """The CMB map ``separator`` makes from the bands ``maps`` ``(C, 12·nside_in²)`` µK_CMB RING.
    ``noise_sigma``: the bands' per-pixel noise σ, ``maps``' shape, in µK_CMB per patch pixel, cut
    like the maps and given to the separator (None: the separator's nominal levels). ``with_sigma``:
    also the separator's per-pixel σ of its residual, put back on the sphere like the CMB (weighted
    mean of the overlapping patches' σ).

    ``stokes="QU"``: ``maps`` ``(2, C, npix)`` are the bands' Q and U in the HEALPix COSMO basis, cut
    with the spin-2 rotation into each patch's frame (:func:`cenn.healpix.polarization.cut_qu_patches`),
    separated by :meth:`~cenn.separation.Separator.separate_polarization` (a method that separates Q and
    U, :func:`check_separates_qu`) and put
    back with the inverse rotation; the CMB comes back ``(2, npix)``, Q and U (COSMO). ``noise_sigma``
    ``(2, C, npix)`` is then the σ of the bands' Q and U, turned into each patch's frame with them
    (:func:`cenn.healpix.polarization.cut_qu_sigma`); ``with_sigma`` is for temperature only.

    The sphere is tiled (:func:`tile_centres`), patches are cut (``interpolation``, bilinear by
    default) and separated ``batch_size`` at a time and accumulated on Nside ``nside_out``
    (``reprojection``, cubic by default). Patch pixels touching UNSEEN are set to 0 µK for the
    separator and get no weight. Returns ``(cmb, weight)``, float64 RING, cmb UNSEEN where no patch
    had weight; a separator returning NaN or infinite values on seen pixels stops it (``ValueError``).
    The two interpolations smooth the map by :func:`round_trip_transfer`. Maps far coarser than a
    network's patch pixels are refused before any work, as by ``cenn predict --maps``
    (:func:`cenn.healpix.resolution.check_map_resolution`).
    """
    _check_full_sky_inputs(maps, separator, info, geometry, stokes, noise_sigma, with_sigma)
    if isinstance(separator, NetworkSeparator):  # its pixels are fixed by its training
        check_map_resolution(nside_in, geometry, network=True)
    lon, lat = tile_centres(geometry, overlap, projection)
    accumulator = FullSkyAccumulator(nside_out, geometry, apodisation_width, projection, reprojection, stokes)
    spread = (FullSkyAccumulator(nside_out, geometry, apodisation_width, projection, reprojection)
              if with_sigma else None)
    touched = 0
    for start in tqdm(range(0, len(lon), batch_size), desc="full sky", unit="batch", disable=not progress):
        batch = slice(start, start + batch_size)
        if stokes == "QU":
            cut = cut_qu_patches(maps, nside_in, lon[batch], lat[batch], geometry, interpolation, projection)
            sigma = None
            if noise_sigma is not None:
                sigma = _seen_sigma(cut_qu_sigma(noise_sigma, nside_in, lon[batch], lat[batch], geometry,
                                                 interpolation, projection), cut.unseen[:, None, None])
            with torch.no_grad():
                cmb = separator.separate_polarization(torch.from_numpy(np.nan_to_num(cut.values, nan=0.0)),
                                                      info, sigma).cpu().numpy()
            cmb = np.where(cut.unseen[:, None], 0.0, cmb)  # NaN · 0 weight would spoil the map
        else:
            cut = cut_patches(maps, nside_in, lon[batch], lat[batch], geometry, interpolation, projection)
            inputs = torch.from_numpy(np.nan_to_num(cut.values, nan=0.0))
            sigma = None
            if noise_sigma is not None:
                sigma = _seen_sigma(cut_patches(noise_sigma, nside_in, lon[batch], lat[batch], geometry,
                                                interpolation, projection).values, cut.unseen[:, None])
            with torch.no_grad():
                cmb, residual_sigma = (separator.separate_with_sigma(inputs, info, sigma) if with_sigma
                                       else (separator.separate(inputs, info, sigma), None))
            cmb = np.where(cut.unseen, 0.0, cmb[:, 0].cpu().numpy())
            if spread is not None and residual_sigma is not None:
                spread.add(np.where(cut.unseen, 0.0, residual_sigma[:, 0].cpu().numpy()), lon[batch],
                           lat[batch], valid=~cut.unseen)
        _check_finite_patches(cmb, lon[batch], lat[batch], separator)
        accumulator.add(cmb, lon[batch], lat[batch], valid=~cut.unseen)
        touched += int(np.count_nonzero(cut.unseen_count))
    if touched:
        warnings.warn(f"{touched} of {len(lon)} patches touch UNSEEN pixels: those patch pixels were set "
                      "to 0 µK for the separator and got no weight in the map", stacklevel=2)
    cmb, weight = accumulator.result()
    sigma = spread.result()[0] if spread is not None and spread.weight.any() else None
    return FullSkyMaps(cmb, weight, sigma)


def _seen_sigma(cut_sigma: np.ndarray, unseen: np.ndarray) -> torch.Tensor:
    """The cut noise σ for the separator, float32: 1 where ``unseen`` (broadcasting with ``cut_sigma``:
    patch pixels the maps do not see, which get no weight)."""
    return torch.from_numpy(np.where(unseen, 1.0, cut_sigma).astype(np.float32))


def _check_full_sky_inputs(maps: np.ndarray, separator: Separator, info: InputInfo, geometry: PatchGeometry,
                           stokes: str, noise_sigma: np.ndarray | None, with_sigma: bool) -> None:
    """Refuse, before any work, maps that do not match the separator's bands (``(C, npix)``, or
    ``(2, C, npix)`` for Q/U), noise σ maps not of their shape, other units or patch pixels than its,
    and Q/U with a method that does not separate them or with the σ of the CMB."""
    bands = len(info.band_names)
    if check_stokes(stokes, "stokes") == "QU":
        if maps.ndim != 3 or maps.shape[:2] != (2, bands):
            raise ValueError(f"Q/U maps of shape {maps.shape} do not match the {bands} bands "
                             f"{info.band_names}; pass (2, C, npix): Q then U, each in the bands' order")
        if with_sigma:
            raise ValueError("the σ of the CMB is for temperature maps; drop with_sigma for Q and U")
        check_separates_qu(separator)
    elif maps.ndim != 2 or maps.shape[0] != bands:
        raise ValueError(f"maps of shape {maps.shape} do not match the {bands} bands "
                         f"{info.band_names}; pass (C, npix) in the bands' order")
    if noise_sigma is not None and noise_sigma.shape != maps.shape:
        raise ValueError(f"noise σ maps of shape {noise_sigma.shape} do not match the maps' {maps.shape}: "
                         "pass one σ map per map, in the same layout")
    if info.units != UNITS:
        raise ValueError(f"the separator's inputs are in {info.units!r}; maps here are in {UNITS}: "
                         "describe them with InputInfo(units='uK_CMB')")
    if not np.isclose(geometry.pixel_arcsec, info.pixel_arcsec):
        raise ValueError(f"patch pixels of {geometry.pixel_arcsec}″ differ from the separator's "
                         f"{info.pixel_arcsec}″; build the PatchGeometry with "
                         f"pixel_arcsec={info.pixel_arcsec}")


def check_separates_qu(separator: Separator) -> None:
    """Refuse, naming why (:meth:`~cenn.separation.Separator.polarization_refusal`), a separator that
    does not separate Q and U: a network method without Q/U weights, or a method that neither is
    :attr:`~cenn.separation.Separator.stokes_agnostic` nor overrides
    :meth:`~cenn.separation.Separator.separate_polarization`."""
    refusal = separator.polarization_refusal()
    if refusal is not None:
        raise ValueError(f"the {separator.name} method cannot make Q and U: {refusal}; ilc, hilc, nilc, "
                         "dnilc and target-band separate them, and cenn and cenn-unbiased with Q/U weights")


def _check_finite_patches(cmb: np.ndarray, lon_deg: np.ndarray, lat_deg: np.ndarray,
                          separator: Separator) -> None:
    """Stop at the first patches whose CMB ``(N, n, n)`` (or ``(N, 2, n, n)``) holds NaN or infinite
    values, naming where."""
    bad = ~np.isfinite(cmb).reshape(len(cmb), -1).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"the {separator.name} method returned NaN or infinite values for {int(bad.sum())} "
                         f"patch(es), the first centred on (l, b) = ({lon_deg[k]:.2f}°, {lat_deg[k]:.2f}°), "
                         "from finite inputs: check that the maps are sky maps in µK_CMB there, run in "
                         "float32 (--precision 32), or use other weights or another method")


def round_trip_transfer(nside_in: int, nside_out: int, geometry: PatchGeometry, lmax: int,
                        interpolation: str = "bilinear", reprojection: str = "cubic",
                        projection: str = "gnomonic", overlap: float = 0.25, samples: int = 5000,
                        seed: int = 0) -> np.ndarray:
    """Multipole window T_ℓ, ℓ = 0…lmax (float64, shape (lmax + 1,)), of cutting patches from a
    map at ``nside_in`` and putting them straight back at ``nside_out``, as :func:`predict_full_sky`
    does around an identity separator.

    For a statistically isotropic input of spectrum C_ℓ the output's cross-spectrum with the input
    is T_ℓ C_ℓ, and its spectrum T_ℓ² C_ℓ plus the little power that both interpolations alias from
    other multipoles; with a trained network, T_ℓ is the smoothing its input and output undergo on
    the way. Like the HEALPix pixel window, T_ℓ is derived from the linear map itself: each output
    pixel j is out_j = Σ_i R_ji in_i, with R_ji = Σ_k b_jk w_ki the back-projection's weight b on
    patch pixel k (:func:`interpolate_patch` of a unit impulse) times the cut's weight w of map pixel
    i at patch pixel k (:func:`~cenn.sky.flat.cutouts.interpolation_weights`), so that by the
    addition theorem T_ℓ = ⟨Σ_i R_ji P_ℓ(p_i · p_j)⟩ over output pixels (p unit vectors, P_ℓ the
    Legendre polynomials). The mean runs over ``samples`` output pixels drawn uniformly (seeded),
    each read from the patch of the tiling whose centre is nearest.

    Both interpolations act as pixel windows. The bilinear cut's dominates: for patch pixels of
    0.873 map pixel (90″ at Nside 2048), T_ℓ² at ℓ = 1.22 Nside (2500 at Nside 2048) is 0.74 with
    the cubic back-projection, 0.61 with the bilinear one. Read back far finer, a nearest-pixel cut
    gives the mean of P_ℓ over a pixel: the HEALPix pixel window. At ``nside_out = nside_in`` the
    cubic spline partly restores the map's values at its own pixel centres (which the cut
    reproduces exactly), raising T_ℓ by 0.7 % at ℓ = 1.22 Nside over a read-back at 2 Nside: a
    product of separate windows misses that, this does not. The network was trained on
    point-sampled patches; the cut's window is thus part of what it is given, and is accounted
    for, like a pixel window, in spectra of its output.
    """
    _spline_order(reprojection)
    half = _KERNEL_HALF_WIDTH[reprojection]
    rng = np.random.default_rng(seed)
    targets = np.stack(hp.pix2vec(nside_out, rng.integers(hp.nside2npix(nside_out), size=samples)), axis=-1)
    lon0, lat0 = tile_centres(geometry, overlap, projection)
    owner = cKDTree(unit_vectors(lon0, lat0)).query(targets)[1]
    lon0, lat0 = lon0[owner], lat0[owner]  # each (J,)
    row, col = vector_position(targets, lon0, lat0, geometry, projection)
    taps = np.arange(1 - half, half + 1)
    tap_row = (np.floor(row)[:, None] + taps)[:, :, None]  # (J, 2h, 1)
    tap_col = (np.floor(col)[:, None] + taps)[:, None, :]  # (J, 1, 2h)
    back = _impulse_response(row[:, None, None] - tap_row, col[:, None, None] - tap_col, reprojection, half)
    keep = back != 0.0  # (J, 2h, 2h)
    sample = np.broadcast_to(np.arange(samples)[:, None, None], back.shape)[keep]
    vectors = patch_vectors(lon0[:, None, None], lat0[:, None, None], tap_row, tap_col, geometry,
                            projection)[keep]
    pixels, weights = interpolation_weights(nside_in, *vector_directions(vectors), interpolation)
    chords = np.linalg.norm(np.stack(hp.pix2vec(nside_in, pixels), axis=-1) - targets[sample], axis=-1)
    return _legendre_sums(2.0 * np.arcsin(chords / 2.0), back[keep] * weights, lmax) / samples


def _impulse_response(d_row: np.ndarray, d_col: np.ndarray, reprojection: str, half: int) -> np.ndarray:
    """Weight :func:`interpolate_patch` gives a pixel at offset (d_row, d_col) (pixels, |d| ≤ half)
    from the position it interpolates: its value there for a unit impulse on that pixel, far from
    the patch's edges."""
    centre = 2 * half
    impulse = np.zeros((2 * centre + 1, 2 * centre + 1))
    impulse[centre, centre] = 1.0
    return interpolate_patch(impulse, centre + d_row, centre + d_col, reprojection)


def _legendre_sums(angles: np.ndarray, coefficients: np.ndarray, lmax: int) -> np.ndarray:
    """Σ_m c_m P_ℓ(cos γ_m) for ℓ = 0…lmax (shape (lmax + 1,)), angles γ in radians.

    The terms are first shared linearly between the two nearest nodes of a grid of step
    δ = 0.02 / lmax in γ, which errs by at most δ² max|∂²P_ℓ/∂γ²| / 8 ≤ 5·10⁻⁵ of Σ|c|; P_ℓ on the
    nodes comes from the upward recurrence ℓ P_ℓ = (2ℓ − 1) x P_ℓ₋₁ − (ℓ − 1) P_ℓ₋₂, stable for
    |x| ≤ 1.
    """
    step = 0.02 / max(lmax, 1)
    position = angles.ravel() / step
    lower = np.floor(position).astype(np.int64)
    upper_share = position - lower
    size = int(lower.max()) + 2
    c = coefficients.ravel()
    mass = np.bincount(lower, c * (1.0 - upper_share), size) + np.bincount(lower + 1, c * upper_share, size)
    x = np.cos(step * np.arange(size))
    sums = np.empty(lmax + 1)
    previous, current = np.ones_like(x), x.copy()
    sums[0] = mass.sum()
    for ell in range(1, lmax + 1):
        if ell > 1:
            previous, current = current, ((2 * ell - 1) * x * current - (ell - 1) * previous) / ell
        sums[ell] = mass @ current
    return sums
