"""cenn: CMB extraction from multi-frequency sky patches with a fully convolutional network.

The names below load on first use (PEP 562), so ``import cenn`` and the ``cenn`` command's help
load neither torch nor the sky model."""

from __future__ import annotations

import importlib
from typing import Any

from cenn._version import __version__ as __version__

#: Each public name and the module that defines it.
_LAZY = {
    "Instrument": "cenn.sky.instrument",
    "PatchDataset": "cenn.data.dataset",
    "PatchGeometry": "cenn.sky.flat.geometry",
    "PatchSimulator": "cenn.sky.simulator",
    "SimulationConfig": "cenn.sky.simulator",
    "load_instrument": "cenn.sky.instrument",
    "simulate": "cenn.data.simulate",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cenn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
