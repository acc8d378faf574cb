"""Randomised skies: component parameters drawn afresh for every patch, from configured ranges.

A simulation's ``[randomise.<component>]`` table maps parameter names to ``[low, high]``. Every patch
draws each listed parameter independently: ``amplitude`` (a factor on the component's maps, on top of
its ``scale``) log-uniformly, any other parameter (one of the component's ``randomisable`` ones)
uniformly. Each (component, parameter) pair has its own random stream, ``randomise.<component>.<name>``,
so adding a range never changes the other draws, and a patch stays a pure function of (seed, index).

``[randomise] extremes = f`` (a number, not a table) draws a fraction ``f`` of the patches at the edges
of every range at once: each of their parameters from the outer quarters of its range (in log for
amplitudes), so combinations of unusual values, which independent draws almost never give, are trained
on. The other patches, and every patch when ``f`` is 0 (the default), draw as above, from the same streams.

``[randomise.noise]`` is not a component: its one parameter, ``amplitude``, is a per-patch factor on every
band's noise σ (temperature and, through it, Q and U), drawn log-uniformly like the components'
amplitudes; the patch's ``noise_sigma`` includes it, so a network that takes σ as input sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cenn.sky.components import COMPONENTS
from cenn.sky.rng import SampleRandom

AMPLITUDE = "amplitude"
"""The parameter every component accepts: a per-patch factor on its maps (drawn log-uniformly)."""

NOISE = "noise"
"""The randomised table that is not a component: ``amplitude``, a per-patch factor on the noise σ."""

EXTREMES = "extremes"
"""The key of ``[randomise]`` that is not a table: the fraction of patches drawn at the edges of every
range."""

Ranges = dict[str, dict[str, tuple[float, float]]]


def check_ranges(table: Mapping[str, Any]) -> Ranges:
    """``[randomise]`` of a simulation configuration as ``{component: {parameter: (low, high)}}``,
    refusing unknown components or parameters and ranges that are not two finite numbers
    ``low <= high`` (``low > 0`` for ``amplitude``)."""
    if not isinstance(table, Mapping):
        raise ValueError(f"randomise must be a table of components, got {table!r}")
    extremes_fraction(table)
    ranges: Ranges = {}
    for component, params in table.items():
        if component == EXTREMES:
            continue
        if component not in COMPONENTS and component != NOISE:
            raise ValueError(f"randomise.{component}: unknown component; known: {sorted(COMPONENTS)} "
                             f"and {NOISE!r} (its amplitude)")
        if not isinstance(params, Mapping):
            raise ValueError(f"randomise.{component} must be a table of parameter = [low, high]")
        allowed = (AMPLITUDE, *(COMPONENTS[component].randomisable if component != NOISE else ()))
        ranges[component] = {}
        for name, bounds in params.items():
            where = f"randomise.{component}.{name}"
            if name not in allowed:
                raise ValueError(f"{where}: {component} cannot draw {name!r} per patch; it can draw "
                                 f"{', '.join(allowed)}")
            if (not isinstance(bounds, list | tuple) or len(bounds) != 2
                    or any(isinstance(b, bool) or not isinstance(b, int | float) for b in bounds)):
                raise ValueError(f"{where} must be [low, high], two numbers; got {bounds!r}")
            low, high = float(bounds[0]), float(bounds[1])
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f"{where} must be finite with low <= high; got {bounds!r}")
            if name == AMPLITUDE and low <= 0:
                raise ValueError(f"{where}: an amplitude range must be positive (it is drawn "
                                 f"log-uniformly); got {bounds!r}")
            ranges[component][name] = (low, high)
    return ranges


def extremes_fraction(table: Mapping[str, Any]) -> float:
    """``[randomise] extremes`` of a simulation configuration (0 when absent), refused unless a number
    in [0, 1]."""
    value = table.get(EXTREMES, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"randomise.{EXTREMES} must be a fraction of the patches between 0 and 1, got "
                         f"{value!r}")
    return float(value)


def draw_parameters(random: SampleRandom, ranges: Ranges,
                    extremes: float = 0.0) -> dict[str, dict[str, torch.Tensor]]:
    """Every patch's values of the randomised parameters, ``{component: {parameter: (batch,)
    float64}}``, on the random streams' device; a fraction ``extremes`` of the patches (drawn per
    patch) takes every parameter from the outer quarters of its range."""
    at_edges = random.uniform(f"randomise.{EXTREMES}", ()) < extremes if extremes > 0 else None
    draws: dict[str, dict[str, torch.Tensor]] = {}
    for component, params in ranges.items():
        draws[component] = {}
        for name, (low, high) in params.items():
            u = random.uniform(f"randomise.{component}.{name}", ())
            if at_edges is not None:
                u = torch.where(at_edges, u / 2 + 0.5 * (u >= 0.5), u)  # [0, 1/4) or [3/4, 1)
            if name == AMPLITUDE:
                value = torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
            else:
                value = low + (high - low) * u
            draws[component][name] = value
    return draws
