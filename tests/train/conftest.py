"""Shared stores of the training tests: 16 training and 8 validation patches of 64² (seeds 1, 2)."""

import pytest

from cenn.data.simulate import simulate
from cenn.sky.simulator import GeometryConfig, SimulationConfig

GEOMETRY = GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A folder with ``train.zarr`` and ``val.zarr`` (one per test module, which may add files)."""
    root = tmp_path_factory.mktemp("stores")
    for name, n, seed in (("train", 16, 1), ("val", 8, 2)):
        simulate(root / f"{name}.zarr", n, SimulationConfig(seed=seed, geometry=GEOMETRY), chunk_size=8,
                 progress=False)
    return root
