"""Linear operations on multi-band patches in µK_CMB, in torch: beam matching, CMB-free band
differences and the internal linear combination (ILC) with its weights.

In K_CMB the CMB is the same map in every band, seen through each band's beam. Bringing the bands
to one beam therefore gives the CMB unit response in all of them: any combination whose weights
sum to one keeps it, and any difference of beam-matched bands removes it exactly. The classical
baselines (:mod:`cenn.baselines`) and the hybrid networks (:mod:`cenn.model.hybrid`) share these.

Shapes: maps ``(N, C, n, n)``; ``rfft2`` modes ``(N, C, n, n // 2 + 1)``; ``ell`` the multipole
of every mode ``(n, n // 2 + 1)`` (:meth:`cenn.sky.flat.geometry.PatchGeometry.ell`). Beams are
Gaussian FWHM in arcmin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cenn.model.needlets import gaussian_smooth
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import FWHM_TO_SIGMA, gaussian_beam_window

#: Kernel widths (σ) of beam smoothing beyond which a periodic convolution on a patch equals the true
#: one: the Gaussian's weight there is exp(−5²/2) ≈ 4e-6.
KERNEL_REACH_SIGMAS = 5.0
#: Pixels of mirror image around a patch before its bands are beam-matched (:func:`cmb_free_maps`).
MIRROR_PAD_PX = 32
#: The narrowest border strip refilled. Beyond the Gaussian's reach a kernel narrower than a pixel
#: (353 vs 217 GHz) still leaks the CMB into the difference (refilling 1 pixel: at most 3.7 × 10⁻³
#: of the CMB's RMS, 2 × 10⁻⁴ in RMS over a 64² plane patch, 1 × 10⁻⁴ over 256²; refilling 2: 1.5 ×
#: 10⁻³ and 1 × 10⁻⁴), which the CMB-free needlet ILC's weight on that difference (~0.1) brings to
#: 2-4 × 10⁻⁵ of the CMB in its output. Every pixel refilled in the plane costs accuracy: that ILC's
#: mean residual RMS on 24 plane patches (seed 9401) fell from 260 to 237 µK from 2 pixels to 1.
MIN_STRIP_PX = 1
#: Gaussian width (pixels) of the interior neighbourhood whose fit refills a wide strip
#: (:func:`_local_least_squares_fit`): in the plane, 4 pixels left 216 µK of the CMB-free needlet
#: ILC's residual on 192² patches, 8 pixels 225, one fit per patch 255 (with the true differences
#: in the strip: 150).
LOCAL_FIT_SIGMA_PX = 4.0


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
    (``bins``, the bin of every mode, ``(n·m,)``, from :meth:`cenn.sky.flat.spectra.Binning.index` or
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


def common_beam_windows(ell: torch.Tensor, beams_arcmin: Sequence[float], reference: int) -> torch.Tensor:
    """B_common(ℓ), dimensionless, of each band ``j ≠ reference`` paired with the reference band:
    the Gaussian window of the wider of their two beams (FWHM in arcmin), to which both are smoothed
    to remove the CMB from their difference. ``(C − 1, *ell.shape)``, bands in input order without
    the reference."""
    ref_beam = beams_arcmin[reference]
    return torch.stack([gaussian_beam_window(ell, max(fwhm, ref_beam))
                        for j, fwhm in enumerate(beams_arcmin) if j != reference])


def cmb_free_differences(inputs: torch.Tensor, ell: torch.Tensor, beams_arcmin: Sequence[float],
                         reference: int) -> torch.Tensor:
    """Differences ``x_j − x_ref`` of every band ``j ≠ reference`` with the reference band, both
    smoothed to the wider of their two beams (:func:`common_beam_windows`; no deconvolution, so no
    noise is amplified): ``(N, C − 1, n, n)`` µK_CMB, bands in input order without the reference.

    A map that is the same in every band in K_CMB, convolved with each band's beam, cancels exactly
    (to rounding) when the beams were applied as periodic convolutions on the patch. For patches
    cut from a beam-convolved sky (simulations on a padded grid, real data) the smoothing wraps
    round the patch, so the cancellation is exact only beyond :func:`smoothing_reach_px` of the
    border; :func:`mirror_border` makes the whole map CMB-free.
    """
    fourier = torch.fft.rfft2(inputs.to(torch.float64))
    windows = torch.stack([gaussian_beam_window(ell, fwhm) for fwhm in beams_arcmin])
    others = [j for j in range(len(beams_arcmin)) if j != reference]
    common = common_beam_windows(ell, beams_arcmin, reference)
    ref_part = fourier[:, reference, None] * (common / windows[reference])
    return to_maps(fourier[:, others] * (common / windows[others]) - ref_part, inputs.shape[-1])


def pair_reach_px(beams_arcmin: Sequence[float], reference: int, pixel_arcsec: float) -> list[int]:
    """For every difference of :func:`cmb_free_differences` (bands in order, the reference left out),
    the pixels from the border within which it can hold CMB for a patch cut from a larger sky:
    :data:`KERNEL_REACH_SIGMAS` σ of the kernel that brings the narrower beam of the pair to the
    wider (FWHM √(|θ_j² − θ_ref²|)), rounded up."""
    ref = beams_arcmin[reference]
    sigma_px = [math.sqrt(abs(fwhm**2 - ref**2)) * FWHM_TO_SIGMA * 60.0 / pixel_arcsec
                for j, fwhm in enumerate(beams_arcmin) if j != reference]
    return [math.ceil(KERNEL_REACH_SIGMAS * s) for s in sigma_px]


def smoothing_reach_px(beams_arcmin: Sequence[float], reference: int, pixel_arcsec: float) -> int:
    """The widest of :func:`pair_reach_px`: pixels from the border within which any difference can
    hold CMB."""
    return max(pair_reach_px(beams_arcmin, reference, pixel_arcsec), default=0)


def cmb_free_border(differences: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """``differences (N, K, n, n)`` with each one's border strip (``widths[k]`` pixels, where it can
    hold CMB) refilled from CMB-free pixels only, so that the maps hold no CMB anywhere.

    The difference with the narrowest strip is continued there by point reflection
    (:func:`continue_border`: gradients go on). Each wider one keeps, in its strip, its local
    least-squares fit on the differences already refilled (:func:`_local_least_squares_fit`, fitted
    on its own interior nearest each pixel), which are exact nearer the border, plus the mirror
    image of what that fit leaves: bright foregrounds, whose gradients a mirror would fold,
    continue from the differences that still see them."""
    order = sorted(range(differences.shape[1]), key=lambda k: widths[k])
    out = torch.empty_like(differences)
    done: list[int] = []
    for k in order:
        w = int(widths[k])
        if not done:
            out[:, k] = continue_border(differences[:, k], w)
        else:
            predictors = out[:, done]
            fit = _local_least_squares_fit(differences[:, k], predictors, w)
            out[:, k] = fit + mirror_border(differences[:, k] - fit, w)
        done.append(k)
    return out


def _local_least_squares_fit(target: torch.Tensor, predictors: torch.Tensor, border: int) -> torch.Tensor:
    """Per pixel, the least-squares combination (with a constant) of ``predictors (N, P, n, n)`` that
    best fits ``target (N, n, n)`` over the pixels more than ``border`` from the edge, each weighted by
    a Gaussian of :data:`LOCAL_FIT_SIGMA_PX` around the pixel (a normalised convolution: in the strip,
    the fit of the nearest interior pixels): ``(N, n, n)``. Local, because the ratio of the
    differences follows the foregrounds' mix, which changes across a plane patch."""
    n = target.shape[-1]
    mask = torch.zeros_like(target[:, None])
    mask[..., border : n - border, border : n - border] = 1.0
    weight = gaussian_smooth(mask, LOCAL_FIT_SIGMA_PX).clamp_min(torch.finfo(target.dtype).tiny)

    def mean(maps: torch.Tensor) -> torch.Tensor:
        return gaussian_smooth(mask * maps, LOCAL_FIT_SIGMA_PX) / weight

    x_mean, y_mean = mean(predictors), mean(target[:, None])
    p = predictors.shape[1]
    rows, cols = torch.triu_indices(p, p)
    products = mean(predictors[:, rows] * predictors[:, cols]) - x_mean[:, rows] * x_mean[:, cols]
    gram = products.new_empty((*target.shape, p, p))
    gram[..., rows, cols] = products.permute(0, 2, 3, 1)
    gram[..., cols, rows] = products.permute(0, 2, 3, 1)
    cross = (mean(predictors * target[:, None]) - x_mean * y_mean).permute(0, 2, 3, 1)[..., None]
    scale = torch.diagonal(gram, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-300)[..., None, None]
    eye = torch.eye(p, dtype=gram.dtype, device=gram.device)
    coef = torch.linalg.solve(gram + 1e-12 * scale * eye, cross)[..., 0].permute(0, 3, 1, 2)  # (N, P, n, n)
    return (coef * (predictors - x_mean)).sum(1) + y_mean[:, 0]


def cmb_free_maps(inputs: torch.Tensor, beams_arcmin: Sequence[float], reference: int,
                  pixel_arcsec: float) -> torch.Tensor:
    """CMB-free differences of ``inputs (N, C, n, n)`` for patches cut from a larger sky: ``(N, C − 1,
    n, n)`` float64 µK_CMB, from :func:`cmb_free_differences` of the patch extended by its mirror
    image (:data:`MIRROR_PAD_PX` pixels, so that the beam matching does not ring on the patch's
    periodic discontinuity) and cut back, with each difference's border strip (its kernel's reach,
    at least :data:`MIN_STRIP_PX`), which the sky beyond the patch still reaches, refilled from
    CMB-free pixels (:func:`cmb_free_border`)."""
    n = inputs.shape[-1]
    pad = min(MIRROR_PAD_PX, n - 1)
    padded = F.pad(inputs.to(torch.float64), (pad,) * 4, mode="reflect")
    ell = PatchGeometry(n + 2 * pad, pixel_arcsec).ell(inputs.device)
    inside = slice(pad, n + pad)
    differences = cmb_free_differences(padded, ell, beams_arcmin, reference)[..., inside, inside]
    widths = [max(w, MIN_STRIP_PX) for w in pair_reach_px(beams_arcmin, reference, pixel_arcsec)]
    return cmb_free_border(differences, widths)


def continue_border(maps: torch.Tensor, width: int) -> torch.Tensor:
    """``maps (..., n, n)`` with a border strip ``width`` pixels wide replaced by the point reflection
    of the pixels inside it through the strip's inner edge (``2 m_edge − m_mirror``, rows then
    columns): a gradient continues unchanged, and whatever held only in the strip is gone."""
    if width == 0:
        return maps
    _check_border(maps.shape[-1], width)
    inner = maps[..., width:-width, width:-width]
    return _point_reflect(_point_reflect(inner, width, -1), width, -2)


def _point_reflect(maps: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``maps`` extended by ``width`` on both ends of ``dim``, each new value ``2 m_edge − m_mirror``."""
    n = maps.shape[dim]
    first, last = maps.narrow(dim, 0, 1), maps.narrow(dim, n - 1, 1)
    before = 2 * first - maps.narrow(dim, 1, width).flip(dim)
    after = 2 * last - maps.narrow(dim, n - 1 - width, width).flip(dim)
    return torch.cat([before, maps, after], dim)


def _check_border(n: int, width: int) -> None:
    if not 0 < width < (n - 2 * width):
        raise ValueError(f"a border of {width} pixels leaves too little of a {n}-pixel patch to refill; "
                         f"patches need more than {3 * width} pixels on a side")


def mirror_border(maps: torch.Tensor, width: int) -> torch.Tensor:
    """``maps (..., n, n)`` with a border strip ``width`` pixels wide replaced by the mirror image
    of the pixels inside it (reflection about the strip's inner edge): whatever held only in the
    strip is gone, and the map stays continuous."""
    if width == 0:
        return maps
    _check_border(maps.shape[-1], width)
    inner = maps[..., width:-width, width:-width]
    flat = inner.reshape(-1, 1, *inner.shape[-2:])
    return F.pad(flat, (width,) * 4, mode="reflect").reshape(*maps.shape)
