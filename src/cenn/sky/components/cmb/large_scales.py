"""Modes larger than a patch, drawn exactly on the sphere.

A patch cut from a sky map carries a mean, gradients and curvature from multipoles ℓ ≲ 100,
which a flat periodic grid of a few degrees cannot render: the padded default grid (384 × 90″)
has no ℓ = 0 and a fundamental of ℓ ≈ 37, and below ℓ ≈ 20, where the patch mean comes from,
the flat sky is wrong anyway. So a spectrum is split smoothly (:func:`low_weight`): the flat grid
renders C_ℓ (1 − w(ℓ)) and :class:`LargeScaleField` draws C_ℓ w(ℓ), ℓ ≤ ℓ_max, exactly:

* real spherical-harmonic coefficients a_ℓm ~ N(0, C_ℓ w(ℓ)), the patch centre at the north pole
  (any centre is equivalent, the field being isotropic);
* the field Σ a_ℓm Y_ℓm evaluated at a tensor grid of Chebyshev nodes spanning the padded patch,
  placed on the sphere by the gnomonic projection of :mod:`cenn.sky.flat.projection`;
* barycentric Lagrange interpolation from the nodes to every pixel, which converges exponentially
  for a field this smooth (~2e-6 of the field's RMS with the default node count), done directly on
  the ``rfft2`` grid by transforming the interpolation matrices once.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.interpolate import BarycentricInterpolator

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.rng import SampleRandom

#: Chebyshev nodes per axis beyond (ℓ_max + 1) × half the grid's side in radians, the number at
#: which the interpolation error starts to fall exponentially.
EXTRA_NODES = 10


def low_weight(ell: np.ndarray, lmax: int) -> np.ndarray:
    """The split w(ℓ): 1 for ℓ ≤ lmax / 2, a cosine taper down to 0 at ℓ = lmax, 0 above."""
    start = 0.5 * lmax
    t = np.clip((np.asarray(ell, dtype=np.float64) - start) / (lmax - start), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(math.pi * t))


def harmonic_degrees(lmax: int) -> np.ndarray:
    """ℓ of each column of :func:`real_harmonics`, shape ((lmax + 1)²,)."""
    ell = np.arange(lmax + 1)
    return np.repeat(ell, 2 * ell + 1)


def real_harmonics(lmax: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics at points (θ colatitude, φ longitude; radians, (P,)).

    Returns ``(P, (lmax + 1)²)``, float64: column ℓ² is P̄_ℓ0(cos θ); columns ℓ² + 2m − 1 and
    ℓ² + 2m are √2 P̄_ℓm(cos θ) cos mφ and √2 P̄_ℓm(cos θ) sin mφ, with P̄_ℓm the associated
    Legendre functions normalised so that P̄_ℓm e^{imφ} is orthonormal on the sphere (no
    Condon-Shortley phase), from the stable recursion in ℓ at fixed m.
    """
    x, s = np.cos(theta), np.sin(theta)
    out = np.empty((theta.size, (lmax + 1) ** 2))
    p_mm = np.full_like(x, 1.0 / math.sqrt(4.0 * math.pi))
    for m in range(lmax + 1):
        if m > 0:
            p_mm = p_mm * s * math.sqrt((2 * m + 1) / (2 * m))
        trig = (np.ones_like(phi),) if m == 0 else (
            math.sqrt(2.0) * np.cos(m * phi), math.sqrt(2.0) * np.sin(m * phi))
        prev, cur = np.zeros_like(x), p_mm
        for ell in range(m, lmax + 1):
            if ell > m:
                a = math.sqrt((4 * ell**2 - 1) / (ell**2 - m**2))
                b = math.sqrt(((ell - 1) ** 2 - m**2) / (4 * (ell - 1) ** 2 - 1))
                prev, cur = cur, a * (x * cur - b * prev)
            first = ell**2 + max(2 * m - 1, 0)
            for k, t in enumerate(trig):
                out[:, first + k] = cur * t
    return out


def tangent_to_polar(x_east: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude θ and longitude φ (radians) of gnomonic tangent-plane points (radians) of a
    patch centred on the north pole."""
    return np.arctan(np.hypot(x_east, y)), np.arctan2(y, x_east)


def grid_directions(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(θ, φ) in radians, flattened ``(len(offsets)²,)``, of the grid ``[row, col]`` of tangent-plane
    ``offsets`` (radians) around the north pole: rows along y (towards increasing latitude),
    columns against x (east to the left), as in :func:`~cenn.sky.flat.projection.pixel_coordinates`."""
    y, col = np.meshgrid(offsets, offsets, indexing="ij")
    theta, phi = tangent_to_polar(-col, y)
    return theta.ravel(), phi.ravel()


def node_count(geometry: PatchGeometry, lmax: int) -> int:
    """Chebyshev nodes per axis for fields of ℓ ≤ ``lmax`` on ``geometry``: 19 for ℓ_max = 100 on
    the padded default grid (interpolation error ~2e-6 of the field's RMS, float32's level); never
    more than its pixels."""
    half_side = 0.5 * geometry.npix * geometry.pixel_rad
    return min(geometry.npix, math.ceil((lmax + 1) * half_side) + EXTRA_NODES)


def chebyshev_nodes(lo: float, hi: float, count: int) -> np.ndarray:
    """``count`` Chebyshev points of the second kind on [lo, hi], increasing, ends included."""
    return lo + (hi - lo) * 0.5 * (1.0 - np.cos(math.pi * np.arange(count) / (count - 1)))


def lagrange_matrix(nodes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Matrix ``(targets, nodes)`` taking values at ``nodes`` to the interpolating polynomial's
    values at ``targets``."""
    return BarycentricInterpolator(nodes, np.eye(nodes.size))(targets)


class LargeScaleField:
    """Gaussian fields of spectrum C_ℓ, ℓ ≤ ℓ_max, exact on the sphere, on a patch grid.

    Args:
        cl: C_ℓ in µK² sr for ℓ = 0..ℓ_max, shape (ℓ_max + 1,).
        geometry: the (padded) grid the fields are drawn on.
        device: where the fields are drawn.
    """

    def __init__(self, cl: np.ndarray, geometry: PatchGeometry, device: torch.device | str = "cpu"):
        lmax = cl.size - 1
        self.count = node_count(geometry, lmax)
        offsets = geometry.offsets_rad().numpy()
        nodes = chebyshev_nodes(offsets[0], offsets[-1], self.count)
        basis = real_harmonics(lmax, *grid_directions(nodes)) * np.sqrt(cl[harmonic_degrees(lmax)])
        self._basis = torch.from_numpy(basis.T).to(device, torch.float32)  # (terms, nodes²)
        interp = torch.from_numpy(lagrange_matrix(nodes, offsets))  # (npix, nodes)
        self._rows = torch.fft.fft(interp, dim=0).to(device, torch.complex64)  # (npix, nodes)
        self._cols = torch.fft.rfft(interp, dim=0).T.to(device, torch.complex64)  # (nodes, npix//2+1)

    @property
    def n_terms(self) -> int:
        """Number of real harmonic coefficients drawn per field, (ℓ_max + 1)²."""
        return self._basis.shape[0]

    def transform(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``rfft2`` on the grid, ``(batch, 1, npix, npix // 2 + 1)`` complex64, of the fields with
        unit-variance real harmonic coefficients ``(batch, n_terms)`` (float32, on the device)."""
        nodes = (coefficients @ self._basis).view(-1, self.count, self.count).to(torch.complex64)
        return (self._rows @ (nodes @ self._cols))[:, None]

    def fourier(self, random: SampleRandom, stream: str) -> torch.Tensor:
        """:meth:`transform` of coefficients drawn in ``stream``, one field per sample.

        On the CPU the samples are transformed one at a time, each by the same products, so that a
        sample's field does not depend, to the last bit, on the batch it is drawn in (a batched
        product's rounding does), like the rest of the simulator's CPU output. Elsewhere the batch
        is transformed at once: on a GPU the products are then ~100× faster, and the FFTs there
        round differently by batch size anyway.
        """
        coefficients = random.normal(stream, (self.n_terms,))
        if coefficients.device.type != "cpu":
            return self.transform(coefficients)
        return torch.cat([self.transform(z[None]) for z in coefficients])
