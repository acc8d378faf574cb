"""The CENN network: values against its layers written out, batch independence, receptive field,
parameter count, skip-connection wiring, gradients, training, registry."""

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


def _leaky(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    return torch.where(x > 0, x, slope * x)


def _conv_stride2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """out[o, i, j] = b[o] + Σ_{c,a,b} w[o, c, a, b] · x_pad[c, 2i + a, 2j + b], zero padding k // 2:
    the definition, one kernel tap at a time (no F.conv2d)."""
    k = weight.shape[-1]
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    padded = F.pad(x, (k // 2,) * 4)
    out = bias[None, :, None, None].expand(x.shape[0], -1, h, w).clone()
    for a in range(k):
        for b in range(k):
            taps = padded[:, :, a:a + 2 * h:2, b:b + 2 * w:2]
            out += torch.einsum("oc,nchw->nohw", weight[:, :, a, b], taps)
    return out


def _deconv_stride2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Transposed convolution by its definition: input pixel (i, j) adds x · w[:, :, a, b] at
    (2i + a, 2j + b); the full map is cropped by k // 2 at the start to twice the input size."""
    k = weight.shape[-1]
    n, _, h, w = x.shape
    full = torch.zeros(n, weight.shape[1], 2 * h + k, 2 * w + k, dtype=x.dtype)
    for a in range(k):
        for b in range(k):
            full[:, :, a:a + 2 * h:2, b:b + 2 * w:2] += torch.einsum("co,nchw->nohw", weight[:, :, a, b], x)
    p = k // 2
    return full[:, :, p:p + 2 * h, p:p + 2 * w] + bias[None, :, None, None]


def _reference_forward(model: CENN, x: torch.Tensor) -> torch.Tensor:
    """The paper's network written out layer by layer in float64 from the model's weights."""
    params = [(m.weight.double(), m.bias.double()) for m in (*model.encoder, *model.decoder)]
    depth = len(model.encoder)
    skips = []
    for w, b in params[:depth]:
        x = _conv_stride2(x, w, b)
        skips.append(x)  # pre-activation: what the decoder receives
        x = _leaky(x)
    for (w, b), skip in zip(params[depth:-1], reversed(skips[:-1]), strict=True):
        x = torch.cat([_leaky(_deconv_stride2(x, w, b)), skip], dim=1)
    w, b = params[-1]
    return _leaky(_deconv_stride2(x, w, b))


@pytest.mark.parametrize("shape", [(64, 64), (64, 128)])
def test_the_network_is_the_papers_layers_written_out(shape):
    """Any multiple of 64, square or not: the output equals the layer-by-layer definition (stride-2
    'same' convolutions, transposed convolutions doubling the size, LeakyReLU 0.2, skips) within
    float32 rounding; biases set non-zero so that they are checked too."""
    torch.manual_seed(3)
    model = build_model("cenn-small", 3)
    with torch.no_grad():
        for layer in (*model.encoder, *model.decoder):
            layer.bias.uniform_(-0.1, 0.1)
        x = torch.randn(2, 3, *shape)
        out = model(x)
    expected = _reference_forward(model, x.double())
    assert out.shape == expected.shape == (2, 1, *shape)
    scale = expected.abs().max().item()
    assert scale > 0.1 and (expected < 0).any()  # a non-trivial output, on both sides of the LeakyReLU
    assert (out.double() - expected).abs().max().item() < 1e-5 * scale


def test_a_patch_output_does_not_depend_on_the_rest_of_its_batch(paper):
    """The first patch's output is the same, bit for bit, whichever patch shares its batch; alone it
    agrees to float32 rounding (another batch size may take another convolution algorithm)."""
    torch.manual_seed(4)
    x = torch.randn(3, 3, 256, 256)
    with torch.no_grad():
        with_b, with_c, alone = paper(x[[0, 1]]), paper(x[[0, 2]]), paper(x[:1])
    assert with_b.shape == (2, 1, 256, 256) and with_b.dtype == torch.float32
    assert torch.equal(with_b[0], with_c[0])
    assert not torch.allclose(with_b[1], with_c[1])  # the neighbours' own outputs differ
    assert (with_b[0] - alone[0]).abs().max().item() < 1e-5 * with_b[0].abs().max().item()


def test_the_encoder_sees_225_pixels(paper):
    """Receptive field of a bottleneck pixel from the paper's kernels 9, 9, 7, 7, 5, 3 at strides 1 to
    32: 1 + 8·1 + 8·2 + 6·4 + 6·8 + 4·16 + 2·32 = 225 input pixels, centred on input pixel 64·i."""
    x = torch.zeros(1, 3, 320, 320, requires_grad=True)
    h = x
    for conv in paper.encoder:
        h = paper.activation(conv(h))
    h[0, :, 2, 3].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3))).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).flatten()
    assert (rows.min().item(), rows.max().item()) == (128 - 112, 128 + 112)
    assert (cols.min().item(), cols.max().item()) == (192 - 112, 192 + 112)


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
    """Same weights: the LeakyReLU network's output is the identity network's, activated."""
    torch.manual_seed(5)
    identity = build_model("cenn-small", 3, output_activation="identity")
    torch.manual_seed(5)
    leaky = build_model("cenn-small", 3)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        raw, activated = identity(x), leaky(x)
    assert isinstance(identity.output_activation, torch.nn.Identity) and (raw < 0).any()
    assert torch.equal(activated, F.leaky_relu(raw, 0.2))


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
    """bfloat16 (8-bit mantissa, 2⁻⁸ = 0.4 % per rounding) under autocast with channels_last: the
    output agrees with float32 to 2 % of its norm (measured 0.4 %), and is not float32's."""
    torch.manual_seed(6)
    model = build_model("cenn-small", 3)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x.to(memory_format=torch.channels_last))
    assert out.shape == (2, 1, 64, 64) and out.dtype == torch.bfloat16
    error = ((out.float() - reference).norm() / reference.norm()).item()
    assert 0 < error < 0.02, error


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
