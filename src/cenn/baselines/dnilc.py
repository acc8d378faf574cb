"""The CMB-free needlet ILC (``dnilc``): the target band minus its foregrounds and noise predicted from
band differences alone (:mod:`cenn.model.difference_ilc`), so that the CMB passes with exactly unit
response, with weights as local as the NILC's. The classical start of the unbiased network
(``sp-nilc-unet``), offered on its own for comparison.
"""

from __future__ import annotations

from typing import Any

import torch

from cenn.baselines.common import patch_geometry
from cenn.model.compact_sources import CompactSources
from cenn.model.difference_ilc import DifferenceILC
from cenn.model.linear import cmb_free_maps
from cenn.separation import InputInfo, Separator, nominal_sigma, register_separator
from cenn.sky.seds import FOREGROUNDS, compact_source_seds, nominal_seds


@register_separator("dnilc")
class DifferenceNILCSeparator(Separator):
    """CMB-free needlet ILC on patches; uses the inputs' per-pixel noise σ when given, else each
    band's nominal level.

    Args:
        threshold: significance (in units of 1/√modes) a foreground direction needs in a domain.
        min_beam_factor: the smallest window-mean beam factor at which a band difference is used
            near the patch border.
        interior_min_beam_factor: the same away from the border
            (:class:`cenn.model.difference_ilc.DifferenceILC`).
        source_threshold: significance a compact source with a radio SED needs to be fitted with
            its own SED first (:mod:`cenn.model.compact_sources`); 0 fits none.
    """

    name = "dnilc"
    #: Q and U as two more maps of the bands (the foregrounds' SEDs are those of their intensity).
    stokes_agnostic = True

    def __init__(self, threshold: float = 2.0, min_beam_factor: float = 0.5,
                 interior_min_beam_factor: float = 0.15, source_threshold: float = 5.0):
        self.threshold, self.min_beam_factor = float(threshold), float(min_beam_factor)
        self.interior_min_beam_factor = float(interior_min_beam_factor)
        if source_threshold < 0:
            raise ValueError(f"source_threshold must be >= 0 (0: no compact sources), got {source_threshold}")
        self.source_threshold = float(source_threshold)
        self._methods: dict[InputInfo, DifferenceILC] = {}

    def method(self, info: InputInfo) -> DifferenceILC:
        """The CMB-free needlet ILC for the instrument ``info`` describes (built once: its SEDs and,
        per patch size, its windows are reused for every batch)."""
        if info not in self._methods:
            reference = info.target_channel
            seds = nominal_seds(info.frequencies_ghz, info.band_names, reference)
            sources = None
            if self.source_threshold > 0:
                sources = CompactSources(
                    info.beam_fwhm_arcmin, info.pixel_arcsec, reference,
                    *compact_source_seds(info.frequencies_ghz, info.band_names, reference),
                    threshold=self.source_threshold)
            self._methods[info] = DifferenceILC(
                info.beam_fwhm_arcmin, info.pixel_arcsec, reference, seds, threshold=self.threshold,
                min_beam_factor=self.min_beam_factor,
                interior_min_beam_factor=self.interior_min_beam_factor, sources=sources)
        return self._methods[info]

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        patch_geometry(inputs, info)  # refuses non-square patches
        reference = info.target_channel
        sigma = nominal_sigma(inputs, info.noise_uk_per_pixel) if noise_sigma is None else noise_sigma
        x = inputs.to(torch.float64)
        differences = cmb_free_maps(x, info.beam_fwhm_arcmin, reference, info.pixel_arcsec)
        foregrounds = self.method(info).foregrounds(differences, sigma.to(torch.float64) ** 2)
        return (x[:, reference : reference + 1] - foregrounds).to(torch.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "foregrounds": list(FOREGROUNDS), "threshold": self.threshold,
                "min_beam_factor": self.min_beam_factor,
                "interior_min_beam_factor": self.interior_min_beam_factor,
                "source_threshold": self.source_threshold}
