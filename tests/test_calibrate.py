"""Calibrating a stated σ on held-out patches: the factor puts 68.3 % of the residuals within ±σ,
is stored in the network (sigma_scale) and on the card, and multiplies σ exactly."""

import math

import numpy as np
import pytest
import torch

from cenn import simulate
from cenn.model import build_model, load_weights
from cenn.predict import Predictor
from cenn.predict.calibrate import ONE_SIGMA, calibrate_weights, fit_sigma_scale, residual_ratios
from cenn.sky.components import COMPONENTS
from cenn.sky.simulator import GeometryConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_factor_of_a_gaussian_with_a_known_spread_is_found():
    ratios = np.abs(0.8 * np.random.default_rng(0).standard_normal(200_000))
    fit = fit_sigma_scale(ratios)
    assert fit["scale"] == pytest.approx(0.8, rel=0.01)
    assert fit["coverage_before"][0] == pytest.approx(math.erf(1.25 / math.sqrt(2)), abs=0.005)
    assert fit["coverage_after"] == pytest.approx([ONE_SIGMA, math.erf(math.sqrt(2))], abs=0.005)


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
    record = calibrate_weights(raw, store, tmp_path / "cal.safetensors")
    _, calibrated = load_weights(tmp_path / "cal.safetensors")
    assert calibrated.architecture_params["sigma_scale"] == pytest.approx(record["scale"])
    assert calibrated.training["sigma_calibration"]["seed"] == 12
    coverage = np.mean(residual_ratios(tmp_path / "cal.safetensors", store) < 1.0)
    assert coverage == pytest.approx(ONE_SIGMA, abs=0.002)
    plain = tiny_sigma_weights(tmp_path / "plain.safetensors", sigma_output=False)
    with pytest.raises(ValueError, match="no σ output"):
        residual_ratios(plain, store)
    assert Predictor(tmp_path / "cal.safetensors").gives_sigma
