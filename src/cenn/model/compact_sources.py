"""Compact sources found in the CMB-free band differences and predicted in the reference band.

The needlet ILC of :mod:`cenn.model.difference_ilc` reads every foreground as dust and CO. A radio
source's spectrum falls with frequency where dust's rises: at the radio counts' mean indices a source
has 1.56 and 1.29 µK_CMB at 143 and 353 GHz per µK_CMB at 217 GHz, which the dust-and-CO model
reads as −0.52 of its 217 GHz brightness, so the start leaves 1.5 × every such source. Here compact
sources are fitted with a radio and a dust SED before the needlet ILC, and the reference band's
share of them is predicted from those SEDs.

Model, near a source at x₀ with amplitudes A = (A_radio, A_dust) (µK_CMB pixel² in the reference
band, before its beam): ``D_j(k) = Σ_c (a_jc − 1) B_j(k) A_c e^{−ik·x₀} + rest`` for the
difference of band j with the reference band at their common beam B_j. With P(k) the differences'
cross-spectrum (binned in ℓ from the patch itself) and T_jc = (a_jc − 1) B_j the generalised
least-squares amplitudes at every position are ``Â(x) = Φ⁻¹ b(x)``, ``b = Σ_k Tᵀ P⁻¹ D e^{ik·x}``,
``Φ = Σ_k Tᵀ P⁻¹ T`` and ``Cov(Â) = Φ⁻¹`` (modes below ``min_ell``, where diffuse emission
dominates, left out).

Sources are found as in CLEAN, in up to ``passes`` rounds, each on the differences less the
sources found before:

1. the local maxima (within ``peak_px``) of the detection statistic ÂᵀΦÂ, the likelihood gain of a
   source of either SED (2 on average where there is only noise, divided by its local mean where
   that is larger, so that bright diffuse emission does not count), above ``threshold``², more
   than :data:`EDGE_PX` from the patch edge, with a radio amplitude of at least half the threshold
   there (against the larger of its error and its local scatter);
2. each moved to the sub-pixel maximum of the likelihood gain (Newton steps on its exact
   derivatives) and fitted there;
3. kept when its radio amplitude passes the threshold and explains at least ``min_share`` of every
   difference at its peak beyond 3 σ of noise: in the plane a dust core ten times brighter than the
   fitted radio part, a little off the point-source shape, would otherwise pass;
4. fitted again as a radio source alone with its own spectral indices: radio sources' indices
   scatter (σ = 0.36 over 143–217 GHz), which moves a source's 143 GHz difference by ±40 % and
   would bend its 217 GHz amplitude as much. With K indices and C − 1 differences the data alone
   do not fix them (K + 1 unknowns), so the indices' offsets δα from the mean have their Gaussian
   prior (``radio.toml``'s covariance): Gauss–Newton on ``χ² = (d − (a(δα) − 1) S)ᵀ M (d − …) +
   δαᵀ Σ⁻¹ δα`` for the amplitude S and δα, with ``a_j(δα) = a_j exp(s_j · δα)``, d the
   source's amplitudes in the differences and M their inverse covariance. Its 217 GHz part is S at
   the 217 GHz beam.

Sources of the dust's or CO's SEDs (infrared galaxies, dust and CO knots, tSZ clusters) fit no
significant radio amplitude and are left to the needlet ILC. Everything is a function of the CMB-free
differences, so the response to the CMB stays exactly 1. Q and U maps go through the same fit
(``dnilc`` and ``sp-nilc-unet`` treat them as temperature maps); only sources of positive radio
amplitude are fitted, so a polarized source of negative Q or U is left to the needlet ILC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cenn.model.linear import MIRROR_PAD_PX, bins_by_count, common_beam_windows, to_maps
from cenn.model.needlets import half_plane_counts, local_mean
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import gaussian_beam_window

#: Fourier modes per bin of the differences' cross-spectrum.
BIN_MODES = 400
#: Pixels at the patch edge where no source is sought: there the mirror image the filter sees
#: doubles a noise peak's footprint.
EDGE_PX = 4
#: The fraction of the threshold a peak's radio significance at its pixel needs to be fitted.
CANDIDATE_FRACTION = 0.5
#: Gauss–Newton steps of a radio source's amplitude and spectral indices.
INDEX_STEPS = 5
#: Relative loading of the cross-spectrum's diagonal (keeps it invertible where a pair is noiseless).
LOADING = 1e-9


@dataclass
class _Grid:
    """The Fourier grid of ``m``-pixel padded patches, ``h = m // 2 + 1`` columns."""

    beams: torch.Tensor  # (m, h, C − 1): each difference's common beam B_j
    templates: torch.Tensor  # (m, h, C − 1): the fit's templates per unit SED, B_j where ℓ ≥ min_ell, else 0
    beam_ref: torch.Tensor  # (m, h): the reference band's beam
    twice: torch.Tensor  # (m, h): the half-plane counted as the full plane
    bins: torch.Tensor  # (m·h,): the cross-spectrum's bin of every mode
    ky: torch.Tensor  # (m, 1): cycles per pixel
    kx: torch.Tensor  # (1, h)
    peak_values: torch.Tensor  # (C − 1,): a unit source's peak in each difference


class CompactSources:
    """Compact sources in the band differences of one instrument; see the module docstring.

    Args:
        beams_arcmin: every band's beam FWHM.
        pixel_arcsec: pixel side.
        reference: index of the band whose sources are predicted.
        seds: ``(C, 2 + K)``: a radio source's SED at the mean indices and dust's, per µK_CMB in
            the reference band, then ln S_j − ln S_ref per unit of each of the radio source's K
            spectral indices (:func:`cenn.sky.seds.compact_source_seds`).
        index_covariance: ``(K, K)`` the radio indices' covariance.
        threshold: significance of the radio amplitude a source needs.
        passes: rounds of finding, fitting and subtracting.
        min_ell: the smallest multipole the fit uses.
        scatter_sigma_px: Gaussian σ (pixels) of the domain the radio amplitude's scatter is
            measured in.
        peak_px: side of the square within which a source is the brightest (pixels, odd).
        min_share: the smallest share of every difference at a source's peak that its radio part
            must explain: the fit holds for point sources only, and in the plane a dust core ten
            times brighter than the source, a little off the point-source shape, fits a large radio
            part.
    """

    def __init__(self, beams_arcmin: Sequence[float], pixel_arcsec: float, reference: int,
                 seds: Sequence[Sequence[float]], index_covariance: Sequence[Sequence[float]],
                 threshold: float = 5.0, passes: int = 3, min_ell: float = 300.0,
                 scatter_sigma_px: float = 16.0, peak_px: int = 7, min_share: float = 0.1):
        self.beams = [float(b) for b in beams_arcmin]
        c = len(self.beams)
        # on the CPU even inside a meta-device context (save_weights checks a card by building the
        # model there), where the checks below could not read a value
        seds = torch.as_tensor(seds, dtype=torch.float64, device="cpu")
        covariance = torch.as_tensor(index_covariance, dtype=torch.float64, device="cpu")
        k = seds.shape[-1] - 2
        if seds.ndim != 2 or seds.shape[0] != c or k < 1 or covariance.shape != (k, k):
            raise ValueError(f"{c} bands need a ({c}, 2 + K) table of the radio and dust SEDs and the radio "
                             f"SED's change per index, and a (K, K) index covariance; got "
                             f"{tuple(seds.shape)} and {tuple(covariance.shape)}")
        if not (torch.allclose(seds[reference, :2], torch.ones(2, dtype=torch.float64, device="cpu"))
                and bool((seds[reference, 2:] == 0).all())):
            raise ValueError(f"the compact-source SEDs must be 1 in the reference band and its index "
                             f"changes 0, got {seds[reference].tolist()}")
        if threshold <= 0 or passes < 1 or peak_px < 1 or peak_px % 2 == 0:
            raise ValueError("threshold must be > 0, passes >= 1 and peak_px a positive odd number")
        others = [j for j in range(c) if j != reference]
        self.relative = seds[others, :2] - 1.0  # (C − 1, 2): a_jc − 1
        self.radio, self.shifts = seds[others, 0], seds[others, 2:]  # (C − 1,), (C − 1, K)
        self.prior = torch.linalg.inv(covariance)  # Σ⁻¹ of the index offsets
        self.reference, self.pixel_arcsec = int(reference), float(pixel_arcsec)
        self.threshold, self.passes, self.min_ell = float(threshold), int(passes), float(min_ell)
        self.scatter_sigma_px, self.peak_px = float(scatter_sigma_px), int(peak_px)
        self.min_share = float(min_share)
        self._grids: dict[tuple[int, str], _Grid] = {}

    def _grid(self, npix: int, device: torch.device) -> _Grid:
        """The Fourier grid of ``npix``-pixel padded patches on ``device`` (computed once)."""
        key = (int(npix), str(device))
        if key not in self._grids:
            ell = PatchGeometry(npix, self.pixel_arcsec).ell(device)
            common = common_beam_windows(ell, self.beams, self.reference)  # (C − 1, m, h)
            twice = half_plane_counts(ell)
            beams = common.permute(1, 2, 0)
            self._grids[key] = _Grid(
                beams=beams, templates=beams * (ell >= self.min_ell).to(beams.dtype)[..., None],
                beam_ref=gaussian_beam_window(ell, self.beams[self.reference]), twice=twice,
                bins=bins_by_count(ell, BIN_MODES),
                ky=torch.fft.fftfreq(npix, device=device, dtype=torch.float64)[:, None],
                kx=torch.fft.rfftfreq(npix, device=device, dtype=torch.float64)[None, :],
                peak_values=(twice * common).sum((-2, -1)) / npix**2)
        return self._grids[key]

    def fit(self, differences: torch.Tensor, noise_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The compact sources of CMB-free ``differences (N, C − 1, n, n)`` µK_CMB, given the bands'
        noise variance ``noise_var (N, C, n, n)`` µK²: their part of the differences ``(N, C − 1, n,
        n)`` and of the reference band at its beam ``(N, 1, n, n)``, float64 µK_CMB."""
        differences = differences.to(torch.float64)
        others = [j for j in range(noise_var.shape[1]) if j != self.reference]
        noise_var = noise_var.to(torch.float64)
        # an upper bound on each difference's noise σ per pixel (the smoothing only lowers it)
        noise = (noise_var[:, others] + noise_var[:, self.reference : self.reference + 1]).sqrt()
        n = differences.shape[-1]
        pad = min(MIRROR_PAD_PX, n - 1)
        grid = self._grid(n + 2 * pad, differences.device)
        found_maps = differences.new_zeros((differences.shape[0], differences.shape[1] + 1, n, n))
        for _ in range(self.passes):
            padded = F.pad(differences - found_maps[:, :-1], (pad,) * 4, mode="reflect")
            fourier = torch.fft.rfft2(padded).permute(0, 2, 3, 1)  # (N, m, h, C − 1)
            inverse = _inverse_spectrum(fourier, grid.twice, grid.bins)  # (N, m, h, C − 1, C − 1)
            templates = grid.templates
            # per difference: B_j (P⁻¹ D)_j, and Σ_k B_j P⁻¹_jl B_l
            channels = templates * (inverse.to(fourier.dtype) @ fourier[..., None])[..., 0]
            metric = (grid.twice[..., None, None] * templates[..., :, None] * inverse
                      * templates[..., None, :]).sum((1, 2))
            found = self._find(padded, noise, channels, metric, grid, pad, n)
            if found is None:
                break
            found_maps = found_maps + self._maps(*found, grid, differences.shape[0], pad, n)
        return found_maps[:, :-1], found_maps[:, -1:]

    def _maps(self, patch: torch.Tensor, amplitude: torch.Tensor, index: torch.Tensor, phases: torch.Tensor,
              grid: _Grid, batch: int, pad: int, n: int) -> torch.Tensor:
        """The radio sources ``(S,)`` of patches ``patch`` with 217 GHz ``amplitude (S,)``, index offsets
        ``index (S, K)`` and phase factors ``(S, m, h)`` in the differences and the reference band,
        ``(batch, C, n, n)`` µK_CMB."""
        size = phases.shape[1]
        relative = self._radio_sed(index) - 1.0  # (S, C − 1)
        per_pair = phases[..., None] * (relative * amplitude[:, None])[:, None, None, :] * grid.beams
        in_reference = (phases * amplitude[:, None, None] * grid.beam_ref)[..., None]
        modes = phases.new_zeros((batch, *phases.shape[1:], per_pair.shape[-1] + 1))
        modes.index_add_(0, patch, torch.cat([per_pair, in_reference], dim=-1))
        return to_maps(modes.permute(0, 3, 1, 2), size)[..., pad : pad + n, pad : pad + n]

    def _radio_sed(self, index: torch.Tensor) -> torch.Tensor:
        """``(S, C − 1)``: the radio SED in the other bands at index offsets ``index (S, K)``."""
        return self.radio.to(index.device) * torch.exp(index @ self.shifts.T.to(index.device))

    def _find(self, padded: torch.Tensor, noise: torch.Tensor, channels: torch.Tensor, metric: torch.Tensor,
              grid: _Grid, pad: int,
              n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The radio sources of one pass in the padded differences ``(N, C − 1, m, m)`` with their
        noise σ ``(N, C − 1, n, n)`` from the filtered modes B_j (P⁻¹ D)_j ``(N, m, h, C − 1)`` and
        Σ_k B P⁻¹ B ``(N, C − 1, C − 1)``: each one's patch index ``(S,)``, 217 GHz amplitude ``(S,)``
        (µK_CMB pixel²), index offsets ``(S, K)`` and phase factors e^{−ik·x₀} ``(S, m, h)``; None when
        no patch has one."""
        size = channels.shape[1]
        relative = self.relative.to(channels.device)
        covariance = torch.linalg.inv(relative.T @ metric @ relative)  # (N, 2, 2): Cov(Â) = Φ⁻¹
        filtered = channels @ relative.to(channels.dtype)  # b's modes (N, m, h, 2)
        b = size**2 * to_maps(filtered.permute(0, 3, 1, 2), size)  # (N, 2, m, m) at pixel centres
        amplitude = torch.einsum("ncd,ndhw->nchw", covariance, b)  # Â(x)
        chi2 = (amplitude * b).sum(1)  # ÂᵀΦÂ: 2 on average where there is only noise
        # peaks of any compact source, significant against the noise and the local scatter
        detection = chi2 / torch.clamp(local_mean(chi2, self.scatter_sigma_px), min=2.0) * 2.0
        brightest = F.max_pool2d(detection[:, None], self.peak_px, 1, self.peak_px // 2)[:, 0]
        inside = torch.zeros_like(detection, dtype=torch.bool)
        edge = pad + EDGE_PX
        inside[:, edge : pad + n - EDGE_PX, edge : pad + n - EDGE_PX] = True
        radio = amplitude[:, 0]
        radio_noise = torch.maximum(covariance[:, 0, 0].sqrt()[:, None, None],
                                    local_mean(radio**2, self.scatter_sigma_px).sqrt())
        # a source of another SED has no significant radio part at its peak: not fitted
        candidate = radio > CANDIDATE_FRACTION * self.threshold * radio_noise
        peak = (detection == brightest) & inside & (detection > self.threshold**2) & candidate
        patch, row, col = torch.nonzero(peak, as_tuple=True)
        if patch.numel() == 0:
            return None
        y0, x0 = _refine_peak(filtered[patch], covariance[patch], grid.twice, grid.ky, grid.kx,
                              row.to(torch.float64), col.to(torch.float64))
        phases = torch.exp(-2j * torch.pi * (grid.ky * y0[:, None, None] + grid.kx * x0[:, None, None]))
        at = (grid.twice * (channels[patch] * phases.conj()[..., None]).real.movedim(-1, 1)).sum((-2, -1))
        amplitudes = (covariance[patch] @ (relative.T @ at[..., None]))[..., 0]  # (S, 2): radio, dust
        keep = amplitudes[:, 0] > self.threshold * radio_noise[patch, row, col]
        # the radio part must explain min_share of every difference at the peak, less its noise:
        # where bright dust dominates, a shape a little off the point-source template fits a large
        # radio part
        radio_part = relative[:, 0] * amplitudes[:, :1] * grid.peak_values
        excess = padded[patch, :, row, col].abs() - 3.0 * noise[patch, :, row - pad, col - pad]
        keep &= (excess * self.min_share <= radio_part).all(-1)
        if not bool(keep.any()):
            return None
        amplitude, index = self._fit_radio(at[keep], metric[patch[keep]], amplitudes[keep, 0])
        return patch[keep], amplitude, index, phases[keep]

    def _fit_radio(self, at: torch.Tensor, metric: torch.Tensor,
                   start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 217 GHz amplitude S ``(S,)`` and index offsets δα ``(S, K)`` of radio sources from
        Σ_k B_j (P⁻¹ D)_j e^{ik·x₀} ``at (S, C − 1)`` and M = Σ_k B P⁻¹ B ``(S, C − 1, C − 1)``:
        Gauss–Newton on χ² = (d − (a(δα) − 1) S)ᵀ M (d − …) + δαᵀ Σ⁻¹ δα, d = M⁻¹ at, from δα = 0
        and S = ``start``."""
        shifts, prior = self.shifts.to(at.device), self.prior.to(at.device)
        amplitude, index = start, at.new_zeros((at.shape[0], shifts.shape[1]))
        for _ in range(INDEX_STEPS):
            sed = self._radio_sed(index)  # (S, C − 1)
            # d χ²/2 and its Gauss–Newton Hessian in (S, δα): the data term's Jacobian J = ∂model
            jacobian = torch.cat([(sed - 1.0)[..., None], sed[..., None] * shifts * amplitude[:, None, None]],
                                 dim=-1)  # (S, C − 1, 1 + K)
            residual = at - (metric @ ((sed - 1.0) * amplitude[:, None])[..., None])[..., 0]  # M (d − model)
            hessian = jacobian.mT @ metric @ jacobian
            hessian[:, 1:, 1:] += prior
            gradient = (jacobian.mT @ residual[..., None])[..., 0]
            gradient[:, 1:] -= index @ prior
            step = torch.linalg.solve(hessian, gradient)
            amplitude, index = amplitude + step[:, 0], index + step[:, 1:]
        return amplitude, index


def _inverse_spectrum(fourier: torch.Tensor, twice: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """P(k)⁻¹ ``(N, m, h, K, K)``: the inverse of the cross-spectrum of ``fourier (N, m, h, K)``
    averaged over the modes of each bin (``bins (m·h,)``, half-plane counts ``twice``), loaded on
    its diagonal by :data:`LOADING`."""
    n, k = fourier.shape[0], fourier.shape[-1]
    flat = fourier.reshape(n, -1, k)
    products = (flat[..., :, None] * flat[..., None, :].conj()).real * twice.reshape(1, -1, 1, 1)
    count = bins.max() + 1
    sums = products.new_zeros((n, int(count), k, k)).index_add_(1, bins, products)
    weights = twice.new_zeros(int(count)).index_add_(0, bins, twice.flatten())
    spectrum = sums / weights[None, :, None, None]
    diagonal = torch.diagonal(spectrum, dim1=-2, dim2=-1)
    loading = LOADING * diagonal.amax(-1, keepdim=True).clamp_min(1e-300)
    spectrum = spectrum + torch.diag_embed(loading.expand_as(diagonal))
    return torch.linalg.inv(spectrum)[:, bins].reshape(*fourier.shape[:3], k, k)


def _refine_peak(modes: torch.Tensor, covariance: torch.Tensor, twice: torch.Tensor, ky: torch.Tensor,
                 kx: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                 steps: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The sub-pixel maximum ``(S,)``, ``(S,)`` (pixels) near ``y``, ``x`` of the likelihood gain
    q = bᵀ Cov b of a source, from the modes of b ``(S, m, h, 2)`` and Cov(Â) ``(S, 2, 2)``:
    Newton steps on q's exact gradient and Hessian (each step within ±0.5 px)."""
    wy, wx = 2 * torch.pi * ky, 2 * torch.pi * kx
    for _ in range(steps):
        at = (twice * torch.exp(1j * (wy * y[:, None, None] + wx * x[:, None, None])))[..., None] * modes

        def moment(factor: torch.Tensor | float, power: int, at: torch.Tensor = at) -> torch.Tensor:
            return ((1j) ** power * factor * at.movedim(-1, 1)).real.sum((-2, -1))  # (S, 2)

        b, by, bx = moment(1.0, 0), moment(wy, 1), moment(wx, 1)
        byy, bxx, bxy = moment(wy * wy, 2), moment(wx * wx, 2), moment(wy * wx, 2)

        def form(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # uᵀ Cov v, (S,)
            return (u[:, :, None] * covariance * v[:, None, :]).sum((-2, -1))

        gy, gx = form(by, b), form(bx, b)
        hyy, hxx = form(byy, b) + form(by, by), form(bxx, b) + form(bx, bx)
        hxy = form(bxy, b) + form(by, bx)
        det = hyy * hxx - hxy * hxy
        peak = (hyy < 0) & (det > 0)
        safe = torch.where(peak, det, 1.0)
        dy = torch.where(peak, -(hxx * gy - hxy * gx) / safe, 0.0).clamp(-0.5, 0.5)
        dx = torch.where(peak, -(hyy * gx - hxy * gy) / safe, 0.0).clamp(-0.5, 0.5)
        y, x = y + dy, x + dx
    return y, x
