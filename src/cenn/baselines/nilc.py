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

from typing import Any

import torch

from cenn.baselines.common import ilc_weights, to_maps, to_target_beam, with_patch_mean
from cenn.baselines.ilc import MAX_GAIN
from cenn.model.needlets import (
    ELL_PEAKS,
    FWHM_ARCMIN,
    NEEDLETS,
    band_grid,
    crop_modes,
    domain_sigma,
    local_mean,
    needlet_windows,
    pad_modes,
)
from cenn.separation import InputInfo, Separator, register_separator


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
    stokes_agnostic = True

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
        return needlet_windows(ell, self.needlets, self.ell_peaks, self.fwhm_arcmin)

    def smoothing_sigma(self, window: torch.Tensor, n_bands: int, npix: int) -> float | None:
        """Gaussian σ (pixels) of the covariance domain for one ``rfft2`` window, or None when the
        whole patch is needed: a domain holding (C − 1)/ilc_bias modes."""
        return domain_sigma(window, (n_bands - 1) / self.ilc_bias, npix)

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        fourier, ell = to_target_beam(inputs, info, self.max_gain)  # (N, C, n, n//2+1)
        n, c = inputs.shape[-1], inputs.shape[1]
        out = torch.zeros_like(fourier[:, 0])
        windows = self.windows(ell)
        windows[:, 0, 0] = 0.0  # the mean is combined apart (with_patch_mean)
        for h in windows:
            if not bool((h > 0).any()):
                continue
            grid = band_grid(h, ell, n)
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
        products = local_mean(band[:, rows] * band[:, cols], sigma)  # the C(C+1)/2 distinct products
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
