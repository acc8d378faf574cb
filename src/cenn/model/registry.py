"""Named network architectures: ``build_model("cenn-paper", in_channels=3)``.

An architecture is registered as a factory ``(in_channels: int, **params) -> nn.Module``; a variant is
just another name for a factory with different default parameters.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from torch import nn

from cenn.registry import Registry

ModelFactory = Callable[..., nn.Module]

_ARCHITECTURE_MODULES = ("cenn.model.cenn_paper", "cenn.model.unet", "cenn.model.hybrid")
_MODELS: Registry[ModelFactory] = Registry("model")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``factory(in_channels, **params)`` under ``name`` (refused if taken)."""
    return _MODELS.register(name)


def _models() -> Registry[ModelFactory]:
    """The registry, after importing the modules that fill it."""
    for module in _ARCHITECTURE_MODULES:
        importlib.import_module(module)
    return _MODELS


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_models())


def model_parameters(name: str) -> list[str]:
    """The parameters (besides ``in_channels``) the architecture ``name`` accepts."""
    return [p for p in inspect.signature(_models().lookup(name)).parameters if p != "in_channels"]


def build_model(name: str, in_channels: int, **params) -> nn.Module:
    """Build the architecture ``name`` for ``in_channels`` input maps, overriding its defaults with
    ``params``. Raises ``ValueError`` for an unknown name or parameter."""
    factory = _models().lookup(name)
    signature = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        accepted = [p for p in signature if p != "in_channels"]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(
                f"model {name!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {', '.join(accepted)}"
            )
    return factory(in_channels, **params)
