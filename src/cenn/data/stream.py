"""Fresh simulated patches for training: every step sees patches never seen before.

Batch ``key`` holds the samples ``key · batch_size … (key + 1) · batch_size − 1`` of the
simulation's seed, so a key names its patches for good (a resumed run regenerates them
exactly) and :class:`cenn.data.samplers.StreamSampler` hands every rank and epoch its own keys.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from cenn.data.stokes import batch_maps, check_stokes, maps_per_band
from cenn.sky.simulator import PatchSimulator, SimulationConfig


class SimulatedBatches(Dataset):
    """Map-style dataset of whole batches, simulated on demand (use ``batch_size=None`` in the
    DataLoader). Item ``key``: ``inputs (B, C, H, W)``, ``target (B, 1, H, W)``, ``noise_sigma (B, C,
    H, W)`` µK_CMB and ``indices (B,)``; with ``simulate=False`` only ``indices``, for simulating on
    the GPU in the training step. With ``stokes = "QU"`` (a simulation of ``stokes = "IQU"``) the
    maps are a polarization network's (:func:`cenn.data.stokes.batch_maps`): ``inputs (B, 2C, H,
    W)`` the bands' Q then U, ``target (B, 2, H, W)``, ``noise_sigma (B, 2C, H, W)``.

    The simulator is built lazily in each DataLoader worker (``torch.set_num_threads(1)`` there,
    so workers don't oversubscribe the cores).
    """

    def __init__(self, config: SimulationConfig, batch_size: int, simulate: bool = True, stokes: str = "I"):
        if maps_per_band(check_stokes(stokes, "stokes")) == 2 and config.stokes != "IQU":
            raise ValueError("Q/U batches need a simulation with Q and U: set stokes = \"IQU\" in it")
        self.config, self.batch_size, self.simulate, self.stokes = config, batch_size, simulate, stokes
        self._simulator: PatchSimulator | None = None

    def __len__(self) -> int:
        return 2**62 // self.batch_size  # keys are unbounded; samplers choose them

    def indices(self, key: int) -> torch.Tensor:
        start = int(key) * self.batch_size
        return torch.arange(start, start + self.batch_size, dtype=torch.int64)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        indices = self.indices(key)
        if not self.simulate:
            return {"indices": indices}
        if self._simulator is None:
            if torch.utils.data.get_worker_info() is not None:
                torch.set_num_threads(1)
            self._simulator = PatchSimulator(self.config, "cpu")
        batch = self._simulator.simulate(indices.tolist())
        return {**batch_maps(batch, self.stokes), "indices": indices}
