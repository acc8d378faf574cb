"""What every classical method shares: patch geometry and beam matching (the linear algebra lives
in :mod:`cenn.model.linear`, shared with the hybrid networks).

All work in float64 on the inputs' device; maps in µK_CMB, in which the CMB has unit response in
every band.
"""

from __future__ import annotations

import torch

from cenn.model.linear import beam_ratios, ilc_weights, to_maps
from cenn.separation import InputInfo
from cenn.sky.flat.geometry import PatchGeometry

__all__ = ["ilc_weights", "patch_geometry", "patch_ilc_weights", "to_maps", "to_target_beam",
           "with_patch_mean"]


def patch_geometry(inputs: torch.Tensor, info: InputInfo) -> PatchGeometry:
    """The geometry of ``inputs (N, C, n, n)`` with the pixel size of ``info``."""
    n, m = inputs.shape[-2:]
    if n != m:
        raise ValueError(f"classical methods need square patches, got {n}×{m}")
    return PatchGeometry(int(n), info.pixel_arcsec)


def to_target_beam(inputs: torch.Tensor, info: InputInfo,
                   max_gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs (N, C, n, n)`` at the target beam: their ``rfft2`` modes ``(N, C, n, n//2+1)``
    (complex128) and the ℓ of each mode ``(n, n//2+1)``; each band times B_target(ℓ)/B_c(ℓ), capped
    at ``max_gain`` (:func:`cenn.model.linear.beam_ratios`, the one beam matching)."""
    geometry = patch_geometry(inputs, info)
    ell = geometry.ell(inputs.device)
    fourier = torch.fft.rfft2(inputs.to(torch.float64))
    return fourier * beam_ratios(ell, info.beam_fwhm_arcmin, info.target_beam_fwhm_arcmin, max_gain), ell


def patch_ilc_weights(maps: torch.Tensor) -> torch.Tensor:
    """ILC weights ``(N, C)`` of beam-matched maps ``(N, C, n, n)`` from each patch's band-band
    covariance of its fluctuations (every ℓ > 0 mode; the mean left out)."""
    flat = maps.flatten(2)
    centred = flat - flat.mean(-1, keepdim=True)
    return ilc_weights(centred @ centred.transpose(1, 2) / flat.shape[-1])


def with_patch_mean(combined: torch.Tensor, fourier: torch.Tensor) -> torch.Tensor:
    """``combined (N, n, n//2+1)``, the modes of a scale-dependent ILC of beam-matched ``fourier
    (N, C, n, n//2+1)``, with the ℓ = 0 mode (the patch mean) set to the bands' ℓ = 0 modes
    combined with the patch's ILC weights (:func:`patch_ilc_weights`): the mean comes back with the
    CMB's unit response. An ILC of the ℓ = 0 mode alone (one mode against C − 1 free weights)
    cancels it, CMB included; the weights of the few lowest-ℓ modes, measured on a handful of modes,
    put tens of µK of foregrounds and noise into it."""
    weights = patch_ilc_weights(to_maps(fourier, fourier.shape[-2]))
    out = combined.clone()
    out[:, 0, 0] = (weights.to(fourier.dtype) * fourier[:, :, 0, 0]).sum(-1)
    return out
