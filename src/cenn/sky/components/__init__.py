"""Sky components, one module each. Importing this package imports every module in it, and
each module registers its components with :func:`cenn.sky.components.base.register`, except
``from_maps``, which reads any of them from HEALPix maps instead."""

import importlib
import pkgutil

from cenn.sky.components.base import COMPONENTS, Component, SkyContext, register
from cenn.sky.components.build import build_component

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["COMPONENTS", "Component", "SkyContext", "build_component", "register"]
