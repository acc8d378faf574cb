"""``cenn evaluate``: separate the patches of one or more dataset stores with each method and write
the report (:mod:`cenn.evaluate.report`). :func:`evaluate` is the same from Python.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cenn.config import ConfigError, read_toml
from cenn.data.store import DatasetStore
from cenn.evaluate.analysis import evaluate_dataset
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.cross_sky import alternative_name
from cenn.evaluate.report import check_report_out, format_table, summary_table, write_report
from cenn.outputs import Inputs
from cenn.pretrained import POLARIZATION_MODELS, is_shipped, resolve_weights
from cenn.runtime import check_device
from cenn.separation import Separator
from cenn.separators import NETWORK_METHODS, build_separator


def parse_data(items: Sequence[str]) -> list[tuple[str | None, str]]:
    """``NAME=PATH`` or ``PATH`` items as ``(name or None, path)``; a store's name defaults to its
    latitude region (``all``, ``inner``, ``intermediate``, ``high``)."""
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        out.append((name, path) if sep else (None, item))
    return out


def evaluate(
    data: Sequence[tuple[str | None, str | Path]],
    separators: Mapping[str, Separator],
    out: str | Path,
    config: EvaluationConfig | None = None,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    inputs: Inputs = (),
    alternative: Sequence[tuple[str | None, str | Path]] = (),
) -> dict[str, Any]:
    """Evaluate every separator on every dataset ``(name, store path)`` and write the report folder
    ``out``; returns the metrics (as in ``metrics.json``). The folder and the device are checked
    before any work (:func:`cenn.evaluate.report.check_report_out`); ``inputs``: other files the
    evaluation reads, (role, path), e.g. its configuration file, which the report never replaces.
    ``alternative``: stores of another sky model, named ``alt-<name>`` and each paired with the
    default store of the same name for the cross-model test (:mod:`cenn.evaluate.cross_sky`)."""
    config = config or EvaluationConfig()
    out = Path(out)
    inputs = [*inputs, *_read_inputs([*data, *alternative], separators)]
    check_report_out(out, overwrite, inputs)
    check_device(str(device), "--device")
    if not separators:
        raise ValueError("no method to evaluate: give at least one (--methods)")
    check_polarization_stores([*data, *alternative], separators)
    evaluations, timing = [], {}
    names: set[str] = set()
    for (name, path), alt in [*((d, False) for d in data), *((d, True) for d in alternative)]:
        start = time.perf_counter()
        ev = evaluate_dataset(path, separators, config, name=name, device=device, progress=progress)
        if alt:
            ev.name = alternative_name(ev.name)
        if ev.name in names:
            raise ValueError(f"two datasets are named {ev.name!r}: name them with NAME=PATH")
        names.add(ev.name)
        evaluations.append(ev)
        timing[ev.name] = time.perf_counter() - start
    methods = {m: sep.describe() for m, sep in separators.items()}
    return write_report(out, evaluations, methods, config, timing, overwrite=overwrite, inputs=inputs)


def _read_inputs(data: Sequence[tuple[str | None, str | Path]],
                 separators: Mapping[str, Separator]) -> list[tuple[str, str | Path | None]]:
    """(role, path) of the stores and weights files an evaluation reads."""
    stores = [("a store to evaluate" if name is None else f"store {name}", path) for name, path in data]
    kinds = ("weights", "polarization_weights")
    return stores + [(f"{m} {kind.replace('_', ' ')}", getattr(sep, kind, None))
                     for m, sep in separators.items() for kind in kinds]


def check_polarization_stores(data: Sequence[tuple[str | None, str | Path]],
                              separators: Mapping[str, Separator]) -> None:
    """Refuse, before any work, a method's Q/U weights (``polarization_weights``) when none of the
    stores ``(name, path)`` has Q and U (``cenn simulate --stokes IQU``): they would not be used."""
    given = {m: sep.polarization_weights for m, sep in separators.items()
             if getattr(sep, "polarization_weights", None) is not None}
    if not given or any(DatasetStore.open(path).stokes == "IQU" for _, path in data):
        return
    method, weights = next(iter(given.items()))
    stores = ", ".join(str(path) for _, path in data)
    raise ValueError(f"the Q/U weights {weights} of method {method!r} (--polarization-weights) would not be "
                     f"used: the stores {stores} hold temperature only (stokes = \"I\"): evaluate stores "
                     "simulated with cenn simulate --stokes IQU, or drop the Q/U weights")


def method_options(config_file: str | None) -> dict[str, dict[str, Any]]:
    """Per-method options from the ``[methods.<name>]`` tables of the configuration file."""
    if config_file is None:
        return {}
    methods = read_toml(config_file).get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{config_file}: [methods] must hold one table per method, e.g. [methods.cenn]")
    return methods


def weights_method(names: Sequence[str], weights: str | None) -> str | None:
    """The network method of ``names`` that ``--weights`` is for: ``cenn`` if evaluated, else
    ``cenn-unbiased``; None without ``weights``. Weights with no network method to run them are
    refused (they would be ignored)."""
    if weights is None:
        return None
    networks = [m for m in NETWORK_METHODS if m in names]
    if not networks:
        raise ConfigError(f"--weights {weights} is for a network method, but --methods {','.join(names)} "
                          f"has none, so the weights would not be used: add cenn (or cenn-unbiased, for "
                          f"unbiased weights) to --methods, or drop --weights")
    return networks[0]


def check_polarization_method(names: Sequence[str], weights: str | None) -> None:
    """Refuse ``--polarization-weights`` when ``names`` lack ``cenn``, the method that runs them."""
    if weights is not None and "cenn" not in names:
        raise ConfigError(f"--polarization-weights {weights} are Q/U weights for the cenn method, but "
                          f"--methods {','.join(names)} does not evaluate it, so they would not be used: add "
                          "cenn to --methods, or drop --polarization-weights")


def default_polarization_weights(names: Sequence[str],
                                 stores: Sequence[tuple[str | None, str | Path]]) -> dict[str, str]:
    """Per network method of ``names``, the shipped Q/U counterpart of its model
    (:data:`cenn.pretrained.POLARIZATION_MODELS`: ``polarization`` for ``cenn``,
    ``unbiased-polarization`` for ``cenn-unbiased``) where a store has Q and U and this installation
    ships it; the weights a method is given (--polarization-weights, or ``polarization_weights`` in its
    ``[methods.<name>]`` table) replace it."""
    if not any(Path(path).is_dir() and DatasetStore.open(path).stokes == "IQU" for _, path in stores):
        return {}
    shipped = {m: POLARIZATION_MODELS[NETWORK_METHODS[m]] for m in names if m in NETWORK_METHODS}
    return {m: name for m, name in shipped.items() if is_shipped(name)}


def resolve_polarization_weights(weights: str | Path) -> Path:
    """:func:`cenn.pretrained.resolve_weights` for ``--polarization-weights`` (a file, or a shipped
    model's name: ``polarization``, ``unbiased-polarization``, or a temperature model's name for its Q/U
    counterpart), its refusal naming that option."""
    try:
        return resolve_weights(weights, "QU")
    except FileNotFoundError as err:
        raise FileNotFoundError(str(err).replace("--weights", "--polarization-weights")) from err


def build_separators(names: Sequence[str], options: Mapping[str, Mapping[str, Any]],
                     args: argparse.Namespace,
                     default_polarization: Mapping[str, str] | None = None) -> dict[str, Separator]:
    """The named separators, with the command line's --weights (for ``cenn``, or ``cenn-unbiased``
    when only it is evaluated; default: the shipped models) and --polarization-weights (``cenn``'s Q/U
    weights; else the ``polarization_weights`` of ``options``, else ``default_polarization``'s, the
    shipped ones :func:`default_polarization_weights` gives for stores with Q and U),
    --precision and --network-batch-size applied to the networks and --device to the networks and the
    Wiener filter's calibration."""
    separators = {}
    defaults = default_polarization or {}
    given = weights_method(names, args.weights)
    check_polarization_method(names, args.polarization_weights)
    for name in names:
        opts = dict(options.get(name, {}))
        if name in NETWORK_METHODS:
            if name == given:
                opts["weights"] = args.weights
            opts["weights"] = resolve_weights(opts.get("weights", NETWORK_METHODS[name]))
            if name == "cenn" and args.polarization_weights is not None:
                opts["polarization_weights"] = args.polarization_weights
            if opts.get("polarization_weights") is None:
                opts["polarization_weights"] = defaults.get(name)
            if opts.get("polarization_weights") is not None:
                opts["polarization_weights"] = resolve_polarization_weights(opts["polarization_weights"])
            opts.setdefault("precision", args.precision)
            opts.setdefault("batch_size", args.network_batch_size)
        if name in (*NETWORK_METHODS, "wiener"):  # the networks run, and the oracle simulates, on --device
            opts.setdefault("device", args.device)
        separators[name] = build_separator(name, **opts)
    return separators


def run_evaluate(args: argparse.Namespace) -> int:
    if args.max_patches is not None and args.max_patches < 1:
        raise ValueError(f"--max-patches must be >= 1, got {args.max_patches}: leave it out to evaluate "
                         "every patch (in the [evaluation] table of --config, max_patches = 0 means every "
                         "patch)")
    check_device(args.device, "--device")
    data: dict[str, Any] = read_toml(args.config) if args.config else {}
    settings = dict(data.get("evaluation", {}))
    for key in ("batch_size", "max_patches", "noise_factors"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.no_half_split:
        settings["half_split"] = False
    config = EvaluationConfig.from_dict(settings)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    weights_method(names, args.weights)
    check_polarization_method(names, args.polarization_weights)
    stores, alternative = parse_data(args.data), parse_data(args.alternative)
    inputs = [("--config", args.config), ("--weights", args.weights),
              ("--polarization-weights", args.polarization_weights)]
    check_report_out(Path(args.out), args.overwrite, [*inputs, *_read_inputs([*stores, *alternative], {})])
    separators = build_separators(names, method_options(args.config), args,
                                  default_polarization_weights(names, [*stores, *alternative]))
    metrics = evaluate(stores, separators, args.out, config, device=args.device,
                       progress=not args.no_progress, overwrite=args.overwrite, inputs=inputs,
                       alternative=alternative)
    print(format_table(*summary_table(metrics)))
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
