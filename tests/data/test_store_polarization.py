"""Stores with Q and U (``cenn simulate --stokes IQU``): the arrays ``polarization`` and
``target_polarization`` hold the simulator's Q and U, the temperature arrays are the bytes of a
``--stokes I`` store of the same seed, temperature readers read them, and a killed write resumes to
the same store."""

import numpy as np
import pytest

from cenn import PatchDataset
from cenn.cli import main
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore, StoreError
from cenn.sky.components import COMPONENTS
from cenn.sky.simulator import GeometryConfig, PatchSimulator, RegionConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

N, CHUNK, NPIX = 6, 4, 48


def _config(stokes: str) -> SimulationConfig:
    return SimulationConfig(seed=5, geometry=GeometryConfig(npix=NPIX, margin=16),
                            region=RegionConfig(30.0, 90.0), stokes=stokes)


def _all_arrays(store: DatasetStore) -> dict[str, np.ndarray]:
    return {name: store.read(name) for name in store.array_names}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stokes")
    return {stokes: simulate(root / f"{stokes}.zarr", N, _config(stokes), chunk_size=CHUNK, progress=False)
            for stokes in ("I", "IQU")}


def test_q_and_u_are_stored_as_the_simulator_draws_them(stores):
    store = DatasetStore.open(stores["IQU"].path)
    assert store.stokes == "IQU" and store.meta["stokes"] == "IQU" and store.meta["config"]["stokes"] == "IQU"
    assert store.array("polarization").shape == (N, 2, 3, NPIX, NPIX)
    assert store.array("polarization").chunks == (CHUNK, 2, 3, NPIX, NPIX)
    assert store.array("target_polarization").shape == (N, 2, NPIX, NPIX)
    batch = PatchSimulator(_config("IQU")).simulate(range(N))
    assert np.array_equal(store.read("polarization"), batch.polarization.numpy())
    assert np.array_equal(store.read("target_polarization"), batch.target_polarization.numpy())
    assert np.array_equal(store.read("polarization", 4), batch.polarization[4].numpy())
    assert float(np.abs(store.read("target_polarization")).max()) > 0.1  # µK: the CMB's Q and U
    assert store.complete and not store.verify()


def test_temperature_arrays_are_the_bytes_of_a_temperature_store(stores):
    t_only, both = _all_arrays(stores["I"]), _all_arrays(stores["IQU"])
    assert set(both) == {*t_only, "polarization", "target_polarization"}
    for name, values in t_only.items():
        assert values.tobytes() == both[name].tobytes(), name
    plain = DatasetStore.open(stores["I"].path)
    assert plain.stokes == "I" and "stokes" not in plain.meta and "stokes" not in plain.meta["config"]
    assert "polarization" not in plain.array_names
    item = PatchDataset(stores["IQU"].path)[3]  # a temperature reader, unchanged
    assert item["inputs"].shape == (3, NPIX, NPIX) and item["target"].shape == (1, NPIX, NPIX)
    assert np.array_equal(item["inputs"].numpy(), PatchDataset(stores["I"].path)[3]["inputs"].numpy())


def test_interrupted_write_resumes_to_the_same_store(stores, tmp_path, monkeypatch):
    real_write = DatasetStore.write_chunk

    def failing_write(self, chunk, arrays):
        if chunk == 1:
            self.group["polarization"][self.chunk_range(chunk).start] = 0.0  # half-written chunk
            raise KeyboardInterrupt
        real_write(self, chunk, arrays)

    monkeypatch.setattr(DatasetStore, "write_chunk", failing_write)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "run.zarr", N, _config("IQU"), chunk_size=CHUNK, progress=False)
    monkeypatch.setattr(DatasetStore, "write_chunk", real_write)
    assert DatasetStore.open(tmp_path / "run.zarr").pending_chunks() == [1]
    with pytest.raises(StoreError, match="config"):  # not resumed as a temperature store
        simulate(tmp_path / "run.zarr", N, _config("I"), chunk_size=CHUNK, progress=False)
    store = simulate(tmp_path / "run.zarr", N, _config("IQU"), chunk_size=CHUNK, progress=False)
    assert store.complete and not store.verify()
    reference = _all_arrays(stores["IQU"])
    for name, values in _all_arrays(store).items():
        assert values.tobytes() == reference[name].tobytes(), name


def test_cli_stokes_option_and_its_refusals(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    off = [a for name in COMPONENTS if name not in ("cmb", "dust") for a in ("--disable", name)]
    base = ["simulate", str(out), "-n", "2", "--npix", "32", "--no-progress", *off]
    assert main(["simulate", "--describe", "--stokes", "IQU"]) == 2
    assert "--stokes would be ignored" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--stokes", "IQU", "--components"]) == 0
    store = DatasetStore.open(out)
    assert store.stokes == "IQU" and store.read("polarization").shape == (2, 2, 3, 32, 32)
    # the component maps are the temperature's: they sum to the inputs, noise included
    total = sum(store.read(f"components/{name}") for name in ("cmb", "dust", "noise"))
    np.testing.assert_allclose(total, store.read("inputs"), rtol=1e-5, atol=1e-3)
    assert 'stokes = "IQU"' in (out / ".cenn" / "simulation.toml").read_text()
