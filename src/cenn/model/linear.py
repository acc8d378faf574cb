"""Linear operations on multi-band patches in µK_CMB, in torch: beam matching, CMB-free band
differences and the internal linear combination (ILC) with its weights.

In K_CMB the CMB is the same map in every band, seen through each band's beam. Bringing the bands
to one beam therefore gives the CMB unit response in all of them: any combination whose weights
sum to one keeps it, and any difference of beam-matched bands removes it exactly. The classical
baselines (:mod:`cenn.baselines`) and the hybrid networks (:mod:`cenn.model.hybrid`) share these.

Shapes: maps ``(N, C, n, n)``; ``rfft2`` modes ``(N, C, n, n // 2 + 1)``; ``ell`` the multipole
of every mode ``(n, n // 2 + 1)`` (:meth:`cenn.sky.geometry.PatchGeometry.ell`). Beams are
Gaussian FWHM in arcmin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cenn.sky.instrument import FWHM_TO_SIGMA, gaussian_beam_window

#: Kernel widths (σ) of beam smoothing beyond which a periodic convolution on a patch equals the true
#: one: the Gaussian's weight there is exp(−5²/2) ≈ 4e-6.
KERNEL_REACH_SIGMAS = 5.0


def beam_ratios(ell: torch.Tensor, beams_arcmin: Sequence[float], target_arcmin: float,
                max_gain: float) -> torch.Tensor:
    """Per band, B_target(ℓ)/B_c(ℓ), the factor that brings it to the target beam, capped at
    ``max_gain`` (deconvolving a wider beam amplifies its noise without bound): ``(C, *ell.shape)``."""
    target = gaussian_beam_window(ell, target_arcmin)
    ratios = [target / gaussian_beam_window(ell, fwhm) for fwhm in beams_arcmin]
    return torch.stack(ratios).clamp(max=max_gain)


def to_maps(fourier: torch.Tensor, npix: int) -> torch.Tensor:
    """Real maps ``(..., npix, npix)`` from ``rfft2`` modes."""
    return torch.fft.irfft2(fourier, s=(npix, npix))


def ilc_weights(cov: torch.Tensor, loading: float = 1e-10) -> torch.Tensor:
    """ILC weights w = C⁻¹a / (aᵀC⁻¹a) with a = 1 (the CMB in K_CMB units) from band-band
    covariances ``(..., C, C)``; returns ``(..., C)`` summing to 1. ``loading`` adds that fraction
    of the mean variance to the diagonal so a singular covariance (e.g. noise-free CMB alone) still
    gives finite weights."""
    c = cov.shape[-1]
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(cov.dtype).tiny)
    eye = torch.eye(c, dtype=cov.dtype, device=cov.device)
    ones = torch.ones((*cov.shape[:-1], 1), dtype=cov.dtype, device=cov.device)
    x = torch.linalg.solve(cov + loading * trace[..., None, None] * eye, ones)[..., 0]
    return x / x.sum(-1, keepdim=True)


def bins_by_width(ell: torch.Tensor, width: float) -> torch.Tensor:
    """Bin index of every mode for multipole bins ``[k·width, (k+1)·width)``: ``(M,)`` int64."""
    return (ell / width).long().flatten()


def bins_by_count(ell: torch.Tensor, count: int) -> torch.Tensor:
    """Bin index of every mode for bins of ``count`` consecutive modes in ℓ order (the last bin may
    hold up to twice as many): ``(M,)`` int64. Every ILC weight is then estimated from as many modes
    whatever the patch size, so the ILC bias is the same on small training crops and large patches."""
    flat = ell.flatten()
    if flat.numel() < count:
        raise ValueError(f"a patch of {flat.numel()} Fourier modes cannot fill a bin of {count} modes")
    rank = torch.empty_like(flat, dtype=torch.int64)
    rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel(), device=flat.device)
    return (rank // count).clamp(max=flat.numel() // count - 1)


def harmonic_ilc(fourier: torch.Tensor, bins: torch.Tensor, pooled: bool = False) -> torch.Tensor:
    """Harmonic ILC of beam-matched modes ``fourier (N, C, n, m)``: one set of weights per bin
    (``bins``, the bin of every mode, ``(n·m,)``, from :func:`bins_by_width` or
    :func:`bins_by_count`) from each patch's band-band covariance (or, ``pooled``, from all patches
    together). Returns the combined modes ``(N, n, m)``."""
    n_bins = int(bins.max()) + 1
    modes = fourier.flatten(2)  # (N, C, M)
    products = (modes[:, :, None] * modes[:, None].conj()).real  # (N, C, C, M)
    cov = torch.zeros((*products.shape[:3], n_bins), dtype=products.dtype, device=products.device)
    cov.index_add_(-1, bins, products)
    cov = cov.permute(0, 3, 1, 2)  # (N, bins, C, C)
    if pooled:
        cov = cov.sum(0, keepdim=True)
    weights = ilc_weights(cov)[:, bins]  # (N or 1, M, C)
    out = torch.einsum("nmc,ncm->nm", weights.to(modes.dtype), modes)
    return out.reshape(fourier.shape[0], *fourier.shape[-2:])


def cmb_free_differences(inputs: torch.Tensor, ell: torch.Tensor, beams_arcmin: Sequence[float],
                         reference: int) -> torch.Tensor:
    """Differences ``x_j − x_ref`` of every band ``j ≠ reference`` with the reference band, both
    smoothed to the wider of their two beams (no deconvolution, so no noise is amplified):
    ``(N, C − 1, n, n)`` µK_CMB, bands in input order without the reference.

    A map that is the same in every band in K_CMB, convolved with each band's beam, cancels exactly
    (to rounding) when the beams were applied as periodic convolutions on the patch. For patches
    cut from a beam-convolved sky (simulations on a padded grid, real data) the smoothing wraps
    round the patch, so the cancellation is exact only beyond :func:`smoothing_reach_px` of the
    border; :func:`mirror_border` makes the whole map CMB-free.
    """
    n = inputs.shape[-1]
    fourier = torch.fft.rfft2(inputs.to(torch.float64))
    windows = [gaussian_beam_window(ell, fwhm) for fwhm in beams_arcmin]
    ref_beam = beams_arcmin[reference]
    out = []
    for j, fwhm in enumerate(beams_arcmin):
        if j == reference:
            continue
        common = gaussian_beam_window(ell, max(fwhm, ref_beam))
        ref_part = fourier[:, reference] * (common / windows[reference])
        out.append(fourier[:, j] * (common / windows[j]) - ref_part)
    return to_maps(torch.stack(out, dim=1), n)


def smoothing_reach_px(beams_arcmin: Sequence[float], reference: int, pixel_arcsec: float) -> int:
    """Pixels from the border within which :func:`cmb_free_differences` of a patch cut from a larger
    sky can hold CMB: :data:`KERNEL_REACH_SIGMAS` σ of the widest kernel it smooths with
    (FWHM √(max(θ_j, θ_ref)² − θ²) for each band θ of each pair), rounded up."""
    ref = beams_arcmin[reference]
    widest = max(math.sqrt(abs(fwhm**2 - ref**2)) for fwhm in beams_arcmin)
    return math.ceil(KERNEL_REACH_SIGMAS * widest * FWHM_TO_SIGMA * 60.0 / pixel_arcsec)


def mirror_border(maps: torch.Tensor, width: int) -> torch.Tensor:
    """``maps (..., n, n)`` with a border strip ``width`` pixels wide replaced by the mirror image
    of the pixels inside it (reflection about the strip's inner edge): whatever held only in the
    strip is gone, and the map stays continuous."""
    if width == 0:
        return maps
    n = maps.shape[-1]
    if not 0 < width < (n - 2 * width):
        raise ValueError(f"a border of {width} pixels leaves too little of a {n}-pixel patch to mirror; "
                         f"patches need more than {3 * width} pixels on a side")
    inner = maps[..., width:-width, width:-width]
    flat = inner.reshape(-1, 1, *inner.shape[-2:])
    return F.pad(flat, (width,) * 4, mode="reflect").reshape(*maps.shape)
