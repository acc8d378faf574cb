"""The cross-model test: every method on the default sky and on a sky it was not built for.

``cenn evaluate ... --alternative [NAME=]STORE ...`` evaluates stores simulated from another sky model
(for example ``src/cenn/configs/sky-alternative.toml``) beside the default ones; an alternative store
is named ``alt-<name>`` and paired with the default store ``<name>`` (names default to the latitude
region). For every method and pair this module gives the headline figures on both skies and their
ratio alternative / default, and, where NILC was evaluated too, that ratio over NILC's: how much more
(> 1) or less (< 1) a method degrades than the classical method on the unfamiliar sky.
"""

from __future__ import annotations

from typing import Any

from cenn.evaluate.summary import headline_figures

PREFIX = "alt-"
"""Name prefix of the alternative sky's datasets."""

#: Headline figures compared between the skies (see :func:`cenn.evaluate.summary.headline_figures`).
FIGURES = ("residual_rms_uk", "residual_dl_uk2")
#: The classical method each method's degradation is compared with.
REFERENCE = "nilc"


def alternative_name(name: str) -> str:
    """The dataset name of the alternative sky's store paired with the default store ``name``."""
    return f"{PREFIX}{name}"


def cross_sky(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {set: {figure_default, figure_alternative, figure_ratio, figure_vs_nilc}}}`` for
    every default set that has an alternative one, from ``metrics.json``'s ``results``; empty when no
    alternative store was evaluated."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, per_set in results.items():
        for name in per_set:
            alt = alternative_name(name)
            if name.startswith(PREFIX) or alt not in per_set:
                continue
            default, other = headline_figures(per_set[name]), headline_figures(per_set[alt])
            entry = {}
            for key in FIGURES:
                entry[f"{key}_default"], entry[f"{key}_alternative"] = default[key], other[key]
                entry[f"{key}_ratio"] = other[key] / default[key] if default[key] else float("nan")
            out.setdefault(method, {})[name] = entry
    if REFERENCE in out:
        for per_set in out.values():
            for name, entry in per_set.items():
                for key in FIGURES:
                    ref = out[REFERENCE][name][f"{key}_ratio"]
                    entry[f"{key}_vs_{REFERENCE}"] = entry[f"{key}_ratio"] / ref if ref else float("nan")
    return out


def cross_sky_table(cross: dict[str, dict[str, dict[str, float]]]) -> tuple[list[str], list[list[str]]]:
    """The report's table: per method and set, each figure on both skies, the ratio and the ratio
    over NILC's."""
    header = ["method", "set", "RMS default [µK]", "RMS alternative [µK]", "ratio", "ratio / NILC's",
              "res. D_ℓ default [µK²]", "res. D_ℓ alternative [µK²]", "ratio", "ratio / NILC's"]
    rows = []
    for method, per_set in cross.items():
        for name, e in per_set.items():
            row = [method, name]
            for key in FIGURES:
                row += [f"{e[f'{key}_default']:.3g}", f"{e[f'{key}_alternative']:.3g}",
                        f"{e[f'{key}_ratio']:.3g}", f"{e.get(f'{key}_vs_{REFERENCE}', float('nan')):.3g}"]
            rows.append(row)
    return header, rows
