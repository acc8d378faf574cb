"""Flat-sky E/B spectra of Q/U patches: TT, EE, BB, TE, EB and TB, binned, with a pure-B estimator.

Convention: Q and U in the pixel frame of :mod:`cenn.sky.flat.spin2` (rows north, columns west),
φ_ℓ = atan2(ℓ_col, ℓ_row), E = Q cos 2φ_ℓ + U sin 2φ_ℓ and B = −Q sin 2φ_ℓ + U cos 2φ_ℓ.

Apodisation: each map less its mean is multiplied by the separable cosine taper W of
:func:`cenn.sky.flat.spectra.cosine_taper` (0 at the border, rising to 1 over ``taper_width``
pixels, n/8 by default), and every spectrum is divided by the window's mean square, as the
temperature estimator (:class:`cenn.sky.flat.spectra.SpectrumEstimator`) does; optionally each mode by
the squared beam window. Spectra are C_ℓ in µK² sr for maps in µK.

E-to-B leakage. The E and B of the windowed maps (the "naive" estimate) mix: the window's edges
turn E into B, and at |b| > 30° the CMB's EE is ~10³ times the lensing BB, so the naive BB of a
pure-E sky exceeds the lensing BB at every ℓ. The pure-B estimator (Smith 2006, PRD 74, 083002;
the flat-sky form of Smith & Zaldarriaga 2007, PRD 76, 043001, eq. 18 onwards) projects the
windowed field onto B modes that are B everywhere inside the patch: with x = (row, col) in radians
and ℓ² B_pure(ℓ) = ∫ d²x e^{−iℓ·x} W [2 ∂_r∂_c Q − (∂_r² − ∂_c²) U], integrated by parts (W and
its first derivatives vanish at the border)::

    B_pure = B[W Q, W U]
             + (2i / ℓ²) (ℓ_r F[U ∂_r W] − ℓ_c F[Q ∂_r W] − ℓ_r F[Q ∂_c W] − ℓ_c F[U ∂_c W])
             + (1 / ℓ²) (2 F[Q ∂_r∂_c W] − F[U (∂_r² W − ∂_c² W)])

F the ``fft2`` (e^{−iℓ·x}), B[·,·] the B of the naive estimate; W's derivatives are analytic
(:func:`cenn.sky.flat.spectra.cosine_taper_profile`). A sky with no B then gives no B_pure, to
the accuracy of the sums over pixels. Measured (tests/sky/test_eb_spectra.py: 16 patches of 256² ×
90″ cut from periodic 512² pure-E CMB skies, 217 GHz beam, taper n/8, bins of 100 over
100 ≤ ℓ < 1000): pure-B leakage ≤ 1e-4 of the lensing BB, naive 2.4–19 × the lensing BB. E is
taken naive: the E picked up from a pure-B sky is 0.8–5 % of its BB, negligible beside EE. EB and
TB use the pure B.

Bias. Pure B(ℓ) is W̃ convolved with ℓ'² B(ℓ'), over ℓ², so its mean is the window-smeared
spectrum weighted by (ℓ'/ℓ)⁴: 2.1 × the lensing BB at 100 ≤ ℓ < 200 and 1.2 × at 200–300 for these
patches, within 8 % above; and the window smooths EE's acoustic peaks by up to 16 % in these bins.
:meth:`EBSpectra.expected` computes both means for a model, to compare or divide by.
"""

from __future__ import annotations

import numpy as np
import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning, SpectrumEstimator, cosine_taper_profile
from cenn.sky.instrument import gaussian_beam_window

#: The spectra :meth:`EBSpectra.spectra` returns (TT, TE and TB only with a temperature map).
KEYS = ("ee", "bb", "eb", "tt", "te", "tb")


class EBSpectra:
    """Binned TT, EE, BB, TE, EB and TB of patches with T, Q and U, windowed as the module says.

    ``pure_b``: B from the pure-B estimator (default) or from the windowed maps alone (the naive
    estimate, for comparison). ``beam_fwhm_arcmin``: divide each mode's power by the squared
    Gaussian beam window, so the spectra estimate the sky's.
    """

    def __init__(self, geometry: PatchGeometry, binning: Binning, taper_width: int | None = None,
                 pure_b: bool = True, beam_fwhm_arcmin: float | None = None,
                 device: torch.device | str = "cpu"):
        self.geometry = geometry
        self.pure_b = pure_b
        self.beam_fwhm_arcmin = beam_fwhm_arcmin
        self.scalar = SpectrumEstimator(geometry, binning, taper_width, beam_fwhm_arcmin=beam_fwhm_arcmin,
                                        device=device)
        n, device = geometry.npix, self.scalar.device
        width = n // 8 if taper_width is None else taper_width
        w0, w1, w2 = (cosine_taper_profile(n, width, device, d) for d in (0, 1, 2))
        pixel = geometry.pixel_rad
        self._window_derivatives = {  # per radian
            "r": w1[:, None] * w0[None, :] / pixel,
            "c": w0[:, None] * w1[None, :] / pixel,
            "rc": w1[:, None] * w1[None, :] / pixel**2,
            "rr-cc": (w2[:, None] * w0[None, :] - w0[:, None] * w2[None, :]) / pixel**2,
        }
        ell_1d = 2 * torch.pi * torch.fft.fftfreq(n, d=pixel, dtype=torch.float64, device=device)
        self._ell_r, self._ell_c = ell_1d[:, None].expand(n, n), ell_1d[None, :].expand(n, n)
        ell2 = self._ell_r**2 + self._ell_c**2
        self._inv_ell2 = torch.where(ell2 > 0, 1.0 / ell2.clamp_min(1e-300), 0.0)
        self._cos2 = torch.where(ell2 > 0, (self._ell_r**2 - self._ell_c**2) * self._inv_ell2, 1.0)
        self._sin2 = 2 * self._ell_r * self._ell_c * self._inv_ell2
        self._bin_index = binning.index(ell2.sqrt().flatten())

    @property
    def ell(self):
        """Bin centres."""
        return self.scalar.ell

    def modes(self, q: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fourier E and B (complex128, ``(..., n, n)``, ``fft2`` layout) of ``q`` and ``u``
        ``(..., n, n)`` in µK: E of the windowed maps, B pure or naive (``pure_b``)."""
        qw, uw = self.scalar.fourier(q), self.scalar.fourier(u)
        e = qw * self._cos2 + uw * self._sin2
        b = -qw * self._sin2 + uw * self._cos2
        if not self.pure_b:
            return e, b
        device = self.scalar.device
        q0, u0 = (x.to(device, torch.float64) for x in (q, u))
        q0, u0 = q0 - q0.mean(dim=(-2, -1), keepdim=True), u0 - u0.mean(dim=(-2, -1), keepdim=True)
        d = self._window_derivatives
        f = torch.fft.fft2
        first = (self._ell_r * f(u0 * d["r"]) - self._ell_c * f(q0 * d["r"])
                 - self._ell_r * f(q0 * d["c"]) - self._ell_c * f(u0 * d["c"]))
        second = 2 * f(q0 * d["rc"]) - f(u0 * d["rr-cc"])
        return e, b + (2j * first + second) * self._inv_ell2

    def spectra(self, q: torch.Tensor, u: torch.Tensor, t: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Binned C_ℓ ``(..., n_bins)`` (µK² sr) of maps ``(..., n, n)``: "ee", "bb", "eb", and with a
        temperature map ``t`` also "tt", "te", "tb"."""
        e, b = self.modes(q, u)
        binned = self.scalar.binned
        out = {"ee": binned(e), "bb": binned(b), "eb": binned(e, b)}
        if t is not None:
            tf = self.scalar.fourier(t)
            out |= {"tt": binned(tf), "te": binned(tf, e), "tb": binned(tf, b)}
        return out

    def expected(self, ell_table: np.ndarray, cl_ee: np.ndarray, cl_bb: np.ndarray) -> dict[str, np.ndarray]:
        """The mean of :meth:`spectra`'s "ee" and "bb" ``(n_bins,)`` for a sky with C_ℓ^EE and C_ℓ^BB
        (µK² sr, tabulated at ``ell_table``), for patches cut from a larger sky. With W̃ the window's
        transform (on a grid twice the patch's, so that it does not wrap) and Δ = φ_ℓ − φ_ℓ'::

            EE(ℓ) = Σ_ℓ' |W̃(ℓ − ℓ')|² [cos² 2Δ C^EE(ℓ') + sin² 2Δ C^BB(ℓ')] / Σ |W̃|²
            BB_pure(ℓ) = Σ_ℓ' |W̃(ℓ − ℓ')|² (ℓ'/ℓ)⁴ C^BB(ℓ') / Σ |W̃|²

        (B_pure(ℓ) is W̃ convolved with ℓ'² B(ℓ'), over ℓ²: E does not enter). The (ℓ'/ℓ)⁴ raises
        the pure BB of a smooth spectrum by ~2× in the lowest bin (ℓ within ~2 window widths of the
        fundamental) and by ~5 % at ℓ ≳ 300; compare measured spectra with this, or divide by it.
        Without ``pure_b``, "bb" is as "ee" with EE and BB swapped.
        """
        n, pixel = 2 * self.geometry.npix, self.geometry.pixel_rad
        device = self.scalar.device
        window = torch.zeros((n, n), dtype=torch.float64, device=device)
        w = self.scalar.taper
        window[: w.shape[0], : w.shape[1]] = w
        coupling = torch.fft.fft2(window).abs() ** 2
        coupling_f = torch.fft.fft2(coupling / coupling.sum())
        ell_1d = 2 * torch.pi * torch.fft.fftfreq(n, d=pixel, dtype=torch.float64, device=device)
        ell_r, ell_c = ell_1d[:, None], ell_1d[None, :]
        ell = torch.sqrt(ell_r**2 + ell_c**2)
        cos4, sin4 = torch.cos(4 * torch.atan2(ell_c, ell_r)), torch.sin(4 * torch.atan2(ell_c, ell_r))
        beam = self.beam_fwhm_arcmin
        beam2 = 1.0 if beam is None else gaussian_beam_window(ell, beam) ** 2

        def smeared(cl: torch.Tensor) -> torch.Tensor:  # Σ_ℓ' |W̃(ℓ − ℓ')|² cl(ℓ') / Σ |W̃|²
            return torch.fft.ifft2(coupling_f * torch.fft.fft2(cl * beam2)).real / beam2

        ee, bb = (torch.from_numpy(np.interp(ell.cpu().numpy(), ell_table, c)).to(device)
                  for c in (cl_ee, cl_bb))
        # cos² 2Δ = (1 + cos 4φ cos 4φ' + sin 4φ sin 4φ') / 2, sin² 2Δ = 1 − cos² 2Δ
        total = smeared(ee + bb)
        turned = cos4 * smeared((ee - bb) * cos4) + sin4 * smeared((ee - bb) * sin4)
        out = {"ee": 0.5 * (total + turned)}
        pure = smeared(ell**4 * bb) / ell.clamp_min(1e-30) ** 4
        out["bb"] = pure if self.pure_b else 0.5 * (total - turned)
        binning, idx = self.scalar.binning, self._bin_index
        return {k: (binning.sums(v[::2, ::2].flatten(), idx) / self.scalar.modes_per_bin).cpu().numpy()
                for k, v in out.items()}
