"""The CMB a separator responds to, measured by injection: a second, independent CMB realisation is
added to every patch's bands (at each band's beam, cut from a padded grid exactly as the stored
CMB was) and the change of the output is cross-correlated with it.

The transfer function from the cross-spectrum with the stored CMB, ⟨C_ℓ(out × cmb)⟩ / ⟨C_ℓ(cmb)⟩,
carries the chance correlation of the residual with the CMB: its expectation is zero but its
scatter, ≈ √(C_ℓ^res / (C_ℓ^cmb N_modes)), is a few per cent at ℓ ≳ 2000 over a few hundred patches
whenever the residual (noise included) exceeds the CMB. The response to an injected CMB,
⟨C_ℓ((out(x + s) − out(x)) × s)⟩ / ⟨C_ℓ(s)⟩, has no such term: it is exactly 1 for a method whose
output moves by any added CMB (signal-preserving), and it measures how much of a CMB any other
method keeps.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from cenn.sky.simulator import PatchBatch, PatchSimulator, SimulationConfig


def injection_simulator(meta: dict[str, Any], seed: int, device: torch.device) -> PatchSimulator | None:
    """A simulator of the store's CMB alone (same geometry, instrument beams and CMB settings, no
    other component, no noise) drawing from ``seed``; None when the store does not record how it
    was simulated. ``seed`` must differ from the store's (the injected CMB would be its own)."""
    if "config" not in meta or "cmb" not in meta["config"].get("components", {}):
        return None
    data = copy.deepcopy(meta["config"])
    if data.get("seed") == seed:
        raise ValueError(f"the injection seed {seed} is the store's own seed: the injected CMB would be the "
                         "stored one; set evaluation.injection_seed to another value")
    data["seed"] = seed
    data["instrument"]["noise_scale"] = 0.0
    for name, params in data["components"].items():
        params["enabled"] = name == "cmb"
    return PatchSimulator(SimulationConfig.from_stored(data), device=device)


def injected_cmb(simulator: PatchSimulator, rows: slice) -> PatchBatch:
    """The injected CMB of patches ``rows``: ``inputs`` in every band at its beam, ``target`` at the
    target band's beam, µK_CMB."""
    return simulator.simulate(range(rows.start, rows.stop))
