"""A torch ``Dataset`` over a dataset store written by ``cenn simulate``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from cenn.data.store import DatasetStore, StoreError


class PatchDataset(Dataset):
    """Patches of a dataset store as dicts of tensors.

    Each item: ``inputs (n_bands, H, W)``, ``target (1, H, W)`` float32 µK_CMB; ``lon``, ``lat``
    (degrees); ``index``; and ``components`` ``{name: (n_bands, H, W)}`` when asked for.

    Args:
        path: the store.
        components: also return the per-component maps (the store must hold them).
        allow_incomplete: read a store whose simulation has not finished (unwritten patches
            are NaN).
    """

    def __init__(self, path: Path | str, components: bool = False, allow_incomplete: bool = False):
        self.path = Path(path)
        self.store = DatasetStore.open(self.path)
        if not self.store.complete and not allow_incomplete:
            raise StoreError(
                f"{self.path} is incomplete (its simulation was interrupted): rerun the same "
                "`cenn simulate` command to finish it, or pass allow_incomplete=True"
            )
        self.component_names: list[str] = list(self.store.meta["components"]) if components else []
        if components and not self.component_names:
            raise StoreError(f"{self.path} holds no component maps: simulate it with --components")
        self.meta = self.store.meta

    def __len__(self) -> int:
        return self.store.n_patches

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"patch {i} out of range for {len(self)} patches")
        i = i % len(self)
        item = {
            "inputs": torch.from_numpy(self.store.array("inputs")[i]),
            "target": torch.from_numpy(self.store.array("target")[i]),
            "lon": float(self.store.array("lon")[i]),
            "lat": float(self.store.array("lat")[i]),
            "index": i,
        }
        if self.component_names:
            item["components"] = {
                n: torch.from_numpy(self.store.array(f"components/{n}")[i])
                for n in self.component_names
            }
        return item
