"""Writing simulated datasets: chunked, parallel, resumable, shardable across machines."""

from __future__ import annotations

import json
import multiprocessing
import numbers
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cenn.config import dumps_toml
from cenn.data.store import OWN_DIR, DatasetStore, StoreError
from cenn.io.disk import size_text
from cenn.outputs import Inputs, OutputError, check_apart, check_writable
from cenn.sky.simulator import PatchSimulator, SimulationConfig

CONFIG_FILE = "simulation.toml"


def dataset_metadata(sim: PatchSimulator) -> dict[str, Any]:
    """What a reader needs to interpret the maps, and everything needed to regenerate them."""
    inst = sim.instrument
    return {
        "seed": sim.config.seed,
        "frequencies_ghz": inst.frequencies_ghz,
        "band_names": inst.band_names,
        "beam_fwhm_arcmin": [b.beam_fwhm_arcmin for b in inst.bands],
        "noise_uk_per_pixel": inst.noise_uk_per_pixel(sim.geometry),
        "target_band": inst.target_band,
        "target_beam_fwhm_arcmin": inst.target.beam_fwhm_arcmin,
        "geometry": {"npix": sim.geometry.npix, "pixel_arcsec": sim.geometry.pixel_arcsec,
                     "margin": sim.margin},
        "instrument": inst.summary(),
        "sky_components": sim.component_names,
        "config": sim.config.to_dict(),
        "random_region_key": _hex(sim.config.region.random_key()),
        "noise_sigma": True,
        **({"splits": sim.config.splits} if sim.config.splits else {}),
        **({"stokes": sim.config.stokes} if sim.config.stokes != "I" else {}),
    }


def _hex(key: int | None) -> str | None:
    """A 64-bit key as 16 hex digits (JSON readers elsewhere lose integers above 2⁵³)."""
    return None if key is None else f"{key:016x}"


def _batch_arrays(sim: PatchSimulator, indices: range, with_components: bool) -> dict[str, np.ndarray]:
    """Every array a store holds for the patches ``indices`` (the half-mission maps when
    ``sim.config.splits`` is set, Q and U when ``sim.config.stokes`` is "IQU")."""
    batch = sim.simulate(indices, with_components=with_components, with_splits=bool(sim.config.splits))
    arrays = {
        "inputs": batch.inputs.cpu().numpy(),
        "target": batch.target.cpu().numpy(),
        "noise_sigma": batch.noise_sigma.cpu().numpy(),
        "lon": batch.lon.cpu().numpy(),
        "lat": batch.lat.cpu().numpy(),
    }
    for name, maps in (batch.components or {}).items():
        arrays[f"components/{name}"] = maps.cpu().numpy()
    if batch.splits is not None:
        arrays["splits"] = batch.splits.cpu().numpy()
    if batch.polarization is not None:
        arrays["polarization"] = batch.polarization.cpu().numpy()
        arrays["target_polarization"] = batch.target_polarization.cpu().numpy()
    if batch.polarization_splits is not None:
        arrays["polarization_splits"] = batch.polarization_splits.cpu().numpy()
    return arrays


def _write_chunks(sim: PatchSimulator, store: DatasetStore, chunks: Iterable[int],
                  with_components: bool, batch_size: int) -> Iterable[int]:
    for chunk in chunks:
        rows = store.chunk_range(chunk)
        parts = [
            _batch_arrays(sim, range(s, min(s + batch_size, rows.stop)), with_components)
            for s in range(rows.start, rows.stop, batch_size)
        ]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        _check_finite(arrays, rows, store.path)
        store.write_chunk(chunk, arrays)
        yield chunk


def _check_finite(arrays: dict[str, np.ndarray], rows: range, path: Path) -> None:
    """Refuse a simulated chunk holding NaN or infinite values, before it is written."""
    for name, values in arrays.items():
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            patches = [rows.start + int(i) for i in np.flatnonzero(bad)]
            raise ValueError(
                f"{path}: the simulation gave NaN or infinite values in {name!r} for patches "
                f"{_first(patches)}; nothing of that chunk was written. A component's parameters or maps "
                f"are out of range: check the configuration ({OWN_DIR}/{CONFIG_FILE} in the store), then "
                "recreate the store with --overwrite"
            )


def _first(items: list[int], shown: int = 10) -> str:
    """``items`` as a list, cut after ``shown`` with a count of the rest."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return f"{items[:shown]}{more}"


_WORKER: dict[str, Any] = {}

#: Seconds between a worker's checks that the process that started it is still alive.
PARENT_POLL_S = 0.2


def _worker_init(config: SimulationConfig, device: str, path: str) -> None:
    _exit_with_parent(os.getppid())
    _WORKER["sim"] = PatchSimulator(config, device)
    _WORKER["store"] = DatasetStore.open(path, mode="r+")


def _exit_with_parent(parent: int) -> None:
    """End this process within :data:`PARENT_POLL_S` of its parent ``parent`` ending (killed,
    interrupted or crashed), so that no worker goes on writing a store nobody holds the lock of."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="cenn-parent-watch", daemon=True).start()


def _worker_chunk(chunk: int, with_components: bool, batch_size: int) -> int:
    return next(iter(_write_chunks(_WORKER["sim"], _WORKER["store"], [chunk],
                                   with_components, batch_size)))


def map_inputs(config: SimulationConfig) -> list[tuple[str, str]]:
    """(role, path) of the map files a simulation reads (``components.<name>.maps``)."""
    found = []
    for name, params in config.to_dict().get("components", {}).items():
        maps = params.get("maps") if isinstance(params, dict) else None
        for band, path in (maps.items() if isinstance(maps, dict) else [(None, maps)]):
            if isinstance(path, str):
                found.append((f"the {name} map" + (f" of band {band}" if band else ""), path))
    return found


def check_store_output(path: Path, overwrite: bool = False, inputs: Inputs = ()) -> None:
    """Refuse, before any work, a store path that is, holds or lies inside an input, is a file, lies
    in a missing or unwritable folder, or (``overwrite``) that is not a store cenn wrote or holds the
    working folder: cenn only ever deletes its own stores."""
    check_apart(path, inputs, "store")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a dataset store: choose another path for the store")
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            state = "is a file, not a folder" if folder.exists() else "does not exist"
            raise OutputError(f"the folder {folder} of the store {path.name} {state}: create it (mkdir -p "
                              f"{folder}) or correct the path")
        check_writable(folder)
        return
    check_writable(path)
    if not overwrite:
        return
    cwd = Path.cwd().resolve()
    if path.resolve() == cwd or path.resolve() in cwd.parents:
        raise OutputError(f"{path} holds the working folder {cwd}: cenn does not remove it; run the command "
                          "from another folder, or give the store a path of its own (e.g. train.zarr)")
    if not any(path.iterdir()):
        return
    if not (path / "zarr.json").exists():
        raise StoreError(f"{path} exists and is not a dataset store (no zarr.json); refusing to overwrite "
                         "it: choose another path for the store")
    if not DatasetStore.written_by_cenn(path):
        raise StoreError(f"{path} is a zarr group that cenn did not write (not a cenn dataset store); "
                         "refusing to overwrite it: choose another path, or remove it yourself")


def store_bytes(n_patches: int, n_bands: int, npix: int, n_components: int, n_splits: int = 0,
                polarized: bool = False) -> int:
    """Bytes of a store of ``n_patches`` uncompressed: inputs, noise σ, ``n_components`` component
    maps and ``n_splits`` half-mission maps (n_bands each), the target, the coordinates, and with
    ``polarized`` the inputs', the target's and the half-mission maps' Q and U."""
    qu = 2 * n_bands * (1 + n_splits) + 2 if polarized else 0
    maps = n_bands * (2 + n_components + n_splits) + 1 + qu
    return n_patches * (4 * npix * npix * maps + 16)


def check_disk_space(path: Path, n_patches: int, config: SimulationConfig, with_components: bool) -> None:
    """Refuse, before the store is created, one larger than the free space where it goes (with the
    space of a store at ``path`` that it replaces)."""
    from cenn.sky.instrument import load_instrument

    n_bands = load_instrument(config.instrument.name).n_bands
    enabled = sum(p["enabled"] for p in config.resolved_components().values())
    need = store_bytes(n_patches, n_bands, config.geometry.npix, enabled + 1 if with_components else 0,
                       config.splits, config.stokes == "IQU")
    folder = next(p for p in (path, *path.parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if path.is_dir():  # replaced (--overwrite)
        free += sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    if need > free:
        raise OutputError(f"{path}: {n_patches} patches need about {size_text(need)} "
                          f"({size_text(need / n_patches)} each, uncompressed) but {folder} has "
                          f"{size_text(free)} free: simulate fewer patches (-n), free space there, or write "
                          "elsewhere")


def _open_or_create(path: Path, n_patches: int, sim: PatchSimulator, with_components: bool,
                    chunk_size: int, compression: str, overwrite: bool) -> DatasetStore:
    meta = dataset_metadata(sim)
    names = [*sim.component_names, "noise"] if with_components else []
    if path.exists() and overwrite:
        DatasetStore.remove(path)  # checked first: a store cenn wrote (check_store_output)
    if not path.exists():
        try:
            return DatasetStore.create(path, n_patches, meta, sim.instrument.n_bands, sim.geometry.npix,
                                       names, chunk_size, compression,
                                       files={CONFIG_FILE: dumps_toml(meta["config"])})
        except FileExistsError:
            pass  # another process (another shard) created it meanwhile: resume it like any store
    store = DatasetStore.open(path, mode="r+")
    _check_same_dataset(store, meta, {"config": meta["config"], "n_patches": n_patches,
                                      "chunk_size": chunk_size, "components": names,
                                      "compression": compression})
    return store


def _check_same_dataset(store: DatasetStore, meta: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse to resume ``store`` with other settings ``wanted`` (each compared with the store's),
    or with random streams other than those its chunks were drawn from."""
    wanted = _json_round_trip(wanted)
    old = {**store.meta, "compression": store.compression}
    diff = [k if k == "config" else f"{k} (the store's {old.get(k)!r}, asked {wanted[k]!r})"
            for k in wanted if old.get(k) != wanted[k]]
    if diff:
        raise StoreError(
            f"{store.path} already holds a dataset with a different {', '.join(diff)}; pass "
            "overwrite=True (--overwrite) to replace it, or choose another path"
        )
    if store.meta.get("random_region_key") != meta["random_region_key"]:
        raise StoreError(
            f"{store.path} was begun by a cenn whose random draws did not depend on the region "
            "(latitude band, strata, sky split): the chunks this cenn would add or rewrite would not "
            "match those already written; recreate the store with --overwrite (or finish it with the "
            f"cenn that began it, {store.meta.get('cenn_version')})"
        )


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _drop_damaged(store: DatasetStore, shard: tuple[int, int], progress: bool) -> None:
    """Unmark the written chunks of ``shard`` (i, N) that fail :meth:`DatasetStore.verify`, so
    that they are written again."""
    written = [k for k in range(shard[0], store.n_chunks, shard[1]) if store.chunk_done(k)]
    checked = tqdm(written, unit="chunk", desc=f"verify {store.path.name}",
                   disable=not progress or not written)
    damaged = store.verify(checked)
    if damaged:
        warnings.warn(f"{store.path}: chunks {damaged} were damaged (they no longer decode or their "
                      "checksums differ): writing them again", stacklevel=3)
        store.drop_chunks(damaged)


def _write_shard(store: DatasetStore, sim: PatchSimulator, config: SimulationConfig,
                 shard: tuple[int, int], workers: int, with_components: bool, batch_size: int,
                 progress: bool) -> None:
    """Write the unmarked chunks of ``shard`` (i, N), here or in ``workers`` processes."""
    index, n_shards = shard
    pending = store.pending_chunks(index, n_shards)
    bar = tqdm(total=len(range(index, store.n_chunks, n_shards)), initial=0, unit="chunk",
               desc=f"simulate {store.path.name}", disable=not progress)
    bar.update(len(range(index, store.n_chunks, n_shards)) - len(pending))
    if workers == 0:
        for _ in _write_chunks(sim, store, pending, with_components, batch_size):
            bar.update(1)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init,
                                   initargs=(config, str(sim.device), str(store.path)))
        try:
            futures = [pool.submit(_worker_chunk, k, with_components, batch_size) for k in pending]
            for fut in as_completed(futures):
                fut.result()
                bar.update(1)
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown()
    bar.close()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel the chunks not yet started and end the workers now: a failed or interrupted run
    leaves no process writing (the chunks they were on stay unmarked, and are redone on resume)."""
    processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def simulate(
    out: Path | str,
    n_patches: int,
    config: SimulationConfig | None = None,
    *,
    device: str = "cpu",
    workers: int = 0,
    chunk_size: int = 64,
    batch_size: int = 32,
    with_components: bool = False,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    compression: str = "none",
    progress: bool = True,
    inputs: Inputs = (),
) -> DatasetStore:
    """Simulate ``n_patches`` patches into the dataset store at ``out``.

    An existing store with the same configuration is resumed: its finished chunks are kept,
    those that fail :meth:`DatasetStore.verify` are written again. One with a different
    configuration is refused unless ``overwrite``. ``shard=(i, n)`` writes only chunks ``k``
    with ``k % n == i``, so n machines can fill one store; a process already writing chunks of
    this shard makes this one fail at once (StoreError). ``workers > 0`` runs that many
    processes; the store's bytes are the same whatever ``workers`` (every process simulates on one
    thread, :data:`cenn.sky.simulator.CPU_THREADS`). ``compression`` must be the store's when
    resuming, like every other setting. The path is checked before any work
    (:func:`check_store_output`): never one of ``inputs`` ((role, path), e.g. the configuration file)
    or of the simulation's maps, and ``overwrite`` only ever replaces a store cenn wrote; a new store
    larger than the free space is refused. ``config.splits = 2`` also writes the two half-mission
    maps of every patch (the array ``splits``; the other arrays are the same bytes as without).
    ``config.stokes = "IQU"`` also writes Q and U (``polarization``, ``target_polarization``; the
    temperature arrays are the same bytes as with "I"); component maps are temperature only, so
    ``with_components`` is refused with it.

    Returns:
        The store; ``store.complete`` is True once every chunk of every shard is written.
    """
    # spell every component out, so worker processes build exactly the parent's sky model
    config = SimulationConfig.from_dict((config or SimulationConfig()).to_dict())
    index, n_shards = shard
    if not 0 <= index < n_shards:
        raise ValueError(f"shard must be i/N with 0 <= i < N, got {index}/{n_shards}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size (--batch-size) must be a whole number >= 1, got {batch_size!r}")
    if isinstance(n_patches, bool) or not isinstance(n_patches, numbers.Integral):
        raise ValueError(f"n_patches must be a whole number of patches, got {n_patches!r}")
    if n_patches < 1:
        raise ValueError(f"a dataset needs at least one patch, got {n_patches}")
    n_patches = int(n_patches)
    path = Path(out)
    check_store_output(path, overwrite, [*inputs, *map_inputs(config)])
    if overwrite or not path.exists():  # a new store
        check_disk_space(path, n_patches, config, with_components)
    sim = PatchSimulator(config, device)
    store = _open_or_create(path, n_patches, sim, with_components, chunk_size, compression,
                            overwrite)
    with store.writing(index, n_shards):
        _drop_damaged(store, shard, progress)
        _write_shard(store, sim, config, shard, workers, with_components, batch_size, progress)
        store.mark_complete_if_done()
    return store
