"""Needlet ILC (the method of Planck's NILC map, Delabrouille et al. 2009, A&A 493, 835) on patches.

The beam-matched bands are split into multipole bands by needlet windows h_j(ℓ) with
Σ_j h_j(ℓ)² = 1; in each band the ILC weights vary across the patch, computed from band-band
covariances smoothed over a domain that holds enough modes for the ILC bias to stay below a
tolerance; each band's combination is filtered by h_j again and the bands are summed. The ℓ = 0
mode (the patch mean) is left out of the windows and combined with the patch's ILC weights (in the
first window, on a patch whose lowest multipole lies beyond its reach, the ILC would have that one
mode and cancel it). The CMB's unit response survives every step, so it comes back unchanged at
the target beam, mean included.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F

from cenn.baselines.common import ilc_weights, to_maps, to_target_beam, with_patch_mean
from cenn.baselines.ilc import MAX_GAIN
from cenn.separation import InputInfo, Separator, register_separator
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


@register_separator("nilc")
class NILCSeparator(Separator):
    """Needlet ILC on patches.

    Args:
        needlets: "cosine" (windows between ``ell_peaks``) or "gaussian" (from ``fwhm_arcmin``).
        ell_peaks: cosine-needlet peaks in ℓ.
        fwhm_arcmin: Gaussian-needlet beams, decreasing.
        ilc_bias: tolerated ILC bias: each band's covariance domain holds (C − 1)/ilc_bias modes
            (Delabrouille et al. 2009, Sect. 3.3); where the whole patch holds fewer, the band uses
            the whole patch.
        max_gain: cap on the beam-matching factor B_target/B_band.
    """

    name = "nilc"

    def __init__(self, needlets: str = "cosine", ell_peaks: tuple[float, ...] = ELL_PEAKS,
                 fwhm_arcmin: tuple[float, ...] = FWHM_ARCMIN, ilc_bias: float = 0.03,
                 max_gain: float = MAX_GAIN):
        if needlets not in NEEDLETS:
            raise ValueError(f"needlets must be one of {NEEDLETS}, got {needlets!r}")
        if not 0 < ilc_bias < 1:
            raise ValueError(f"ilc_bias must be in (0, 1), got {ilc_bias}")
        self.needlets, self.ilc_bias, self.max_gain = needlets, ilc_bias, max_gain
        self.ell_peaks, self.fwhm_arcmin = tuple(ell_peaks), tuple(fwhm_arcmin)

    def windows(self, ell: torch.Tensor) -> torch.Tensor:
        """The needlet windows on the ℓ grid ``ell``: ``(J, *ell.shape)``."""
        if self.needlets == "cosine":
            return cosine_needlets(ell, self.ell_peaks)
        return gaussian_needlets(ell, self.fwhm_arcmin)

    def smoothing_sigma(self, window: torch.Tensor, n_bands: int, npix: int) -> float | None:
        """Gaussian σ (pixels) of the covariance domain for one ``rfft2`` window, or None when the
        whole patch is needed. The patch holds Σ h² modes (the rfft half-plane counted twice); a
        Gaussian domain of σ pixels covers 4πσ² pixels."""
        modes = float(2 * (window**2).sum() - (window[:, 0] ** 2).sum() - (window[:, -1] ** 2).sum())
        fraction = (n_bands - 1) / self.ilc_bias / max(modes, 1e-30)
        if fraction >= 0.25:
            return None
        return math.sqrt(fraction * npix**2 / (4 * math.pi))

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        fourier, ell = to_target_beam(inputs, info, self.max_gain)  # (N, C, n, n//2+1)
        n, c = inputs.shape[-1], inputs.shape[1]
        ell_nyquist = float(ell[0, -1])
        out = torch.zeros_like(fourier[:, 0])
        windows = self.windows(ell)
        windows[:, 0, 0] = 0.0  # the mean is combined apart (with_patch_mean)
        for h in windows:
            support = ell[h > 0]
            if support.numel() == 0:
                continue
            # a band limited to ℓ < ℓmax is worked on a grid whose Nyquist is 2ℓmax (room for the
            # covariance products), which makes the low-ℓ bands cheap
            grid = min(n, 2 * math.ceil(2 * float(support.max()) / ell_nyquist * n / 2) + 8)
            band = to_maps(crop_modes(fourier * h, grid), grid)  # (N, C, grid, grid)
            sigma = self.smoothing_sigma(h, c, n)
            weights = self._local_weights(band, None if sigma is None else sigma * grid / n)
            combined = torch.einsum("nhwc,nchw->nhw", weights, band)
            out += h * pad_modes(torch.fft.rfft2(combined), n)
        return to_maps(with_patch_mean(out, fourier), n)[:, None].to(torch.float32)

    @staticmethod
    def _local_weights(band: torch.Tensor, sigma: float | None) -> torch.Tensor:
        """ILC weights per pixel ``(N, n, n, C)`` from the band maps ``(N, C, n, n)``' covariances
        smoothed by a Gaussian of ``sigma`` pixels (the whole patch when None)."""
        c = band.shape[1]
        rows, cols = torch.triu_indices(c, c)
        products = band[:, rows] * band[:, cols]  # the C(C+1)/2 distinct products
        if sigma is None:
            products = products.mean(dim=(-2, -1), keepdim=True).expand_as(products)
        else:
            products = gaussian_smooth(products, sigma)
        products = products.permute(0, 2, 3, 1)
        cov = products.new_empty((*products.shape[:3], c, c))
        cov[..., rows, cols] = products
        cov[..., cols, rows] = products
        return ilc_weights(cov)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "needlets": self.needlets,
                "ell_peaks" if self.needlets == "cosine" else "fwhm_arcmin":
                    list(self.ell_peaks if self.needlets == "cosine" else self.fwhm_arcmin),
                "ilc_bias": self.ilc_bias, "max_gain": self.max_gain}
