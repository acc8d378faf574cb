"""Flat-sky spin-2 transforms: E/B Fourier modes ↔ Stokes Q/U on a patch.

Conventions (every component that draws polarized fields and every estimator of E and B uses these):

* Axes. A patch array ``[..., row, col]`` has rows running north (increasing latitude) and columns
  running west (:mod:`cenn.sky.flat.projection`). Stokes Q and U are measured in the pixel frame
  (x̂, ŷ) = (+row direction, +col direction) = (local north, local west): Q > 0 is polarization
  along the meridian (north–south), U > 0 along the north-west/south-east diagonal. Polarization
  angle ψ runs from x̂ (north) towards ŷ (west): Q = P cos 2ψ, U = P sin 2ψ.
* HEALPix/Planck. The COSMO convention of HEALPix and Planck measures Q and U in the basis
  (e_θ, e_φ) = (local south, local east). That basis is the pixel frame rotated by 180°, which
  leaves Q and U unchanged (they are spin 2), and it has the same handedness (e_θ × e_φ and
  north × west both point out of the sphere). So patch Q and U *are* the COSMO Q and U of the
  sky at the patch centre's frame, and the same E and B signs follow. (IAU Q equals COSMO Q;
  IAU U = −COSMO U.) Patches cut from HEALPix maps away from their centre need the spin-2
  rotation between the local meridian and the pixel frame: :mod:`cenn.healpix.polarization` turns
  each map pixel's Q/U into the patch frame when cutting and back when putting patches on the sphere.
* Fourier. ``X = torch.fft.rfft2(map)`` (:mod:`cenn.sky.fields`); φ_ℓ is the angle of the
  wavevector (ℓ_row, ℓ_col) from x̂ towards ŷ, φ_ℓ = atan2(ℓ_col, ℓ_row), and::

      Q(ℓ) = E(ℓ) cos 2φ_ℓ − B(ℓ) sin 2φ_ℓ        E(ℓ) =  Q(ℓ) cos 2φ_ℓ + U(ℓ) sin 2φ_ℓ
      U(ℓ) = E(ℓ) sin 2φ_ℓ + B(ℓ) cos 2φ_ℓ        B(ℓ) = −Q(ℓ) sin 2φ_ℓ + U(ℓ) cos 2φ_ℓ

  (Q + iU)(ℓ) = e^{2iφ_ℓ} (E + iB)(ℓ): a rotation in each mode, so the round trip is exact to
  rounding and E/B power equals Q/U power mode by mode.
* Modes without a partner. On an even grid the Nyquist row and column hold modes whose partner
  −ℓ is the mode itself reflected (not −ℓ), so a real map cannot carry their sin 2φ_ℓ term: there,
  and at ℓ = 0, the rotation is taken as cos 2φ_ℓ = ±1 (its sign), sin 2φ_ℓ = 0. These are
  ~1/n of the modes, at the pixel scale.
"""

from __future__ import annotations

import torch

from cenn.sky.flat.geometry import PatchGeometry


def rotation_grid(geometry: PatchGeometry, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos 2φ_ℓ, sin 2φ_ℓ) on the ``rfft2`` grid, each ``(npix, npix // 2 + 1)``, with the
    Nyquist lines and ℓ = 0 treated as in the module docstring."""
    n = geometry.npix
    k_row = torch.fft.fftfreq(n, dtype=torch.float64)[:, None]
    k_col = torch.fft.rfftfreq(n, dtype=torch.float64)[None, :]
    phi = torch.atan2(k_col.expand(n, -1), k_row.expand(-1, k_col.shape[1]))
    cos2, sin2 = torch.cos(2.0 * phi), torch.sin(2.0 * phi)
    alone = torch.zeros_like(cos2, dtype=torch.bool)
    alone[0, 0] = True
    if n % 2 == 0:
        alone[n // 2, :] = True
        alone[:, n // 2] = True
    cos2 = torch.where(alone, torch.where(cos2 < 0, -1.0, 1.0), cos2)
    sin2 = torch.where(alone, 0.0, sin2)
    return cos2.to(device, dtype), sin2.to(device, dtype)


def eb_to_qu(e: torch.Tensor, b: torch.Tensor, geometry: PatchGeometry
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fourier modes of Q and U from those of E and B (``rfft2`` layout, any leading shape)."""
    cos2, sin2 = rotation_grid(geometry, e.device, _real_dtype(e))
    return e * cos2 - b * sin2, e * sin2 + b * cos2


def qu_to_eb(q: torch.Tensor, u: torch.Tensor, geometry: PatchGeometry
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fourier modes of E and B from those of Q and U (``rfft2`` layout, any leading shape)."""
    cos2, sin2 = rotation_grid(geometry, q.device, _real_dtype(q))
    return q * cos2 + u * sin2, u * cos2 - q * sin2


def qu_maps_to_eb_maps(q: torch.Tensor, u: torch.Tensor, geometry: PatchGeometry
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar E and B maps ``(..., npix, npix)`` of Q and U maps on a periodic patch (no
    apodisation: a cut patch leaks E into B at its edges)."""
    e, b = qu_to_eb(torch.fft.rfft2(q), torch.fft.rfft2(u), geometry)
    return torch.fft.irfft2(e, s=geometry.shape), torch.fft.irfft2(b, s=geometry.shape)


def eb_maps_to_qu_maps(e: torch.Tensor, b: torch.Tensor, geometry: PatchGeometry
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Q and U maps ``(..., npix, npix)`` of scalar E and B maps on a periodic patch."""
    q, u = eb_to_qu(torch.fft.rfft2(e), torch.fft.rfft2(b), geometry)
    return torch.fft.irfft2(q, s=geometry.shape), torch.fft.irfft2(u, s=geometry.shape)


def _real_dtype(x: torch.Tensor) -> torch.dtype:
    return x.real.dtype if x.is_complex() else x.dtype

