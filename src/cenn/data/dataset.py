"""A torch ``Dataset`` over a dataset store written by ``cenn simulate``."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cenn.data.stokes import check_stokes, maps_per_band, qu_channels, qu_noise_sigma
from cenn.data.store import DatasetStore, StoreError, open_finished


class PatchDataset(Dataset):
    """Patches of a dataset store as dicts of tensors.

    Each item: ``inputs (n_bands, H, W)``, ``target (1, H, W)`` and ``noise_sigma (n_bands, H, W)``
    float32 µK_CMB; ``lon``, ``lat`` (degrees); ``index``; and ``components`` ``{name: (n_bands, H,
    W)}`` when asked for. A store of an earlier cenn, without ``noise_sigma``, gives each band's
    nominal level everywhere (:meth:`DatasetStore.noise_sigma`).

    With ``stokes = "QU"`` (a store simulated with ``--stokes IQU``) the items are those of a
    polarization network (:mod:`cenn.data.stokes`): ``inputs (2 n_bands, H, W)`` the bands' Q then
    U, ``target (2, H, W)`` the CMB's Q and U, ``noise_sigma (2 n_bands, H, W)`` √2 × the
    temperature σ.

    Args:
        path: the store, or the store already opened (and checked) by the caller.
        components: also return the per-component maps (the store must hold them).
        allow_incomplete: read a store whose simulation has not finished (unwritten patches
            are NaN).
        cache_chunks: keep this many whole stored chunks in memory (least recently used
            dropped) and serve patches from them: a stored chunk is read from disk at once, so
            reading patch by patch without a cache reads each chunk ``chunk_size`` times. Use
            with :class:`cenn.data.samplers.ChunkShuffleSampler`. 0: no cache.
        stokes: ``"I"`` (temperature) or ``"QU"`` (Q and U; the store must hold them).

    A stored chunk that no longer decodes raises StoreError naming it (:meth:`DatasetStore.read`).
    """

    def __init__(self, path: Path | str | DatasetStore, components: bool = False,
                 allow_incomplete: bool = False, cache_chunks: int = 0, stokes: str = "I"):
        if isinstance(path, DatasetStore):
            self.store = path
        else:
            self.store = DatasetStore.open(path) if allow_incomplete else open_finished(path)
        self.path = self.store.path
        self.component_names: list[str] = list(self.store.meta["components"]) if components else []
        if components and not self.component_names:
            raise StoreError(f"{self.path} holds no component maps: simulate it with --components")
        self.stokes = check_stokes(stokes, "stokes")
        self.polarized = maps_per_band(stokes) == 2
        if self.polarized and self.store.stokes != "IQU":
            raise StoreError(f"{self.path} holds temperature only, so it cannot serve Q and U: simulate it "
                             "with cenn simulate --stokes IQU")
        if self.polarized and components:
            raise StoreError("a store holds component maps of the temperature only: drop components for "
                             "Q and U")
        self.meta = self.store.meta
        self.cache_chunks = cache_chunks
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return self.store.n_patches

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"patch {i} out of range for {len(self)} patches")
        i = i % len(self)
        sigma = ["noise_sigma"] if self.store.has_noise_sigma else []
        maps = ["polarization", "target_polarization"] if self.polarized else ["inputs", "target"]
        names = [*maps, *sigma, "lon", "lat"] + [f"components/{n}" for n in self.component_names]
        row = self._read(i, names)
        inputs, target = (row[n] for n in maps)
        noise = row["noise_sigma"] if sigma else self.store.noise_sigma(i)
        if self.polarized:
            inputs, noise = qu_channels(inputs), qu_noise_sigma(noise)
        item = {
            "inputs": torch.from_numpy(inputs),
            "target": torch.from_numpy(target),
            "noise_sigma": torch.from_numpy(noise),
            "lon": float(row["lon"]),
            "lat": float(row["lat"]),
            "index": i,
        }
        if self.component_names:
            item["components"] = {n: torch.from_numpy(row[f"components/{n}"]) for n in self.component_names}
        return item

    def _read(self, i: int, names: list[str]) -> dict[str, np.ndarray]:
        """Row ``i`` of each array ``names``, from the chunk cache when there is one."""
        if not self.cache_chunks:
            return {n: self.store.read(n, i) for n in names}
        chunk, offset = divmod(i, self.store.chunk_size)
        if chunk in self._cache:
            self._cache.move_to_end(chunk)
        else:
            rows = self.store.chunk_range(chunk)
            self._cache[chunk] = {n: self.store.read(n, slice(rows.start, rows.stop)) for n in names}
            while len(self._cache) > self.cache_chunks:
                self._cache.popitem(last=False)
        return {n: self._cache[chunk][n][offset].copy() for n in names}
