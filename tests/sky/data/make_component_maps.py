"""Write ``component_maps.npz`` beside this script: the maps (µK_CMB, float32, ``(3, 48, 48)``) of the
Galactic components dust, co, free_free and synchrotron with their shipped defaults, for one patch
(batch size 1) centred at (l, b) = (20°, 3°), sample 5 of seed 3, Planck HFI bands, on a 48-pixel
grid of 90″ pixels (40 pixels and a 4-pixel margin), torch on one thread.

``tests/sky/test_component_bytes.py`` compares the components with these maps and pins their
SHA-256. Run this (``python tests/sky/data/make_component_maps.py``) only for a deliberate change
of a component's sky, then update the checksums in that test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cenn.sky.components import COMPONENTS, SkyContext
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument
from cenn.sky.rng import SampleRandom

NAMES = ("dust", "co", "free_free", "synchrotron")
FIXTURE = Path(__file__).with_name("component_maps.npz")


def context() -> SkyContext:
    """The one-patch context of the fixture."""
    lon = torch.tensor([20.0], dtype=torch.float64)
    lat = torch.tensor([3.0], dtype=torch.float64)
    grid = PatchGeometry(40, 90.0).padded(4)
    return SkyContext(grid, load_instrument("planck_hfi"), lon, lat, SampleRandom(3, [5]))


def component_maps(name: str) -> torch.Tensor:
    """The map of component ``name`` (shipped defaults) for :func:`context`, ``(3, 48, 48)``."""
    return COMPONENTS[name]().sky(context())[0]


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        maps = {name: component_maps(name).numpy() for name in NAMES}
    finally:
        torch.set_num_threads(threads)
    np.savez(FIXTURE, **maps)
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
