"""Reproducible random draws: every sample is a pure function of (dataset seed, sample index).

Each component draws from its own named stream, so adding or switching off a component never
changes the others' draws, and any sample can be regenerated alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch


def stream_seed(seed: int, index: int, stream: str) -> int:
    """A 63-bit seed for (dataset seed, sample index, stream name), via NumPy's SeedSequence."""
    key = zlib.crc32(stream.encode())
    state = np.random.SeedSequence([int(seed), int(index), key]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class SampleRandom:
    """Random draws for a batch of samples, one independent generator per sample and stream.

    Args:
        seed: dataset seed.
        indices: sample indices of the batch.
        device: where the draws are made (CPU and CUDA give different but equally valid streams).
    """

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device | str = "cpu"):
        self.seed = int(seed)
        self.indices = [int(i) for i in indices]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.indices)

    def generators(self, stream: str) -> list[torch.Generator]:
        """One freshly seeded generator per sample for ``stream``."""
        gens = []
        for i in self.indices:
            g = torch.Generator(device=self.device)
            g.manual_seed(stream_seed(self.seed, i, stream))
            gens.append(g)
        return gens

    def normal(self, stream: str, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
        """Standard normal draws, shape ``(batch, *shape)``."""
        return self._draw(torch.randn, stream, shape, dtype)

    def uniform(self, stream: str, shape: Sequence[int], dtype=torch.float64) -> torch.Tensor:
        """Uniform draws on [0, 1), shape ``(batch, *shape)``."""
        return self._draw(torch.rand, stream, shape, dtype)

    def _draw(self, fill, stream: str, shape: Sequence[int], dtype) -> torch.Tensor:
        """One ``fill`` (torch.randn or torch.rand) per sample, written in place into the
        ``(batch, *shape)`` result, so no per-sample copies are made."""
        out = torch.empty((len(self), *shape), device=self.device, dtype=dtype)
        for row, g in zip(out, self.generators(stream), strict=True):
            fill(tuple(shape), generator=g, device=self.device, dtype=dtype, out=row)
        return out

    def numpy(self, stream: str) -> list[np.random.Generator]:
        """One NumPy generator per sample, for draws of variable length (e.g. source lists)."""
        return [np.random.default_rng(stream_seed(self.seed, i, stream)) for i in self.indices]
