"""Building a configured sky component: a simulated one (:mod:`cenn.sky.components.base`'s registry)
or, with ``maps``, one read from HEALPix maps (:mod:`cenn.sky.components.from_maps`)."""

from __future__ import annotations

import math
from typing import Any

from cenn.sky.components.base import COMPONENTS, Component, build_checked
from cenn.sky.components.from_maps import map_component


def build_component(name: str, params: dict[str, Any]) -> Component:
    """Instantiate a registered component from configuration, refusing unknown parameters; with
    ``maps`` in ``params``, the component read from those HEALPix maps (see ``from_maps``)."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown sky component {name!r}; known: {sorted(COMPONENTS)}")
    if "maps" in params:
        component = map_component(name, params)
    else:
        component = build_checked(COMPONENTS[name], params, f"component {name!r}")
    if not (math.isfinite(component.scale) and component.scale >= 0):
        raise ValueError(f"component {name!r}: scale must be a finite number >= 0 (a factor on its maps; "
                         f"0 leaves it out), got {component.scale}")
    return component
