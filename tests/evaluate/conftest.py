"""Small seeded dataset stores for the evaluation tests (64×64 patches, |b| > 30°, components
stored), and the figures the evaluation draws, read back as matplotlib objects."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from cenn.data.simulate import simulate
from cenn.evaluate import figures
from cenn.sky.components import COMPONENTS
from cenn.sky.noise import NoiseConfig
from cenn.sky.simulator import GeometryConfig, InstrumentConfig, RegionConfig, SimulationConfig

N = 16


def _config(noise_scale: float, components: tuple[str, ...] = ("cmb",), seed: int = 5,
            stokes: str = "I") -> SimulationConfig:
    return SimulationConfig(stokes=stokes,
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


@pytest.fixture(scope="package")
def polarized_stores(tmp_path_factory):
    """Stores with Q and U (``stokes = "IQU"``), CMB only, N patches each: ``clean`` (no noise) and
    ``noisy`` (white noise), and ``noisy_t``, the temperature-only store of the same seed as
    ``noisy`` (the same temperature bytes)."""
    root = tmp_path_factory.mktemp("polarized")
    configs = {"clean": _config(0.0, seed=6, stokes="IQU"), "noisy": _config(1.0, seed=7, stokes="IQU"),
               "noisy_t": _config(1.0, seed=7)}
    return {name: simulate(root / f"{name}.zarr", N, config, chunk_size=8, progress=False).path
            for name, config in configs.items()}


@contextmanager
def _drawing() -> Iterator[dict[str, Figure]]:
    """Inside: every figure :mod:`cenn.evaluate.figures` saves, by file name, in order. The PNG is
    still written; the closed figure keeps its artists (lines, images, labels) for a test to read."""
    drawn: dict[str, Figure] = {}
    save = figures._save

    def keep(fig: Figure, path: Path | str) -> Path:
        drawn[Path(path).name] = fig
        return save(fig, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "_save", keep)
        yield drawn


@pytest.fixture(scope="session")
def drawing():
    """``with drawing() as drawn:`` collects the figures drawn inside (any fixture scope)."""
    return _drawing


@pytest.fixture
def drawn() -> Iterator[dict[str, Figure]]:
    """The figures this test draws, by file name."""
    with _drawing() as figs:
        yield figs
