"""The CMB: Gaussian T, E and B with the lensed spectra, identical in K_CMB at every band.

Temperature: the flat generation grid renders the TT spectrum above ℓ ≈ ``large_scale_lmax`` / 2;
the modes below, which give a patch its mean, gradients and curvature, are drawn exactly on the
sphere (:mod:`cenn.sky.components.cmb.large_scales`), so patches carry them as patches cut from a
full-sky map do.

Polarization (:meth:`CMB.polarization`): E and B are drawn on the flat grid with their whole
spectra, E jointly with T from T's own white modes (stream ``cmb``)::

    T = √(C_TT (1 − w)) n_T,   E = (C_TE / √C_TT) n_T + √(C_EE − C_TE² / C_TT) n_E,   B = √C_BB n_B

(per mode, over Ω_pix; ``w`` the large-scale split, n_E and n_B from the streams ``cmb_e`` and
``cmb_b``), so EE, BB and the TE correlation are exact above ℓ = ``large_scale_lmax``; below it
E correlates only with the flat part of T (the patch's polarization has no modes drawn on the
sphere). Q and U follow from E and B with :func:`cenn.sky.flat.spin2.eb_to_qu`. Drawing Q and U
changes no temperature draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cenn.sky import fields
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.cmb.large_scales import LargeScaleField, low_weight
from cenn.sky.components.cmb.spectrum import cmb_spectra
from cenn.sky.flat import spin2
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument


@register
@dataclass
class CMB(Component):
    """Lensed CMB anisotropies in T, Q and U (Planck 2018 best fit by default).

    Parameters:
        cosmology: CAMB parameters overriding the Planck 2018 best fit (computed with CAMB
            and cached); empty for the shipped spectra.
        tensor_to_scalar: r, the tensor-to-scalar ratio at k₀ = 0.05 Mpc⁻¹: adds r times the
            tensor BB for r = 1 to the lensing BB (polarization only; the tensor TT, EE and TE
            are left out).
        large_scales: draw the temperature modes below ``large_scale_lmax`` exactly on the sphere
            (patch mean RMS ≈ 47 µK for 256 × 90″); ``false`` leaves only what the flat padded
            grid holds (≈ 13 µK).
        large_scale_lmax: ℓ where the spectrum is handed over to the sphere: wholly on the sphere
            up to ℓ = large_scale_lmax / 2, a cosine taper to the flat grid at large_scale_lmax.
    """

    name = "cmb"
    fourier_native = True
    polarized = True
    cosmology: dict[str, float] = field(default_factory=dict)
    tensor_to_scalar: float = 0.0
    large_scales: bool = True
    large_scale_lmax: int = 100

    def __post_init__(self) -> None:
        if self.large_scale_lmax < 4:
            raise ValueError(f"large_scale_lmax must be >= 4, got {self.large_scale_lmax}")
        if not 0 <= self.tensor_to_scalar < float("inf"):
            raise ValueError(f"tensor_to_scalar must be >= 0 and finite, got {self.tensor_to_scalar}")

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        ell, cls = cmb_spectra(self.cosmology or None, self.tensor_to_scalar)
        cl = cls["tt"]
        low = low_weight(ell, self.large_scale_lmax) if self.large_scales else np.zeros_like(cl)
        high = fields.spectrum_on_grid(ell, cl * (1.0 - low), geometry)
        self._amp = fields.amplitude(high, geometry).to(device)
        self._large = None
        if self.large_scales:
            ell_low = np.arange(self.large_scale_lmax + 1)
            self._large = LargeScaleField(np.interp(ell_low, ell, cl * low), geometry, device)
        # E = a_TE n_T + a_E n_E with a_TE = C_TE / √C_TT and a_E² = C_EE − a_TE², per Ω_pix
        a_te = cls["te"] / np.sqrt(np.where(cl > 0, cl, np.inf))
        self._amp_te = (fields.spectrum_on_grid(ell, a_te, geometry)
                        / math.sqrt(geometry.pixel_area_sr)).to(device, torch.float32)
        e_alone = fields.spectrum_on_grid(ell, np.clip(cls["ee"] - a_te**2, 0.0, None), geometry)
        self._amp_ee = fields.amplitude(e_alone, geometry).to(device)
        b_grid = fields.spectrum_on_grid(ell, cls["bb"], geometry)
        self._amp_bb = fields.amplitude(b_grid, geometry).to(device)

    def sky_fourier(self, ctx: SkyContext) -> torch.Tensor:
        """rfft2 of the CMB temperature map, ``(batch, 1, n, n // 2 + 1)``: one map for all bands."""
        modes = self._amp * fields.white_fourier(ctx.random, "cmb", ctx.geometry)
        if self._large is not None:
            modes = modes + self._large.fourier(ctx.random, "cmb_large")
        return self.scale * modes

    def polarization(self, ctx: SkyContext, intensity: torch.Tensor) -> torch.Tensor:
        """rfft2 of the CMB's Q and U, ``(batch, 2, 1, n, n // 2 + 1)``, correlated with the
        temperature drawn for ``ctx`` (whose white modes are drawn again from the same stream)."""
        n_t = fields.white_fourier(ctx.random, "cmb", ctx.geometry)
        e = self._amp_te * n_t + self._amp_ee * fields.white_fourier(ctx.random, "cmb_e", ctx.geometry)
        b = self._amp_bb * fields.white_fourier(ctx.random, "cmb_b", ctx.geometry)
        q, u = spin2.eb_to_qu(e, b, ctx.geometry)
        return self.scale * torch.stack([q, u], dim=1)
