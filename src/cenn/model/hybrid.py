"""Networks that learn what a linear method leaves: the bands in µK_CMB in, the CMB in µK_CMB out.

Both work on maps in physical units (use them with the ``identity`` normalisation) and carry the
instrument's beams and pixel size as parameters, filled in from the training data.

- ``hilc-unet`` (ILC-informed): a harmonic ILC (per-patch weights per Δℓ bin, bands brought to the
  reference beam) removes the bulk of the foregrounds; a U-Net sees the ILC map and the CMB-free
  differences of the beam-matched bands (each ``asinh``-compressed on one fixed µK scale) and
  returns a correction. Output = ILC + correction. Not signal-preserving: the network sees the CMB
  through the ILC map.
- ``sp-unet`` (signal-preserving, after McCarthy, Hill, Coulton & Hogg 2024, arXiv:2404.03557): the
  network sees only CMB-free differences ``D_j`` (each band minus the reference, smoothed to the
  wider of their beams, the border strip where that smoothing wraps round the patch replaced by the
  mirror image of the interior) and predicts the foregrounds and noise of the reference band as a local
  linear combination of the differences plus a map, ``Σ_j A_j ⊙ D_j + s R``, with ``A_j`` and ``R``
  its output maps. Output = reference band − that prediction. The output changes by exactly the CMB
  added to the inputs, whatever the foregrounds, also for patches cut from a larger sky: the CMB
  passes with unit response, as a power-spectrum analysis needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cenn.model.compact_sources import CompactSources
from cenn.model.difference_ilc import DifferenceILC
from cenn.model.linear import (
    beam_ratios,
    bins_by_count,
    cmb_free_maps,
    harmonic_ilc,
    to_maps,
)
from cenn.model.registry import build_model, register_model
from cenn.model.sigma_curve import SigmaCurve
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.seds import compact_source_seds, nominal_seds

#: Backbone and parameters used unless a model's ``backbone``/``backbone_params`` say otherwise.
DEFAULT_BACKBONE = "unet"
DEFAULT_BACKBONE_PARAMS: dict[str, Any] = {"zero_head": True}
#: Instrument parameters :func:`instrument_params` fills in from the data.
INSTRUMENT_PARAMS = ("beams_arcmin", "pixel_arcsec", "reference", "seds", "source_seds",
                     "radio_index_covariance")


class _LinearPlusNetwork(nn.Module):
    """Shared set-up: instrument, compression scale, the multipole grid and the backbone."""

    def __init__(self, in_channels: int, beams_arcmin: Sequence[float] | None, pixel_arcsec: float | None,
                 reference: int, scale_uk: float, backbone: str, backbone_params: dict | None,
                 backbone_in: int, backbone_out: int):
        super().__init__()
        if beams_arcmin is None or pixel_arcsec is None:
            raise ValueError(f"{type(self).__name__} needs the bands' beams_arcmin and the pixel_arcsec "
                             "(cenn train fills them in from the training data)")
        if len(beams_arcmin) != in_channels or not 0 <= reference < in_channels:
            raise ValueError(f"{in_channels} input bands need as many beams_arcmin (got {len(beams_arcmin)}) "
                             f"and a reference band index in [0, {in_channels}) (got {reference})")
        if in_channels < 2:
            raise ValueError("a linear combination of bands needs at least two bands")
        if not scale_uk > 0:
            raise ValueError(f"scale_uk must be a positive number of µK, got {scale_uk!r}")
        self.in_channels, self.reference, self.scale_uk = in_channels, reference, float(scale_uk)
        self.beams_arcmin, self.pixel_arcsec = [float(b) for b in beams_arcmin], float(pixel_arcsec)
        params = DEFAULT_BACKBONE_PARAMS if backbone_params is None else backbone_params
        self.backbone = build_model(backbone, backbone_in, out_channels=backbone_out, **params)
        self.multiple = self.backbone.multiple
        self._ell: dict[tuple[int, str], torch.Tensor] = {}

    def ell(self, inputs: torch.Tensor) -> torch.Tensor:
        """Multipole of every ``rfft2`` mode of a patch like ``inputs (N, C, n, n)``."""
        n, m = inputs.shape[-2:]
        if inputs.ndim != 4 or inputs.shape[1] != self.in_channels or n != m:
            raise ValueError(f"{type(self).__name__} expects square patches (B, {self.in_channels}, n, n); "
                             f"got {tuple(inputs.shape)}")
        key = (int(n), str(inputs.device))
        if key not in self._ell:
            self._ell[key] = PatchGeometry(int(n), self.pixel_arcsec).ell(inputs.device)
        return self._ell[key]

    def compress(self, maps: torch.Tensor) -> torch.Tensor:
        """``asinh(maps / scale_uk)`` as float32: linear below the scale, logarithmic above, sign kept,
        one scale for every band so their ratios survive."""
        return torch.asinh(maps / self.scale_uk).to(torch.float32)

    def _backbone(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone(features).to(torch.float64)


class HILCNet(_LinearPlusNetwork):
    """``hilc-unet``: harmonic ILC plus a learnt correction; ``(N, C, n, n)`` µK → ``(N, 1, n, n)`` µK.

    Args:
        in_channels: bands.
        beams_arcmin: FWHM of every band's beam (the reference band's is the output's).
        pixel_arcsec: pixel side.
        reference: index of the output band (217 GHz in 143/217/353).
        scale_uk: the µK scale of the ``asinh`` compression and of the correction.
        bin_modes: Fourier modes in each of the harmonic ILC's bins (:func:`bins_by_count`: as many
            for small training crops as for large patches).
        max_gain: cap on the beam-matching factor B_ref/B_band.
        backbone, backbone_params: the registered network that computes the correction.
    """

    def __init__(self, in_channels: int = 3, beams_arcmin: Sequence[float] | None = None,
                 pixel_arcsec: float | None = None, reference: int = 1, scale_uk: float = 100.0,
                 bin_modes: int = 128, max_gain: float = 100.0, backbone: str = DEFAULT_BACKBONE,
                 backbone_params: dict | None = None):
        super().__init__(in_channels, beams_arcmin, pixel_arcsec, reference, scale_uk, backbone,
                         backbone_params, backbone_in=in_channels, backbone_out=1)
        if bin_modes < 4:
            raise ValueError(f"bin_modes must be at least 4 (ILC weights need modes), got {bin_modes}")
        self.bin_modes, self.max_gain = int(bin_modes), float(max_gain)

    def linear_parts(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The harmonic ILC ``(N, 1, n, n)`` and the beam-matched differences ``(N, C − 1, n, n)``,
        float64 µK_CMB."""
        ell, n = self.ell(inputs), inputs.shape[-1]
        ratios = beam_ratios(ell, self.beams_arcmin, self.beams_arcmin[self.reference], self.max_gain)
        fourier = torch.fft.rfft2(inputs.to(torch.float64)) * ratios
        ilc = to_maps(harmonic_ilc(fourier, bins_by_count(ell, self.bin_modes)), n)[:, None]
        maps = to_maps(fourier, n)
        others = [j for j in range(self.in_channels) if j != self.reference]
        return ilc, maps[:, others] - maps[:, self.reference : self.reference + 1]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        ilc, differences = self.linear_parts(inputs)
        features = torch.cat([self.compress(differences), (ilc / self.scale_uk).to(torch.float32)], dim=1)
        return (ilc + self.scale_uk * self._backbone(features)).to(torch.float32)


class SignalPreservingNet(_LinearPlusNetwork):
    """``sp-unet``: reference band minus a prediction from CMB-free differences only;
    ``(N, C, n, n)`` µK → ``(N, 1, n, n)`` µK. Arguments as :class:`HILCNet` (no ILC), and

    weight_scale: the factor on the network's weight maps A_j. The differences reach 10⁵ µK in the
        plane, where an optimiser step of 10⁻³ on A_j moves the output by 100 µK; the factor
        brings that step to the µK the correction needs there.
    """

    def __init__(self, in_channels: int = 3, beams_arcmin: Sequence[float] | None = None,
                 pixel_arcsec: float | None = None, reference: int = 1, scale_uk: float = 100.0,
                 weight_scale: float = 0.01, backbone: str = DEFAULT_BACKBONE,
                 backbone_params: dict | None = None):
        super().__init__(in_channels, beams_arcmin, pixel_arcsec, reference, scale_uk, backbone,
                         backbone_params, backbone_in=in_channels - 1, backbone_out=in_channels)
        self._set_weight_scale(weight_scale)

    def _set_weight_scale(self, weight_scale: float) -> None:
        if not (math.isfinite(weight_scale) and weight_scale > 0):
            raise ValueError(f"weight_scale must be a positive number, got {weight_scale!r}")
        self.weight_scale = float(weight_scale)

    def _backbone(self, features: torch.Tensor) -> torch.Tensor:
        """The backbone in float32 even under bfloat16 autocast (``--precision bf16`` or ``auto``): its
        weight maps multiply differences of up to 10⁵ µK, and bfloat16 turns the float32 rounding
        differences of inputs that carry different CMBs (0.008 µK at 10⁵ µK) into jumps of its own
        rounding (0.4 %), which bent the trained model's response to an injected CMB by 10⁻³ in the
        plane (float32: 5 × 10⁻⁷)."""
        with torch.autocast(features.device.type, enabled=False):
            return super()._backbone(features.to(torch.float32))

    def correction(self, out: torch.Tensor, differences: torch.Tensor) -> torch.Tensor:
        """The learnt foregrounds ``Σ_j weight_scale A_j ⊙ D_j + scale_uk R`` ``(N, 1, n, n)`` µK from the
        network's maps ``out (N, C, n, n)`` (A_j, then R) and the ``differences (N, C − 1, n, n)``."""
        c = differences.shape[1]
        weights, residual = out[:, :c], out[:, c : c + 1]
        return self.weight_scale * (weights * differences).sum(1, keepdim=True) + self.scale_uk * residual

    def cmb_free(self, inputs: torch.Tensor) -> torch.Tensor:
        """The CMB-free differences of ``inputs (N, C, n, n)`` with their border strips refilled
        (:func:`cenn.model.linear.cmb_free_maps`): ``(N, C − 1, n, n)`` float64 µK."""
        self.ell(inputs)  # checks the shape
        return cmb_free_maps(inputs, self.beams_arcmin, self.reference, self.pixel_arcsec)

    def foregrounds(self, inputs: torch.Tensor) -> torch.Tensor:
        """The predicted foregrounds and noise of the reference band ``(N, 1, n, n)``, float64 µK,
        a function of the CMB-free differences alone."""
        differences = self.cmb_free(inputs)
        return self.correction(self._backbone(self.compress(differences)), differences)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        reference = inputs[:, self.reference : self.reference + 1].to(torch.float64)
        return (reference - self.foregrounds(inputs)).to(torch.float32)


class SignalPreservingNILCNet(SignalPreservingNet):
    """``sp-nilc-unet``: the reference band minus the CMB-free needlet ILC's foregrounds
    (:class:`cenn.model.difference_ilc.DifferenceILC`) minus a learnt correction from the CMB-free
    differences, ``Σ_j A_j ⊙ D_j + s R``; the CMB passes with exactly unit response. Takes the bands
    and their noise σ, ``(N, 2C, n, n)`` µK, and returns the CMB and the log standard deviation of
    its residual, ``(N, 2, n, n)`` (µK, log µK). With its zero head it starts as the CMB-free
    needlet ILC, with σ = ``scale_uk``.

    With ``out_channels = 2`` it separates Q and U (:mod:`cenn.data.stokes`): ``in_channels`` is then
    the 2C maps, the bands' Q then U, and it takes them with their σ in that layout, ``(N, 4C, n,
    n)``, and returns the CMB's Q and U, then the log σ of each, ``(N, 4, n, n)``. The same linear
    start and network run on Q and on U as on two temperature maps (the foregrounds' SEDs are those
    of their intensity; the weights are scalars, which a rotation of the frame leaves alone), so
    each passes the CMB with exactly unit response.

    Args: as :class:`SignalPreservingNet` (``weight_scale`` included), and
        seds: ``(C, C − 1)`` nominal foreground SEDs (:func:`cenn.sky.seds.nominal_seds`).
        sigma_scale: a factor on the stated σ.
        sigma_curve: the σ-dependent calibration of the stated σ, fitted after training
            (:class:`cenn.model.sigma_curve.SigmaCurve`, :mod:`cenn.predict.calibrate`).
        out_channels: 1 (temperature) or 2 (Q and U).
        source_seds, radio_index_covariance: ``(C, 2 + K)`` a radio source's and dust's SEDs with the
            radio SED's change per spectral index, and ``(K, K)`` the indices' covariance
            (:func:`cenn.sky.seds.compact_source_seds`): the start fits compact sources with them
            first (:mod:`cenn.model.compact_sources`), as ``dnilc`` does; None (models trained
            before 2026-12-07) leaves them to the needlet ILC.
    """

    noise_input = True
    sigma_output = True

    def __init__(self, in_channels: int = 3, beams_arcmin: Sequence[float] | None = None,
                 pixel_arcsec: float | None = None, reference: int = 1, scale_uk: float = 100.0,
                 seds: Sequence[Sequence[float]] | None = None, sigma_scale: float = 1.0,
                 weight_scale: float = 0.01, backbone: str = DEFAULT_BACKBONE,
                 backbone_params: dict | None = None,
                 sigma_curve: Mapping[str, Sequence[float]] | None = None, out_channels: int = 1,
                 source_seds: Sequence[Sequence[float]] | None = None,
                 radio_index_covariance: Sequence[Sequence[float]] | None = None):
        if out_channels not in (1, 2) or in_channels % out_channels:
            raise ValueError(f"sp-nilc-unet separates temperature (out_channels = 1) or Q and U "
                             f"(out_channels = 2, from the bands' Q then U); got out_channels = "
                             f"{out_channels!r} for {in_channels} input maps")
        self.maps = out_channels
        bands = in_channels // out_channels
        _LinearPlusNetwork.__init__(self, bands, beams_arcmin, pixel_arcsec, reference, scale_uk,
                                    backbone, backbone_params, backbone_in=2 * bands,
                                    backbone_out=bands + 1)
        self._set_weight_scale(weight_scale)
        if seds is None:
            raise ValueError("sp-nilc-unet needs the bands' nominal foreground seds (cenn train fills "
                             "them in from the training data)")
        if not (math.isfinite(sigma_scale) and sigma_scale > 0):
            raise ValueError(f"sigma_scale must be a positive number, got {sigma_scale!r}")
        self.seds = [[float(v) for v in row] for row in seds]
        if (source_seds is None) != (radio_index_covariance is None):
            raise ValueError("sp-nilc-unet takes source_seds and radio_index_covariance together (cenn train "
                             "fills both in from the training data) or neither")
        sources = None if source_seds is None else CompactSources(
            self.beams_arcmin, self.pixel_arcsec, reference, source_seds, radio_index_covariance)
        self.start = DifferenceILC(self.beams_arcmin, self.pixel_arcsec, reference, self.seds,
                                   sources=sources)
        self.log_sigma_scale = math.log(sigma_scale)
        self.sigma_curve = None if sigma_curve is None else SigmaCurve.from_params(sigma_curve)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, maps = self.in_channels, self.maps
        if x.ndim != 4 or x.shape[1] != 2 * c * maps:
            what = "bands" if maps == 1 else "bands' Q then U"
            raise ValueError(f"sp-nilc-unet expects (B, {2 * c * maps}, n, n): the {what}, then their noise "
                             f"σ; got {tuple(x.shape)}")
        if maps == 1:
            return self._separate(x)
        # Q and U as 2B temperature-like patches: (B, [Q, U, σQ, σU] × C) → (2B, 2C)
        b = x.shape[0]
        per_stokes = x.unflatten(1, (2, maps, c)).permute(2, 0, 1, 3, 4, 5)
        per_stokes = per_stokes.reshape(maps * b, 2 * c, *x.shape[2:])
        out = self._separate(per_stokes).unflatten(0, (maps, b))  # (maps, B, [cmb, log σ], n, n)
        return out.permute(1, 2, 0, 3, 4).reshape(b, 2 * maps, *x.shape[2:])

    def _separate(self, x: torch.Tensor) -> torch.Tensor:
        """The CMB and its log σ ``(N, 2, n, n)`` from one Stokes map of the bands and their σ
        ``(N, 2C, n, n)``."""
        c = self.in_channels
        inputs, sigma = x[:, :c].to(torch.float64), x[:, c:].to(torch.float64)
        differences = self.cmb_free(inputs)
        start = self.start.foregrounds(differences, sigma**2)
        features = torch.cat([self.compress(differences), self.compress(start),
                              (sigma / self.scale_uk).to(torch.float32)], dim=1)
        out = self._backbone(features)
        foregrounds = start + self.correction(out[:, :c], differences)
        log_sigma = out[:, c:]
        cmb = inputs[:, self.reference : self.reference + 1] - foregrounds
        log_sigma = log_sigma + math.log(self.scale_uk) + self.log_sigma_scale
        return torch.cat([cmb, log_sigma], dim=1).to(torch.float32)


def instrument_params(factory_params: Sequence[str], beams_arcmin: Sequence[float], pixel_arcsec: float,
                      reference: int, frequencies_ghz: Sequence[float],
                      band_names: Sequence[str]) -> dict[str, Any]:
    """The instrument parameters (:data:`INSTRUMENT_PARAMS`) a model with parameters
    ``factory_params`` takes, from the data's beams, pixel size, reference band and bands (the
    nominal foreground SEDs, :func:`cenn.sky.seds.nominal_seds`)."""
    values: dict[str, Any] = {"beams_arcmin": [float(b) for b in beams_arcmin],
                              "pixel_arcsec": float(pixel_arcsec), "reference": int(reference)}
    if "seds" in factory_params:
        values["seds"] = nominal_seds(frequencies_ghz, band_names, reference).tolist()
    if "source_seds" in factory_params:
        table, covariance = compact_source_seds(frequencies_ghz, band_names, reference)
        values["source_seds"], values["radio_index_covariance"] = table.tolist(), covariance.tolist()
    return {k: v for k, v in values.items() if k in factory_params}


register_model("hilc-unet")(HILCNet)
register_model("sp-unet")(SignalPreservingNet)
register_model("sp-nilc-unet")(SignalPreservingNILCNet)
