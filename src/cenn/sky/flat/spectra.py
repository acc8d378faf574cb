"""Flat-sky angular power spectra of patches: apodised periodograms binned in ℓ, batched in torch.

C_ℓ is in µK² sr for maps in µK; ``D_ℓ = ℓ(ℓ+1) C_ℓ / 2π`` in µK².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import gaussian_beam_window


@dataclass(frozen=True)
class Binning:
    """Multipole bins ``[edges[i], edges[i+1])``."""

    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.edges) < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bin edges must be at least two increasing values, got {self.edges}")

    @classmethod
    def from_edges(cls, edges) -> Binning:
        """Bins between consecutive ``edges`` (any increasing sequence of multipoles)."""
        return cls(tuple(float(e) for e in edges))

    @classmethod
    def linear(cls, lmin: float, lmax: float, width: float) -> Binning:
        """Bins of constant ``width`` from ``lmin`` up to at most ``lmax``."""
        return cls(tuple(float(e) for e in np.arange(lmin, lmax + 0.5 * width, width)))

    @classmethod
    def paper(cls, geometry: PatchGeometry) -> Binning:
        """The CENN paper's scheme: Δℓ = 50 up to ℓ = 1000, then Δℓ = 200 up to the largest ℓ
        the patch holds (its Nyquist multipole); the first edge is the multiple of 50 just below
        the patch's fundamental ℓ (50 for 256 pixels of 90″)."""
        lmin = 50 * math.floor(geometry.ell_fundamental / 50)
        low = [*np.arange(lmin, 1000, 50), 1000]
        high = list(np.arange(1200, geometry.ell_nyquist + 1, 200))
        return cls(tuple(float(e) for e in low + high))

    @property
    def centres(self) -> np.ndarray:
        e = np.asarray(self.edges)
        return 0.5 * (e[1:] + e[:-1])

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def index(self, ell: torch.Tensor) -> torch.Tensor:
        """The bin of every multipole in ``ell`` (int64, ``ell``'s shape), −1 below the first edge and
        ``n_bins`` from the last edge on."""
        edges = torch.tensor(self.edges, dtype=torch.float64, device=ell.device)
        return torch.bucketize(ell.to(torch.float64), edges, right=True) - 1

    def sums(self, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Per bin, the sum of ``values (..., M)`` over the modes whose bin (``index (M,)``, from
        :meth:`index`) it is; modes outside every bin are left out: ``(..., n_bins)``."""
        inside = (index >= 0) & (index < self.n_bins)
        out = values.new_zeros((*values.shape[:-1], self.n_bins))
        return out.index_add_(-1, index[inside], values[..., inside])


def cosine_taper_profile(npix: int, width: int, device="cpu", derivative: int = 0) -> torch.Tensor:
    """One axis of :func:`cosine_taper`, w(x) = (1 − cos(π x / width)) / 2 over the first ``width``
    pixels (x from the border, at pixel centres), 1 inside, mirrored at the far end; or its first or
    second ``derivative`` (0, 1 or 2) with respect to x in pixels. Shape (npix,), float64."""
    if derivative not in (0, 1, 2):
        raise ValueError(f"derivative must be 0, 1 or 2, got {derivative}")
    w = torch.full((npix,), 1.0 if derivative == 0 else 0.0, dtype=torch.float64, device=device)
    if width > 0:
        k = math.pi / width
        phase = k * (torch.arange(width, dtype=torch.float64, device=device) + 0.5)
        ramp = (0.5 * (1 - torch.cos(phase)), 0.5 * k * torch.sin(phase), 0.5 * k * k * torch.cos(phase))
        w[:width] = ramp[derivative]
        w[-width:] = ramp[derivative].flip(0) * (-1 if derivative == 1 else 1)
    return w


def cosine_taper(npix: int, width: int, device="cpu") -> torch.Tensor:
    """Separable cosine (Tukey) apodisation, 0 at the border rising to 1 over ``width`` pixels;
    shape (npix, npix), float64. It and its first derivative vanish at the border (the pure-B
    estimator of :mod:`cenn.sky.flat.eb_spectra` needs both)."""
    w = cosine_taper_profile(npix, width, device)
    return w[:, None] * w[None, :]


def _full_ell(geometry: PatchGeometry, device) -> torch.Tensor:
    k = torch.fft.fftfreq(geometry.npix, d=geometry.pixel_rad, dtype=torch.float64, device=device)
    return 2.0 * math.pi * torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


def pixel_window_function(geometry: PatchGeometry, device="cpu") -> torch.Tensor:
    """Transfer function of square top-hat pixels on the ``fft2`` grid, shape (n, n), float64:
    sinc(ℓ_x θ/2) sinc(ℓ_y θ/2) with θ the pixel side."""
    k = torch.fft.fftfreq(geometry.npix, dtype=torch.float64, device=device)  # cycles per pixel
    s = torch.sinc(k)
    return s[:, None] * s[None, :]


class SpectrumEstimator:
    """Binned flat-sky spectra of patches, with the window, binning and deconvolution set once.

    Each map's mean is removed first (``subtract_mean``; otherwise the taper leaks a bright
    patch's monopole into ℓ ≈ 100–400), then the map is multiplied by a cosine taper (default
    width n/8 pixels) and the periodogram is divided by the window's mean square, so a white
    field of pixel variance σ² gives σ² Ω_pix. With ``beam_fwhm_arcmin`` and/or
    ``pixel_window`` each mode's power is divided by the squared transfer function before
    binning, so the result estimates the sky spectrum. Spectra are C_ℓ in µK² sr for maps in µK;
    empty bins are NaN.

    Fourier transforms can be reused: :meth:`fourier` once per map, then :meth:`binned` for any
    auto or cross spectrum (and, by linearity, for differences of maps).
    """

    def __init__(
        self,
        geometry: PatchGeometry,
        binning: Binning,
        taper_width: int | None = None,
        subtract_mean: bool = True,
        beam_fwhm_arcmin: float | None = None,
        pixel_window: bool = False,
        device: torch.device | str = "cpu",
    ):
        self.geometry = geometry
        self.binning = binning
        self.subtract_mean = subtract_mean
        self.device = torch.device(device)
        width = geometry.npix // 8 if taper_width is None else taper_width
        self.taper = cosine_taper(geometry.npix, width, self.device)
        norm = geometry.pixel_area_sr / (geometry.npix**2 * torch.mean(self.taper**2))
        ell = _full_ell(geometry, self.device)
        transfer = torch.ones_like(ell)
        if beam_fwhm_arcmin is not None:
            transfer = transfer * gaussian_beam_window(ell, beam_fwhm_arcmin)
        if pixel_window:
            transfer = transfer * pixel_window_function(geometry, self.device)
        self._mode_weight = (norm / transfer**2).flatten()
        self._idx = binning.index(ell.flatten())
        counts = binning.sums(torch.ones_like(self._mode_weight), self._idx)
        self.modes_per_bin = counts
        self._counts = counts.where(counts > 0, torch.tensor(float("nan"), device=self.device))

    @property
    def ell(self) -> np.ndarray:
        """Bin centres."""
        return self.binning.centres

    def fourier(self, maps: torch.Tensor) -> torch.Tensor:
        """Tapered Fourier modes of ``maps (..., n, n)`` (complex128, same shape)."""
        m = maps.to(self.device, torch.float64)
        if self.subtract_mean:
            m = m - m.mean(dim=(-2, -1), keepdim=True)
        return torch.fft.fft2(m * self.taper)

    def binned(
        self, fa: torch.Tensor, fb: torch.Tensor | None = None, return_std: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Binned C_ℓ ``(..., n_bins)`` of Fourier modes from :meth:`fourier` (cross with ``fb``).

        ``return_std`` also returns the standard deviation of the mode powers within each bin
        (the scatter of a single map's spectrum).
        """
        p = fa.abs() ** 2 if fb is None else (fa * fb.conj()).real
        flat = p.flatten(-2) * self._mode_weight
        mean = self.binning.sums(flat, self._idx) / self._counts
        if not return_std:
            return mean
        var = (self.binning.sums(flat**2, self._idx) / self._counts - mean**2).clamp_min(0.0)
        return mean, var.sqrt()

    def __call__(self, maps: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        """Binned auto (or cross, with ``other``) C_ℓ of ``maps (..., n, n)``."""
        fa = self.fourier(maps)
        return self.binned(fa, None if other is None else self.fourier(other))


def power_spectrum(
    maps: torch.Tensor,
    geometry: PatchGeometry,
    binning: Binning,
    other: torch.Tensor | None = None,
    taper_width: int | None = None,
    subtract_mean: bool = True,
) -> torch.Tensor:
    """Binned auto (or cross, with ``other``) spectrum C_ℓ of ``maps (..., n, n)``, float64
    ``(..., n_bins)``: :class:`SpectrumEstimator` in one call. :func:`expected_spectrum` is the
    exact expectation without mean removal."""
    estimator = SpectrumEstimator(geometry, binning, taper_width, subtract_mean, device=maps.device)
    return estimator(maps, other)


def cl_to_dl(ell: np.ndarray | torch.Tensor, cl):
    """D_ℓ = ℓ(ℓ+1) C_ℓ / 2π."""
    if isinstance(cl, torch.Tensor):
        ell = torch.as_tensor(ell, dtype=cl.dtype, device=cl.device)
    return ell * (ell + 1) * cl / (2 * math.pi)


def binned_model(
    ell_table: np.ndarray, cl_table: np.ndarray, geometry: PatchGeometry, binning: Binning
) -> np.ndarray:
    """A model C_ℓ averaged over the Fourier modes of each bin, as :func:`power_spectrum` does;
    for comparing a measured spectrum with its model."""
    ell = _full_ell(geometry, "cpu").flatten().numpy()
    cl = np.interp(ell, ell_table, cl_table)
    idx = np.searchsorted(np.asarray(binning.edges), ell, side="right") - 1
    valid = (idx >= 0) & (idx < binning.n_bins)
    sums = np.bincount(idx[valid], weights=cl[valid], minlength=binning.n_bins)
    counts = np.bincount(idx[valid], minlength=binning.n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def expected_spectrum(
    ell_table: np.ndarray,
    cl_table: np.ndarray,
    geometry: PatchGeometry,
    binning: Binning,
    generation: PatchGeometry | None = None,
    taper_width: int | None = None,
) -> np.ndarray:
    """Exact expectation of :func:`power_spectrum` for a Gaussian field of spectrum C_ℓ.

    The field is periodic on the ``generation`` grid (the simulator's padded grid; default a
    grid twice the patch, close to an infinite plane) and observed through the same taper, so the
    window's mode coupling is included. Returns binned C_ℓ, float64 (n_bins,).
    """
    gen = generation or geometry.padded(geometry.npix // 2)
    n, ng = geometry.npix, gen.npix
    cl_grid = np.interp(_full_ell(gen, "cpu").numpy(), ell_table, cl_table, left=0.0, right=0.0)
    cl_grid[0, 0] = 0.0
    xi = np.fft.ifft2(cl_grid / gen.pixel_area_sr).real
    width = n // 8 if taper_width is None else taper_width
    w = cosine_taper(n, width).numpy()
    auto = np.fft.ifft2(np.abs(np.fft.fft2(w, s=(2 * n, 2 * n))) ** 2).real
    lag = np.arange(2 * n)
    lag = np.where(lag < n, lag, lag - 2 * n) % ng
    pseudo = np.fft.fft2(auto * xi[np.ix_(lag, lag)]).real[::2, ::2]
    pseudo *= geometry.pixel_area_sr / (n**2 * np.mean(w**2))
    ell = _full_ell(geometry, "cpu").flatten().numpy()
    idx = np.searchsorted(np.asarray(binning.edges), ell, side="right") - 1
    valid = (idx >= 0) & (idx < binning.n_bins)
    sums = np.bincount(idx[valid], weights=pseudo.flatten()[valid], minlength=binning.n_bins)
    counts = np.bincount(idx[valid], minlength=binning.n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts
