"""The on-disk dataset store: a zarr group that anyone can read without cenn.

Layout::

    inputs              (N, n_bands, H, W) float32, µK_CMB
    target              (N, 1, H, W)       float32, µK_CMB (CMB at the target band's beam)
    lon, lat            (N,)               float64, Galactic degrees
    components/<name>   (N, n_bands, H, W) float32, µK_CMB (optional; they sum to inputs)
    attrs["cenn"]       frequencies, beams, noise, geometry, units, seed, resolved
                        configuration, package version, chunking, completion flag

Patches are written in chunks of ``chunk_size`` along N. A chunk counts as written only once
its marker file ``.cenn-progress/chunk-NNNNNN.done`` exists (created by atomic rename after
all its arrays are stored), so a killed run resumes by redoing unmarked chunks only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from cenn import __version__

UNITS = "uK_CMB"
PROGRESS_DIR = ".cenn-progress"
FORMAT_VERSION = 1


class StoreError(RuntimeError):
    """A dataset store is missing, damaged or does not match what was asked."""


def _marker(path: Path, chunk: int) -> Path:
    return path / PROGRESS_DIR / f"chunk-{chunk:06d}.done"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class DatasetStore:
    """A dataset store on disk; create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path | str, group: zarr.Group):
        self.path = Path(path)
        self.group = group
        self.meta: dict[str, Any] = dict(group.attrs["cenn"])

    # --- creation and opening -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path | str,
        n_patches: int,
        meta: dict[str, Any],
        n_bands: int,
        npix: int,
        component_names: list[str] | None = None,
        chunk_size: int = 64,
        compression: str = "none",
    ) -> DatasetStore:
        """Create an empty store for ``n_patches`` patches; ``meta`` is stored in attrs."""
        if n_patches < 1:
            raise StoreError(f"a dataset needs at least one patch, got {n_patches}")
        if chunk_size < 1:
            raise StoreError(f"chunk_size must be >= 1, got {chunk_size}")
        if compression not in ("none", "zstd"):
            raise StoreError(f"compression must be 'none' or 'zstd', got {compression!r}")
        path = Path(path)
        compressors = ZstdCodec(level=1) if compression == "zstd" else None
        group = zarr.open_group(path, mode="w")
        maps = {"inputs": n_bands, "target": 1}
        for name in component_names or []:
            maps[f"components/{name}"] = n_bands
        for name, channels in maps.items():
            group.create_array(
                name, shape=(n_patches, channels, npix, npix),
                chunks=(chunk_size, channels, npix, npix), dtype="float32",
                compressors=compressors, fill_value=np.nan,
            )
        for name in ("lon", "lat"):
            group.create_array(name, shape=(n_patches,), chunks=(chunk_size,), dtype="float64",
                               fill_value=np.nan)
        full = {
            **meta,
            "format_version": FORMAT_VERSION,
            "cenn_version": __version__,
            "units": UNITS,
            "n_patches": n_patches,
            "chunk_size": chunk_size,
            "components": list(component_names or []),
            "complete": False,
        }
        group.attrs["cenn"] = json.loads(json.dumps(full))
        (path / PROGRESS_DIR).mkdir(exist_ok=True)
        return cls(path, group)

    @classmethod
    def open(cls, path: Path | str, mode: str = "r") -> DatasetStore:
        """Open an existing store (``mode`` "r" or "r+"), checking it is a cenn store."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise StoreError(f"{path} is not a dataset store (no zarr.json): check the path")
        try:
            group = zarr.open_group(path, mode=mode)
            meta = group.attrs["cenn"]
        except KeyError as err:
            raise StoreError(f"{path} is a zarr group but not a cenn dataset (no 'cenn' attrs)") from err
        except Exception as err:
            raise StoreError(f"{path} could not be read as a zarr store: {err}") from err
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{path} has store format {meta.get('format_version')}, this cenn reads "
                f"{FORMAT_VERSION}"
            )
        return cls(path, group)

    @staticmethod
    def remove(path: Path | str) -> None:
        """Delete a store (used for --overwrite)."""
        shutil.rmtree(path)

    # --- chunks -------------------------------------------------------------------------------
    @property
    def n_patches(self) -> int:
        return int(self.meta["n_patches"])

    @property
    def chunk_size(self) -> int:
        return int(self.meta["chunk_size"])

    @property
    def n_chunks(self) -> int:
        return -(-self.n_patches // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        """Patch indices held by ``chunk``."""
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_patches))

    def chunk_done(self, chunk: int) -> bool:
        return _marker(self.path, chunk).exists()

    def pending_chunks(self, shard: int = 0, n_shards: int = 1) -> list[int]:
        """Chunks of this shard (``chunk % n_shards == shard``) not yet marked written."""
        return [k for k in range(shard, self.n_chunks, n_shards) if not self.chunk_done(k)]

    def write_chunk(self, chunk: int, arrays: dict[str, np.ndarray]) -> None:
        """Store every array of one chunk, then mark it written."""
        rows = self.chunk_range(chunk)
        sl = slice(rows.start, rows.stop)
        expected = {"inputs", "target", "lon", "lat"} | {
            f"components/{c}" for c in self.meta["components"]
        }
        if set(arrays) != expected:
            raise StoreError(f"chunk {chunk}: got arrays {sorted(arrays)}, expected {sorted(expected)}")
        for name, values in arrays.items():
            self.group[name][sl] = values
        atomic_write_text(_marker(self.path, chunk), f"{len(rows)}\n")

    def mark_complete_if_done(self) -> bool:
        """Set ``complete = True`` in the attrs once every chunk is marked; returns completion."""
        if self.meta.get("complete"):
            return True
        if any(not self.chunk_done(k) for k in range(self.n_chunks)):
            return False
        self.meta["complete"] = True
        self.group.attrs["cenn"] = self.meta
        return True

    # --- reading ----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    def array(self, name: str) -> zarr.Array:
        return self.group[name]
