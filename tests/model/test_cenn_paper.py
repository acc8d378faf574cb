"""The CENN network: shapes, parameter count, skip-connection wiring, gradients, training, registry."""

import pytest
import torch
import torch.nn.functional as F

from cenn.model import CENN, available_models, build_model

ENCODER = [(8, 9), (16, 9), (64, 7), (128, 7), (256, 5), (512, 3)]  # (filters, kernel), from the paper
DECODER = [(256, 3), (128, 5), (64, 7), (16, 7), (8, 9), (1, 9)]


def _paper_parameter_count(in_channels: int) -> int:
    """Weights k²·c_in·c_out plus c_out biases per layer; decoder inputs widened by the skips."""
    count, c_in = 0, in_channels
    for filters, k in ENCODER:
        count += k * k * c_in * filters + filters
        c_in = filters
    skips = [f for f, _ in ENCODER[-2::-1]] + [0]
    for (filters, k), skip in zip(DECODER, skips, strict=True):
        count += k * k * c_in * filters + filters
        c_in = filters + skip
    return count


def _n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def paper() -> CENN:
    torch.manual_seed(0)
    return build_model("cenn-paper", 3)


def test_paper_network_keeps_the_patch_shape(paper):
    with torch.no_grad():
        out = paper(torch.randn(2, 3, 256, 256))
    assert out.shape == (2, 1, 256, 256) and out.dtype == torch.float32


@pytest.mark.parametrize("npix", [128, 320])
def test_any_multiple_of_64_works(npix):
    with torch.no_grad():
        out = build_model("cenn-small", 3)(torch.randn(1, 3, npix, npix))
    assert out.shape == (1, 1, npix, npix)


def test_size_not_multiple_of_64_is_rejected_clearly(paper):
    with pytest.raises(ValueError, match=r"divisible by 64.*\(1, 3, 100, 100\).*crop or pad"):
        paper(torch.randn(1, 3, 100, 100))


def test_parameter_count_matches_the_paper(paper):
    assert _n_parameters(paper) == _paper_parameter_count(3) == 6_207_449
    four = build_model("cenn-paper", 4)
    assert _n_parameters(four) == _paper_parameter_count(4) != 6_207_449


def test_decoder_inputs_are_widened_by_the_skip_connections(paper):
    assert [layer.in_channels for layer in paper.decoder] == [512, 512, 256, 128, 32, 16]


def test_skips_join_activated_decoder_output_with_preactivation_encoder_output(paper):
    """Decoder layer i+1's input is [leaky(decoder i output), encoder output before its activation]."""
    outputs, inputs = {}, {}
    hooks = [m.register_forward_hook(lambda mod, args, out: outputs.__setitem__(mod, out))
             for m in (*paper.encoder, *paper.decoder)]
    hooks += [m.register_forward_hook(lambda mod, args, out: inputs.__setitem__(mod, args[0]))
              for m in paper.decoder]
    with torch.no_grad():
        out = paper(torch.randn(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    for i in range(5):
        joined, previous = inputs[paper.decoder[i + 1]], outputs[paper.decoder[i]]
        n = previous.shape[1]
        assert torch.equal(joined[:, :n], F.leaky_relu(previous, 0.2))
        assert torch.equal(joined[:, n:], outputs[paper.encoder[4 - i]])
    assert torch.equal(out, F.leaky_relu(outputs[paper.decoder[5]], 0.2))


def test_identity_output_activation():
    model = build_model("cenn-small", 3, output_activation="identity")
    assert isinstance(model.output_activation, torch.nn.Identity)


def test_keras_initialisation(paper):
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in (*paper.encoder, *paper.decoder))
    w = paper.encoder[0].weight  # Glorot uniform: U(±√(6 / (fan_in + fan_out)))
    limit = (6 / (81 * 3 + 81 * 8)) ** 0.5
    assert w.abs().max() <= limit and w.abs().max() > 0.9 * limit


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(1)
    model = build_model("cenn-paper", 3)
    (model(torch.randn(2, 3, 64, 64)) * torch.randn(2, 1, 64, 64)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_small_network_overfits_one_batch():
    """A smooth 'CMB' under per-channel smooth 'foregrounds': the loss falls tenfold within 300 steps."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def smooth(channels: int) -> torch.Tensor:
        coarse = torch.rand(4, channels, 8, 8, generator=g) - 0.5
        return F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)

    target = smooth(1)
    inputs = target + 0.5 * smooth(3)
    model = build_model("cenn-small", 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        loss = F.mse_loss(model(inputs), target)
        losses.append(loss.item())
        if losses[-1] < losses[0] / 10:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0] / 10, f"loss {losses[0]:.3g} → {losses[-1]:.3g} in {len(losses)} steps"


def test_channels_last_and_bf16_autocast():
    model = build_model("cenn-small", 3).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()


def test_registry_lists_the_variants():
    assert {"cenn-paper", "cenn-small"} <= set(available_models())
    small = build_model("cenn-small", 3)
    assert [layer.out_channels for layer in small.encoder] == [2, 4, 16, 32, 64, 128]
    assert [layer.out_channels for layer in small.decoder] == [64, 32, 16, 4, 2, 1]


def test_unknown_model_error_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown model 'cenn-huge'.*cenn-paper.*cenn-small"):
        build_model("cenn-huge", 3)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"'cenn-small' has no parameter\(s\) dropout.*negative_slope"):
        build_model("cenn-small", 3, dropout=0.1)
