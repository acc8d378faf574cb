"""Instruments: frequency bands with Gaussian beams, white noise and unit conversions.

Presets are TOML files in ``cenn/sky/data/instruments``; a user adds an instrument by writing
such a file and passing its path. The number of input channels follows the instrument.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cenn.sky import units
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.shipped import DATA, shipped_text

FWHM_TO_SIGMA = 1.0 / math.sqrt(8.0 * math.log(2.0))
_BAND_KEYS = {
    "name", "frequency_ghz", "beam_fwhm_arcmin", "noise_uk_deg", "mjysr_per_kcmb",
    "tsz_kcmb_per_y",
}
_INSTRUMENT_KEYS = {"name", "description", "target_band", "bands", "sources"}


def target_channel(band_names: Sequence[str], target_band: str) -> int:
    """Index of the band ``target_band`` among the input channels ``band_names``: the one lookup of
    the target channel, for an :class:`Instrument`, a store's metadata and
    :class:`cenn.separation.InputInfo` alike."""
    return list(band_names).index(target_band)


def gaussian_beam_window(ell: torch.Tensor, fwhm_arcmin: float) -> torch.Tensor:
    """Gaussian beam transfer function B_ℓ = exp(−ℓ(ℓ+1)σ²/2) for a beam of ``fwhm_arcmin``."""
    sigma = math.radians(fwhm_arcmin / 60.0) * FWHM_TO_SIGMA
    return torch.exp(-0.5 * ell * (ell + 1.0) * sigma**2)


@dataclass(frozen=True)
class Band:
    """One frequency channel.

    Attributes:
        name: label, e.g. ``"217"``.
        frequency_ghz: effective (central) frequency in GHz.
        beam_fwhm_arcmin: Gaussian beam FWHM in arcmin.
        noise_uk_deg: white-noise level in µK_CMB·deg.
        mjysr_per_kcmb: MJy sr⁻¹ per K_CMB (band-averaged if known, else monochromatic dB/dT).
        tsz_kcmb_per_y: tSZ response in K_CMB per unit Compton y.
    """

    name: str
    frequency_ghz: float
    beam_fwhm_arcmin: float
    noise_uk_deg: float
    mjysr_per_kcmb: float
    tsz_kcmb_per_y: float

    @property
    def beam_sigma_rad(self) -> float:
        """Gaussian beam σ in radians."""
        return self.beam_fwhm_arcmin / 60.0 * math.pi / 180.0 * FWHM_TO_SIGMA

    @property
    def beam_solid_angle_sr(self) -> float:
        """Beam solid angle 2πσ² in steradians."""
        return 2.0 * math.pi * self.beam_sigma_rad**2

    def beam_window(self, ell: torch.Tensor) -> torch.Tensor:
        """Gaussian beam transfer function B_ℓ = exp(−ℓ(ℓ+1)σ²/2)."""
        return gaussian_beam_window(ell, self.beam_fwhm_arcmin)

    def noise_uk_per_pixel(self, geometry: PatchGeometry) -> float:
        """White-noise standard deviation per pixel in µK_CMB (22.0 µK at 143 GHz, 90″)."""
        return self.noise_uk_deg / geometry.pixel_deg


@dataclass(frozen=True)
class Instrument:
    """An ordered set of bands (increasing frequency) and the band that defines the target."""

    name: str
    bands: tuple[Band, ...]
    target_band: str
    description: str = ""
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        freqs = [b.frequency_ghz for b in self.bands]
        if not self.bands:
            raise ValueError(f"instrument {self.name!r} has no bands")
        if freqs != sorted(freqs) or len(set(freqs)) != len(freqs):
            raise ValueError(
                f"instrument {self.name!r}: bands must be listed in strictly increasing "
                f"frequency, got {freqs}"
            )
        if self.target_band not in self.band_names:
            raise ValueError(
                f"instrument {self.name!r}: target_band {self.target_band!r} is not one of "
                f"its bands {self.band_names}"
            )
        if not self.noise_scale >= 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def frequencies_ghz(self) -> list[float]:
        return [b.frequency_ghz for b in self.bands]

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def target(self) -> Band:
        """The band whose beam the target CMB map carries (217 GHz for Planck HFI)."""
        return self.bands[target_channel(self.band_names, self.target_band)]

    def with_noise_scale(self, scale: float) -> Instrument:
        """A copy whose noise is multiplied by ``scale`` (the paper also tests 5× and 10×)."""
        return replace(self, noise_scale=scale)

    def beam_windows(self, ell: torch.Tensor) -> torch.Tensor:
        """B_ℓ of every band, shape ``(n_bands, *ell.shape)``."""
        return torch.stack([b.beam_window(ell) for b in self.bands])

    def noise_uk_per_pixel(self, geometry: PatchGeometry) -> list[float]:
        """Per-pixel white-noise σ of every band in µK_CMB, including ``noise_scale``."""
        return [self.noise_scale * b.noise_uk_per_pixel(geometry) for b in self.bands]

    def mjysr_per_kcmb(self) -> list[float]:
        return [b.mjysr_per_kcmb for b in self.bands]

    def summary(self) -> dict:
        """Plain-dict description stored with datasets and weights."""
        return {
            "name": self.name,
            "target_band": self.target_band,
            "noise_scale": self.noise_scale,
            "bands": [vars(b).copy() for b in self.bands],
        }


def _band_from_dict(entry: dict, where: str) -> Band:
    unknown = set(entry) - _BAND_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown band keys {sorted(unknown)}; allowed {sorted(_BAND_KEYS)}")
    for key in ("frequency_ghz", "beam_fwhm_arcmin", "noise_uk_deg"):
        if key not in entry:
            raise ValueError(f"{where}: band {entry.get('name', '?')!r} lacks {key!r}")
        if not isinstance(entry[key], int | float) or entry[key] < 0:
            raise ValueError(f"{where}: {key} must be a non-negative number, got {entry[key]!r}")
    nu = float(entry["frequency_ghz"])
    if nu <= 0 or entry["beam_fwhm_arcmin"] <= 0:
        raise ValueError(f"{where}: frequency and beam must be positive")
    return Band(
        name=str(entry.get("name", f"{nu:g}")),
        frequency_ghz=nu,
        beam_fwhm_arcmin=float(entry["beam_fwhm_arcmin"]),
        noise_uk_deg=float(entry["noise_uk_deg"]),
        mjysr_per_kcmb=float(entry.get("mjysr_per_kcmb", units.dbdt_mjysr_per_k(nu))),
        tsz_kcmb_per_y=float(entry.get("tsz_kcmb_per_y", units.tsz_f(nu) * units.T_CMB)),
    )


def instrument_from_dict(data: dict, where: str = "instrument") -> Instrument:
    """Build an :class:`Instrument` from the parsed contents of a preset file."""
    unknown = set(data) - _INSTRUMENT_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_INSTRUMENT_KEYS)}")
    bands = tuple(_band_from_dict(b, where) for b in data.get("bands", []))
    return Instrument(
        name=str(data.get("name", where)),
        bands=bands,
        target_band=str(data.get("target_band", bands[len(bands) // 2].name if bands else "")),
        description=str(data.get("description", "")),
    )


def preset_names() -> list[str]:
    """Names of the instrument presets shipped with cenn."""
    folder = DATA / "instruments"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_instrument(name_or_path: str | Path) -> Instrument:
    """Load a shipped preset by name (``"planck_hfi"``) or any instrument TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text = path.read_text()
    elif str(name_or_path) in preset_names():
        text = shipped_text(f"instruments/{name_or_path}.toml")
    else:
        raise FileNotFoundError(
            f"no instrument {str(name_or_path)!r}: give a preset name ({', '.join(preset_names())}) "
            "or the path of an instrument .toml file"
        )
    return instrument_from_dict(tomllib.loads(text), where=str(name_or_path))
