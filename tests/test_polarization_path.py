"""The Q/U network path (issue 28): loaders serving the bands' Q then U from IQU stores and streamed
IQU simulations, networks with 2C inputs and 2 outputs, weights whose card says which Stokes maps
they separate, and ``cenn predict`` on Q/U patches."""

import numpy as np
import pytest
import torch

from cenn.cli import main
from cenn.data.dataset import PatchDataset
from cenn.data.normalization import build_normalization
from cenn.data.simulate import simulate
from cenn.data.stokes import qu_channels, qu_noise_sigma, reference_channels
from cenn.data.store import DatasetStore, StoreError
from cenn.data.stream import SimulatedBatches
from cenn.model import WeightsCard, build_model, load_weights, save_weights
from cenn.model.apply import apply_network
from cenn.predict import Predictor
from cenn.pretrained import resolve_weights
from cenn.sky.simulator import GeometryConfig, PatchSimulator, RegionConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

BANDS = [143.0, 217.0, 353.0]
CONFIG = SimulationConfig(seed=11, geometry=GeometryConfig(npix=32, pixel_arcsec=90.0, margin=16),
                          region=RegionConfig(30.0, 90.0), stokes="IQU")


@pytest.fixture(scope="module")
def iqu_store(tmp_path_factory) -> DatasetStore:
    """Four 32² patches of 90″ at |b| > 30° with Q and U."""
    return simulate(tmp_path_factory.mktemp("iqu") / "iqu.zarr", 4, CONFIG, chunk_size=4, progress=False)


def _weights(path, stokes: str, normalization: str = "asinh"):
    """Untrained small U-Net weights (seed 0) separating ``stokes`` at 143/217/353 GHz, saved to ``path``."""
    torch.manual_seed(0)
    maps = len(stokes)
    params = {"widths": [4, 8]} | ({"out_channels": 2} if maps == 2 else {})
    net = build_model("unet", 3 * maps, **params)
    card = WeightsCard(architecture="unet", architecture_params=params, in_channels=3 * maps, stokes=stokes,
                       frequencies_ghz=BANDS, beams_arcmin=[7.3, 5.0, 4.9], target_frequency_ghz=217.0,
                       npix=32, pixel_arcsec=90.0, normalization=normalization,
                       normalization_params={"scale_uk": 10.0},
                       training={"noise_uk_per_pixel": [20.0, 30.0, 100.0]})
    save_weights(path, net, card)
    return path


def test_channel_order_is_q_of_every_band_then_u():
    polarization = torch.arange(2 * 3 * 2 * 2.0).reshape(1, 2, 3, 2, 2)  # (N, Stokes, band, y, x)
    flat = qu_channels(polarization)
    assert flat.shape == (1, 6, 2, 2)
    for stokes in range(2):
        for band in range(3):
            assert torch.equal(flat[0, 3 * stokes + band], polarization[0, stokes, band])
    assert reference_channels(1, 3, "QU") == [1, 4] and reference_channels(1, 3, "I") == [1]
    sigma = np.array([[[[1.0]], [[2.0]], [[3.0]]]], dtype=np.float32)  # (1, 3, 1, 1)
    np.testing.assert_allclose(qu_noise_sigma(sigma)[0, :, 0, 0], np.sqrt(2) * np.array([1, 2, 3, 1, 2, 3]),
                               rtol=1e-6)


def test_store_items_are_the_stores_q_and_u(iqu_store):
    temperature, polarized = PatchDataset(iqu_store), PatchDataset(iqu_store, stokes="QU")
    pol, target = iqu_store.read("polarization"), iqu_store.read("target_polarization")
    sigma = iqu_store.noise_sigma()
    for i in range(4):
        item = polarized[i]
        assert item["inputs"].shape == (6, 32, 32) and item["target"].shape == (2, 32, 32)
        np.testing.assert_array_equal(item["inputs"][:3].numpy(), pol[i, 0])  # Q143, Q217, Q353
        np.testing.assert_array_equal(item["inputs"][3:].numpy(), pol[i, 1])  # U143, U217, U353
        np.testing.assert_array_equal(item["target"].numpy(), target[i])
        np.testing.assert_allclose(item["noise_sigma"].numpy(), np.sqrt(2) * np.concatenate([sigma[i]] * 2),
                                   rtol=1e-6)
        np.testing.assert_array_equal(temperature[i]["inputs"].numpy(), iqu_store.read("inputs", i))
    assert float(pol[:, :, 1].std()) > 3 * float(target.std())  # the 217 GHz Q/U maps are noise-dominated


def test_a_temperature_store_cannot_serve_q_and_u(tmp_path):
    config = SimulationConfig(seed=12, geometry=CONFIG.geometry, region=CONFIG.region)
    store = simulate(tmp_path / "t.zarr", 2, config, chunk_size=2, progress=False)
    with pytest.raises(StoreError, match=r"temperature only.*--stokes IQU"):
        PatchDataset(store, stokes="QU")


def test_streamed_q_and_u_are_the_simulators():
    batch = SimulatedBatches(CONFIG, 2, stokes="QU")[3]  # samples 6 and 7
    sim = PatchSimulator(CONFIG).simulate([6, 7])
    assert batch["inputs"].shape == (2, 6, 32, 32)
    torch.testing.assert_close(batch["inputs"][:, 3:], sim.polarization[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(batch["target"], sim.target_polarization, rtol=0, atol=0)
    with pytest.raises(ValueError, match="stokes = \"IQU\""):
        SimulatedBatches(SimulationConfig(seed=1), 2, stokes="QU")


def test_paper_network_and_unet_return_q_and_u():
    for name in ("cenn-small", "unet-small"):
        net = build_model(name, 6, out_channels=2)
        assert net(torch.zeros(1, 6, 64, 64)).shape == (1, 2, 64, 64)
    assert build_model("cenn-paper", 3).decoder[-1].out_channels == 1  # the paper's network unchanged


def test_signed_normalisations_keep_the_sign_and_minmax_is_refused_for_q_and_u():
    from cenn.train import TrainConfig

    x = torch.tensor([[[[-300.0, -5.0], [5.0, 300.0]]]]).expand(1, 2, 2, 2)
    for name in ("asinh", "scale", "identity"):
        norm = build_normalization(name)
        assert norm.signed
        stats = norm.fit(x)
        torch.testing.assert_close(norm.normalize_inputs(-x, stats), -norm.normalize_inputs(x, stats))
        torch.testing.assert_close(norm.denormalize_target(norm.normalize_target(x, stats), stats), x)
    assert not build_normalization("minmax").signed
    config = {"data": {"val": "v.zarr", "train": "t.zarr", "stokes": "QU"}}
    with pytest.raises(ValueError, match="'minmax' is not meaningful for Q and U"):
        TrainConfig.from_dict(config).check_data()
    sigma = config | {"normalization": {"name": "asinh"}, "model": {"name": "unet",
                                                                    "params": {"sigma_output": True}}}
    with pytest.raises(ValueError, match="sigma_output is for temperature U-Nets only"):
        TrainConfig.from_dict(sigma).check_data()


def test_card_records_stokes_and_predict_refuses_the_other_layout(tmp_path, iqu_store):
    qu = Predictor(_weights(tmp_path / "qu.safetensors", "QU"))
    t = Predictor(_weights(tmp_path / "t.safetensors", "I"))
    assert load_weights(tmp_path / "qu.safetensors")[1].stokes == "QU" and t.card.stokes == "I"
    pol = qu_channels(iqu_store.read("polarization"))
    with pytest.raises(ValueError, match=r"these weights separate Q and U.*give Q/U maps"):
        qu.predict(iqu_store.read("inputs"), BANDS, 90.0)
    with pytest.raises(ValueError, match=r"the Q and U of the bands.*separate temperature"):
        t.predict(pol, BANDS, 90.0)
    with pytest.raises(ValueError, match="a card for 3 input channels of Stokes QU needs 1"):
        WeightsCard(**{**qu.card.__dict__, "in_channels": 3})


def test_predict_round_trip_on_a_store_and_a_file(tmp_path, iqu_store, capsys):
    weights = _weights(tmp_path / "qu.safetensors", "QU")
    predictor = Predictor(weights)
    pol = qu_channels(iqu_store.read("polarization"))
    out = predictor.predict(pol, BANDS, 90.0)
    with torch.no_grad():
        expected, _ = apply_network(predictor.model, predictor.normalization, torch.from_numpy(pol), maps=2)
    assert out.shape == (4, 2, 32, 32)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-4)
    assert main(["predict", str(iqu_store.path), str(tmp_path / "store.npy"), "--weights", str(weights)]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "store.npy"), out, rtol=1e-5, atol=1e-4)
    assert "CMB Q and U of 4 patches" in capsys.readouterr().out
    np.save(tmp_path / "qu.npy", pol)
    assert main(["predict", str(tmp_path / "qu.npy"), str(tmp_path / "file.fits"), "--weights", str(weights),
                 "--stokes", "QU", "--frequencies", "143,217,353", "--pixel-arcsec", "90"]) == 0
    from astropy.io import fits

    with fits.open(tmp_path / "file.fits") as hdus:
        np.testing.assert_allclose(hdus[0].data, out, rtol=1e-5, atol=1e-4)
        assert hdus[0].header["STOKES"] == "QU"


def test_predict_refuses_mismatched_stokes(tmp_path, iqu_store, capsys):
    weights = _weights(tmp_path / "t.safetensors", "I")
    code = main(["predict", str(iqu_store.path), str(tmp_path / "o.npy"), "--weights", str(weights),
                 "--stokes", "QU"])
    assert code != 0
    assert "--stokes QU asks for Q and U but the weights" in capsys.readouterr().err


def test_q_and_u_without_weights_run_the_shipped_polarization_model(tmp_path, iqu_store):
    shipped = resolve_weights("polarization")
    assert resolve_weights(None, "QU") == shipped and load_weights(shipped)[1].stokes == "QU"
    assert main(["predict", str(iqu_store.path), str(tmp_path / "o.npy"), "--stokes", "QU"]) == 0
    out, target = np.load(tmp_path / "o.npy"), iqu_store.read("target_polarization")
    raw = iqu_store.read("polarization")[:, :, 1]  # the 217 GHz Q and U: the CMB, dust and noise
    residual, raw_residual = (np.sqrt(np.mean((x - target) ** 2)) for x in (out, raw))
    # measured 2.5 µK per pixel on 96 patches at |b| > 30° (the 217 GHz maps: 43 µK, NILC: 39 µK)
    assert residual < 5.0 and residual < 0.2 * raw_residual
