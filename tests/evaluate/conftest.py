"""Small seeded dataset stores for the evaluation tests (64×64 patches, |b| > 30°, components
stored)."""

import pytest

from cenn.data.simulate import simulate
from cenn.sky.components import COMPONENTS
from cenn.sky.noise import NoiseConfig
from cenn.sky.simulator import GeometryConfig, InstrumentConfig, RegionConfig, SimulationConfig

N = 16


def _config(noise_scale: float, components: tuple[str, ...] = ("cmb",), seed: int = 5) -> SimulationConfig:
    return SimulationConfig(
        seed=seed, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16),
        instrument=InstrumentConfig(noise_scale=noise_scale), region=RegionConfig(30.0, 90.0),
        components={name: {"enabled": name in components} for name in COMPONENTS},
        noise=NoiseConfig(model="white"))  # one σ per band, so metrics have exact expectations


@pytest.fixture(scope="package")
def stores(tmp_path_factory):
    """``clean``: CMB only, no noise; ``noisy``: CMB and noise; ``sky``: CMB, dust, radio and IR
    galaxies and noise. N patches each."""
    root = tmp_path_factory.mktemp("stores")
    configs = {
        "clean": _config(0.0),
        "noisy": _config(1.0),
        "sky": _config(1.0, ("cmb", "dust", "radio", "infrared_galaxies"), seed=9),
    }
    return {name: simulate(root / f"{name}.zarr", N, config, chunk_size=8, with_components=True,
                           progress=False).path
            for name, config in configs.items()}
