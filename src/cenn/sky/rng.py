"""Reproducible random draws: every sample is a pure function of (dataset seed, sample index,
region).

Each component draws from its own named stream, so adding or switching off a component never
changes the others' draws, and any sample can be regenerated alone. The region (where patches are
drawn: latitude band, strata, sky split) is part of every stream's key, so datasets with the same
seed in different regions have independent skies (CMB, noise, every foreground) rather than the same
maps at other positions; the whole sky (no region key) keeps the draws of cenn before the key existed.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import numpy as np
import torch


def stream_seed(seed: int, index: int, stream: str, region: int | None = None) -> int:
    """A 63-bit seed for (dataset seed, sample index, stream name, region key), via NumPy's
    SeedSequence; ``region`` is None for the whole sky or a key from :func:`region_key`."""
    entropy = [int(seed), int(index), zlib.crc32(stream.encode())]
    if region is not None:
        entropy.append(int(region))
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def region_key(description: str) -> int:
    """The random key of a region from its canonical text: 64 bits of its SHA-256 with the top bit
    set, so that it never ends the seed's entropy with zero words (SeedSequence pads with zeros, and
    a zero key would give the whole sky's draws)."""
    digest = hashlib.sha256(description.encode()).digest()
    return int.from_bytes(digest[:8], "little") | (1 << 63)


class SampleRandom:
    """Random draws for a batch of samples, one independent generator per sample and stream.

    Args:
        seed: dataset seed.
        indices: sample indices of the batch.
        device: where the draws are made (CPU and CUDA give different but equally valid streams).
        region: the region's key (:func:`region_key`), None for the whole sky.
    """

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device | str = "cpu",
                 region: int | None = None):
        self.seed = int(seed)
        self.region = region
        self.indices = [int(i) for i in indices]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.indices)

    def generators(self, stream: str) -> list[torch.Generator]:
        """One freshly seeded generator per sample for ``stream``."""
        gens = []
        for i in self.indices:
            g = torch.Generator(device=self.device)
            g.manual_seed(stream_seed(self.seed, i, stream, self.region))
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
        return [np.random.default_rng(stream_seed(self.seed, i, stream, self.region)) for i in self.indices]
