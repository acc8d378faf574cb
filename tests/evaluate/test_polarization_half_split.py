"""Half-mission maps of Q and U (``cenn simulate --stokes IQU --splits 2``) and the half-split EE and BB
of ``cenn evaluate``: the halves' Q and U average to the store's, carry independent noise of twice its
variance, leave every other array byte for byte, and give a map's EE without noise bias."""

import json

import numpy as np
import pytest

from cenn.cli import main
from cenn.data.simulate import simulate
from cenn.data.store import DatasetStore
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.separators import TargetBandSeparator
from cenn.sky.components import COMPONENTS
from cenn.sky.noise import POLARIZATION_NOISE_FACTOR
from cenn.sky.simulator import GeometryConfig, RegionConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

#: Patches of the CMB + noise set, and coarse ℓ bins (few chances for a 3-standard-error excursion).
N = 32
EDGES = [100.0, 300.0, 600.0, 1000.0, 1500.0, 2000.0, 3000.0]


def _config(splits: int) -> SimulationConfig:
    """128×128 patches at |b| > 30° of the CMB and noise alone, with Q and U."""
    config = SimulationConfig(seed=31, geometry=GeometryConfig(npix=128, pixel_arcsec=90.0, margin=16),
                              region=RegionConfig(30.0, 90.0), splits=splits, stokes="IQU")
    config.components = {name: {"enabled": name == "cmb"} for name in COMPONENTS}
    return config


@pytest.fixture(scope="module")
def qu_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("qu-splits")
    return {splits: simulate(root / f"s{splits}.zarr", N if splits else 4, _config(splits), chunk_size=16,
                             progress=False) for splits in (0, 2)}


def test_q_u_halves_average_to_the_maps_with_twice_the_noise_variance_each(qu_stores):
    store = qu_stores[2]
    assert "polarization_splits" in store.array_names
    halves, maps = store.read("polarization_splits"), store.read("polarization")
    assert halves.shape == (N, 2, 2, 3, 128, 128)
    np.testing.assert_allclose(halves.mean(axis=1), maps, rtol=0, atol=1e-6 * np.abs(maps).max())
    # CMB alone: the 217 GHz sky is the CMB label, so what is left is noise, in units of the Q/U σ
    sigma = POLARIZATION_NOISE_FACTOR * store.noise_sigma()[:, None, 1]
    sky = store.read("target_polarization")
    noise = [(halves[:, h, :, 1] - sky) / sigma for h in range(2)]
    first, second = (n.ravel().astype(np.float64) for n in noise)
    assert np.var((maps[:, :, 1] - sky) / sigma) == pytest.approx(1.0, rel=0.03)
    assert np.var(first) == pytest.approx(2.0, rel=0.03) and np.var(second) == pytest.approx(2.0, rel=0.03)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.02


def test_every_other_array_is_the_same_bytes_with_or_without_q_u_splits(qu_stores, tmp_path):
    split = simulate(tmp_path / "four.zarr", 4, _config(2), chunk_size=16, progress=False)
    plain = qu_stores[0]
    assert set(split.array_names) == {*plain.array_names, "splits", "polarization_splits"}
    for name in plain.array_names:
        assert plain.read(name).tobytes() == split.read(name).tobytes(), name


def test_half_split_ee_is_the_cmb_s_and_the_auto_spectrum_is_not(qu_stores, tmp_path):
    config = EvaluationConfig(bin_edges=EDGES, batch_size=16, injection=False, noise_factors=[])
    evaluate([("cmb", qu_stores[2].path)], {"target-band": TargetBandSeparator()}, tmp_path / "report",
             config, progress=False)
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    result = metrics["polarization"]["results"]["target-band"]["cmb"]
    ee = result["half_split"]["ee"]
    assert ee["n_patches"] == N and ee["n_bins"] == len(EDGES) - 1
    difference, error = np.asarray(ee["difference_dl"]), np.asarray(ee["standard_error_dl"])
    cmb, auto = np.asarray(ee["cmb_dl"]), np.asarray(ee["auto_dl"])
    assert np.all(error > 0) and np.all(np.abs(difference) < 3.0 * error)  # no noise bias
    high = np.asarray(ee["ell"]) > 1500
    assert np.all(auto[high] - cmb[high] > 10.0 * error[high])  # one half's EE: noise bias
    bb = result["half_split"]["bb"]
    assert np.all(np.abs(bb["difference_dl"]) < 3.0 * np.asarray(bb["standard_error_dl"]))
    # the recovered EE at |b| > 30° over 100-1500 (the mean of the bins' ratios): 1 within three times
    # its standard error, while the auto-spectrum's is far above
    recovery, ell = result["ee_recovery"], np.asarray(ee["ell"])
    keep = (ell >= 100) & (ell < 1500)
    ratio_error = np.sqrt(np.sum((error[keep] / cmb[keep]) ** 2)) / keep.sum()
    assert ratio_error < 0.1
    assert abs(recovery["half_split_ratio"] - 1.0) < 3.0 * ratio_error
    assert recovery["ratio"] > 2.0
    assert "half-split EE / in" in (tmp_path / "report" / "report.md").read_text()


def test_cli_simulates_q_u_halves(tmp_path):
    out = tmp_path / "cli.zarr"
    off = [a for name in COMPONENTS if name not in ("cmb", "dust") for a in ("--disable", name)]
    assert main(["simulate", str(out), "-n", "2", "--npix", "32", "--no-progress", "--stokes", "IQU",
                 "--splits", "2", *off]) == 0
    assert DatasetStore.open(out).read("polarization_splits").shape == (2, 2, 2, 3, 32, 32)
