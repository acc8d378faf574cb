"""The CMB: a Gaussian field with the lensed TT spectrum, identical in K_CMB at every band."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cenn.sky import fields
from cenn.sky.cmb_spectrum import lensed_tt
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.geometry import PatchGeometry
from cenn.sky.instrument import Instrument


@register
@dataclass
class CMB(Component):
    """Lensed CMB temperature anisotropies (Planck 2018 best fit by default).

    Parameters:
        cosmology: CAMB parameters overriding the Planck 2018 best fit (computed with CAMB
            and cached); empty for the shipped spectrum.
    """

    name = "cmb"
    fourier_native = True
    cosmology: dict[str, float] = field(default_factory=dict)

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        ell, cl = lensed_tt(self.cosmology or None)
        self._amp = fields.amplitude(fields.spectrum_on_grid(ell, cl, geometry), geometry).to(device)

    def sky_fourier(self, ctx: SkyContext) -> torch.Tensor:
        """rfft2 of the CMB map, ``(batch, 1, n, n // 2 + 1)``: one map for all bands."""
        return self.scale * self._amp * fields.white_fourier(ctx.random, "cmb", ctx.geometry)
