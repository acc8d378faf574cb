"""The CMB: a Gaussian field with the lensed TT spectrum, identical in K_CMB at every band.

The flat generation grid renders the spectrum above ℓ ≈ ``large_scale_lmax`` / 2; the modes below,
which give a patch its mean, gradients and curvature, are drawn exactly on the sphere
(:mod:`cenn.sky.components.cmb.large_scales`), so patches carry them as patches cut from a full-sky map do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cenn.sky import fields
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.cmb.large_scales import LargeScaleField, low_weight
from cenn.sky.components.cmb.spectrum import lensed_tt
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument


@register
@dataclass
class CMB(Component):
    """Lensed CMB temperature anisotropies (Planck 2018 best fit by default).

    Parameters:
        cosmology: CAMB parameters overriding the Planck 2018 best fit (computed with CAMB
            and cached); empty for the shipped spectrum.
        large_scales: draw the modes below ``large_scale_lmax`` exactly on the sphere (patch mean
            RMS ≈ 47 µK for 256 × 90″); ``false`` leaves only what the flat padded grid holds
            (≈ 13 µK).
        large_scale_lmax: ℓ where the spectrum is handed over to the sphere: wholly on the sphere
            up to ℓ = large_scale_lmax / 2, a cosine taper to the flat grid at large_scale_lmax.
    """

    name = "cmb"
    fourier_native = True
    cosmology: dict[str, float] = field(default_factory=dict)
    large_scales: bool = True
    large_scale_lmax: int = 100

    def __post_init__(self) -> None:
        if self.large_scale_lmax < 4:
            raise ValueError(f"large_scale_lmax must be >= 4, got {self.large_scale_lmax}")

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        ell, cl = lensed_tt(self.cosmology or None)
        low = low_weight(ell, self.large_scale_lmax) if self.large_scales else np.zeros_like(cl)
        high = fields.spectrum_on_grid(ell, cl * (1.0 - low), geometry)
        self._amp = fields.amplitude(high, geometry).to(device)
        self._large = None
        if self.large_scales:
            ell_low = np.arange(self.large_scale_lmax + 1)
            self._large = LargeScaleField(np.interp(ell_low, ell, cl * low), geometry, device)

    def sky_fourier(self, ctx: SkyContext) -> torch.Tensor:
        """rfft2 of the CMB map, ``(batch, 1, n, n // 2 + 1)``: one map for all bands."""
        modes = self._amp * fields.white_fourier(ctx.random, "cmb", ctx.geometry)
        if self._large is not None:
            modes = modes + self._large.fourier(ctx.random, "cmb_large")
        return self.scale * modes
