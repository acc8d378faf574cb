"""Networks that see the noise σ and give their residual's σ: grown from trained weights without
changing what they compute, σ through the normalisations in µK, the Gaussian likelihood, and a
σ output that learns a known heteroscedastic noise."""

import math

import pytest
import torch

from cenn.data.normalization import build_normalization
from cenn.model import build_model
from cenn.model.apply import apply_network, network_inputs, split_outputs
from cenn.model.weights import load_grown
from cenn.train.losses import gaussian_nll

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_grown_network_computes_what_the_trained_one_did():
    torch.manual_seed(0)
    old = build_model("unet-small", 3)
    grown = build_model("unet-small", 3, noise_input=True, sigma_output=True)
    names = load_grown(grown, old.state_dict())
    assert sorted(names) == ["head.bias", "head.weight", "stem.weight"]
    x, sigma = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before, after = old(x), grown(torch.cat([x, sigma], dim=1))
    assert after.shape == (2, 2, 32, 32)
    torch.testing.assert_close(after[:, :1], before, rtol=1e-5, atol=1e-6)  # the noise channels are ignored
    assert float(after[:, 1].abs().max()) == 0.0  # log σ starts at 0
    with pytest.raises(ValueError, match="does not fit"):
        load_grown(old, grown.state_dict())


def test_noise_channels_are_sigma_in_the_inputs_normalisation():
    inputs, sigma = 1000.0 * torch.randn(2, 3, 8, 8), 30.0 + torch.rand(2, 3, 8, 8)
    for name, params, expected in [("scale", {"scale_uk": 100.0}, sigma / 100.0),
                                   ("asinh", {"scale_uk": 100.0}, torch.asinh(sigma / 100.0)),
                                   ("identity", {}, sigma)]:
        norm = build_normalization(name, **params)
        x = network_inputs(norm, inputs, norm.fit(inputs), sigma)
        torch.testing.assert_close(x[:, 3:], expected)
    minmax = build_normalization("minmax")
    stats = minmax.fit(inputs)
    span = (stats[:, 3:] - stats[:, :3])[..., None, None]
    torch.testing.assert_close(network_inputs(minmax, inputs, stats, sigma)[:, 3:], sigma / span, rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(ValueError, match="one σ map per input map"):
        network_inputs(minmax, inputs, stats, sigma[:, :2])


def test_sigma_output_is_returned_in_microkelvin():
    norm = build_normalization("asinh", scale_uk=100.0)
    out = torch.zeros(1, 2, 4, 4)
    out[:, 0], out[:, 1] = 0.5, math.log(0.2)
    cmb, sigma = split_outputs(out, norm, norm.fit(torch.zeros(1, 3, 4, 4)))
    torch.testing.assert_close(cmb, torch.full_like(cmb, 50.0))
    torch.testing.assert_close(sigma, torch.full_like(sigma, 20.0))
    assert split_outputs(out[:, :1], norm, norm.fit(torch.zeros(1, 3, 4, 4)))[1] is None


def test_gaussian_nll_is_minimal_at_the_true_sigma():
    torch.manual_seed(1)
    target = 3.0 * torch.randn(1, 1, 256, 256)
    mean = torch.zeros_like(target)
    values = {s: float(gaussian_nll(mean, torch.full_like(target, math.log(s)), target)) for s in (2, 3, 4.5)}
    assert values[3] < values[2] and values[3] < values[4.5]
    assert values[3] == pytest.approx(math.log(3.0) + 0.5, abs=0.02)


def test_sigma_output_learns_a_known_heteroscedastic_noise():
    """A target that is pure noise whose σ is one of the inputs: the σ head recovers it to 10 %."""
    torch.manual_seed(2)
    net = build_model("unet-small", 1, noise_input=True, sigma_output=True)
    norm = build_normalization("identity")
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    side = torch.linspace(0.2, 1.0, 32)

    def batch(n: int):
        sigma = side[None, None, :, None].expand(n, 1, 32, 32) * (0.5 + torch.rand(n, 1, 1, 1))
        return torch.zeros(n, 1, 32, 32), sigma, sigma * torch.randn(n, 1, 32, 32)

    for _ in range(150):
        inputs, sigma, target = batch(16)
        out = net(network_inputs(norm, inputs, norm.fit(inputs), sigma))
        loss = gaussian_nll(out[:, :1].detach(), out[:, 1:], target) + (out[:, :1] - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    inputs, sigma, target = batch(8)
    with torch.no_grad():
        _, predicted = apply_network(net, norm, inputs, noise_sigma=sigma)
    ratio = (predicted / sigma).flatten()
    assert float(ratio.median()) == pytest.approx(1.0, abs=0.1)
    assert float(torch.quantile(ratio, 0.9) / torch.quantile(ratio, 0.1)) < 1.5
