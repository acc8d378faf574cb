"""Calibrating a stated σ on held-out patches: the σ curve puts 68.3 % of the residuals within ±σ at
every level of σ, keeps the order of σ, is stored in the network (sigma_curve) and on the card, and
is applied to σ in µK."""

import math

import numpy as np
import pytest
import torch

from cenn import simulate
from cenn.data.stokes import qu_channels, qu_noise_sigma
from cenn.data.store import open_finished
from cenn.model import build_model, load_weights
from cenn.model.sigma_curve import ONE_SIGMA, SigmaCurve
from cenn.predict import Predictor
from cenn.predict.calibrate import calibrate_weights, coverage, stated_sigma
from cenn.sky.components import COMPONENTS
from cenn.sky.simulator import GeometryConfig, SimulationConfig
from cenn.train.config import ModelConfig, TrainConfig
from cenn.train.run import resolve_model_params

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_sigma_dependent_miscalibration_is_recovered():
    # residuals whose true spread is σ · g(σ): g = 0.8 at σ = 5 µK rising to 1.25 at σ = 40 µK
    rng = np.random.default_rng(0)
    sigma = np.exp(rng.uniform(np.log(5.0), np.log(40.0), 400_000))
    g = np.interp(np.log(sigma), np.log([5.0, 40.0]), [0.8, 1.25])
    abs_residual = np.abs(sigma * g * rng.standard_normal(sigma.size))
    assert coverage(abs_residual, sigma)[0] == pytest.approx(0.68, abs=0.02)  # right on average only
    curve = SigmaCurve.fit(abs_residual, sigma, bins=8)
    factors = np.exp(curve.log_factor)
    expected = np.interp(curve.log_sigma_uk, np.log([5.0, 40.0]), [0.8, 1.25])
    np.testing.assert_allclose(factors, expected, rtol=0.02)
    calibrated = curve(torch.from_numpy(sigma)).numpy()
    for part in np.array_split(np.argsort(sigma), 8):  # every level of σ, not just on average
        assert coverage(abs_residual[part], calibrated[part]) == pytest.approx(
            [ONE_SIGMA, math.erf(math.sqrt(2))], abs=0.01)


def test_the_curve_keeps_the_order_of_sigma_and_is_constant_beyond_its_knots():
    rng = np.random.default_rng(1)
    sigma = np.exp(rng.uniform(0.0, 4.0, 50_000))
    # far too narrow at small σ, right at large σ: without the order constraint the fit would reorder
    abs_residual = np.abs(sigma * np.where(sigma < 5.0, 20.0, 1.0) * rng.standard_normal(sigma.size))
    curve = SigmaCurve.fit(abs_residual, sigma, bins=6)
    unpooled = [np.log(np.quantile(abs_residual[p] / sigma[p], ONE_SIGMA))
                for p in np.array_split(np.argsort(sigma), 6)]
    assert np.any(np.diff(np.array(curve.log_sigma_uk) + unpooled) < 0)  # the constraint binds here
    grid = torch.exp(torch.linspace(-2.0, 6.0, 2001, dtype=torch.float64))
    out = curve(grid)
    assert bool(torch.all(torch.diff(out) >= -1e-12 * out[1:]))  # flat where pooled, to rounding
    low, high = math.exp(curve.log_factor[0]), math.exp(curve.log_factor[-1])
    assert float(out[0] / grid[0]) == pytest.approx(low) and float(out[-1] / grid[-1]) == pytest.approx(high)
    single = SigmaCurve((1.0,), (math.log(0.5),))
    torch.testing.assert_close(single(grid), 0.5 * grid)
    with pytest.raises(ValueError, match="keep the order of σ"):
        SigmaCurve((0.0, 1.0), (0.0, -2.0))
    with pytest.raises(ValueError, match="knots must increase"):
        SigmaCurve((1.0, 0.0), (0.0, 0.0))
    with pytest.raises(ValueError, match="missing log_factor"):
        SigmaCurve.from_params({"log_sigma_uk": [0.0]})


def test_sigma_scale_multiplies_the_stated_sigma_exactly():
    torch.manual_seed(3)
    net = build_model("unet-small", 3, noise_input=True, sigma_output=True)
    scaled = build_model("unet-small", 3, noise_input=True, sigma_output=True, sigma_scale=0.5)
    scaled.load_state_dict(net.state_dict())
    x = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        a, b = net(x), scaled(x)
    torch.testing.assert_close(b[:, :1], a[:, :1])
    torch.testing.assert_close(torch.exp(b[:, 1:]), 0.5 * torch.exp(a[:, 1:]), rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="sigma_scale must be a positive number"):
        build_model("unet-small", 3, sigma_output=True, sigma_scale=0.0)


def test_calibrated_weights_cover_68_percent_of_the_calibration_patches(tmp_path, tiny_sigma_weights):
    components = {name: {"enabled": name in ("cmb", "dust")} for name in COMPONENTS}
    config = SimulationConfig(seed=12, geometry=GeometryConfig(npix=64, margin=16), components=components)
    store = simulate(tmp_path / "cal.zarr", 8, config, progress=False).path
    raw = tiny_sigma_weights(tmp_path / "raw.safetensors")
    record = calibrate_weights(raw, store, tmp_path / "cal.safetensors", bins=4)
    _, calibrated = load_weights(tmp_path / "cal.safetensors")
    assert len(calibrated.architecture_params["sigma_curve"]["log_factor"]) <= 4
    assert calibrated.training["sigma_calibration"]["seed"] == 12
    abs_residual, sigma = stated_sigma(tmp_path / "cal.safetensors", open_finished(store))
    # an untrained network's σ is anti-correlated with its residual here, so the order constraint
    # pools bins and the coverage is near, not exactly at, 68.3 %
    assert coverage(abs_residual, sigma)[0] == pytest.approx(ONE_SIGMA, abs=0.03)
    assert record["coverage_after"][0] == pytest.approx(coverage(abs_residual, sigma)[0], abs=1e-9)
    with pytest.raises(ValueError, match="already calibrated"):
        calibrate_weights(tmp_path / "cal.safetensors", store, tmp_path / "twice.safetensors")
    plain = tiny_sigma_weights(tmp_path / "plain.safetensors", sigma_output=False)
    with pytest.raises(ValueError, match="no σ output"):
        stated_sigma(plain, open_finished(store))
    assert Predictor(tmp_path / "cal.safetensors").gives_sigma
    # training on from calibrated weights drops their curve: it was fitted on their residuals
    cfg = TrainConfig(model=ModelConfig(init_weights=str(tmp_path / "cal.safetensors")))
    resumed = resolve_model_params(cfg, open_finished(store).meta, calibrated)
    assert "sigma_curve" not in resumed.model.params
    assert resumed.model.params["sigma_output"] and resumed.model.params["noise_input"]


def test_q_u_weights_are_calibrated_on_the_store_s_q_and_u(tmp_path, tiny_unbiased_weights):
    """Unbiased Q/U weights at their start (σ = 100 µK everywhere, far wider than the residual): the
    curve is fitted on the store's Q and U against the CMB's, and brings both maps' coverage to 68 %."""
    components = {name: {"enabled": name in ("cmb", "dust")} for name in COMPONENTS}
    config = SimulationConfig(seed=13, geometry=GeometryConfig(npix=64, margin=16), components=components,
                              stokes="IQU")
    store = simulate(tmp_path / "qu.zarr", 4, config, progress=False).path
    raw = tiny_unbiased_weights(tmp_path / "raw.safetensors", stokes="QU")
    abs_residual, sigma = stated_sigma(raw, open_finished(store))
    assert abs_residual.size == 4 * 2 * 64 * 64 and np.allclose(sigma, 100.0, rtol=1e-5)
    assert coverage(abs_residual, sigma)[0] > 0.9
    record = calibrate_weights(raw, store, tmp_path / "cal.safetensors", bins=1)  # one σ: one factor
    assert record["coverage_after"][0] == pytest.approx(ONE_SIGMA, abs=1e-4)
    cmb, calibrated = Predictor(tmp_path / "cal.safetensors").predict(
        qu_channels(open_finished(store).read("polarization")), [143.0, 217.0, 353.0], 90.0,
        noise_sigma=qu_noise_sigma(open_finished(store).noise_sigma()), return_sigma=True)
    assert cmb.shape == calibrated.shape == (4, 2, 64, 64)
    target = open_finished(store).read("target_polarization")
    for k in range(2):  # Q, then U
        within = np.mean(np.abs(cmb[:, k] - target[:, k]) < calibrated[:, k])
        assert within == pytest.approx(ONE_SIGMA, abs=0.05)
