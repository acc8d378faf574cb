"""Point-source populations: sampling fluxes from tabulated counts and painting them on patches.

Sources are painted as flux in single pixels of the unbeamed generation grid; the simulator's
beam convolution then spreads them, conserving flux: Σ_pixels ΔT Ω_pix U_ν = S.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument


@dataclass(frozen=True)
class SourceCatalogue:
    """The point sources of one batch (torch tensors on the batch's device).

    Attributes:
        sample: (N,) long, which patch of the batch each source lies in.
        row, col: (N,) long pixel indices on the padded generation grid.
        flux_jy: (N, n_bands) float64, flux in every band of the instrument, Jy.
        flux_ref_jy: (N,) float64, flux at the frequency where the flux range applies, Jy.
        alpha: (N,) float64 spectral index (S ∝ ν^α), or (N, n_segments) one per segment of a
            broken power law.
        flux_counts_jy: (N,) float64, flux at the counts table's frequency where that is not the
            flux range's (radio), Jy; None otherwise.
    """

    sample: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    flux_jy: torch.Tensor
    flux_ref_jy: torch.Tensor
    alpha: torch.Tensor
    flux_counts_jy: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, device: torch.device, sample: np.ndarray, row: np.ndarray, col: np.ndarray,
                    **floats: np.ndarray) -> SourceCatalogue:
        """From NumPy arrays: indices as int64 and ``floats`` (the other attributes by name) as
        float64, on ``device``."""
        longs = {k: torch.from_numpy(v.astype(np.int64)).to(device)
                 for k, v in (("sample", sample), ("row", row), ("col", col))}
        return cls(**longs, **{k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).to(device)
                               for k, v in floats.items()})

    def __len__(self) -> int:
        return int(self.sample.shape[0])


@dataclass(frozen=True)
class SourceCounts:
    """Differential counts dN/dS (sources Jy⁻¹ sr⁻¹) tabulated at fluxes S (Jy), interpolated
    log-log."""

    flux_jy: np.ndarray
    dnds: np.ndarray

    def __post_init__(self) -> None:
        if np.any(np.diff(self.flux_jy) <= 0) or np.any(self.dnds <= 0):
            raise ValueError("counts need strictly increasing fluxes and positive dN/dS")

    @classmethod
    def from_csv(cls, path: Path | str, flux_column: int = 0, dnds_column: int = 1) -> SourceCounts:
        """Read a CSV (``#`` comments) with S in Jy and dN/dS in Jy⁻¹ sr⁻¹."""
        data = np.loadtxt(path, delimiter=",", comments="#")
        return cls(data[:, flux_column].copy(), data[:, dnds_column].copy())

    def _grid(self, s_min: float, s_max: float, n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        s = np.geomspace(s_min, s_max, n)
        logd = np.interp(np.log(s), np.log(self.flux_jy), np.log(self.dnds))
        return s, np.exp(logd)

    def _integral(self, s_min: float, s_max: float, power: int) -> float:
        s, d = self._grid(s_min, s_max)
        return float(np.trapezoid(s**power * d * s, np.log(s)))

    def number_per_sr(self, s_min: float, s_max: float = np.inf) -> float:
        """N(s_min < S < s_max) per steradian."""
        return self._integral(s_min, min(s_max, self.flux_jy[-1]), 0)

    def poisson_cl(self, s_min: float, s_max: float) -> float:
        """Shot-noise C_ℓ = ∫ S² dN/dS dS in Jy² sr⁻¹ for s_min < S < s_max."""
        return self._integral(max(s_min, self.flux_jy[0]), min(s_max, self.flux_jy[-1]), 2)

    def sample(
        self, rng: np.random.Generator, area_sr: float, s_min: float, s_max: float
    ) -> np.ndarray:
        """Poisson-many fluxes (Jy) in an area, drawn from the counts between s_min and s_max."""
        s, d = self._grid(s_min, min(s_max, self.flux_jy[-1]))
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] * s[1:] + d[:-1] * s[:-1])
                                                * np.diff(np.log(s)))])
        count = rng.poisson(cdf[-1] * area_sr)
        u = rng.random(count) * cdf[-1]
        return np.exp(np.interp(u, cdf, np.log(s)))


def uniform_positions(
    rng: np.random.Generator, count: int, geometry: PatchGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random (row, col) pixel indices on the grid."""
    return rng.integers(0, geometry.npix, count), rng.integers(0, geometry.npix, count)


def paint(
    sample: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    flux_jy: torch.Tensor,
    batch: int,
    instrument: Instrument,
    geometry: PatchGeometry,
) -> torch.Tensor:
    """Paint sources as single-pixel deltas, converted from Jy to µK_CMB per pixel.

    Args:
        sample: (N,) long, which patch of the batch each source lies in.
        row, col: (N,) long pixel indices on ``geometry``.
        flux_jy: (N, n_bands) flux of each source in each band, Jy.
        batch: number of patches.
    Returns:
        ``(batch, n_bands, npix, npix)`` float32 maps in µK_CMB, before the beam.
    """
    n_bands, n = instrument.n_bands, geometry.npix
    device = flux_jy.device
    jy_to_uk = torch.tensor(
        [1.0 / (geometry.pixel_area_sr * u) for u in instrument.mjysr_per_kcmb()],
        dtype=torch.float64, device=device,
    )  # Jy -> MJy/sr is 1e-6, K -> µK is 1e6: they cancel
    out = torch.zeros(batch, n_bands, n, n, dtype=torch.float32, device=device)
    pixel = (row.to(device) * n + col.to(device))[:, None]
    plane = sample.to(device)[:, None] * n_bands + torch.arange(n_bands, device=device)[None, :]
    values = (flux_jy.to(torch.float64) * jy_to_uk).to(torch.float32)
    out.view(-1).index_add_(0, (plane * n * n + pixel).flatten(), values.flatten())
    return out
