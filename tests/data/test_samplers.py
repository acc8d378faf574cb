"""Training sample orders: complete, reproducible per epoch, split between ranks, chunk-local."""

import numpy as np
import pytest

from cenn.data.samplers import ChunkShuffleSampler, ShardSampler, StreamSampler


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_chunk_shuffle_is_a_permutation_that_changes_with_the_epoch_only():
    s = ChunkShuffleSampler(100, chunk_size=16, window=2, seed=3)
    first = _epoch(s, 0)
    assert sorted(first) == list(range(100))
    assert _epoch(s, 0) == first
    assert _epoch(s, 1) != first
    assert _epoch(ChunkShuffleSampler(100, 16, 2, seed=4), 0) != first


def test_chunk_shuffle_windows_touch_only_their_chunks():
    s = ChunkShuffleSampler(128, chunk_size=16, window=2, seed=0)
    order = np.array(_epoch(s, 5))
    for w in range(0, 128, 32):
        assert len(set(order[w:w + 32] // 16)) == 2
    assert not np.array_equal(order[:32] % 16, np.arange(32) % 16)  # shuffled inside windows


def test_ranks_get_disjoint_equal_shares():
    shares = [_epoch(ChunkShuffleSampler(101, 16, 2, seed=1, rank=r, world_size=2), 3) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 50
    assert not set(shares[0]) & set(shares[1])
    val = [list(ShardSampler(7, r, 2)) for r in range(2)]
    assert val == [[0, 2, 4, 6], [1, 3, 5]]


def test_stream_keys_never_repeat_across_ranks_and_epochs():
    keys = [k for epoch in range(3) for r in range(2)
            for k in _epoch(StreamSampler(4, rank=r, world_size=2), epoch)]
    assert len(keys) == len(set(keys)) == 24 and sorted(keys) == list(range(24))


def test_impossible_splits_are_refused():
    with pytest.raises(ValueError, match="rank 2"):
        ChunkShuffleSampler(10, 4, 1, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="samples_per_epoch"):
        StreamSampler(0)
