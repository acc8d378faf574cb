"""Q and U in ``cenn evaluate``: on a store with Stokes Q and U (``cenn simulate --stokes IQU``),
every method that separates them (:meth:`cenn.separation.Separator.separate_polarization`) is run
on the bands' Q and U beside the temperature, batch by batch, and its E and B spectra and Q/U
residuals are kept per patch (:class:`PolarizationEvaluation`); :mod:`cenn.evaluate.polarization_summary`
turns them into the numbers of ``metrics.json``.

Spectra: :class:`cenn.sky.flat.eb_spectra.EBSpectra` with the evaluation's binning and cosine
taper (and beam deconvolution when configured): EE of the windowed maps, BB from the pure-B
estimator, TE the cross-spectrum of the temperature with E. The residual's E and B are those of
``target − output`` (the estimator is linear). D_ℓ in µK², maps in µK_CMB at the target band.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from cenn.evaluate.half_split import HALF_SIGMA_FACTOR, HalfSplitStats
from cenn.evaluate.metrics import PIXEL_METRICS, pixel_metrics
from cenn.evaluate.metrics import nan_array as _nan
from cenn.separation import InputInfo, Separator
from cenn.sky.components.cmb.spectrum import cmb_spectra
from cenn.sky.flat.eb_spectra import EBSpectra
from cenn.sky.instrument import gaussian_beam_window
from cenn.sky.noise import POLARIZATION_NOISE_FACTOR

#: Q and U, the order of the store's axis 1.
STOKES = ("q", "u")


class PolarizationStats:
    """Per-patch spectra and Q/U residual metrics of one method on one dataset.

    Attributes (D_ℓ in µK², one row per patch, ``(N, n_bins)``; maps in µK):
        ee, bb: the output's EE and (pure) BB.
        te: the cross-spectrum of the method's temperature output with its E.
        ee_cross: the output's E × the label's E.
        ee_residual, bb_residual: EE and BB of label − output.
        pixel: per Stokes parameter ("q", "u"), :func:`cenn.evaluate.metrics.pixel_metrics` per patch.
        residual_sum: Σ over patches of the Q and U residual maps ``(2, H, W)``.
    """

    def __init__(self, n: int, n_bins: int, shape: tuple[int, int]):
        self.ee, self.bb, self.te, self.ee_cross = (_nan(n, n_bins) for _ in range(4))
        self.ee_residual, self.bb_residual = _nan(n, n_bins), _nan(n, n_bins)
        self.pixel = {s: {k: _nan(n) for k in PIXEL_METRICS} for s in STOKES}
        self.residual_sum = np.zeros((2, *shape))
        self.filled = 0

    @property
    def mean_residual_patch(self) -> np.ndarray:
        """The Q and U residuals averaged over patches ``(2, H, W)`` in µK (Table 1 for Q and U)."""
        return self.residual_sum / max(self.filled, 1)


@dataclass
class PolarizationEvaluation:
    """The Q/U part of one dataset's evaluation.

    Attributes:
        spectra: the E/B estimator.
        lat: Galactic latitude of each patch (degrees).
        ee, bb, te: per patch ``(N, n_bins)``, D_ℓ (µK²) of the CMB label: EE, pure BB, TE.
        model_ee, lensing_bb: ``(n_bins,)`` D_ℓ (µK²) the estimator gives on average for the
            shipped lensed EE and lensing BB (Planck 2018,
            :func:`cenn.sky.components.cmb.spectrum.cmb_spectra`) at the target beam
            (:meth:`EBSpectra.expected`; the beam divided out with ``deconvolve_beam``).
        methods: per method that separates Q and U, its :class:`PolarizationStats`.
        skipped: per method that does not, why.
        half_split: per method, the EE and BB of its outputs on the store's two half-mission maps
            (``{"ee": HalfSplitStats, "bb": ...}``; :mod:`cenn.evaluate.half_split`): the noise-free
            spectra of what it keeps; empty for a store without them.
    """

    spectra: EBSpectra
    lat: np.ndarray
    ee: np.ndarray
    bb: np.ndarray
    te: np.ndarray
    model_ee: np.ndarray
    lensing_bb: np.ndarray
    methods: dict[str, PolarizationStats] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    half_split: dict[str, dict[str, HalfSplitStats]] = field(default_factory=dict)

    @property
    def ell(self) -> np.ndarray:
        return self.spectra.ell

    def _dl(self, cl: torch.Tensor) -> np.ndarray:
        ell = torch.as_tensor(self.ell, device=cl.device)
        return (ell * (ell + 1) * cl / (2 * np.pi)).cpu().numpy()

    def add(self, rows: slice, separators: Mapping[str, Separator], info: InputInfo,
            polarization: torch.Tensor, label: torch.Tensor, noise_sigma: torch.Tensor,
            temperature: torch.Tensor, outputs: Mapping[str, torch.Tensor],
            splits: torch.Tensor | None = None) -> None:
        """Separate and record patches ``rows``: the bands' Q and U ``polarization (B, 2, C, H, W)``,
        the CMB's ``label (B, 2, H, W)`` (µK), the temperature noise σ ``(B, C, H, W)`` (the Q/U σ
        is √2 × it), the CMB temperature label ``temperature (B, H, W)`` and each method's
        temperature output ``outputs[m] (B, H, W)``; with :attr:`half_split`, also the half-mission
        maps' Q and U ``splits (B, 2, 2, C, H, W)`` (half, Stokes, band)."""
        binned = self.spectra.scalar.binned
        e_in, b_in = self.spectra.modes(label[:, 0], label[:, 1])
        t_in = self.spectra.scalar.fourier(temperature)
        self.ee[rows], self.bb[rows] = self._dl(binned(e_in)), self._dl(binned(b_in))
        self.te[rows] = self._dl(binned(t_in, e_in))
        sigma = (POLARIZATION_NOISE_FACTOR * noise_sigma)[:, None].expand(polarization.shape)
        for m, stats in self.methods.items():
            out = separators[m].separate_polarization(polarization, info, sigma)
            e, b = self.spectra.modes(out[:, 0], out[:, 1])
            stats.ee[rows], stats.bb[rows] = self._dl(binned(e)), self._dl(binned(b))
            stats.ee_cross[rows] = self._dl(binned(e, e_in))
            stats.te[rows] = self._dl(binned(self.spectra.scalar.fourier(outputs[m]), e))
            stats.ee_residual[rows] = self._dl(binned(e_in - e))
            stats.bb_residual[rows] = self._dl(binned(b_in - b))
            for i, s in enumerate(STOKES):
                for k, v in pixel_metrics(label[:, i], out[:, i]).items():
                    stats.pixel[s][k][rows] = v.cpu().numpy()
            stats.residual_sum += (label.double() - out.double()).sum(0).cpu().numpy()
            stats.filled += label.shape[0]
        for m, spectra in self.half_split.items():
            halves = [self.spectra.modes(*separators[m].separate_polarization(
                splits[:, h], info, HALF_SIGMA_FACTOR * sigma).unbind(1)) for h in range(2)]
            for k, name in enumerate(("ee", "bb")):
                spectra[name].add_modes(rows, self.spectra.scalar, halves[0][k], halves[1][k])


def polarization_evaluation(separators: Mapping[str, Separator], spectra: EBSpectra, lat: np.ndarray,
                            target_beam_fwhm_arcmin: float, shape: tuple[int, int],
                            half_split: bool = False) -> PolarizationEvaluation:
    """An empty :class:`PolarizationEvaluation` for ``len(lat)`` patches of ``shape``, with the
    model spectra at the target beam (divided out when ``spectra`` deconvolves a beam); with
    ``half_split``, room for the half-mission maps' spectra."""
    n, n_bins = len(lat), len(spectra.ell)
    ell, cls = cmb_spectra()
    beam2 = 1.0 if spectra.beam_fwhm_arcmin is not None else gaussian_beam_window(
        torch.as_tensor(ell, dtype=torch.float64), target_beam_fwhm_arcmin).numpy() ** 2
    expected = spectra.expected(ell, cls["ee"] * beam2, cls["bb"] * beam2)
    centres = spectra.ell
    to_dl = centres * (centres + 1) / (2 * np.pi)
    ev = PolarizationEvaluation(spectra=spectra, lat=np.asarray(lat, dtype=float), ee=_nan(n, n_bins),
                                bb=_nan(n, n_bins), te=_nan(n, n_bins), model_ee=to_dl * expected["ee"],
                                lensing_bb=to_dl * expected["bb"])
    for m, sep in separators.items():
        refusal = sep.polarization_refusal()
        if refusal is None:
            ev.methods[m] = PolarizationStats(n, n_bins, shape)
            if half_split:
                ev.half_split[m] = {"ee": HalfSplitStats(n, n_bins), "bb": HalfSplitStats(n, n_bins)}
        else:
            ev.skipped[m] = refusal
    return ev
