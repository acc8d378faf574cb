"""The cross-model test: every method on the default sky and on a sky it was not built for.

``cenn evaluate ... --alternative [NAME=]STORE ...`` evaluates stores simulated from another sky model
(for example ``src/cenn/configs/sky-alternative.toml``) beside the default ones; an alternative store
is named ``alt-<name>`` and paired with the default store ``<name>`` (names default to the latitude
region). For every method and pair this module gives the headline figures on both skies and their
ratio alternative / default, and, where NILC was evaluated too, that ratio over NILC's: how much more
(> 1) or less (< 1) a method degrades than the classical method on the unfamiliar sky.

That ratio over NILC's comes with a 68 % interval from a bootstrap over the patches. When the two
stores were simulated with the same seed, region and number of patches they hold the same positions,
CMB and noise draws, and differ only in the sky model: the pair is *paired*, the bootstrap draws the
same patches from both, and the ratio measures the sky model alone. Stores with different seeds also
compare where their patches fell (in the all-sky set, how many landed in the plane), which the
interval then shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cenn.evaluate.summary import headline_figures

PREFIX = "alt-"
"""Name prefix of the alternative sky's datasets."""

#: Headline figures compared between the skies (see :func:`cenn.evaluate.summary.headline_figures`).
FIGURES = ("residual_rms_uk", "residual_dl_uk2")
#: The classical method each method's degradation is compared with.
REFERENCE = "nilc"
#: Bootstrap draws of the interval on the ratio over NILC's, its seed, and the interval's percentiles.
BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, INTERVAL_PERCENTILES = 2000, 0, (15.87, 84.13)


def alternative_name(name: str) -> str:
    """The dataset name of the alternative sky's store paired with the default store ``name``."""
    return f"{PREFIX}{name}"


def paired(datasets: dict[str, dict[str, Any]], name: str) -> bool:
    """Whether the default store ``name`` and its alternative were simulated with the same seed, region
    and number of patches (``metrics.json``'s ``datasets``): the same patches on two sky models."""
    a, b = datasets[name], datasets[alternative_name(name)]
    return all(a.get(k) is not None and a.get(k) == b.get(k) for k in ("seed", "region_deg", "n_patches"))


def cross_sky(results: dict[str, dict[str, Any]],
              datasets: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {set: {figure_default, figure_alternative, figure_ratio, figure_vs_nilc,
    figure_vs_nilc_interval, paired}}}`` for every default set that has an alternative one, from
    ``metrics.json``'s ``results`` and ``datasets``; empty when no alternative store was evaluated.
    The interval (68 %, bootstrap over patches) needs each result's ``per_patch`` figures."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, per_set in results.items():
        for name in per_set:
            alt = alternative_name(name)
            if name.startswith(PREFIX) or alt not in per_set:
                continue
            default, other = headline_figures(per_set[name]), headline_figures(per_set[alt])
            entry: dict[str, Any] = {"paired": paired(datasets, name)}
            for key in FIGURES:
                entry[f"{key}_default"], entry[f"{key}_alternative"] = default[key], other[key]
                entry[f"{key}_ratio"] = other[key] / default[key] if default[key] else float("nan")
            out.setdefault(method, {})[name] = entry
    if REFERENCE in out:
        for method, per_set in out.items():
            for name, entry in per_set.items():
                for key in FIGURES:
                    ref = out[REFERENCE][name][f"{key}_ratio"]
                    entry[f"{key}_vs_{REFERENCE}"] = entry[f"{key}_ratio"] / ref if ref else float("nan")
                    interval = _interval(results, method, name, key, entry["paired"])
                    if interval is not None:
                        entry[f"{key}_vs_{REFERENCE}_interval"] = interval
    return out


def _interval(results: dict[str, dict[str, Any]], method: str, name: str, key: str,
              is_paired: bool) -> list[float] | None:
    """The 68 % bootstrap interval of ``method``'s ratio over NILC's for figure ``key`` on set
    ``name``: patches drawn with replacement, the same draw for both methods on a store and, for a
    paired set, for both stores; None where a result lacks per-patch figures."""
    alt = alternative_name(name)
    try:
        values = {(m, s): np.asarray(results[m][s]["per_patch"][key], dtype=float)
                  for m in (method, REFERENCE) for s in (name, alt)}
    except KeyError:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n_default, n_alt = len(values[method, name]), len(values[method, alt])
    draw_default = rng.integers(0, n_default, (BOOTSTRAP_DRAWS, n_default))
    draw_alt = draw_default if is_paired else rng.integers(0, n_alt, (BOOTSTRAP_DRAWS, n_alt))

    def ratio(m: str) -> np.ndarray:
        return values[m, alt][draw_alt].mean(axis=1) / values[m, name][draw_default].mean(axis=1)
    lo, hi = np.percentile(ratio(method) / ratio(REFERENCE), INTERVAL_PERCENTILES)
    return [float(lo), float(hi)]


def cross_sky_table(cross: dict[str, dict[str, dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """The report's table: per method and set, whether the stores are paired, each figure on both
    skies, the ratio and the ratio over NILC's with its 68 % interval."""
    header = ["method", "set", "paired", "RMS default [µK]", "RMS alternative [µK]", "ratio",
              "ratio / NILC's (68 %)", "res. D_ℓ default [µK²]", "res. D_ℓ alternative [µK²]", "ratio",
              "ratio / NILC's (68 %)"]
    rows = []
    for method, per_set in cross.items():
        for name, e in per_set.items():
            row = [method, name, {True: "yes", False: "no"}.get(e.get("paired"), "–")]
            for key in FIGURES:
                row += [f"{e[f'{key}_default']:.3g}", f"{e[f'{key}_alternative']:.3g}",
                        f"{e[f'{key}_ratio']:.3g}", _vs_nilc(e, key)]
            rows.append(row)
    return header, rows


def _vs_nilc(entry: dict[str, Any], key: str) -> str:
    """A ratio over NILC's with its interval where there is one: "1.29 (1.21–1.37)"."""
    value = entry.get(f"{key}_vs_{REFERENCE}", float("nan"))
    interval = entry.get(f"{key}_vs_{REFERENCE}_interval")
    return f"{value:.3g}" if interval is None else f"{value:.3g} ({interval[0]:.3g}–{interval[1]:.3g})"
