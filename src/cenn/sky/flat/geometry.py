"""Flat-sky patch geometry: pixel grid, pixel size and the Fourier (multipole) grid.

One :class:`PatchGeometry` is passed wherever a patch's shape or Fourier grid matters;
nothing else re-derives pixel sizes or ℓ values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

ARCSEC = math.pi / (180.0 * 3600.0)
"""One arcsecond in radians."""


@dataclass(frozen=True)
class PatchGeometry:
    """A square patch of ``npix × npix`` pixels of side ``pixel_arcsec``.

    Args:
        npix: pixels per side (paper: 256).
        pixel_arcsec: pixel side in arcseconds (paper: 90″, close to HEALPix Nside 2048).
    """

    npix: int = 256
    pixel_arcsec: float = 90.0

    def __post_init__(self) -> None:
        if not isinstance(self.npix, int) or self.npix < 8:
            raise ValueError(f"npix must be an integer >= 8, got {self.npix!r}")
        if not 0 < self.pixel_arcsec < math.inf:
            raise ValueError(f"pixel_arcsec must be positive and finite, got {self.pixel_arcsec!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape ``(y, x)`` of one patch map."""
        return (self.npix, self.npix)

    @property
    def pixel_rad(self) -> float:
        """Pixel side in radians."""
        return self.pixel_arcsec * ARCSEC

    @property
    def pixel_deg(self) -> float:
        """Pixel side in degrees."""
        return self.pixel_arcsec / 3600.0

    @property
    def pixel_area_sr(self) -> float:
        """Pixel solid angle Ω_pix in steradians."""
        return self.pixel_rad**2

    @property
    def side_deg(self) -> float:
        """Patch side in degrees (6.4° for the default)."""
        return self.npix * self.pixel_deg

    @property
    def area_sr(self) -> float:
        """Patch solid angle in steradians."""
        return self.npix**2 * self.pixel_area_sr

    @property
    def ell_fundamental(self) -> float:
        """Spacing of the ℓ grid, 2π / side (≈ 56 for the default patch)."""
        return 2.0 * math.pi / (self.npix * self.pixel_rad)

    @property
    def ell_nyquist(self) -> float:
        """Pixel Nyquist multipole π / θ_pix (≈ 7200 for 90″ pixels)."""
        return math.pi / self.pixel_rad

    def padded(self, margin: int) -> PatchGeometry:
        """The same pixels with ``margin`` extra pixels on every side."""
        return PatchGeometry(self.npix + 2 * margin, self.pixel_arcsec)

    @cached_property
    def _ell_cache(self) -> torch.Tensor:
        ky = torch.fft.fftfreq(self.npix, d=self.pixel_rad, dtype=torch.float64)
        kx = torch.fft.rfftfreq(self.npix, d=self.pixel_rad, dtype=torch.float64)
        return 2.0 * math.pi * torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)

    def ell(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Multipole |ℓ| of every mode of ``torch.fft.rfft2``, shape ``(npix, npix // 2 + 1)``,
        float64."""
        return self._ell_cache.to(device)

    def offsets_rad(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Pixel-centre offsets from the patch centre along one axis, in radians, shape (npix,)."""
        idx = torch.arange(self.npix, dtype=torch.float64, device=device)
        return (idx - (self.npix - 1) / 2.0) * self.pixel_rad
