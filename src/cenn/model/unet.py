"""A residual U-Net sized for CPU training, registered beside the paper's network.

Registered variants:

- ``unet``: widths 8, 16, 32, 64, 128, 256 (five halvings, 2,822,945 parameters for 3 inputs; the
  shipped reference model).
- ``unet-small``: widths 4, 8, 16, 32, 64, 128 (707,361 parameters), for tests and quick runs.

Unlike ``cenn-paper`` (strided convolutions, LeakyReLU, no normalisation) every resolution has a
pre-activation residual block (GroupNorm → SiLU → 3×3 convolution, twice, plus a shortcut), the
decoder upsamples bilinearly, and the finest skip is at full resolution. The output layer is a
linear 1×1 convolution, so the network can return any real value (µK maps are signed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cenn.model.registry import register_model
from cenn.model.sigma_curve import SigmaCurve

UNET_WIDTHS = (8, 16, 32, 64, 128, 256)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with groups of at most 8 channels (at least one group)."""
    return nn.GroupNorm(max(1, channels // 8), channels)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(act(norm(conv(act(norm(x))))))``, with a 1×1
    shortcut when the channel count changes. Shape ``(B, c_in, H, W) → (B, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class ResUNet(nn.Module):
    """Residual U-Net: ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``, linear output.

    Args:
        in_channels: input maps.
        widths: channels at each resolution, full resolution first; ``len(widths) - 1`` halvings,
            so H and W must be multiples of ``2**(len(widths) - 1)``.
        out_channels: output maps.
        zero_head: start with a zero output layer (the network then returns 0 at first, which suits
            networks that learn a correction to a linear estimate).
        noise_input: also take each band's per-pixel noise σ, as ``in_channels`` more input maps
            after the bands (:func:`cenn.model.apply.network_inputs`).
        sigma_output: also return the log standard deviation of the residual, as one more output
            map after the ``out_channels`` (:func:`cenn.model.apply.split_outputs`).
        sigma_scale: a factor on that standard deviation (an earlier calibration's; kept so its
            weights load).
        sigma_curve: the σ-dependent calibration of the stated σ (µK), fitted after training on
            held-out patches (:class:`cenn.model.sigma_curve.SigmaCurve`, :mod:`cenn.predict.calibrate`).
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = UNET_WIDTHS, out_channels: int = 1,
                 zero_head: bool = False, noise_input: bool = False, sigma_output: bool = False,
                 sigma_scale: float = 1.0, sigma_curve: Mapping[str, Sequence[float]] | None = None):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a U-Net needs at least two resolutions (widths of length >= 2)")
        if not (math.isfinite(sigma_scale) and sigma_scale > 0):
            raise ValueError(f"sigma_scale must be a positive number, got {sigma_scale!r}")
        self.log_sigma_scale = math.log(sigma_scale)
        self.sigma_curve = None if sigma_curve is None else SigmaCurve.from_params(sigma_curve)
        widths = tuple(int(w) for w in widths)
        self.in_channels, self.multiple = in_channels, 2 ** (len(widths) - 1)
        self.noise_input, self.sigma_output = bool(noise_input), bool(sigma_output)
        self.stem = nn.Conv2d(in_channels * (2 if noise_input else 1), widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([ResidualBlock(widths[0], widths[0])])
        self.downsample = nn.ModuleList()
        for c_in, c_out in itertools.pairwise(widths):
            self.downsample.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1))
            self.down_blocks.append(ResidualBlock(c_out, c_out))
        self.up_blocks = nn.ModuleList(
            ResidualBlock(c_deep + c_skip, c_skip)
            for c_deep, c_skip in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.head_norm = _norm(widths[0])
        self.head = nn.Conv2d(widths[0], out_channels + int(sigma_output), 1)
        if zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        channels = self.stem.in_channels
        if x.ndim != 4 or x.shape[1] != channels:
            what = " (the bands, then their noise σ)" if self.noise_input else ""
            raise ValueError(f"ResUNet expects input of shape (B, {channels}, H, W){what}; "
                             f"got {tuple(x.shape)}")
        if x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(f"ResUNet needs H and W divisible by {self.multiple}; got {tuple(x.shape)}: "
                             f"crop or pad the patches to a multiple of {self.multiple} pixels")

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        """The first convolution, in float32 even under bfloat16 autocast: its output is the
        full-resolution path that the residual blocks and the skip to the head carry on in float32;
        rounded to bfloat16 it grew the shipped model's residual by 1.3 % at 5–30° (0.16 % kept)."""
        with torch.autocast(x.device.type, enabled=False):
            return self.stem(x.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels [× 2 with noise_input], H, W)`` → ``(B, out_channels [+ 1 with
        sigma_output], H, W)`` in network units."""
        self._check_input(x)
        h = self.down_blocks[0](self._stem(x))
        skips = [h]
        for down, block in zip(self.downsample, self.down_blocks[1:], strict=True):
            h = block(down(h))
            skips.append(h)
        for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        out = self.head(F.silu(self.head_norm(h)))
        if self.sigma_output and self.log_sigma_scale:
            out = torch.cat([out[:, :-1], out[:, -1:] + self.log_sigma_scale], dim=1)
        return out


register_model("unet")(ResUNet)
register_model("unet-small")(partial(ResUNet, widths=tuple(w // 2 for w in UNET_WIDTHS)))
