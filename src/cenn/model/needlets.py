"""Needlets on flat patches: multipole windows h_j(ℓ) with Σ_j h_j(ℓ)² = 1, Gaussian smoothing of
local covariances, and band-limited maps on coarser grids.

Shared by the needlet ILC (:mod:`cenn.baselines.nilc`) and the CMB-free needlet ILC
(:mod:`cenn.model.difference_ilc`). Shapes: ``ell`` the multipole of every ``rfft2`` mode
``(n, n // 2 + 1)``; windows ``(J, *ell.shape)``; maps ``(..., n, n)``.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from cenn.sky.instrument import gaussian_beam_window

#: Default cosine-needlet peaks (ℓ): finer where the CMB and dust compete, up to the grid's corner.
ELL_PEAKS = (0.0, 100.0, 200.0, 350.0, 550.0, 800.0, 1100.0, 1500.0, 2000.0, 2700.0, 3600.0, 4800.0,
             6400.0, 10500.0)
#: Default Gaussian-needlet beams (arcmin, decreasing), as in Planck's NILC.
FWHM_ARCMIN = (300.0, 120.0, 60.0, 30.0, 15.0, 10.0, 7.5, 5.0, 3.0)
NEEDLETS = ("cosine", "gaussian")


def cosine_needlets(ell: torch.Tensor, peaks: tuple[float, ...]) -> torch.Tensor:
    """Windows ``(J, *ell.shape)``: h_j rises as a cosine from peak j−1 to peak j and falls to peak
    j+1; the first is 1 below its peak, the last 1 above its peak; Σ h_j² = 1."""
    p = [float(x) for x in peaks]
    if len(p) < 2 or any(b <= a for a, b in itertools.pairwise(p)):
        raise ValueError(f"needlet peaks must be at least two increasing multipoles, got {peaks}")
    windows = []
    for j, peak in enumerate(p):
        h = torch.zeros_like(ell)
        if j == 0:
            h[ell <= peak] = 1.0
        else:
            rise = (ell > p[j - 1]) & (ell <= peak)
            h[rise] = torch.cos(0.5 * math.pi * (peak - ell[rise]) / (peak - p[j - 1]))
        if j == len(p) - 1:
            h[ell > peak] = 1.0
        else:
            fall = (ell > peak) & (ell < p[j + 1])
            h[fall] = torch.cos(0.5 * math.pi * (ell[fall] - peak) / (p[j + 1] - peak))
        windows.append(h)
    return torch.stack(windows)


def gaussian_needlets(ell: torch.Tensor, fwhm_arcmin: tuple[float, ...]) -> torch.Tensor:
    """Windows ``(J + 1, *ell.shape)`` from Gaussian beams b_j of decreasing FWHM:
    h_0 = b_0, h_j = √(b_j² − b_{j−1}²), h_J = √(1 − b_{J−1}²); Σ h_j² = 1."""
    f = [float(x) for x in fwhm_arcmin]
    if not f or any(b >= a for a, b in itertools.pairwise(f)):
        raise ValueError(f"needlet beams must be decreasing FWHMs in arcmin, got {fwhm_arcmin}")
    b2 = [gaussian_beam_window(ell, fwhm) ** 2 for fwhm in f]
    squares = [b2[0], *(b - a for a, b in itertools.pairwise(b2)), 1.0 - b2[-1]]
    return torch.stack([s.clamp_min(0.0).sqrt() for s in squares])


def needlet_windows(ell: torch.Tensor, needlets: str, ell_peaks: tuple[float, ...] = ELL_PEAKS,
                    fwhm_arcmin: tuple[float, ...] = FWHM_ARCMIN) -> torch.Tensor:
    """The windows of a ``"cosine"`` (peaks ``ell_peaks``) or ``"gaussian"`` (beams ``fwhm_arcmin``)
    needlet family on the ℓ grid ``ell``: ``(J, *ell.shape)``."""
    if needlets == "cosine":
        return cosine_needlets(ell, ell_peaks)
    if needlets == "gaussian":
        return gaussian_needlets(ell, fwhm_arcmin)
    raise ValueError(f"needlets must be one of {NEEDLETS}, got {needlets!r}")


def gaussian_smooth(maps: torch.Tensor, sigma_pix: float) -> torch.Tensor:
    """``maps (..., n, n)`` convolved with a Gaussian of ``sigma_pix`` pixels; the borders are
    mirrored (up to n/2 pixels) so they do not wrap around."""
    n = maps.shape[-1]
    pad = min(n // 2, math.ceil(3 * sigma_pix))
    shape = maps.shape
    x = F.pad(maps.reshape(-1, 1, n, n), (pad, pad, pad, pad), mode="reflect")[:, 0]
    size = n + 2 * pad
    ky = torch.fft.fftfreq(size, dtype=maps.dtype, device=maps.device)
    kx = torch.fft.rfftfreq(size, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-2 * (math.pi * sigma_pix) ** 2 * (ky[:, None] ** 2 + kx[None, :] ** 2))
    smooth = torch.fft.irfft2(torch.fft.rfft2(x) * kernel, s=(size, size))
    return smooth[:, pad : pad + n, pad : pad + n].reshape(shape)


def crop_modes(fourier: torch.Tensor, grid: int) -> torch.Tensor:
    """The ``rfft2`` modes ``(..., n, n//2+1)`` of a map band-limited below the Nyquist of a ``grid``
    × ``grid`` map, as that map's modes (amplitudes rescaled so ``irfft2`` gives the same values)."""
    n = fourier.shape[-2]
    if grid == n:
        return fourier
    half = grid // 2
    rows = torch.cat([torch.arange(half), torch.arange(n - half, n)]).to(fourier.device)
    return fourier[..., rows, : half + 1] * (grid / n) ** 2


def pad_modes(fourier: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of :func:`crop_modes`: modes of a ``grid`` map placed on the ``n`` × ``n`` grid
    (zeros elsewhere)."""
    grid = fourier.shape[-2]
    if grid == n:
        return fourier
    half = grid // 2
    out = fourier.new_zeros((*fourier.shape[:-2], n, n // 2 + 1))
    scaled = fourier * (n / grid) ** 2
    out[..., :half, : half + 1] = scaled[..., :half, :]
    out[..., n - half :, : half + 1] = scaled[..., half:, :]
    return out


def band_grid(window: torch.Tensor, ell: torch.Tensor, npix: int) -> int:
    """Side of the grid on which a map band-limited by ``window`` is worked: Nyquist twice the
    window's highest ℓ (room for covariance products), so low-ℓ windows are cheap; ``npix`` at most."""
    ell_nyquist = float(ell[0, -1])
    support = ell[window > 0]
    return min(npix, 2 * math.ceil(2 * float(support.max()) / ell_nyquist * npix / 2) + 8)


def half_plane_counts(ell: torch.Tensor) -> torch.Tensor:
    """How many modes of the full Fourier plane each ``rfft2`` mode of an even grid stands for,
    shaped like ``ell (n, n // 2 + 1)``: 2, and 1 in the first and the Nyquist columns (their
    mirror images are themselves)."""
    counts = torch.full_like(ell, 2.0)
    counts[:, 0] = counts[:, -1] = 1.0
    return counts


def window_modes(window: torch.Tensor) -> float:
    """Σ h² over the full Fourier plane (:func:`half_plane_counts`): the number of modes a window
    ``(n, n // 2 + 1)`` holds."""
    return float((half_plane_counts(window) * window**2).sum())


def domain_sigma(window: torch.Tensor, modes_needed: float, npix: int) -> float | None:
    """Gaussian σ (pixels of the ``npix`` grid) of a smoothing domain holding ``modes_needed`` of the
    window's modes (a domain of σ pixels covers 4πσ² pixels), or None when that needs a quarter of
    the patch or more (then the whole patch is the domain)."""
    fraction = modes_needed / max(window_modes(window), 1e-30)
    if fraction >= 0.25:
        return None
    return math.sqrt(fraction * npix**2 / (4 * math.pi))


def local_mean(maps: torch.Tensor, sigma_pix: float | None) -> torch.Tensor:
    """``maps (..., n, n)`` averaged over a Gaussian domain of ``sigma_pix`` pixels, or over the whole
    patch (broadcast back to every pixel) when None."""
    if sigma_pix is None:
        return maps.mean(dim=(-2, -1), keepdim=True).expand_as(maps)
    return gaussian_smooth(maps, sigma_pix)
