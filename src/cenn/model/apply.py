"""Running a network on maps in physical units: normalise, forward, invert.

A network may also see the per-pixel noise σ of its inputs (``noise_input``: the σ maps, put through
the same normalisation, as extra input channels after the bands) and may return the standard
deviation of its own residual (``sigma_output``: after its maps, one more output channel per map
holding ``log σ`` in network units).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cenn.data.normalization import Normalization


def noise_input(net: nn.Module) -> bool:
    """Whether ``net`` takes the inputs' per-pixel noise σ as extra channels."""
    return bool(getattr(net, "noise_input", False))


def sigma_output(net: nn.Module) -> bool:
    """Whether ``net`` returns the standard deviation of its residual (``log σ`` of each map, after
    the maps)."""
    return bool(getattr(net, "sigma_output", False))


def network_inputs(normalization: Normalization, inputs: torch.Tensor, stats: torch.Tensor,
                   noise_sigma: torch.Tensor | None) -> torch.Tensor:
    """What the network sees: the normalised bands ``(B, C, H, W)``, followed, when ``noise_sigma``
    (µK_CMB, the shape of ``inputs``) is given, by σ in the same normalisation,
    ``normalize(σ) − normalize(0)`` (σ over the scale for the linear transforms), ``(B, 2C, H, W)``."""
    x = normalization.normalize_inputs(inputs, stats)
    if noise_sigma is None:
        return x
    if noise_sigma.shape != inputs.shape:
        raise ValueError(f"the noise σ maps have shape {tuple(noise_sigma.shape)} but the inputs "
                         f"{tuple(inputs.shape)}: give one σ map per input map")
    zero = normalization.normalize_inputs(inputs.new_zeros((*inputs.shape[:2], 1, 1)), stats)
    sigma = normalization.normalize_inputs(noise_sigma.to(inputs.dtype), stats) - zero
    return torch.cat([x, sigma], dim=1)


def split_outputs(output: torch.Tensor, normalization: Normalization, stats: torch.Tensor,
                  maps: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The network's output in network space → the CMB ``(B, maps, H, W)`` µK_CMB (``maps``: 1, or 2
    for Q and U) and, for an output with more channels (the log σ of each map), its residual's σ
    ``(B, maps, H, W)`` µK_CMB (``denormalize(μ + e^s) − denormalize(μ)``, exact for the affine target
    transforms), else None."""
    mean = output[:, :maps]
    cmb = normalization.denormalize_target(mean, stats)
    if output.shape[1] == maps:
        return cmb, None
    if output.shape[1] != 2 * maps:
        raise ValueError(f"a network output of {output.shape[1]} maps is neither {maps} CMB maps nor "
                         f"them and a log σ for each ({2 * maps})")
    spread = torch.exp(output[:, maps:].double()).to(mean.dtype)
    return cmb, (normalization.denormalize_target(mean + spread, stats) - cmb).abs()


def apply_network(
    forward: Callable[[torch.Tensor], torch.Tensor],
    normalization: Normalization,
    inputs: torch.Tensor,
    channels_last: bool = False,
    noise_sigma: torch.Tensor | None = None,
    maps: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CMB ``(B, maps, H, W)`` µK_CMB (float32; ``maps`` 2: its Q and U from a polarization network's
    inputs, :mod:`cenn.data.stokes`) from observed ``inputs (B, C, H, W)`` µK_CMB, and its σ
    (µK_CMB) for a network with a σ output, else None: ``forward`` (the network, possibly compiled)
    applied between ``normalization`` and its inverse, with per-patch statistics of the inputs.
    ``noise_sigma``: the inputs' per-pixel noise σ, for a network that takes it (None otherwise).
    σ goes through the network's ``sigma_curve`` (:class:`cenn.model.sigma_curve.SigmaCurve`) when it
    has one."""
    stats = normalization.fit(inputs)
    x = network_inputs(normalization, inputs, stats, noise_sigma)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cmb, sigma = split_outputs(forward(x).float(), normalization, stats, maps)
    curve = getattr(forward, "sigma_curve", None)
    return cmb, (sigma if sigma is None or curve is None else curve(sigma))
