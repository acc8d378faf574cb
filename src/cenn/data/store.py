"""The on-disk dataset store: a zarr group that anyone can read without cenn.

Layout::

    inputs              (N, n_bands, H, W) float32, µK_CMB
    target              (N, 1, H, W)       float32, µK_CMB (CMB at the target band's beam)
    noise_sigma         (N, n_bands, H, W) float32, µK_CMB: the per-pixel standard deviation of
                        the noise in ``inputs`` (stores of cenn before it lack it: see
                        :meth:`DatasetStore.noise_sigma`)
    lon, lat            (N,)               float64, Galactic degrees
    components/<name>   (N, n_bands, H, W) float32, µK_CMB (optional; they sum to inputs)
    splits              (N, 2, n_bands, H, W) float32, µK_CMB (optional, ``cenn simulate --splits
                        2``): two half-mission maps, the same sky with independent noise of σ √2,
                        averaging to inputs (see :meth:`DatasetStore.splits`)
    polarization        (N, 2, n_bands, H, W) float32, µK_CMB (``cenn simulate --stokes IQU``):
                        the observed Stokes Q and U (axis 1: Q, U), beams and noise included
    target_polarization (N, 2, H, W)       float32, µK_CMB (``--stokes IQU``): the CMB's Q and U at
                        the target band's beam. Q/U in the patch frame of
                        :mod:`cenn.sky.flat.spin2` (HEALPix COSMO at the patch centre). A store with
                        them records ``stokes = "IQU"`` in its attrs (:attr:`DatasetStore.stokes`);
                        its ``inputs`` and ``target`` are its temperature, the same bytes as with
                        ``--stokes I``, so every temperature reader reads it unchanged
    polarization_splits (N, 2, 2, n_bands, H, W) float32, µK_CMB (``--stokes IQU --splits 2``): the
                        half-mission maps' Q and U (axes: half, Stokes, band), averaging to
                        ``polarization``
    attrs["cenn"]       frequencies, beams, noise, geometry, units, seed, resolved
                        configuration, package version, chunking, completion flag, and the
                        SHA-256 of each other field (``attrs_sha256``: an edit is refused on open;
                        stores of an earlier cenn lack it and are read unchecked)
    .cenn/              cenn's own files: a zero-size zarr array, so that zarr lists it like the
                        others and never looks inside (zarr warns about any other file or folder
                        beside the arrays); it holds ``simulation.toml`` (the configuration, as a
                        file for ``--config``) and ``progress/`` (chunk markers and shard locks)

Patches are written in chunks of ``chunk_size`` along N. A chunk counts as written only once
its marker file ``.cenn/progress/chunk-NNNNNN.done`` exists (created by atomic rename after
all its arrays are stored), so a killed run resumes by redoing unmarked chunks only. The marker
holds the SHA-256 of each array's little-endian bytes in that chunk (JSON), which
:meth:`DatasetStore.verify` checks; markers written before checksums were recorded hold only
the patch count, and such chunks are checked only to decode.

A store is built in the hidden sibling folder ``.NAME.cenn-creating`` and renamed into place,
so a path holds a whole store or none. One process writes a shard at a time: it holds an
advisory lock (``flock``) on ``.cenn/progress/lock-shard-I-of-N``, which the system releases
when the process ends, however it ends.

Stores written before ``.cenn/`` kept the markers and locks in ``.cenn-progress/`` and
``simulation.toml`` beside the arrays; they are read, verified and resumed where they are.

Checksums are checked by :meth:`DatasetStore.verify` (and so on every ``cenn simulate``
rerun), not on every read, which would add about half to each read. Measured on a 2-core machine
with a 64-patch store of 256×256×3 patches (67 MB, one chunk, from the page cache): reading it all
takes 0.08 s, its SHA-256 0.04 s more (1.5 GB/s on one core), ``verify()`` 0.11 s; reading one
patch takes 0.03 s, as it decodes its whole chunk, and a checksum would again cost 0.04 s more. Reads
do catch chunks that no longer decode (truncated or garbled files) and chunks marked written whose
file is gone (which zarr alone reads as NaN), old stores without checksums included.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from cenn._version import __version__
from cenn.checksums import edited_fields, fields_sha256
from cenn.io.atomic import atomic_write_text
from cenn.io.locks import exclusive_lock, lock_holder
from cenn.io.units import UNITS

#: cenn's own files in a store: a zero-size zarr array, which zarr never looks into.
OWN_DIR = ".cenn"
#: Chunk markers and shard locks, in :data:`OWN_DIR`.
PROGRESS_DIR = f"{OWN_DIR}/progress"
#: Where stores written before :data:`OWN_DIR` keep them.
LEGACY_PROGRESS_DIR = ".cenn-progress"
FORMAT_VERSION = 1
CHECKSUM = "sha256"
#: The attrs' own checksums (the SHA-256 of each field, :func:`cenn.checksums.fields_sha256`), and
#: the fields they leave out: the completion flag, which changes as the store is written.
ATTRS_SHA256, UNSIGNED = "attrs_sha256", ("complete", "attrs_sha256")
_RECREATE = "recreate the store with `cenn simulate ... --overwrite`"


class StoreError(RuntimeError):
    """A dataset store is missing, damaged or does not match what was asked."""


def _progress(path: Path) -> Path:
    """The folder of a store's chunk markers and shard locks (:data:`LEGACY_PROGRESS_DIR` in an
    older store)."""
    legacy = path / LEGACY_PROGRESS_DIR
    return legacy if legacy.is_dir() else path / PROGRESS_DIR


def _marker(path: Path, chunk: int) -> Path:
    return _progress(path) / f"chunk-{chunk:06d}.done"


def _lock_file(path: Path, shard: int, n_shards: int) -> Path:
    return _progress(path) / f"lock-shard-{shard}-of-{n_shards}"


def _checksum(values: np.ndarray) -> str:
    """SHA-256 (hex) of an array's little-endian bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))).hexdigest()


def _lock_shard(lock: Path) -> tuple[int, int]:
    """``(i, N)`` of a lock file named ``lock-shard-I-of-N``."""
    i, n = lock.name.removeprefix("lock-shard-").split("-of-")
    return int(i), int(n)


def _creation_lock_file(path: Path) -> Path:
    """``.NAME.cenn-create.lock`` beside the store ``path``."""
    return path.with_name(f".{path.name}.cenn-create.lock")


@contextmanager
def _creation_lock(path: Path) -> Iterator[None]:
    """Hold (waiting for it) an exclusive lock on ``.NAME.cenn-create.lock`` beside ``path``; the lock
    file goes once ``path`` exists, as no process creates an existing store (a creation killed between
    the two leaves it for the next writer, :meth:`DatasetStore.open` in ``r+``, to remove)."""
    lock = _creation_lock_file(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if path.exists():
            lock.unlink(missing_ok=True)
        os.close(fd)


def _disk_error(path: Path, what: str, err: OSError) -> StoreError:
    """The error for an OSError while writing ``what`` into the store ``path``."""
    resume = ("then rerun the same `cenn simulate` command to resume (chunks already written are "
              "kept)")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(f"{path}: the disk is full ({err}) writing {what}: free space there or "
                          f"choose another path, {resume}")
    return StoreError(f"{path}: writing {what} failed ({err}): fix that, {resume}")


class DatasetStore:
    """A dataset store on disk; create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path | str, group: zarr.Group):
        self.path = Path(path)
        self.group = group
        self.meta: dict[str, Any] = dict(group.attrs["cenn"])
        self._arrays = {name: self._open_array(name) for name in self.array_names}

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
        files: Mapping[str, str] | None = None,
    ) -> DatasetStore:
        """Create an empty store for ``n_patches`` patches; ``meta`` is stored in attrs and
        ``files`` (name → text) in :data:`OWN_DIR`.

        The store is built in ``.NAME.cenn-creating`` beside ``path`` and renamed into place, so
        an interrupted creation leaves no store (and the next one clears its folder). Raises
        FileExistsError if ``path`` exists, e.g. because another process just created it.
        """
        if n_patches < 1:
            raise StoreError(f"a dataset needs at least one patch, got {n_patches}")
        if chunk_size < 1:
            raise StoreError(f"chunk_size must be >= 1, got {chunk_size}")
        if compression not in ("none", "zstd"):
            raise StoreError(f"compression must be 'none' or 'zstd', got {compression!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        build = path.with_name(f".{path.name}.cenn-creating")
        with _creation_lock(path):
            if path.exists():
                raise FileExistsError(f"{path} already exists")
            shutil.rmtree(build, ignore_errors=True)  # left by a creation that was killed
            try:
                _build(build, n_patches, meta, n_bands, npix, list(component_names or []),
                       chunk_size, compression, files or {})
                os.rename(build, path)
            except OSError as err:
                raise _disk_error(path, "the new store", err) from err
            finally:
                shutil.rmtree(build, ignore_errors=True)
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: Path | str, mode: str = "r") -> DatasetStore:
        """Open an existing store (``mode`` "r" or "r+"), checking it is a whole cenn store; in "r+",
        remove the creation lock file a creation killed after putting the store in place left."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise StoreError(f"{path} is not a dataset store (no zarr.json): check the path")
        try:
            group = zarr.open_group(path, mode=mode)
            meta = group.attrs.get("cenn")
        except zarr.errors.ContainsArrayError as err:
            raise StoreError(f"{path} is a zarr array, not a dataset store: give the store's folder") from err
        except Exception as err:
            raise StoreError(f"{path}: its metadata {path / 'zarr.json'} cannot be read ({err}): "
                             f"the store is damaged; {_RECREATE}") from err
        if meta is None:
            raise StoreError(f"{path} is a zarr group but not a cenn dataset (no 'cenn' attrs): choose "
                             "another path (cenn never replaces a zarr group it did not write)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{path} has store format {meta.get('format_version')}, this cenn reads "
                f"{FORMAT_VERSION}"
            )
        lacking = [k for k in ("n_patches", "chunk_size", "components") if k not in meta]
        if lacking:
            raise StoreError(f"{path}: its 'cenn' attrs lack {', '.join(lacking)}: the store's metadata "
                             f"is damaged; {_RECREATE}")
        edited = edited_fields(meta, meta.get(ATTRS_SHA256), UNSIGNED)  # none in a store of an earlier cenn
        if edited:
            raise StoreError(f"{path}: its 'cenn' attrs (zarr.json) were edited after cenn wrote them "
                             f"({', '.join(edited)} no longer match the SHA-256 recorded then), so they may "
                             f"not describe its patches: restore them as cenn wrote them, or {_RECREATE}")
        if mode == "r+":
            _creation_lock_file(path).unlink(missing_ok=True)  # left by a creation killed after its rename
        return cls(path, group)

    def _open_array(self, name: str) -> zarr.Array:
        """The zarr array ``name``, checked to exist and to hold ``n_patches`` rows."""
        try:
            array = self.group[name]
        except KeyError as err:
            raise StoreError(f"{self.path} lacks the array {name!r} (no {name}/zarr.json): the store is "
                             f"damaged; {_RECREATE}") from err
        except Exception as err:
            raise StoreError(f"{self.path}: the metadata of array {name!r} ({name}/zarr.json) cannot be "
                             f"read ({err}): the store is damaged; {_RECREATE}") from err
        if not isinstance(array, zarr.Array) or array.shape[:1] != (self.n_patches,):
            raise StoreError(f"{self.path}: {name!r} is not an array of {self.n_patches} patches: the "
                             f"store is damaged; {_RECREATE}")
        return array

    @staticmethod
    def written_by_cenn(path: Path | str) -> bool:
        """Whether the folder ``path`` is a dataset store cenn created (its progress folder, or the
        'cenn' attrs in its zarr.json), damaged or not; a zarr group of anyone else's is not."""
        path = Path(path)
        if _progress(path).is_dir():
            return True
        try:
            return "cenn" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
        except (OSError, ValueError, AttributeError):
            return False

    @staticmethod
    def remove(path: Path | str) -> None:
        """Delete a store (used for --overwrite); refused while a process is writing it."""
        for lock in sorted(_progress(Path(path)).glob("lock-shard-*")):
            holder = lock_holder(lock)
            if holder:
                raise StoreError(f"{path} is being written by {holder} (`cenn simulate`): wait for it to "
                                 "finish, or stop it, before replacing the store")
        shutil.rmtree(path)

    @property
    def compression(self) -> str:
        """How the map arrays' chunks are compressed: "none", "zstd" (or the codecs' names)."""
        codecs = self._arrays["inputs"].compressors
        names = ["zstd" if isinstance(c, ZstdCodec) else type(c).__name__ for c in codecs]
        return "+".join(names) or "none"

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

    @property
    def array_names(self) -> list[str]:
        """Every array of the store: inputs, target, (noise_sigma), lon, lat, the component maps,
        (splits) and (polarization, target_polarization, and with splits polarization_splits)."""
        sigma = ["noise_sigma"] if self.has_noise_sigma else []
        components = [f"components/{c}" for c in self.meta["components"]]
        splits = ["splits"] if self.has_splits else []
        stokes = ["polarization", "target_polarization"] if self.stokes == "IQU" else []
        stokes += ["polarization_splits"] if stokes and self.has_splits else []
        return ["inputs", "target", *sigma, "lon", "lat", *components, *splits, *stokes]

    @property
    def stokes(self) -> str:
        """"I" (temperature only) or "IQU" (also ``polarization`` and ``target_polarization``;
        ``cenn simulate --stokes IQU``)."""
        return str(self.meta.get("stokes", "I"))

    @property
    def has_noise_sigma(self) -> bool:
        """Whether the store holds the per-pixel noise σ (``noise_sigma``)."""
        return bool(self.meta.get("noise_sigma"))

    @property
    def has_splits(self) -> bool:
        """Whether the store holds half-mission maps (``splits``; ``cenn simulate --splits 2``)."""
        return bool(self.meta.get("splits"))

    def splits(self, rows: int | slice = slice(None)) -> np.ndarray:
        """The two half-mission maps (µK_CMB) of patch ``rows``, ``(2, n_bands, H, W)`` or ``(n, 2,
        n_bands, H, W)``: the sky of ``inputs`` with independent noise of σ √2 each (σ: :meth:`noise_sigma`)
        whose mean is the noise of ``inputs``. A store without them raises StoreError."""
        if not self.has_splits:
            raise StoreError(f"{self.path} holds no half-mission maps: simulate it with --splits 2")
        return self.read("splits", rows)

    def noise_sigma(self, rows: int | slice = slice(None)) -> np.ndarray:
        """The per-pixel noise σ (µK_CMB) of patch ``rows``, ``(n_bands, H, W)`` or ``(n, n_bands,
        H, W)``: stored, or, for a store of an earlier cenn, each band's nominal white level
        (``noise_uk_per_pixel`` of its attrs) everywhere."""
        if self.has_noise_sigma:
            return self.read("noise_sigma", rows)
        shape = self._arrays["inputs"].shape
        n = len(range(self.n_patches)[rows]) if isinstance(rows, slice) else None
        level = np.asarray(self.meta["noise_uk_per_pixel"], dtype=np.float32)[:, None, None]
        one = np.broadcast_to(level, shape[1:]).copy()
        return one if n is None else np.broadcast_to(one, (n, *shape[1:])).copy()

    def chunk_range(self, chunk: int) -> range:
        """Patch indices held by ``chunk``."""
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_patches))

    def chunk_done(self, chunk: int) -> bool:
        return _marker(self.path, chunk).exists()

    def pending_chunks(self, shard: int = 0, n_shards: int = 1) -> list[int]:
        """Chunks of this shard (``chunk % n_shards == shard``) not yet marked written."""
        return [k for k in range(shard, self.n_chunks, n_shards) if not self.chunk_done(k)]

    @contextmanager
    def writing(self, shard: int = 0, n_shards: int = 1) -> Iterator[None]:
        """Hold the write lock of shard ``shard`` of ``n_shards`` while the block runs.

        Raises StoreError naming the other process if it holds this shard's lock or that of a
        shard sharing chunks with this one. Processes started meanwhile do not inherit the lock.
        """
        lock, mine = _lock_file(self.path, shard, n_shards), (shard, n_shards)
        with exclusive_lock(lock, lambda holder: self._busy(holder, mine, mine)):
            for other in _progress(self.path).glob("lock-shard-*-of-*"):
                taken = _lock_shard(other)
                holder = other != lock and self._share_chunks(mine, taken) and lock_holder(other)
                if holder:
                    raise self._busy(holder, mine, taken)
            yield

    def _share_chunks(self, shard: tuple[int, int], other: tuple[int, int]) -> bool:
        """Whether shards ``(i, N)`` ``shard`` and ``other`` have a chunk in common."""
        return any(k % other[1] == other[0] for k in range(shard[0], self.n_chunks, shard[1]))

    def _busy(self, holder: str, shard: tuple[int, int], taken: tuple[int, int]) -> StoreError:
        mine, theirs = "/".join(map(str, shard)), "/".join(map(str, taken))
        what = (f"the same shard {mine}" if shard == taken
                else f"shard {theirs}, which shares chunks with shard {mine}")
        return StoreError(
            f"{self.path} is being written by another `cenn simulate` ({holder}) writing {what}; two "
            "processes never write one chunk: wait for it to finish, or write another shard of the "
            "store with --shard I/N"
        )

    def write_chunk(self, chunk: int, arrays: dict[str, np.ndarray]) -> None:
        """Store every array of one chunk, then mark it written with each array's SHA-256.

        An OSError (a full disk, ...) raises StoreError and leaves the chunk unmarked.
        """
        rows = self.chunk_range(chunk)
        sl = slice(rows.start, rows.stop)
        expected = sorted(self.array_names)
        if sorted(arrays) != expected:
            raise StoreError(f"chunk {chunk}: got arrays {sorted(arrays)}, expected {expected}")
        checksums = {}
        for name, values in arrays.items():
            values = np.ascontiguousarray(values, dtype=self._arrays[name].dtype)
            try:
                self._arrays[name][sl] = values
            except OSError as err:
                raise _disk_error(self.path, f"chunk {chunk} of array {name!r}", err) from err
            checksums[name] = _checksum(values)
        try:
            atomic_write_text(_marker(self.path, chunk),
                              json.dumps({"patches": len(rows), CHECKSUM: checksums}) + "\n")
        except OSError as err:
            raise _disk_error(self.path, f"the marker of chunk {chunk}", err) from err

    def verify(self, chunks: Iterable[int] | None = None) -> list[int]:
        """The damaged chunks among the written ones of ``chunks`` (default: all).

        A chunk is damaged when an array of it no longer decodes or its SHA-256 differs from
        the one recorded when it was written (a chunk written before checksums were recorded
        counts as intact if it decodes). Reads every byte of those chunks: 0.11 s for a 64-patch
        chunk of 256×256×3 patches (67 MB; see the module docstring).
        """
        return [k for k in (range(self.n_chunks) if chunks is None else chunks)
                if self.chunk_done(k) and not self._intact(k)]

    def _intact(self, chunk: int) -> bool:
        try:
            recorded = json.loads(_marker(self.path, chunk).read_text())
        except (OSError, ValueError):
            return False
        checksums = recorded.get(CHECKSUM) if isinstance(recorded, dict) else None
        rows = self.chunk_range(chunk)
        for name in self.array_names:
            try:
                values = self.read(name, slice(rows.start, rows.stop))
            except StoreError:
                return False
            if checksums is not None and checksums.get(name) != _checksum(values):
                return False
        return True

    def drop_chunks(self, chunks: Iterable[int]) -> None:
        """Unmark ``chunks`` so that they are written again; the store is marked incomplete."""
        if self.meta.get("complete"):
            self._set_complete(False)
        for k in chunks:
            _marker(self.path, k).unlink(missing_ok=True)

    def mark_complete_if_done(self) -> bool:
        """Set ``complete = True`` in the attrs once every chunk is marked; returns completion."""
        if self.meta.get("complete"):
            return True
        if any(not self.chunk_done(k) for k in range(self.n_chunks)):
            return False
        self._set_complete(True)
        return True

    def _set_complete(self, complete: bool) -> None:
        self.meta["complete"] = complete
        try:
            self.group.attrs["cenn"] = self.meta
        except OSError as err:
            raise _disk_error(self.path, "its attrs (zarr.json)", err) from err

    # --- reading ----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    def array(self, name: str) -> zarr.Array:
        """The zarr array ``name`` itself (decoding errors surface raw: prefer :meth:`read`)."""
        return self._arrays[name]

    def read(self, name: str, rows: int | slice = slice(None)) -> np.ndarray:
        """Patch ``rows`` (an index or a slice along N) of the array ``name``, decoded.

        A chunk marked written whose file is missing, or a stored chunk that cannot be decoded (a
        truncated or garbled file), raises StoreError naming the store, the array and the chunk
        (zarr alone would read a missing file as NaN). Checksums are not checked (see :meth:`verify`).
        """
        array = self._arrays[name]
        span = range(self.n_patches)[rows]
        chunks = self._chunks_of(span)
        missing = [k for k in chunks if self.chunk_done(k) and not self._chunk_file(name, k).exists()]
        if missing:
            files = ", ".join(str(self._chunk_file(name, k).relative_to(self.path)) for k in missing)
            verb = "is" if len(missing) == 1 else "are"
            raise self._damaged(name, missing, f"{verb} missing (no file {files}, though marked written)")
        try:
            return array[rows]
        except Exception as err:  # zarr and numcodecs raise ValueError, RuntimeError, OSError, ...
            bad = [k for k in chunks if not self._decodes(name, k)] or chunks
            raise self._damaged(name, bad, f"cannot be read ({type(err).__name__}: {err})") from err

    def _chunks_of(self, span: int | range) -> list[int]:
        """The chunks holding the patch index or indices ``span``."""
        if isinstance(span, int):
            return [span // self.chunk_size]
        if span.step == 1 and span:
            return list(range(span.start // self.chunk_size, (span.stop - 1) // self.chunk_size + 1))
        return sorted({i // self.chunk_size for i in span})

    def _chunk_file(self, name: str, chunk: int) -> Path:
        """The file holding chunk ``chunk`` of the array ``name``."""
        array = self._arrays[name]
        key = array.metadata.chunk_key_encoding.encode_chunk_key((chunk,) + (0,) * (array.ndim - 1))
        return self.path / name / key

    def _damaged(self, name: str, chunks: list[int], problem: str) -> StoreError:
        """The error for ``chunks`` of array ``name`` that are damaged by ``problem``."""
        where = ", ".join(f"chunk {k} (patches {self.chunk_range(k).start}-{self.chunk_range(k).stop - 1})"
                          for k in chunks)
        which = "that chunk" if len(chunks) == 1 else "those chunks"
        return StoreError(f"{self.path}: array {name!r}, {where} {problem}: the store is damaged there; "
                          f"rerun the same `cenn simulate` command to rewrite {which}, or recreate the "
                          "store with --overwrite")

    def _decodes(self, name: str, chunk: int) -> bool:
        rows = self.chunk_range(chunk)
        try:
            self._arrays[name][rows.start:rows.stop]
        except Exception:
            return False
        return True


def open_finished(path: Path | str, role: str | None = None, checksums: bool = False,
                  progress: Callable[[range], Iterable[int]] | None = None) -> DatasetStore:
    """The store at ``path``, refused with a :class:`StoreError` naming it (and its ``role``, e.g.
    ``data.train``) when its simulation was interrupted or, with ``checksums``, when a chunk no
    longer decodes or its SHA-256 differs (:meth:`DatasetStore.verify`; ``progress`` wraps the
    range of chunks, e.g. in a progress bar)."""
    store = DatasetStore.open(path)
    name = f"{path} ({role})" if role else f"{path}"
    if not store.complete:
        raise StoreError(f"{name} is incomplete (its simulation was interrupted): rerun the same "
                         "`cenn simulate` command to finish it")
    chunks = range(store.n_chunks)
    damaged = store.verify(progress(chunks) if progress else chunks) if checksums else []
    if damaged:
        raise StoreError(f"{name}: chunks {damaged} are damaged (they no longer decode or their "
                         f"checksums differ): rerun the same `cenn simulate` command to rewrite them, or "
                         f"{_RECREATE}")
    return store


def _build(path: Path, n_patches: int, meta: dict[str, Any], n_bands: int, npix: int,
           component_names: list[str], chunk_size: int, compression: str,
           files: Mapping[str, str]) -> None:
    """Write an empty store's arrays, attrs, own folder (:data:`OWN_DIR`: progress folder and
    ``files``) into ``path``."""
    compressors = ZstdCodec(level=1) if compression == "zstd" else None
    group = zarr.open_group(path, mode="w")
    maps = {"inputs": (n_bands,), "target": (1,)}
    if meta.get("noise_sigma"):
        maps["noise_sigma"] = (n_bands,)
    for name in component_names:
        maps[f"components/{name}"] = (n_bands,)
    if meta.get("splits"):
        maps["splits"] = (int(meta["splits"]), n_bands)
    if meta.get("stokes", "I") == "IQU":
        maps |= {"polarization": (2, n_bands), "target_polarization": (2,)}
        if meta.get("splits"):
            maps["polarization_splits"] = (int(meta["splits"]), 2, n_bands)
    for name, channels in maps.items():
        group.create_array(
            name, shape=(n_patches, *channels, npix, npix),
            chunks=(chunk_size, *channels, npix, npix), dtype="float32",
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
        "components": component_names,
        "complete": False,
    }
    full = json.loads(json.dumps(full))
    group.attrs["cenn"] = {**full, ATTRS_SHA256: fields_sha256(full, UNSIGNED)}
    group.create_array(OWN_DIR, shape=(0,), dtype="uint8")
    (path / PROGRESS_DIR).mkdir()
    for name, text in files.items():
        (path / OWN_DIR / name).write_text(text)
