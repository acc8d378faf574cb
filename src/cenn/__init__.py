"""cenn: CMB extraction from multi-frequency sky patches with a fully convolutional network."""

__version__ = "0.1.0"

from cenn.data.dataset import PatchDataset
from cenn.data.simulate import simulate
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument, load_instrument
from cenn.sky.simulator import PatchSimulator, SimulationConfig

__all__ = [
    "Instrument",
    "PatchDataset",
    "PatchGeometry",
    "PatchSimulator",
    "SimulationConfig",
    "__version__",
    "load_instrument",
    "simulate",
]
