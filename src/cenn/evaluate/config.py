"""Evaluation settings (``cenn evaluate --config``), saved resolved with every report.

Defaults follow the paper's Sect. 4: its binning (Δℓ = 50 up to ℓ = 1000, Δℓ = 200 above), its
multipole ranges for the spectrum summaries, spectra at the target band's resolution (no beam
deconvolution), and the 5× and 10× noise test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from cenn.config import ConfigBase, ConfigError, read_toml
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning


def _paper_ranges() -> dict[str, list[float]]:
    # the ranges the paper quotes (Sect. 4.1: all ℓ, ℓ ≤ 1000, 1000–2500; Sect. 4.2: ℓ > 1000) and
    # above Planck's ℓmax
    return {"all": [0.0, math.inf], "0-1000": [0.0, 1000.0], "1000-2500": [1000.0, 2500.0],
            "1000+": [1000.0, math.inf], "2500+": [2500.0, math.inf]}


@dataclass
class EvaluationConfig(ConfigBase):
    """How spectra and metrics are computed.

    Attributes:
        bin_edges: multipole bin edges; empty for the paper's scheme (:meth:`Binning.paper`).
        taper_fraction: width of the cosine taper as a fraction of the patch side.
        deconvolve_beam: divide spectra by the target beam's B_ℓ² (the paper does not).
        pixel_window: divide spectra by the square-pixel window.
        ell_ranges: named multipole ranges ``[lo, hi)`` (bin centres) for the summaries.
        contamination_ell: range over which the D_ℓ of the foregrounds other than dust (point
            sources, CIB, tSZ) at the target band selects the most contaminated patch (the paper's
            Fig. 6 patch was chosen by eye for its point sources).
        dust_band: band whose dust map (or, without stored components, total map) measures the
            patch's dust brightness.
        dust_edges_uk: bin edges in the dust brightness (RMS in µK_CMB) for results by dust.
        noise_factors: instrument-noise factors of the robustness test (paper: 5 and 10); the
            stored noise is scaled, so datasets need their component maps.
        noise_max_patches: patches per dataset used by the noise test (0: all).
        example_patch: patch shown for each dataset in the paper's Fig. 1.
        max_patches: evaluate only the first patches of each dataset (0: all).
        batch_size: patches read and separated at once.
        injection: also measure each method's response to an independent CMB realisation added to
            the inputs (:mod:`cenn.evaluate.injection`; one more separation per patch).
        injection_seed: seed of the injected CMB (must differ from every store's seed).
        mask_above_uk: for methods that state a per-pixel σ, the confidence mask of the calibration
            summary keeps the pixels with σ ≤ this (µK_CMB; :mod:`cenn.evaluate.calibration`).
        half_split: on stores with half-mission maps (``cenn simulate --splits 2``), also run every
            method on both halves and measure the cross-spectrum of its two outputs
            (:mod:`cenn.evaluate.half_split`; two more separations per patch).
    """

    bin_edges: list[float] = field(default_factory=list)
    taper_fraction: float = 0.125
    deconvolve_beam: bool = False
    pixel_window: bool = False
    ell_ranges: dict[str, list[float]] = field(default_factory=_paper_ranges)
    contamination_ell: list[float] = field(default_factory=lambda: [1500.0, 3000.0])
    dust_band: str = "353"
    dust_edges_uk: list[float] = field(
        default_factory=lambda: [0.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, math.inf])
    noise_factors: list[float] = field(default_factory=lambda: [5.0, 10.0])
    noise_max_patches: int = 500
    example_patch: int = 0
    max_patches: int = 0
    batch_size: int = 64
    injection: bool = True
    injection_seed: int = 104729
    mask_above_uk: float = 50.0
    half_split: bool = True

    SECTION = "evaluation"

    def __post_init__(self) -> None:
        if not 0.0 <= self.taper_fraction <= 0.5:
            raise ValueError(f"taper_fraction must be in [0, 0.5], got {self.taper_fraction}")
        for name, pair in {**self.ell_ranges, "contamination_ell": self.contamination_ell}.items():
            if len(pair) != 2 or not pair[0] < pair[1]:
                raise ValueError(f"multipole range {name!r} must be [lo, hi] with lo < hi, got {pair}")
        if any(f <= 0 for f in self.noise_factors):
            raise ValueError(f"noise_factors must be positive, got {self.noise_factors}")
        if min(self.noise_max_patches, self.example_patch, self.max_patches) < 0 or self.batch_size < 1:
            raise ValueError("noise_max_patches, example_patch and max_patches must be >= 0 and "
                             "batch_size >= 1")
        if not self.mask_above_uk > 0:
            raise ValueError(f"mask_above_uk must be positive, got {self.mask_above_uk}")
        Binning.from_edges(self.dust_edges_uk)  # increasing
        if self.bin_edges:
            Binning.from_edges(self.bin_edges)

    def binning(self, geometry: PatchGeometry) -> Binning:
        """The multipole bins for patches of ``geometry``."""
        return Binning.from_edges(self.bin_edges) if self.bin_edges else Binning.paper(geometry)

    def taper_width(self, geometry: PatchGeometry) -> int:
        """Taper width in pixels."""
        return round(self.taper_fraction * geometry.npix)

    @classmethod
    def load(cls, path: Path | str | None) -> EvaluationConfig:
        """From a TOML file (its keys at top level or under ``[evaluation]``); defaults for None."""
        if path is None:
            return cls()
        data = read_toml(path)
        data = data.get("evaluation", data)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [evaluation] must be a table")
        return cls.from_dict(data)
