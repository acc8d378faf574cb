"""Walker's alias method: draws from a discrete distribution with one uniform deviate each, in
constant time (Vose 1991, IEEE TSE 17, 972)."""

from __future__ import annotations

import numpy as np


def alias_table(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of a discrete distribution: (keep probability, alias) per column."""
    size = prob.size
    scaled = prob * (size / prob.sum())
    keep = np.ones(size)
    alias = np.arange(size)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        keep[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return keep, alias


def draw(table: tuple[np.ndarray, np.ndarray], u: np.ndarray) -> np.ndarray:
    """The outcome of each uniform deviate u ∈ [0, 1) under ``table`` (:func:`alias_table`): its
    integer part (× the number of outcomes) picks a column, its fractional part chooses between the
    column and its alias."""
    keep, alias = table
    scaled = u * keep.size
    col = np.minimum(scaled.astype(np.int64), keep.size - 1)
    return np.where(scaled - col < keep[col], col, alias[col])
