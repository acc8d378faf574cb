"""Component separation methods behind one interface: the bands' maps in, the CMB out.

A :class:`Separator` takes patches ``(N, C, H, W)`` in µK_CMB at the frequencies described by an
:class:`InputInfo` and returns the CMB ``(N, 1, H, W)`` in µK_CMB at the target band's resolution.
The network (``cenn``) and the classical baselines are all separators, so ``cenn evaluate`` treats
them alike. Register new ones with :func:`register_separator`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

UNITS = "uK_CMB"


@dataclass(frozen=True)
class InputInfo:
    """What a separator needs to know about its input maps (frequencies in GHz, beams' FWHM in
    arcmin, pixel side in arcsec, white-noise level per pixel in µK_CMB)."""

    frequencies_ghz: tuple[float, ...]
    band_names: tuple[str, ...]
    beam_fwhm_arcmin: tuple[float, ...]
    target_band: str
    target_beam_fwhm_arcmin: float
    pixel_arcsec: float
    noise_uk_per_pixel: tuple[float, ...]
    units: str = UNITS

    @classmethod
    def from_store_meta(cls, meta: dict[str, Any]) -> InputInfo:
        """From a dataset store's metadata (``DatasetStore.meta``)."""
        return cls(
            frequencies_ghz=tuple(float(f) for f in meta["frequencies_ghz"]),
            band_names=tuple(meta["band_names"]),
            beam_fwhm_arcmin=tuple(float(b) for b in meta["beam_fwhm_arcmin"]),
            target_band=meta["target_band"],
            target_beam_fwhm_arcmin=float(meta["target_beam_fwhm_arcmin"]),
            pixel_arcsec=float(meta["geometry"]["pixel_arcsec"]),
            noise_uk_per_pixel=tuple(float(n) for n in meta["noise_uk_per_pixel"]),
            units=meta.get("units", UNITS),
        )

    @property
    def target_channel(self) -> int:
        """Index of the target band among the input channels."""
        return self.band_names.index(self.target_band)


class Separator(ABC):
    """A component separation method (see the module docstring)."""

    name: str = "separator"

    @abstractmethod
    def separate(self, inputs: torch.Tensor, info: InputInfo) -> torch.Tensor:
        """The CMB ``(N, 1, H, W)`` float32 in µK_CMB from ``inputs (N, C, H, W)`` in µK_CMB."""

    def prepare(self, meta: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Called once per dataset store (with its metadata) before :meth:`separate`; methods that
        calibrate on the data's sky model (the oracle Wiener filter) do it here."""

    def describe(self) -> dict[str, Any]:
        """Provenance recorded in reports: the method's name and options."""
        return {"name": self.name}


_SEPARATORS: dict[str, Callable[..., Separator]] = {}


def register_separator(name: str) -> Callable[[Callable[..., Separator]], Callable[..., Separator]]:
    """Decorator adding a separator factory under ``name``."""

    def add(factory: Callable[..., Separator]) -> Callable[..., Separator]:
        _SEPARATORS[name] = factory
        return factory

    return add


def _register_builtin() -> None:
    """Import the modules whose separators register themselves (the classical baselines)."""
    import cenn.baselines  # noqa: F401


def available_separators() -> list[str]:
    """Names accepted by :func:`build_separator`."""
    _register_builtin()
    return sorted(_SEPARATORS)


def build_separator(name: str, **options: Any) -> Separator:
    """The separator registered as ``name``, built with ``options``."""
    _register_builtin()
    if name not in _SEPARATORS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_separators())}")
    try:
        return _SEPARATORS[name](**options)
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

    def separate(self, inputs: torch.Tensor, info: InputInfo) -> torch.Tensor:
        out = self.predictor.predict(inputs, list(info.frequencies_ghz), info.pixel_arcsec, info.units)
        return torch.from_numpy(out).to(inputs.device)

    def describe(self) -> dict[str, Any]:
        card = self.predictor.card
        return {"name": self.name, "weights": str(self.weights), "architecture": card.architecture,
                "epochs": card.training.get("epochs"), "global_step": card.training.get("global_step"),
                "precision": self.predictor.precision}


@register_separator("target-band")
class TargetBandSeparator(Separator):
    """No separation: the target band's input map as the CMB estimate (the reference any method
    must beat; its residual is the foregrounds and noise at the target band)."""

    name = "target-band"

    def separate(self, inputs: torch.Tensor, info: InputInfo) -> torch.Tensor:
        c = info.target_channel
        return inputs[:, c : c + 1].to(torch.float32)
