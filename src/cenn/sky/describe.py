"""`cenn simulate --describe`: each component's mean D_ℓ per band and latitude region, measured
from simulated patches on the sky (before the beam), beside the literature values."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from cenn.sky.flat.spectra import Binning, power_spectrum
from cenn.sky.shipped import shipped_toml
from cenn.sky.simulator import LATITUDE_BANDS, PatchSimulator, RegionConfig, SimulationConfig

DESCRIBE_ELLS = (100, 1000, 3000)
HALF_WIDTH = 25  # bins [ℓ − 25, ℓ + 25)


def reference_spectra() -> dict[str, dict[str, Any]]:
    """Literature D_ℓ (µK²) from ``data/reference_spectra.toml``:
    ``{component: {"region": latitude region they describe, "bands": {band: {ℓ: D_ℓ}}}}``."""
    out = {}
    for comp, table in shipped_toml("reference_spectra.toml").items():
        region = table.pop("region", "all")
        bands = {band: {int(ell): float(v) for ell, v in vals.items()} for band, vals in table.items()}
        out[comp] = {"region": region, "bands": bands}
    return out


def measure_spectra(
    config: SimulationConfig,
    regions: tuple[str, ...] = ("all", "inner", "intermediate", "high"),
    n_patches: int = 64,
    batch_size: int = 32,
    device: str = "cpu",
) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
    """Mean D_ℓ (µK²) at :data:`DESCRIBE_ELLS`: ``[region][component][band][ℓ]``.

    Components are measured alone on the sky (no beam); ``noise`` is the instrument noise.
    """
    edges = []
    for ell in DESCRIBE_ELLS:
        edges += [ell - HALF_WIDTH, ell + HALF_WIDTH]
    binning = Binning(tuple(float(e) for e in edges))
    keep = list(range(0, binning.n_bins, 2))
    ells = np.array(DESCRIBE_ELLS, dtype=float)
    out: dict = {}
    for k, region in enumerate(regions):
        lat_min, lat_max = LATITUDE_BANDS[region]
        cfg = dataclasses.replace(config, seed=config.seed + k,
                                  region=RegionConfig(lat_min, lat_max))
        sim = PatchSimulator(cfg, device)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, n_patches, batch_size):
            idx = range(start, min(start + batch_size, n_patches))
            batch = sim.simulate(idx, with_components=True, beam_components=False)
            for name, maps in batch.components.items():
                cl = power_spectrum(maps, sim.geometry, binning)[..., keep].sum(0)
                sums[name] = sums.get(name, 0) + cl
        bands = sim.instrument.band_names
        out[region] = {
            name: {band: dict(zip(DESCRIBE_ELLS, (ells * (ells + 1) / (2 * np.pi)
                                                  * (s[i].cpu().numpy() / n_patches)).tolist(),
                                  strict=True))
                   for i, band in enumerate(bands)}
            for name, s in sums.items()
        }
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def describe_table(measured: dict, reference: dict | None = None) -> str:
    """Markdown table: one row per (component, band, region) with the measured D_ℓ, and the
    reference D_ℓ beside them."""
    reference = reference_spectra() if reference is None else reference
    regions = list(measured)
    head = ["component", "band", "region"] + [f"ℓ={ell}" for ell in DESCRIBE_ELLS] + [
        f"ref ℓ={ell}" for ell in DESCRIBE_ELLS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    components = list(measured[regions[0]])
    for comp in components:
        for band in measured[regions[0]][comp]:
            entry = reference.get(comp, {"region": regions[0], "bands": {}})
            ref = entry["bands"].get(band, {})
            for region in regions:
                vals = measured[region][comp][band]
                cells = [comp, band, region] + [_fmt(vals[ell]) for ell in DESCRIBE_ELLS]
                cells += [_fmt(ref.get(ell)) if region == entry["region"] else "" for ell in DESCRIBE_ELLS]
                lines.append("| " + " | ".join(cells) + " |")
    for comp in sorted(set(reference) - set(components)):
        for band, vals in reference[comp]["bands"].items():
            cells = [f"({comp})", band, ""] + ["" for _ in DESCRIBE_ELLS]
            cells += [_fmt(vals.get(ell)) for ell in DESCRIBE_ELLS]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("D_ℓ in µK²_CMB, mean over patches, each component alone on the sky (before the "
                 "beam), patch mean removed. Reference: physics-reference.md §8, beside the region "
                 "it describes (dust: Planck 2018 plik prior, ~50 % sky, so |b| > 30°; others: sky "
                 "averages); rows in parentheses have no single cenn component.")
    return "\n".join(lines)
