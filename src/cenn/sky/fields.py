"""Flat-sky Gaussian random fields, beam convolution and cropping, batched in torch.

Fourier convention: ``X = torch.fft.rfft2(map)``; a field of power spectrum C_ℓ (µK² sr) has
⟨|X_ℓ|²⟩ = N_pix C_ℓ / Ω_pix, so its pixel variance is Σ_ℓ C_ℓ / A (A the patch area).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.rng import SampleRandom


def white_fourier(
    random: SampleRandom, stream: str, geometry: PatchGeometry, channels: int = 1
) -> torch.Tensor:
    """Fourier modes of unit-variance real white noise, drawn directly in rfft2 layout.

    Returns a complex64 tensor ``(batch, channels, npix, npix // 2 + 1)`` with the statistics of
    ``rfft2`` of N(0, 1) pixels: ⟨|X|²⟩ = N_pix, Hermitian along the self-conjugate columns.
    """
    n = geometry.npix
    nx = n // 2 + 1
    z = random.normal(stream, (channels, n, nx, 2)) * math.sqrt(n * n / 2.0)
    z = torch.view_as_complex(z)
    cols = [0] + ([n // 2] if n % 2 == 0 else [])
    flip = (-torch.arange(n, device=z.device)) % n
    for c in cols:
        col = z[..., c]
        z[..., c] = (col + col[..., flip].conj()) / math.sqrt(2.0)
    return z


def spectrum_on_grid(
    ell_table: np.ndarray, cl_table: np.ndarray, geometry: PatchGeometry, device="cpu"
) -> torch.Tensor:
    """Linear interpolation of a tabulated C_ℓ onto the rfft2 grid (float64); zero outside
    the table and at ℓ = 0."""
    ell = geometry.ell("cpu").numpy()
    cl = np.interp(ell, ell_table, cl_table, left=0.0, right=0.0)
    cl[0, 0] = 0.0
    return torch.from_numpy(cl).to(device)


def amplitude(cl_grid: torch.Tensor, geometry: PatchGeometry) -> torch.Tensor:
    """Factor turning :func:`white_fourier` modes into a field of spectrum ``cl_grid``:
    sqrt(C_ℓ / Ω_pix), float32."""
    return torch.sqrt(cl_grid / geometry.pixel_area_sr).to(torch.float32)


def to_real(fourier: torch.Tensor, geometry: PatchGeometry) -> torch.Tensor:
    """Inverse of ``rfft2`` on the geometry's grid."""
    return torch.fft.irfft2(fourier, s=geometry.shape)


def to_real_cropped(fourier: torch.Tensor, geometry: PatchGeometry, margin: int) -> torch.Tensor:
    """``crop(to_real(fourier), margin)``, cheaper: the inverse transform along x is done only
    for the rows that are kept."""
    n = geometry.npix
    rows = torch.fft.ifft(fourier, dim=-2)[..., margin : n - margin, :]
    return torch.fft.irfft(rows, n=n, dim=-1)[..., margin : n - margin]


def convolve(maps: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Convolve ``maps (..., n, n)`` with isotropic windows given on the rfft2 grid."""
    n = maps.shape[-2:]
    return torch.fft.irfft2(torch.fft.rfft2(maps) * windows, s=n)


def crop(maps: torch.Tensor, margin: int) -> torch.Tensor:
    """Remove ``margin`` pixels from every side of ``maps (..., n, n)``."""
    if margin == 0:
        return maps
    return maps[..., margin:-margin, margin:-margin]
