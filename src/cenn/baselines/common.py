"""What every classical method shares: patch geometry, beams, beam matching and ILC weights.

All work in float64 on the inputs' device; maps in µK_CMB, in which the CMB has unit response in
every band.
"""

from __future__ import annotations

import torch

from cenn.evaluate.spectra import gaussian_beam_window
from cenn.separators import InputInfo
from cenn.sky.geometry import PatchGeometry


def patch_geometry(inputs: torch.Tensor, info: InputInfo) -> PatchGeometry:
    """The geometry of ``inputs (N, C, n, n)`` with the pixel size of ``info``."""
    n, m = inputs.shape[-2:]
    if n != m:
        raise ValueError(f"classical methods need square patches, got {n}×{m}")
    return PatchGeometry(int(n), info.pixel_arcsec)


def beam_transfer(info: InputInfo, ell: torch.Tensor, max_gain: float) -> torch.Tensor:
    """Per band, the factor B_target(ℓ)/B_c(ℓ) that brings it to the target band's beam, capped at
    ``max_gain`` (deconvolving a wider beam amplifies its noise without bound): ``(C, *ell.shape)``."""
    target = gaussian_beam_window(ell, info.target_beam_fwhm_arcmin)
    ratios = [target / gaussian_beam_window(ell, fwhm) for fwhm in info.beam_fwhm_arcmin]
    return torch.stack(ratios).clamp(max=max_gain)


def to_target_beam(inputs: torch.Tensor, info: InputInfo,
                   max_gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs (N, C, n, n)`` at the target beam: their ``rfft2`` modes ``(N, C, n, n//2+1)``
    (complex128) and the ℓ of each mode ``(n, n//2+1)``."""
    geometry = patch_geometry(inputs, info)
    ell = geometry.ell(inputs.device)
    fourier = torch.fft.rfft2(inputs.to(torch.float64))
    return fourier * beam_transfer(info, ell, max_gain), ell


def to_maps(fourier: torch.Tensor, npix: int) -> torch.Tensor:
    """Real maps from ``rfft2`` modes."""
    return torch.fft.irfft2(fourier, s=(npix, npix))


def ilc_weights(cov: torch.Tensor, loading: float = 1e-10) -> torch.Tensor:
    """ILC weights w = C⁻¹a / (aᵀC⁻¹a) with a = 1 (the CMB in K_CMB units) from band-band
    covariances ``(..., C, C)``; returns ``(..., C)`` summing to 1. ``loading`` adds that fraction
    of the mean variance to the diagonal so a singular covariance (e.g. noise-free CMB alone) still
    gives finite weights."""
    c = cov.shape[-1]
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(cov.dtype).tiny)
    eye = torch.eye(c, dtype=cov.dtype, device=cov.device)
    ones = torch.ones((*cov.shape[:-1], 1), dtype=cov.dtype, device=cov.device)
    x = torch.linalg.solve(cov + loading * trace[..., None, None] * eye, ones)[..., 0]
    return x / x.sum(-1, keepdim=True)
