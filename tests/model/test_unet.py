"""The residual U-Net: shape, linear output, zero head, parameter count, registry, refusals, learning."""

import pytest
import torch

from cenn.model import available_models, build_model
from cenn.model.unet import UNET_WIDTHS, ResUNet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_beside_the_paper_network_which_is_unchanged():
    assert {"unet", "unet-small", "cenn-paper", "hilc-unet", "sp-unet"} <= set(available_models())
    assert sum(p.numel() for p in build_model("cenn-paper", 3).parameters()) == 6_207_449


def test_unet_parameter_count_and_resolution():
    model = build_model("unet", 3)
    assert model.multiple == 2 ** (len(UNET_WIDTHS) - 1) == 32
    assert sum(p.numel() for p in model.parameters()) == 2_822_945


def test_output_keeps_the_patch_shape_and_is_linear():
    torch.manual_seed(0)
    model = ResUNet(3, widths=(4, 8, 16), out_channels=2).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, 32, 32)
    assert (y < 0).any() and (y > 0).any()  # a linear head: signed outputs
    head = model.head
    with torch.no_grad():  # the output is an affine function of the last features: scaling the head scales it
        base = model(x) - head.bias[None, :, None, None]
        head.weight.mul_(3.0)
        assert torch.allclose(model(x) - head.bias[None, :, None, None], 3.0 * base, atol=1e-5)


def test_zero_head_starts_at_zero_and_still_learns():
    torch.manual_seed(0)
    model = ResUNet(1, widths=(4, 8), zero_head=True)
    x = torch.randn(4, 1, 16, 16)
    assert torch.count_nonzero(model(x)) == 0
    target = 2.0 * x  # a linear map: learnable
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = (model(x) - target).pow(2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_refuses_sizes_it_cannot_halve_and_wrong_channels():
    model = ResUNet(3, widths=(4, 8, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="at least two resolutions"):
        ResUNet(3, widths=(4,))
