"""The CMB-free needlet ILC: the reference band's foregrounds and noise predicted from band differences
alone, so that the reference band minus the prediction passes the CMB with exactly unit response.

An ILC's weights measured on the bands themselves depend on the CMB realisation through its chance
correlations with the foregrounds, which bends its response by a few per cent per needlet domain.
Here every weight is a function of CMB-free maps: the differences ``D_j = x_j − x_ref`` of the
beam-matched bands (:func:`cenn.model.linear.cmb_free_differences`, the border strip mirrored), and
the bands' noise variance.

The differences are brought to the reference beam (gain capped at ``max_gain``), so that one set of
weights means the same in every needlet window: weights that jumped between windows would leave
the ringing of the patch's periodic discontinuity (tens of thousands of µK across a plane patch)
at its borders. Model, in each needlet window h (as the NILC's) and local domain: ``D = M S + ν``
and ``f_ref = a_refᵀ S + n_ref``, with S the foreground components
(:data:`cenn.sky.seds.FOREGROUNDS`) at the reference beam, ``M_jk = a_jk − a_ref,k`` from their
nominal SEDs ``a`` and ν the differences' noise, known from σ. The local
covariance of D less its noise gives Cov(S) (eigenvalues of the noise-whitened excess below
``threshold / √modes`` are noise and set to 0); the prediction is the regression of ``f_ref`` on D
under the model, ``F = Cov(D)⁻¹ Cov(D, f_ref) · D``. Where a pair's window-mean beam factor
B_common/B_ref falls below ``min_beam_factor`` (the 143 GHz pair at ℓ ≳ 2000) it is left out near
the patch border, where bringing it to the reference beam would sharpen the errors of its refilled
strip; the model then has as many components as differences. Away from the border it is kept down to
``interior_min_beam_factor`` (gain capped at ``interior_max_gain``): in the plane the 143 GHz
difference still holds foregrounds well above its noise there, and without it one difference must
stand for dust and CO alike. The two predictions are joined by a cosine ramp (:func:`interior_weight`;
both CMB-free, so the response stays exact). The ℓ = 0 mode is kept: no CMB is there to cancel.

Three bands cannot tell the reference band's share of a foreground from the differences alone (a
component whose SED is shifted by a constant looks the same in every difference): the nominal SEDs
break that degeneracy, and the error this leaves where the true SEDs differ is what the networks of
:mod:`cenn.model.hybrid` learn to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cenn.model.compact_sources import CompactSources
from cenn.model.linear import MIRROR_PAD_PX, common_beam_windows, to_maps
from cenn.model.needlets import (
    ELL_PEAKS,
    band_grid,
    crop_modes,
    domain_sigma,
    half_plane_counts,
    local_mean,
    needlet_windows,
    pad_modes,
    window_modes,
)
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import cosine_taper_profile
from cenn.sky.instrument import gaussian_beam_window


@dataclass
class _Window:
    """One needlet window on one grid: the window, its working grid, domain and noise factors for
    the differences it keeps (``keep``), K of them."""

    h: torch.Tensor  # (n, n//2+1)
    grid: int
    sigma: float | None  # domain σ in pixels of ``grid``
    modes: float  # modes in a domain
    keep: list[int]
    noise_diff: torch.Tensor  # (K,) Σ h² g_j²/n²: band j's noise variance → D_j's
    noise_ref: torch.Tensor  # (K, K) Σ h² g_ra g_rb/n²: the reference's noise in D_a, D_b
    noise_cross: torch.Tensor  # (K,) Σ h² g_ra/n²: Cov(D_a, n_ref) per unit reference variance (sign −)
    mapping: torch.Tensor  # (K,) M⁻ᵀ a_ref: f_ref per unit of D along each component
    # (g: the gain of band j's and the reference's noise in D_j at the reference beam)


class DifferenceILC:
    """The CMB-free needlet ILC of one instrument; see the module docstring.

    Args:
        beams_arcmin: every band's beam FWHM.
        pixel_arcsec: pixel side.
        reference: index of the band whose foregrounds are predicted.
        seds: ``(C, K)`` nominal SEDs of the K = C − 1 modelled foregrounds
            (:func:`cenn.sky.seds.nominal_seds`).
        ell_peaks: cosine-needlet peaks (ℓ).
        modes_per_domain: Fourier modes in each local covariance domain.
        threshold: significance (in units of 1/√modes) an eigenvalue of the noise-whitened excess
            covariance needs to count as foreground.
        min_beam_factor: the smallest window-mean B_common/B_ref at which a difference is used.
        max_gain: cap on the factor B_ref/B_common that brings a difference to the reference beam
            (a little above 1/``min_beam_factor``: a larger gain would only sharpen the ringing of
            the patch's periodic discontinuity in modes where the difference is not used).
        interior_min_beam_factor, interior_max_gain: the same away from the patch border (equal to
            ``min_beam_factor`` and ``max_gain``: one prediction everywhere).
        border_px, ramp_px: the border prediction alone within ``border_px`` of the edge, the
            interior one beyond ``border_px + ramp_px``, a cosine ramp between.
        sources: compact sources fitted with their own SEDs first (:mod:`cenn.model.compact_sources`),
            or None.
    """

    def __init__(self, beams_arcmin: Sequence[float], pixel_arcsec: float, reference: int,
                 seds: Sequence[Sequence[float]], ell_peaks: Sequence[float] = ELL_PEAKS,
                 modes_per_domain: float = 67.0, threshold: float = 2.0, min_beam_factor: float = 0.5,
                 max_gain: float = 2.5, interior_min_beam_factor: float = 0.15,
                 interior_max_gain: float = 8.0, border_px: int = 4, ramp_px: int = 24,
                 sources: CompactSources | None = None):
        self.beams = [float(b) for b in beams_arcmin]
        c = len(self.beams)
        self.seds = torch.as_tensor(seds, dtype=torch.float64)
        if self.seds.shape != (c, c - 1):
            raise ValueError(f"{c} bands need a ({c}, {c - 1}) SED table (one column per modelled "
                             f"foreground), got {tuple(self.seds.shape)}")
        self.others = [j for j in range(c) if j != reference]
        self.reference, self.pixel_arcsec = int(reference), float(pixel_arcsec)
        self.ell_peaks = tuple(float(p) for p in ell_peaks)
        self.modes_per_domain, self.threshold = float(modes_per_domain), float(threshold)
        self.border = (float(min_beam_factor), float(max_gain))
        self.interior = (float(interior_min_beam_factor), float(interior_max_gain))
        if min(*self.border, *self.interior) < 0 or border_px < 0 or ramp_px < 0:
            raise ValueError("beam factors, gains, border_px and ramp_px must be >= 0")
        self.border_px, self.ramp_px = int(border_px), int(ramp_px)
        self.sources = sources
        self._windows: dict[tuple[int, str, tuple[float, float]], tuple[torch.Tensor, list[_Window]]] = {}

    def _sed_differences(self, keep: list[int]) -> torch.Tensor:
        """``(K, K)``: a_jk − a_ref,k for the kept differences and the first K foregrounds."""
        rows = [self.others[j] for j in keep]
        return (self.seds[rows] - self.seds[self.reference])[:, : len(keep)]

    def windows(self, npix: int, device: torch.device,
                limits: tuple[float, float]) -> tuple[torch.Tensor, list[_Window]]:
        """For ``npix``-pixel patches on ``device`` and ``limits`` (the smallest beam factor at
        which a difference is used, the gain cap; computed once): the factors ``(C − 1, n, n//2+1)``
        that bring the differences to the reference beam, and the windows."""
        key = (int(npix), str(device), limits)
        if key not in self._windows:
            self._windows[key] = self._make_windows(int(npix), torch.device(device), *limits)
        return self._windows[key]

    def _make_windows(self, npix: int, device: torch.device, min_beam_factor: float,
                      max_gain: float) -> tuple[torch.Tensor, list[_Window]]:
        ell = PatchGeometry(npix, self.pixel_arcsec).ell(device)
        b_ref = gaussian_beam_window(ell, self.beams[self.reference])
        b_band = torch.stack([gaussian_beam_window(ell, self.beams[j]) for j in self.others])
        common = common_beam_windows(ell, self.beams, self.reference)  # (C − 1, n, n//2+1)
        to_ref = (b_ref / common).clamp(max=max_gain)
        beam_factors = common / b_ref
        g_band, g_ref = to_ref * common / b_band, to_ref * common / b_ref
        twice = half_plane_counts(ell)
        out = []
        for h in needlet_windows(ell, "cosine", self.ell_peaks):
            if not bool((h > 0).any()):
                continue
            weight = twice * h**2 / npix**2
            beam_factor = (weight * beam_factors).sum((-2, -1)) / weight.sum()
            keep = [j for j in range(len(self.others)) if float(beam_factor[j]) >= min_beam_factor]
            grid = band_grid(h, ell, npix)
            sigma = domain_sigma(h, self.modes_per_domain, npix)
            gr = g_ref[keep]
            sed_differences = self._sed_differences(keep).to(device)
            if abs(float(torch.linalg.det(sed_differences))) < 1e-12:
                raise ValueError(f"the SEDs {self.seds.tolist()} do not tell the foregrounds apart in the "
                                 "band differences: give SEDs that differ from the CMB's and from each other")
            mapping = torch.linalg.solve(sed_differences.T, self.seds[self.reference, : len(keep)].to(device))
            out.append(_Window(
                h=h, grid=grid, sigma=None if sigma is None else sigma * grid / npix,
                modes=window_modes(h) if sigma is None else self.modes_per_domain, keep=keep,
                noise_diff=(weight * g_band[keep] ** 2).sum((-2, -1)),
                noise_ref=(weight * gr[:, None] * gr[None]).sum((-2, -1)),
                noise_cross=(weight * gr).sum((-2, -1)), mapping=mapping,
            ))
        return to_ref, out

    def foregrounds(self, differences: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
        """The reference band's foregrounds and noise ``(N, 1, n, n)`` float64 µK_CMB predicted from
        CMB-free ``differences (N, C − 1, n, n)`` µK_CMB and the bands' noise variance
        ``noise_var (N, C, n, n)`` µK²: the compact sources' share (if ``sources``) plus the border's
        prediction from the rest joined to the interior's."""
        found = 0.0
        if self.sources is not None:
            in_differences, found = self.sources.fit(differences, noise_var)
            differences = differences.to(torch.float64) - in_differences
        border = self.predict(differences, noise_var, self.border)
        if self.interior == self.border:
            return found + border
        weight = interior_weight(differences.shape[-1], self.border_px, self.ramp_px, differences.device)
        return found + (1.0 - weight) * border + weight * self.predict(differences, noise_var, self.interior)

    def predict(self, differences: torch.Tensor, noise_var: torch.Tensor,
                limits: tuple[float, float]) -> torch.Tensor:
        """As :meth:`foregrounds`, with one ``limits`` (smallest beam factor, gain cap) everywhere."""
        n = differences.shape[-1]
        pad = min(MIRROR_PAD_PX, n - 1)
        differences = F.pad(differences.to(torch.float64), (pad,) * 4, mode="reflect")
        variance = F.pad(noise_var.to(torch.float64), (pad,) * 4, mode="reflect")
        size = n + 2 * pad
        to_ref, windows = self.windows(size, differences.device, limits)
        fourier = torch.fft.rfft2(differences) * to_ref
        out = torch.zeros_like(fourier[:, 0])
        on_grid: dict[int, torch.Tensor] = {}  # the noise variance averaged onto each working grid
        for w in windows:
            band = to_maps(crop_modes(fourier[:, w.keep] * w.h, w.grid), w.grid)  # (N, K, g, g)
            if w.grid not in on_grid:
                on_grid[w.grid] = F.interpolate(variance, size=(w.grid, w.grid), mode="area")
            local_var = local_mean(on_grid[w.grid], w.sigma)
            weights = self._weights(band, local_var, w)  # (N, g, g, K)
            combined = torch.einsum("nhwk,nkhw->nhw", weights, band)
            out += w.h * pad_modes(torch.fft.rfft2(combined), size)
        return to_maps(out, size)[:, None, pad : pad + n, pad : pad + n]

    def _weights(self, band: torch.Tensor, local_var: torch.Tensor, w: _Window) -> torch.Tensor:
        """Per pixel, the regression weights ``(N, g, g, K)`` of f_ref on the window's differences."""
        k = band.shape[1]
        rows, cols = torch.triu_indices(k, k)
        products = local_mean(band[:, rows] * band[:, cols], w.sigma).permute(0, 2, 3, 1)
        cov = products.new_empty((*products.shape[:3], k, k))
        cov[..., rows, cols] = products
        cov[..., cols, rows] = products
        var_ref = local_var[:, self.reference][..., None, None]  # (N, g, g, 1, 1)
        var_diff = local_var[:, [self.others[j] for j in w.keep]].permute(0, 2, 3, 1)  # (N, g, g, K)
        noise = torch.diag_embed(var_diff * w.noise_diff) + var_ref * w.noise_ref
        foreground = _excess(cov, noise, 1.0 + self.threshold / w.modes**0.5)
        cross = foreground @ w.mapping - var_ref[..., 0] * w.noise_cross
        return _solve(foreground + noise, cross)


def interior_weight(npix: int, border_px: int, ramp_px: int, device="cpu") -> torch.Tensor:
    """``(npix, npix)`` float64: 0 within ``border_px`` of the edge, rising as a separable cosine
    ramp over ``ramp_px`` pixels to 1 (the ramp shortened to fit a small patch)."""
    inside = max(npix - 2 * border_px, 0)
    profile = torch.zeros(npix, dtype=torch.float64, device=device)
    profile[border_px : border_px + inside] = cosine_taper_profile(inside, min(ramp_px, inside // 2), device)
    return profile[:, None] * profile[None, :]


def _excess(cov: torch.Tensor, noise: torch.Tensor, floor: float) -> torch.Tensor:
    """The foregrounds' covariance ``(..., K, K)``: ``cov`` less ``noise`` in the directions where the
    generalised eigenvalues λ of (cov, noise) (the noise-whitened covariance's) exceed ``floor``, by
    λ − floor, and zero in the others. K ≤ 2 in closed form (these are millions of tiny matrices):
    with λ₁ ≥ λ₂ and e = max(λ − floor, 0), the result is s·cov + (e₂ − s λ₂)·noise, s = (e₁ − e₂) /
    (λ₁ − λ₂) (the projections on the two eigen-directions are (cov − λ₂ noise)/(λ₁ − λ₂) and
    (λ₁ noise − cov)/(λ₁ − λ₂))."""
    k = cov.shape[-1]
    if k == 1:
        return (cov - floor * noise).clamp_min(0.0)
    if k > 2:
        root = torch.linalg.cholesky(noise)
        half = torch.linalg.solve_triangular(root, cov, upper=False)
        values, vectors = torch.linalg.eigh(torch.linalg.solve_triangular(root, half.mT, upper=False))
        back = root @ vectors
        return back @ torch.diag_embed((values - floor).clamp_min(0.0)) @ back.mT
    c11, c12, c22 = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    n11, n12, n22 = noise[..., 0, 0], noise[..., 0, 1], noise[..., 1, 1]
    a = n11 * n22 - n12 * n12  # det(cov − λ noise) = a λ² + b λ + c
    b = -(c11 * n22 + c22 * n11 - 2.0 * c12 * n12)
    c = c11 * c22 - c12 * c12
    root = (b * b - 4.0 * a * c).clamp_min(0.0).sqrt()
    high, low = (-b + root) / (2.0 * a), (-b - root) / (2.0 * a)
    e_high, e_low = (high - floor).clamp_min(0.0), (low - floor).clamp_min(0.0)
    gap = high - low
    apart = gap > 1e-9 * high.abs().clamp_min(1e-300)
    slope = torch.where(apart, (e_high - e_low) / torch.where(apart, gap, 1.0), (high > floor).to(cov.dtype))
    return slope[..., None, None] * cov + (e_low - slope * low)[..., None, None] * noise


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrix⁻¹ rhs`` for symmetric positive definite ``matrix (..., K, K)`` and ``rhs (..., K)``;
    K ≤ 2 in closed form."""
    k = matrix.shape[-1]
    if k == 1:
        return rhs / matrix[..., 0]
    if k > 2:
        return torch.linalg.solve(matrix, rhs)
    m11, m12, m22 = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 1, 1]
    det = m11 * m22 - m12 * m12
    r1, r2 = rhs[..., 0], rhs[..., 1]
    return torch.stack([(m22 * r1 - m12 * r2) / det, (m11 * r2 - m12 * r1) / det], dim=-1)
