"""Nominal foreground SEDs per band, for methods that model how the foregrounds scale with frequency.

The CMB-free needlet ILC (:mod:`cenn.model.difference_ilc`) predicts the reference band's
foregrounds from band differences, which hold no CMB; with three bands that needs the foregrounds'
frequency scaling, which the differences alone cannot give (a component whose SED is shifted by a
constant looks the same in every difference). It takes it from here: thermal dust, a modified
blackbody at the nominal β and T of ``dust.toml``, and CO, the lines at the nominal ratios of
``co.toml`` converted with each band's factor. Dust is in µK_CMB per µK_CMB of dust in the
reference band; CO, which may be absent from the reference band, per µK_CMB in its brightest band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace

import torch

from cenn.sky import units
from cenn.sky.components.co import CO
from cenn.sky.components.dust import Dust
from cenn.sky.components.sources.radio import Radio
from cenn.sky.instrument import Band, load_instrument

#: The modelled foregrounds, in the order of the SED columns.
FOREGROUNDS = ("dust", "co")
#: Frequencies (GHz) closer than this to a preset band of the same name are taken to be that band.
SAME_BAND_GHZ = 1.0


def bands_for(frequencies_ghz: Sequence[float], band_names: Sequence[str],
              preset: str = "planck_hfi") -> list[Band]:
    """The bands of ``preset`` with these names and frequencies (band-averaged unit conversions and
    CO factors), else monochromatic bands at those frequencies."""
    known = {b.name: b for b in load_instrument(preset).bands}
    bands = []
    for name, nu in zip(band_names, frequencies_ghz, strict=True):
        band = known.get(str(name))
        if band is None or abs(band.frequency_ghz - float(nu)) > SAME_BAND_GHZ:
            band = Band(name=str(name), frequency_ghz=float(nu), beam_fwhm_arcmin=0.0, noise_uk_deg=0.0,
                        mjysr_per_kcmb=float(units.dbdt_mjysr_per_k(float(nu))), tsz_kcmb_per_y=0.0)
        bands.append(band)
    return bands


def nominal_seds(frequencies_ghz: Sequence[float], band_names: Sequence[str], reference: int) -> torch.Tensor:
    """``(C, 2)`` float64: every band's dust (per µK_CMB of dust in band ``reference``) and CO (per
    µK_CMB of CO in its brightest band), :data:`FOREGROUNDS` in order; CO all 0 when no band holds
    a line."""
    bands = bands_for(frequencies_ghz, band_names)
    instrument = SimpleNamespace(bands=bands)
    dust, co = Dust(), CO()
    beta = torch.tensor(dust.beta, dtype=torch.float64)
    temperature = torch.tensor(dust.temperature_k, dtype=torch.float64)
    dust_sed = dust.sed_kcmb(instrument, beta, temperature).flatten()
    ratios = torch.tensor([1.0, co.ratio_21, co.ratio_32], dtype=torch.float64)
    co_sed = co.conversion_table(instrument) @ ratios
    co_sed = co_sed / co_sed.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    return torch.stack([dust_sed / dust_sed[reference], co_sed], dim=1)


def compact_source_seds(frequencies_ghz: Sequence[float], band_names: Sequence[str],
                        reference: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For :mod:`cenn.model.compact_sources`: ``(C, 2 + K)`` float64, every band's radio source at the
    radio counts' mean spectral indices (``radio.toml``: S ∝ ν^α piecewise between 143, 217 and
    353 GHz) and thermal dust, each per µK_CMB in band ``reference``, then ln S_j − ln S_ref per
    unit of each of the K indices; and the indices' covariance ``(K, K)``."""
    bands = bands_for(frequencies_ghz, band_names)
    radio = Radio()
    mean_indices, covariance = radio.index_moments()
    nu = [b.frequency_ghz for b in bands]
    shifts = radio.log_sed_matrix(nu) - radio.log_sed_matrix(nu[reference])
    per_kcmb = torch.tensor([math.exp(f) / b.mjysr_per_kcmb for f, b in zip(shifts @ mean_indices, bands,
                                                                              strict=True)],
                            dtype=torch.float64)
    dust = nominal_seds(frequencies_ghz, band_names, reference)[:, 0]
    table = torch.cat([torch.stack([per_kcmb / per_kcmb[reference], dust], dim=1),
                       torch.as_tensor(shifts, dtype=torch.float64)], dim=1)
    return table, torch.as_tensor(covariance, dtype=torch.float64)
