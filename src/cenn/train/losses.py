"""Training losses by name: ``loss(pred, target)`` for ``(B, 1, H, W)`` maps in network space.

- ``mse``: the mean squared error over every pixel of the batch (the paper's).
- ``patch-log-mse``: the mean over patches of ``log(MSE_patch)``. Each patch counts by its relative
  improvement, so patches whose residual is 10⁴ times larger (bright Galactic plane against faint
  high latitudes) neither dominate the gradient (as with ``mse`` in µK) nor vanish from it (as with
  per-patch min-max scaling). Its value is ``log`` of the network-space units squared.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cenn.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Floor on a patch's mean squared error, relative to the batch's, keeping the log finite.
_LOG_FLOOR = 1e-10


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels."""
    return F.mse_loss(pred, target)


def patch_log_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over patches of the log of each patch's mean squared error."""
    per_patch = (pred - target).pow(2).flatten(1).mean(1)
    floor = _LOG_FLOOR * per_patch.detach().mean() + torch.finfo(per_patch.dtype).tiny
    return torch.log(per_patch + floor).mean()


LOSSES: Registry[Loss] = Registry("loss", {"mse": mse, "patch-log-mse": patch_log_mse})


def gaussian_nll(mean: torch.Tensor, log_sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood per pixel, ``log σ + (y − μ)² / 2σ²`` (constant dropped),
    of ``target`` under ``N(mean, σ²)``, ``σ = exp(log_sigma)``; all ``(B, 1, H, W)`` in network units.
    Trains a σ output; pass ``mean`` detached so that the mean is trained by its own loss alone."""
    return (log_sigma + 0.5 * (target - mean).pow(2) * torch.exp(-2.0 * log_sigma)).mean()


def build_loss(name: str) -> Loss:
    """The loss ``name``; ``ValueError`` naming the choices for an unknown one."""
    return LOSSES.lookup(name)
