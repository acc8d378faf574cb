"""Sky components, one module (or one folder, with its helpers) each. Importing this package
imports every module in it and in its folders, and each component's module registers it with
:func:`cenn.sky.components.base.register`; ``from_maps`` reads any of them from HEALPix maps
instead."""

import importlib
import pkgutil

from cenn.sky.components.base import COMPONENTS, Component, SkyContext, register
from cenn.sky.components.build import build_component

for _module in sorted(m.name for m in pkgutil.walk_packages(__path__, f"{__name__}.")):
    importlib.import_module(_module)

__all__ = ["COMPONENTS", "Component", "SkyContext", "build_component", "register"]
