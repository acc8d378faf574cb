"""What every classical method shares: patch geometry and beam matching (the linear algebra lives
in :mod:`cenn.model.linear`, shared with the hybrid networks).

All work in float64 on the inputs' device; maps in µK_CMB, in which the CMB has unit response in
every band.
"""

from __future__ import annotations

import torch

from cenn.model.linear import beam_ratios, ilc_weights, to_maps
from cenn.separators import InputInfo
from cenn.sky.geometry import PatchGeometry

__all__ = ["beam_transfer", "ilc_weights", "patch_geometry", "to_maps", "to_target_beam"]


def patch_geometry(inputs: torch.Tensor, info: InputInfo) -> PatchGeometry:
    """The geometry of ``inputs (N, C, n, n)`` with the pixel size of ``info``."""
    n, m = inputs.shape[-2:]
    if n != m:
        raise ValueError(f"classical methods need square patches, got {n}×{m}")
    return PatchGeometry(int(n), info.pixel_arcsec)


def beam_transfer(info: InputInfo, ell: torch.Tensor, max_gain: float) -> torch.Tensor:
    """Per band, the factor B_target(ℓ)/B_c(ℓ) that brings it to the target band's beam, capped at
    ``max_gain``: ``(C, *ell.shape)``."""
    return beam_ratios(ell, info.beam_fwhm_arcmin, info.target_beam_fwhm_arcmin, max_gain)


def to_target_beam(inputs: torch.Tensor, info: InputInfo,
                   max_gain: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs (N, C, n, n)`` at the target beam: their ``rfft2`` modes ``(N, C, n, n//2+1)``
    (complex128) and the ℓ of each mode ``(n, n//2+1)``."""
    geometry = patch_geometry(inputs, info)
    ell = geometry.ell(inputs.device)
    fourier = torch.fft.rfft2(inputs.to(torch.float64))
    return fourier * beam_transfer(info, ell, max_gain), ell
