"""Tables of the expected number of galaxy clusters per steradian in bins of redshift and mass
(the tSZ component's population), as written by ``scripts/make_tsz_counts.py``: CSV with the
cosmology and background in a JSON comment line."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cenn.sky.components.tsz.cosmology import Background
from cenn.sky.shipped import is_shipped, shipped_text

SHIPPED_TABLE = "tsz_halo_counts.csv"
"""The shipped table (Tinker+2008, Δ = 500 ρ_c, Planck 2018), in ``cenn/sky/data``."""


@dataclass(frozen=True)
class HaloCounts:
    """Expected halos per sr in bins: ``counts[i, j]`` for z in [z_edges[i], z_edges[i+1]) and
    log10 M500/M☉ in [log10m_edges[j], log10m_edges[j+1]).

    ``meta`` holds the header's JSON (cosmology, background, mass function).
    """

    z_edges: np.ndarray
    log10m_edges: np.ndarray
    counts: np.ndarray
    meta: dict

    @classmethod
    def read(cls, path: Path | str = SHIPPED_TABLE) -> HaloCounts:
        """Read a table written by ``scripts/make_tsz_counts.py``: a file, or the name of a table
        shipped in ``cenn/sky/data`` (default: the shipped one)."""
        return _read_counts(str(path))

    @classmethod
    def _parse(cls, path: str) -> HaloCounts:
        use_shipped = is_shipped(path) and not Path(path).is_file()
        text = shipped_text(path) if use_shipped else Path(path).read_text()
        meta = {}
        for line in text.splitlines():
            if line.startswith("# meta: "):
                meta = json.loads(line.removeprefix("# meta: "))
        data = np.loadtxt(text.splitlines(), delimiter=",", comments="#", ndmin=2)
        z_edges = np.append(data[:, 0], data[-1, 1])
        return cls(z_edges, np.asarray(meta["log10m_edges"], dtype=np.float64),
                   data[:, 2:].copy(), meta)

    def write(self, path: Path | str, description: str) -> None:
        """Write the table as CSV: one row per z bin (z_lo, z_hi, then halos per sr in each
        log10 M500 bin), with ``description`` and the JSON ``meta`` in the comment header."""
        meta = {**self.meta, "log10m_edges": [round(float(e), 6) for e in self.log10m_edges]}
        names = ",".join(f"n_{lo:.3f}_{hi:.3f}" for lo, hi in
                         zip(self.log10m_edges[:-1], self.log10m_edges[1:], strict=True))
        header = "\n".join([*description.strip().splitlines(), "meta: " + json.dumps(meta),
                             "z_lo,z_hi," + names])
        rows = np.column_stack([self.z_edges[:-1], self.z_edges[1:], self.counts])
        fmt = ["%.6f", "%.6f"] + ["%.5e"] * self.counts.shape[1]
        np.savetxt(path, rows, delimiter=",", fmt=fmt, header=header)

    @property
    def background(self) -> Background:
        """The background cosmology the table was made with."""
        b = self.meta["background"]
        return Background(b["h"], b["omega_m"], b["omega_r"])

    def restricted(self, log10_m_min: float, log10_m_max: float, z_min: float, z_max: float):
        """Per-bin expected counts per sr and the bins' edges clipped to the ranges, taking a
        fraction of a partly covered bin proportional to the covered width (uniform within
        bins). Returns (rates (nz, nm), z_lo, z_hi, m_lo, m_hi) with edges per bin."""
        ze, me = self.z_edges, self.log10m_edges
        if not (ze[0] - 1e-9 <= z_min < z_max <= ze[-1] + 1e-9):
            raise ValueError(f"z range [{z_min}, {z_max}] is outside the table [{ze[0]}, {ze[-1]}]")
        if not (me[0] - 1e-9 <= log10_m_min < log10_m_max <= me[-1] + 1e-9):
            raise ValueError(
                f"log10 M500 range [{log10_m_min}, {log10_m_max}] is outside the table "
                f"[{me[0]}, {me[-1]}]"
            )
        z_lo, z_hi = np.clip(ze[:-1], z_min, z_max), np.clip(ze[1:], z_min, z_max)
        m_lo, m_hi = np.clip(me[:-1], log10_m_min, log10_m_max), np.clip(me[1:], log10_m_min,
                                                                         log10_m_max)
        fz = (z_hi - z_lo) / np.diff(ze)
        fm = (m_hi - m_lo) / np.diff(me)
        return self.counts * fz[:, None] * fm[None, :], z_lo, z_hi, m_lo, m_hi

    def number_per_sr(self, log10_m_min: float, log10_m_max: float, z_min: float,
                      z_max: float) -> float:
        """Expected halos per sr within the ranges."""
        return float(self.restricted(log10_m_min, log10_m_max, z_min, z_max)[0].sum())


@functools.lru_cache(maxsize=4)
def _read_counts(path: str) -> HaloCounts:
    return HaloCounts._parse(path)
