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

from collections.abc import Sequence

import torch

from cenn.sky.instrument import gaussian_beam_window


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
    (to rounding) when the beams were applied as periodic convolutions on the patch; for patches
    cut from a beam-convolved sky the cancellation is exact away from the border, where the
    smoothing kernel (a few pixels) reaches past the patch.
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
