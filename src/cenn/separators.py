"""Component separation methods by name: :func:`build_separator` builds the network (``cenn``,
:class:`NetworkSeparator`) or any registered method (the classical baselines, ``target-band``).

The interface every method implements (:class:`Separator`, :class:`InputInfo`,
:func:`register_separator`) is defined in :mod:`cenn.separation`, below the baselines, and
re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cenn.data.stokes import qu_channels
from cenn.runtime import DEFAULT_PRECISION
from cenn.separation import (
    SEPARATORS,
    InputInfo,
    Separator,
    TargetBandSeparator,
    register_separator,
)

if TYPE_CHECKING:
    from cenn.predict import Predictor

__all__ = ["NETWORK_METHODS", "InputInfo", "NetworkSeparator", "Separator", "TargetBandSeparator",
           "UnbiasedNetworkSeparator", "available_separators", "build_separator", "register_separator"]


#: The network methods: the minimum-MSE reference model and the unbiased one, each by default the
#: shipped weights of that name (:data:`cenn.pretrained.SHIPPED`; their Q/U counterparts:
#: :data:`cenn.pretrained.POLARIZATION_MODELS`).
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
    """Trained CENN weights (a :class:`cenn.predict.Predictor`) as a separator: ``weights`` separate the
    temperature (their card's ``stokes = "I"``) and, when given, ``polarization_weights`` (``stokes =
    "QU"``) the bands' Q and U (:meth:`separate_polarization`, layout of :mod:`cenn.data.stokes`).
    Weights of the other kind in either place are refused, naming the fix."""

    name = "cenn"

    def __init__(self, weights: str | Path, device: str = "cpu", precision: str = DEFAULT_PRECISION,
                 batch_size: int = 32, polarization_weights: str | Path | None = None):
        self.weights = Path(weights)
        self.predictor = _network(self.weights, "I", device, precision, batch_size)
        self.polarization_weights = None if polarization_weights is None else Path(polarization_weights)
        self.polarization = (None if self.polarization_weights is None else
                             _network(self.polarization_weights, "QU", device, precision, batch_size))

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(self.predictor, inputs, info, noise_sigma, False)[0]

    def separate_with_sigma(
        self, inputs: torch.Tensor, info: InputInfo, noise_sigma: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._run(self.predictor, inputs, info, noise_sigma, self.predictor.gives_sigma)

    def separate_polarization(self, polarization: torch.Tensor, info: InputInfo,
                              noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """The CMB's Q and U ``(N, 2, H, W)`` µK_CMB from the bands' ``polarization (N, 2, C, H, W)``
        (and their noise σ, same shape; None: the nominal levels × √2) with the Q/U weights."""
        if self.polarization is None:
            raise NotImplementedError(f"method {self.name!r}: {self.polarization_refusal()}")
        sigma = None if noise_sigma is None else qu_channels(noise_sigma)
        return self._run(self.polarization, qu_channels(polarization), info, sigma, False)[0]

    def polarization_refusal(self) -> str | None:
        if self.polarization is not None:
            return None
        return ("no Q/U weights given (only temperature weights): pass weights trained with data.stokes = "
                f"\"QU\" as polarization_weights under [methods.{self.name}]"
                + (" or --polarization-weights" if self.name == "cenn" else ""))

    @staticmethod
    def _run(predictor: Predictor, inputs: torch.Tensor, info: InputInfo, noise_sigma: torch.Tensor | None,
             with_sigma: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's CMB and, when ``with_sigma``, its σ, on ``inputs``' device; ``inputs`` in the
        ``predictor``'s layout (temperature ``(N, C, H, W)``, or Q/U ``(N, 2C, H, W)``)."""
        if noise_sigma is None and predictor.takes_noise:
            noise_sigma = predictor.nominal_sigma(inputs, info.noise_uk_per_pixel)
        out = predictor.predict(inputs, list(info.frequencies_ghz), info.pixel_arcsec, info.units,
                                noise_sigma=noise_sigma,
                                return_sigma=with_sigma)
        if not with_sigma:
            return torch.from_numpy(out).to(inputs.device), None
        cmb, sigma = out
        return torch.from_numpy(cmb).to(inputs.device), torch.from_numpy(sigma).to(inputs.device)

    def describe(self) -> dict[str, Any]:
        card = self.predictor.card
        described = {"name": self.name, "weights": str(self.weights), "architecture": card.architecture,
                     "epochs": card.training.get("epochs"), "global_step": card.training.get("global_step"),
                     "precision": self.predictor.precision}
        if self.polarization is not None:
            described.update(polarization_weights=str(self.polarization_weights),
                             polarization_architecture=self.polarization.card.architecture,
                             polarization_global_step=self.polarization.card.training.get("global_step"))
        return described


def _network(weights: Path, stokes: str, device: str, precision: str, batch_size: int) -> Predictor:
    """The :class:`cenn.predict.Predictor` of ``weights``, refused unless their card's Stokes maps are
    ``stokes`` ("I": the method's temperature weights; "QU": its polarization weights)."""
    from cenn.predict import Predictor  # the network stack loads only when used

    predictor = Predictor(weights, device=device, precision=precision, batch_size=batch_size)
    card = predictor.card.stokes
    if card == stokes:
        return predictor
    if card == "QU":
        raise ValueError(f"the weights {weights} separate Q and U (their card's stokes = \"QU\"), not the "
                         "temperature: pass them as the polarization weights (cenn evaluate "
                         "--polarization-weights, polarization_weights under [methods.cenn]) and keep "
                         "temperature weights (default: the shipped reference model) as --weights")
    raise ValueError(f"the polarization weights {weights} separate the temperature (their card's stokes = "
                     f"\"{card}\"), not Q and U: pass weights trained with data.stokes = \"QU\" (cenn train "
                     "--config src/cenn/configs/polarization-train.toml), and these as --weights")


@register_separator("cenn-unbiased")
class UnbiasedNetworkSeparator(NetworkSeparator):
    """The unbiased network (unit response to the CMB) as a separator: by default the shipped
    ``unbiased`` weights; with ``polarization_weights`` (e.g. ``unbiased-polarization``) also Q and U."""

    name = "cenn-unbiased"

    def __init__(self, weights: str | Path = NETWORK_METHODS["cenn-unbiased"], device: str = "cpu",
                 precision: str = DEFAULT_PRECISION, batch_size: int = 32,
                 polarization_weights: str | Path | None = None):
        from cenn.pretrained import resolve_weights

        super().__init__(resolve_weights(weights), device=device, precision=precision, batch_size=batch_size,
                         polarization_weights=None if polarization_weights is None else
                         resolve_weights(polarization_weights, "QU"))
