"""Flat-sky angular power spectra of patches: apodised periodograms binned in ℓ, batched in torch.

C_ℓ is in µK² sr for maps in µK; ``D_ℓ = ℓ(ℓ+1) C_ℓ / 2π`` in µK².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cenn.sky.geometry import PatchGeometry


@dataclass(frozen=True)
class Binning:
    """Multipole bins ``[edges[i], edges[i+1])``."""

    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.edges) < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bin edges must be at least two increasing values, got {self.edges}")

    @classmethod
    def linear(cls, lmin: float, lmax: float, width: float) -> Binning:
        """Bins of constant ``width`` from ``lmin`` up to at most ``lmax``."""
        return cls(tuple(float(e) for e in np.arange(lmin, lmax + 0.5 * width, width)))

    @classmethod
    def paper(cls, geometry: PatchGeometry) -> Binning:
        """The CENN paper's scheme: Δℓ = 50 up to ℓ = 1000, then Δℓ = 200 up to the largest ℓ
        the patch holds (its Nyquist multipole), starting at the patch's fundamental ℓ."""
        lmin = math.ceil(geometry.ell_fundamental)
        low = [*np.arange(lmin, 1000, 50), 1000]
        high = list(np.arange(1200, geometry.ell_nyquist + 1, 200))
        return cls(tuple(float(e) for e in low + high))

    @property
    def centres(self) -> np.ndarray:
        e = np.asarray(self.edges)
        return 0.5 * (e[1:] + e[:-1])

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1


def cosine_taper(npix: int, width: int, device="cpu") -> torch.Tensor:
    """Separable cosine (Tukey) apodisation, 0 at the border rising to 1 over ``width`` pixels;
    shape (npix, npix), float64."""
    w = torch.ones(npix, dtype=torch.float64, device=device)
    if width > 0:
        ramp = 0.5 * (1 - torch.cos(math.pi * (torch.arange(width, device=device) + 0.5) / width))
        w[:width] = ramp
        w[-width:] = ramp.flip(0)
    return w[:, None] * w[None, :]


def _full_ell(geometry: PatchGeometry, device) -> torch.Tensor:
    k = torch.fft.fftfreq(geometry.npix, d=geometry.pixel_rad, dtype=torch.float64, device=device)
    return 2.0 * math.pi * torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


def power_spectrum(
    maps: torch.Tensor,
    geometry: PatchGeometry,
    binning: Binning,
    other: torch.Tensor | None = None,
    taper_width: int | None = None,
    subtract_mean: bool = True,
) -> torch.Tensor:
    """Binned auto (or cross, with ``other``) spectrum C_ℓ of ``maps (..., n, n)``.

    Each map's mean is removed first (``subtract_mean``; otherwise the taper leaks a bright
    patch's monopole into ℓ ≈ 100–400), then the maps are multiplied by a cosine taper (default
    width n/8 pixels) and the periodogram is divided by the window's mean square, so a white
    field of pixel variance σ² gives σ² Ω_pix. Returns ``(..., n_bins)`` float64; empty bins are
    NaN. :func:`expected_spectrum` is the exact expectation without mean removal.
    """
    device = maps.device
    width = geometry.npix // 8 if taper_width is None else taper_width
    w = cosine_taper(geometry.npix, width, device)
    norm = geometry.pixel_area_sr / (geometry.npix**2 * torch.mean(w**2))

    def tapered_fft(m: torch.Tensor) -> torch.Tensor:
        m = m.to(torch.float64)
        if subtract_mean:
            m = m - m.mean(dim=(-2, -1), keepdim=True)
        return torch.fft.fft2(m * w)

    fa = tapered_fft(maps)
    fb = fa if other is None else tapered_fft(other)
    p = (fa * fb.conj()).real * norm
    ell = _full_ell(geometry, device).flatten()
    edges = torch.tensor(binning.edges, dtype=torch.float64, device=device)
    idx = torch.bucketize(ell, edges, right=True) - 1
    valid = (idx >= 0) & (idx < binning.n_bins)
    flat = p.flatten(-2)[..., valid]
    idx = idx[valid]
    sums = torch.zeros((*flat.shape[:-1], binning.n_bins), dtype=torch.float64, device=device)
    sums.index_add_(-1, idx, flat)
    counts = torch.bincount(idx, minlength=binning.n_bins).to(torch.float64)
    return sums / counts.where(counts > 0, torch.tensor(float("nan"), device=device))


def cl_to_dl(ell: np.ndarray | torch.Tensor, cl):
    """D_ℓ = ℓ(ℓ+1) C_ℓ / 2π."""
    if isinstance(cl, torch.Tensor):
        ell = torch.as_tensor(ell, dtype=cl.dtype, device=cl.device)
    return ell * (ell + 1) * cl / (2 * math.pi)


def binned_model(
    ell_table: np.ndarray, cl_table: np.ndarray, geometry: PatchGeometry, binning: Binning
) -> np.ndarray:
    """A model C_ℓ averaged over the Fourier modes of each bin, as :func:`power_spectrum` does;
    for comparing a measured spectrum with its model."""
    ell = _full_ell(geometry, "cpu").flatten().numpy()
    cl = np.interp(ell, ell_table, cl_table)
    idx = np.searchsorted(np.asarray(binning.edges), ell, side="right") - 1
    valid = (idx >= 0) & (idx < binning.n_bins)
    sums = np.bincount(idx[valid], weights=cl[valid], minlength=binning.n_bins)
    counts = np.bincount(idx[valid], minlength=binning.n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def expected_spectrum(
    ell_table: np.ndarray,
    cl_table: np.ndarray,
    geometry: PatchGeometry,
    binning: Binning,
    generation: PatchGeometry | None = None,
    taper_width: int | None = None,
) -> np.ndarray:
    """Exact expectation of :func:`power_spectrum` for a Gaussian field of spectrum C_ℓ.

    The field is periodic on the ``generation`` grid (the simulator's padded grid; default a
    grid twice the patch, close to an infinite plane) and observed through the same taper, so the
    window's mode coupling is included. Returns binned C_ℓ, float64 (n_bins,).
    """
    gen = generation or geometry.padded(geometry.npix // 2)
    n, ng = geometry.npix, gen.npix
    cl_grid = np.interp(_full_ell(gen, "cpu").numpy(), ell_table, cl_table, left=0.0, right=0.0)
    cl_grid[0, 0] = 0.0
    xi = np.fft.ifft2(cl_grid / gen.pixel_area_sr).real
    width = n // 8 if taper_width is None else taper_width
    w = cosine_taper(n, width).numpy()
    auto = np.fft.ifft2(np.abs(np.fft.fft2(w, s=(2 * n, 2 * n))) ** 2).real
    lag = np.arange(2 * n)
    lag = np.where(lag < n, lag, lag - 2 * n) % ng
    pseudo = np.fft.fft2(auto * xi[np.ix_(lag, lag)]).real[::2, ::2]
    pseudo *= geometry.pixel_area_sr / (n**2 * np.mean(w**2))
    ell = _full_ell(geometry, "cpu").flatten().numpy()
    idx = np.searchsorted(np.asarray(binning.edges), ell, side="right") - 1
    valid = (idx >= 0) & (idx < binning.n_bins)
    sums = np.bincount(idx[valid], weights=pseudo.flatten()[valid], minlength=binning.n_bins)
    counts = np.bincount(idx[valid], minlength=binning.n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts
