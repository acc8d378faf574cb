"""Running a network on maps in physical units: normalise, forward, invert."""

from __future__ import annotations

from collections.abc import Callable

import torch

from cenn.data.normalization import Normalization


def apply_network(
    forward: Callable[[torch.Tensor], torch.Tensor],
    normalization: Normalization,
    inputs: torch.Tensor,
    channels_last: bool = False,
) -> torch.Tensor:
    """CMB ``(B, 1, H, W)`` µK_CMB (float32) from observed ``inputs (B, C, H, W)`` µK_CMB:
    ``forward`` (the network, possibly compiled) applied between ``normalization`` and its
    inverse, with per-patch statistics of the inputs."""
    stats = normalization.fit(inputs)
    x = normalization.normalize_inputs(inputs, stats)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return normalization.denormalize_target(forward(x).float(), stats)
