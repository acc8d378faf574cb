"""Shared fixtures: small, seeded configurations so the suite runs in seconds."""

import pytest
import torch

from cenn.sky.simulator import GeometryConfig, SimulationConfig


@pytest.fixture
def small_config() -> SimulationConfig:
    """64×64 patches of 90″ with a 16-pixel margin: the full physics on a small grid."""
    return SimulationConfig(seed=7, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16))


@pytest.fixture
def cmb_only_config() -> SimulationConfig:
    """Default geometry with only the CMB switched on."""
    from cenn.sky.components import COMPONENTS

    comps = {name: {"enabled": name == "cmb"} for name in COMPONENTS}
    return SimulationConfig(seed=3, components=comps)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module that runs networks: two threads on a busy two-core
    machine can make many small convolutions 100× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
