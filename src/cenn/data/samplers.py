"""Deterministic, resumable sample orders for training: a pure function of (seed, epoch, rank).

Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed from a checkpoint
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler[int]):
    """Holds the epoch and the (rank, world size) split shared by the samplers below."""

    def __init__(self, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])


class ChunkShuffleSampler(_EpochSampler):
    """Shuffled patch indices of a chunked store, each stored chunk read whole.

    Every epoch the chunks are permuted, grouped into windows of ``window`` chunks, and the
    patches inside each window permuted; the order is truncated to a multiple of the world size
    and rank ``r`` takes every ``world_size``-th index from ``r`` (every rank the same length).

    Args:
        n: patches in the store.
        chunk_size: patches per stored chunk.
        window: chunks shuffled together (memory: ``window`` chunks per reader).
    """

    def __init__(self, n: int, chunk_size: int, window: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        super().__init__(seed, rank, world_size)
        if n < world_size:
            raise ValueError(f"{n} patches cannot be split across {world_size} processes")
        self.n, self.chunk_size, self.window = n, chunk_size, window

    def order(self) -> np.ndarray:
        """This epoch's order over all ranks, ``(n,)`` int64."""
        rng = self._rng()
        chunks = rng.permutation(-(-self.n // self.chunk_size))
        parts = []
        for w in range(0, len(chunks), self.window):
            idx = np.concatenate([np.arange(c * self.chunk_size, min((c + 1) * self.chunk_size, self.n))
                                  for c in chunks[w:w + self.window]])
            parts.append(rng.permutation(idx))
        return np.concatenate(parts)

    def __len__(self) -> int:
        return self.n // self.world_size

    def __iter__(self) -> Iterator[int]:
        order = self.order()[: len(self) * self.world_size]
        return iter(order[self.rank::self.world_size].tolist())


class ShardSampler(_EpochSampler):
    """Indices ``rank, rank + world_size, …`` of ``range(n)`` in order (validation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        super().__init__(0, rank, world_size)
        self.n = n

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))


class StreamSampler(_EpochSampler):
    """Keys of the streamed batches this rank trains on in this epoch (see
    :class:`cenn.data.stream.SimulatedBatches`): ``batches_per_rank`` keys, rank-interleaved, so
    no two ranks, epochs or steps ever share a sample."""

    def __init__(self, batches_per_rank: int, rank: int = 0, world_size: int = 1):
        super().__init__(0, rank, world_size)
        if batches_per_rank < 1:
            raise ValueError("an epoch needs at least one batch per process: raise "
                             "data.samples_per_epoch or lower the batch size")
        self.batches_per_rank = batches_per_rank

    def __len__(self) -> int:
        return self.batches_per_rank

    def __iter__(self) -> Iterator[int]:
        first = self.epoch * self.batches_per_rank * self.world_size
        return iter(range(first + self.rank, first + self.batches_per_rank * self.world_size,
                          self.world_size))
