"""Half-mission maps (``cenn simulate --splits 2``) and the half-split cross-spectra of ``cenn evaluate``:
the two halves average to the inputs, carry independent noise of variance 2σ², leave every other array
byte for byte as without them, resume after an interruption, and give a method's spectrum without noise
bias."""

import json

import numpy as np
import pytest
import torch

from cenn.cli import main
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore, StoreError
from cenn.evaluate.analysis import evaluate_dataset
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.separators import TargetBandSeparator
from cenn.sky.components import COMPONENTS
from cenn.sky.simulator import GeometryConfig, PatchSimulator, RegionConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

N, CHUNK = 8, 4
#: Patches of the pure CMB + noise set of the spectrum tests, and its coarse ℓ bins (few bins: few
#: chances for a 3-standard-error excursion).
N_SPECTRA = 32
EDGES = [300.0, 600.0, 1000.0, 1500.0, 2000.0, 3000.0, 4500.0, 6000.0]


def _config(splits: int = 0, cmb_only: bool = False, seed: int = 7) -> SimulationConfig:
    """64×64 patches at |b| > 30°: the full sky, or (``cmb_only``) the CMB and noise alone."""
    config = SimulationConfig(seed=seed, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16),
                              region=RegionConfig(30.0, 90.0), splits=splits)
    if cmb_only:
        config.components = {name: {"enabled": name == "cmb"} for name in COMPONENTS}
    return config


def _all_arrays(store: DatasetStore) -> dict[str, np.ndarray]:
    return {name: store.read(name) for name in store.array_names}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same full-physics sky (components stored) without and with half-mission maps."""
    root = tmp_path_factory.mktemp("splits")
    return {name: simulate(root / f"{name}.zarr", N, _config(splits), chunk_size=CHUNK, with_components=True,
                           progress=False)
            for name, splits in (("plain", 0), ("split", 2))}


@pytest.fixture(scope="module")
def cmb_noise_store(tmp_path_factory):
    """CMB and noise only, with half-mission maps."""
    path = tmp_path_factory.mktemp("cmb") / "cmb.zarr"
    return simulate(path, N_SPECTRA, _config(2, cmb_only=True, seed=21), chunk_size=16, progress=False)


def test_splits_are_stored_and_average_to_the_inputs(stores):
    store = stores["split"]
    assert store.has_splits and store.meta["splits"] == 2 and store.meta["config"]["splits"] == 2
    assert store.array("splits").shape == (N, 2, 3, 64, 64)
    assert store.array("splits").chunks == (CHUNK, 2, 3, 64, 64)
    splits, inputs = store.splits(), store.read("inputs")
    assert splits.dtype == np.float32 and store.splits(3).shape == (2, 3, 64, 64)
    np.testing.assert_allclose(splits.mean(axis=1), inputs, rtol=0, atol=1e-6 * np.abs(inputs).max())


def test_split_noise_has_twice_the_variance_and_the_halves_are_independent(stores):
    store = stores["split"]
    sky = store.read("inputs") - store.read("components/noise")
    noise = (store.splits() - sky[:, None]) / store.noise_sigma()[:, None]  # in units of the full map's σ
    first, second = noise[:, 0].ravel().astype(np.float64), noise[:, 1].ravel().astype(np.float64)
    assert first.size > 90_000
    assert np.var(first) == pytest.approx(2.0, rel=0.03)
    assert np.var(second) == pytest.approx(2.0, rel=0.03)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.02
    full = store.read("components/noise") / store.noise_sigma()
    np.testing.assert_allclose(0.5 * (noise[:, 0] + noise[:, 1]), full, rtol=0, atol=1e-3)


def test_every_other_array_is_the_same_bytes_with_or_without_splits(stores):
    plain, split = _all_arrays(stores["plain"]), _all_arrays(stores["split"])
    assert set(split) == {*plain, "splits"}
    for name, values in plain.items():
        assert values.tobytes() == split[name].tobytes(), name
    assert "splits" not in stores["plain"].meta and "splits" not in stores["plain"].meta["config"]


def test_a_store_without_splits_reads_and_says_so(stores):
    store = DatasetStore.open(stores["plain"].path)
    assert not store.has_splits and "splits" not in store.array_names
    with pytest.raises(StoreError, match="--splits 2"):
        store.splits(0)


def test_the_simulator_draws_splits_only_when_asked():
    sim = PatchSimulator(_config(2, cmb_only=True))
    assert sim.simulate(range(2)).splits is None  # streamed training and every other caller
    both = sim.simulate(range(3), with_splits=True)
    parts = [sim.simulate(range(i, i + 1), with_splits=True) for i in range(3)]
    assert both.splits.shape == (3, 2, 3, 64, 64)
    torch.testing.assert_close(both.splits[2], parts[2].splits[0], rtol=0, atol=1e-3)


def test_interrupted_write_resumes_to_the_same_splits(tmp_path, monkeypatch):
    config = _config(2, cmb_only=True)
    reference = _all_arrays(simulate(tmp_path / "ref.zarr", N, config, chunk_size=CHUNK, progress=False))
    real_write = DatasetStore.write_chunk

    def failing_write(self, chunk, arrays):
        if chunk == 1:
            self.group["splits"][self.chunk_range(chunk).start] = 0.0  # half-written chunk
            raise KeyboardInterrupt
        real_write(self, chunk, arrays)

    monkeypatch.setattr(DatasetStore, "write_chunk", failing_write)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "run.zarr", N, config, chunk_size=CHUNK, progress=False)
    monkeypatch.setattr(DatasetStore, "write_chunk", real_write)
    assert DatasetStore.open(tmp_path / "run.zarr").pending_chunks() == [1]
    with pytest.raises(StoreError, match="config"):  # a store with splits is not resumed without them
        simulate(tmp_path / "run.zarr", N, _config(0, cmb_only=True), chunk_size=CHUNK, progress=False)
    store = simulate(tmp_path / "run.zarr", N, config, chunk_size=CHUNK, progress=False)
    assert store.complete and not store.verify()
    for name, values in _all_arrays(store).items():
        assert np.array_equal(values, reference[name]), name


def test_cli_writes_splits_and_refuses_other_counts_first(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    assert main(["simulate", str(out), "-n", "2", "--npix", "64", "--splits", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "splits must be 2" in err and "only 2 halves are supported" in err
    assert not out.exists()
    off = [a for name in COMPONENTS if name != "cmb" for a in ("--disable", name)]
    assert main(["simulate", str(out), "-n", "2", "--npix", "64", "--splits", "2", "--no-progress",
                 *off]) == 0
    store = DatasetStore.open(out)
    assert store.has_splits and store.splits().shape == (2, 2, 3, 64, 64)
    assert "splits = 2" in (out / ".cenn" / "simulation.toml").read_text()


def test_half_split_cross_spectrum_is_unbiased_and_the_auto_spectrum_is_not(cmb_noise_store, tmp_path):
    config = EvaluationConfig(bin_edges=EDGES, batch_size=16, injection=False, noise_factors=[])
    metrics = evaluate([("cmb", cmb_noise_store.path)], {"target-band": TargetBandSeparator()},
                       tmp_path / "report", config, progress=False)
    h = json.loads((tmp_path / "report" / "metrics.json").read_text())["results"]["target-band"]["cmb"][
        "half_split"]
    assert h["n_patches"] == N_SPECTRA and h["n_bins"] == len(EDGES) - 1 and h["ell_range"] == [300, 2500]
    ell, cross, cmb = (np.asarray(h[k]) for k in ("ell", "cross_dl", "cmb_dl"))
    difference, error, auto = (np.asarray(h[k]) for k in ("difference_dl", "standard_error_dl", "auto_dl"))
    np.testing.assert_allclose(ell, 0.5 * (np.asarray(EDGES[1:]) + EDGES[:-1]))
    np.testing.assert_allclose(difference, cross - cmb, rtol=1e-9, atol=1e-9 * cmb.max())
    assert np.all(error > 0)
    assert np.all(np.abs(difference) < 3.0 * error)  # the cross-spectrum: no noise bias
    assert h["within_2se"] == int(np.sum(np.abs(difference) <= 2.0 * error))
    high = ell > 1500
    assert np.all(auto[high] - cmb[high] > 10.0 * error[high])  # one half's auto-spectrum: noise bias
    assert abs(h["mean_difference_over_se"]) < 3.0 and h["mean_auto_minus_cmb_dl"] > 0
    assert metrics["results"]["target-band"]["cmb"]["half_split"]["within_2se"] == h["within_2se"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Half-split cross-spectra" in report and f"({h['within_2se']}/{h['n_bins']})" in report
    csv = (tmp_path / "report" / "tables" / "half_split.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,method,ell,cross_dl") and len(csv) == 1 + len(EDGES) - 1


def test_half_split_is_skipped_when_switched_off_or_without_splits(cmb_noise_store, stores):
    config = EvaluationConfig(bin_edges=EDGES, batch_size=16, injection=False, noise_factors=[],
                              half_split=False, max_patches=4)
    methods = {"target-band": TargetBandSeparator()}
    assert evaluate_dataset(cmb_noise_store.path, methods, config, progress=False).half_split == {}
    on = EvaluationConfig(bin_edges=EDGES, batch_size=16, injection=False, noise_factors=[], max_patches=4)
    assert evaluate_dataset(stores["plain"].path, methods, on, progress=False).half_split == {}
    ev = evaluate_dataset(cmb_noise_store.path, methods, on, progress=False)
    assert set(ev.half_split) == {"target-band"}


def test_cli_no_half_split_switches_it_off(cmb_noise_store, tmp_path):
    out = tmp_path / "report"
    assert main(["evaluate", str(cmb_noise_store.path), "--methods", "target-band", "--out", str(out),
                 "--max-patches", "4", "--noise-factors", "none", "--no-half-split", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["half_split"] is False
    assert metrics["results"]["target-band"]["high"]["half_split"] is None
    assert "No half-split cross-spectra: switched off" in (out / "report.md").read_text()
    assert not (out / "tables" / "half_split.csv").exists()
