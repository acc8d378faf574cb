"""Component separation methods by name: :func:`build_separator` builds the network (``cenn``,
:class:`NetworkSeparator`) or any registered method (the classical baselines, ``target-band``).

The interface every method implements (:class:`Separator`, :class:`InputInfo`,
:func:`register_separator`) is defined in :mod:`cenn.separation`, below the baselines, and
re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cenn.separation import (
    SEPARATORS,
    InputInfo,
    Separator,
    TargetBandSeparator,
    nominal_sigma,
    register_separator,
)

__all__ = ["NETWORK_METHODS", "InputInfo", "NetworkSeparator", "Separator", "TargetBandSeparator",
           "UnbiasedNetworkSeparator", "available_separators", "build_separator", "register_separator"]


#: The network methods: the minimum-MSE reference model and the unbiased one, each by default the
#: shipped weights of that name (:data:`cenn.pretrained.SHIPPED`).
NETWORK_METHODS = {"cenn": "reference", "cenn-unbiased": "unbiased"}


def _register_builtin() -> None:
    """Import the modules whose separators register themselves (the classical baselines)."""
    import cenn.baselines  # noqa: F401


def available_separators() -> list[str]:
    """Names accepted by :func:`build_separator`."""
    _register_builtin()
    return sorted(SEPARATORS)


def build_separator(name: str, **options: Any) -> Separator:
    """The separator registered as ``name``, built with ``options``."""
    _register_builtin()
    factory = SEPARATORS.lookup(name)
    try:
        return factory(**options)
    except TypeError as err:
        raise ValueError(f"method {name!r}: bad options {sorted(options)}: {err}") from err


@register_separator("cenn")
class NetworkSeparator(Separator):
    """Trained CENN weights (a :class:`cenn.predict.Predictor`) as a separator."""

    name = "cenn"

    def __init__(self, weights: str | Path, device: str = "cpu", precision: str = "32",
                 batch_size: int = 32):
        from cenn.predict import Predictor  # the network stack loads only when used

        self.weights = Path(weights)
        self.predictor = Predictor(weights, device=device, precision=precision, batch_size=batch_size)

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(inputs, info, noise_sigma, False)[0]

    def separate_with_sigma(
        self, inputs: torch.Tensor, info: InputInfo, noise_sigma: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._run(inputs, info, noise_sigma, self.predictor.gives_sigma)

    def _run(self, inputs: torch.Tensor, info: InputInfo, noise_sigma: torch.Tensor | None,
             with_sigma: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's CMB and, when ``with_sigma``, its σ, on ``inputs``' device."""
        if noise_sigma is None and self.predictor.takes_noise:
            noise_sigma = nominal_sigma(inputs, info.noise_uk_per_pixel)
        out = self.predictor.predict(inputs, list(info.frequencies_ghz), info.pixel_arcsec, info.units,
                                     noise_sigma=noise_sigma, return_sigma=with_sigma)
        if not with_sigma:
            return torch.from_numpy(out).to(inputs.device), None
        cmb, sigma = out
        return torch.from_numpy(cmb).to(inputs.device), torch.from_numpy(sigma).to(inputs.device)

    def describe(self) -> dict[str, Any]:
        card = self.predictor.card
        return {"name": self.name, "weights": str(self.weights), "architecture": card.architecture,
                "epochs": card.training.get("epochs"), "global_step": card.training.get("global_step"),
                "precision": self.predictor.precision}


@register_separator("cenn-unbiased")
class UnbiasedNetworkSeparator(NetworkSeparator):
    """The unbiased network (unit response to the CMB) as a separator: by default the shipped
    ``unbiased`` weights."""

    name = "cenn-unbiased"

    def __init__(self, weights: str | Path = NETWORK_METHODS["cenn-unbiased"], device: str = "cpu",
                 precision: str = "32", batch_size: int = 32):
        from cenn.pretrained import resolve_weights

        super().__init__(resolve_weights(weights), device=device, precision=precision, batch_size=batch_size)
