"""Instrument noise: white, homogeneous Gaussian noise per pixel at each band's level."""

from __future__ import annotations

import torch

from cenn.sky.geometry import PatchGeometry
from cenn.sky.instrument import Instrument
from cenn.sky.rng import SampleRandom


def white_noise(random: SampleRandom, instrument: Instrument, geometry: PatchGeometry) -> torch.Tensor:
    """Noise maps in µK_CMB, ``(batch, n_bands, npix, npix)``; σ = level / pixel side
    (22.0 / 31.2 / 102.4 µK per 90″ pixel for Planck HFI), times the instrument's noise scale."""
    sigma = torch.tensor(instrument.noise_uk_per_pixel(geometry), device=random.device)
    draws = random.normal("noise", (instrument.n_bands, *geometry.shape))
    return draws * sigma[None, :, None, None].to(draws.dtype)
