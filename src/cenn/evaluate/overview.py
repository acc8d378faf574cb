"""The opening and the closing of the evaluation report: a plain summary of what was run and what it
found, and the datasets' and methods' settings as tables, every path relative to the report folder
(shipped weights named by their name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cenn.evaluate.document import Document
from cenn.evaluate.labels import dataset_text, fmt
from cenn.evaluate.summary import HEADLINE_ELL_RANGE, headline_figures
from cenn.pretrained import shipped_name


def report_path(path: str | Path, home: Path) -> str:
    """``path`` as the report names it: a shipped model by its name (``reference (shipped with
    cenn)``), any other file relative to the report folder ``home``."""
    name = shipped_name(path)
    if name is not None:
        return f"{name} (shipped with cenn)"
    return Path(os.path.relpath(Path(path).resolve(), Path(home).resolve())).as_posix()


def _dataset_phrase(name: str, info: dict[str, Any]) -> str:
    label = dataset_text(name)
    where = "" if label == name else f"{label}, "
    return f"{name} ({where}{info['n_patches']} patches)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("s" if n != 1 else "")


def _ranked(metrics: dict[str, Any], dataset: str) -> list[tuple[str, dict[str, float]]]:
    """(method, headline figures) on ``dataset``, smallest mean per-patch residual RMS first (NaN last)."""
    figures = [(m, headline_figures(per[dataset])) for m, per in metrics["results"].items()]
    return sorted(figures, key=lambda f: (not np.isfinite(f[1]["residual_rms_uk"]), f[1]["residual_rms_uk"]))


def summary_text(metrics: dict[str, Any]) -> list[str]:
    """The report's opening paragraphs: what was run (methods, datasets, version) and, per dataset,
    which method leaves the smallest residual, with its residual RMS (µK), its residual D_ℓ (µK²)
    where the patches reach the headline multipoles, and the others' RMS."""
    methods, datasets = list(metrics["results"]), metrics["datasets"]
    lo, hi = HEADLINE_ELL_RANGE
    listed = ", ".join(_dataset_phrase(d, i) for d, i in datasets.items())
    run = (f"cenn {metrics['cenn_version']} separated the CMB with {_count(len(methods), 'method')} "
           f"({', '.join(methods)}) on {_count(len(datasets), 'dataset')}: {listed} ({metrics['created']}).")
    found = []
    for d in datasets:
        (best, h), *others = _ranked(metrics, d)
        rest = ", ".join(f"{m} {fmt(o['residual_rms_uk'])} µK" for m, o in others)
        spectrum = (f" and a residual D_ℓ of {fmt(h['residual_dl_uk2'])} µK² over {lo:g} ≤ ℓ < {hi:g}"
                    if np.isfinite(h["residual_dl_uk2"]) else "")
        found.append(f"On {d}, {best} leaves the smallest residual: {fmt(h['residual_rms_uk'])} µK RMS per "
                     f"patch{spectrum}" + (f" (against {rest})." if rest else "."))
    return [run, " ".join(found) + " Residual = CMB label − output, in µK_CMB at the 217 GHz target "
            "band. The figures below show one patch per dataset and the spectra; every number is in "
            "metrics.json, the settings are at the end."]


def _value(value: Any, home: Path) -> str:
    """A setting as text: lists joined, absolute paths made relative to the report."""
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v, home) for v in value)
    if isinstance(value, str) and Path(value).is_absolute():
        return report_path(value, home)
    return str(value)


def method_settings_table(methods: dict[str, dict[str, Any]],
                          home: Path) -> tuple[list[str], list[list[str]]]:
    """One row per method and setting (its ``describe()`` less the name); "–" for a method with none."""
    rows = []
    for method, described in methods.items():
        settings = {k: v for k, v in described.items() if k != "name"}
        rows += [[method, key, _value(v, home)] for key, v in settings.items()] or [[method, "–", "–"]]
    return ["method", "setting", "value"], rows


def dataset_table(datasets: dict[str, dict[str, Any]], home: Path) -> tuple[list[str], list[list[str]]]:
    """One row per dataset: its store (relative to the report), patches, latitudes, seed, components."""
    header = ["dataset", "store", "patches", "|b| range [°]", "mean |b| [°]", "seed", "components stored"]
    rows = [[dataset_text(d), report_path(i["path"], home), str(i["n_patches"]),
             f"{fmt(i['region_deg'][0])}–{fmt(i['region_deg'][1])}", fmt(i["mean_abs_lat_deg"]),
             str(i["seed"]), ", ".join(i["stored_components"]) or "none"] for d, i in datasets.items()]
    return header, rows


def add_settings(doc: Document, metrics: dict[str, Any], home: Path) -> None:
    """The section that closes the report: the datasets and every method's settings as tables."""
    doc.heading("Settings")
    doc.table(*dataset_table(metrics["datasets"], home), "Datasets (stores relative to this report)")
    doc.table(*method_settings_table(metrics["methods"], home), "Every method's settings (paths relative to "
              "this report; the evaluation's own settings are in evaluation.toml)")
