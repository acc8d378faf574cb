"""Calibrating a network's stated σ on held-out patches: one factor on σ, so that 68.3 % of the
residuals lie within ±σ.

A σ head trained with a Gaussian likelihood on one sky (the randomised training sky, on 128² crops)
states the spread it saw there; on another set of patches its σ can be uniformly too wide or too
narrow. :func:`fit_sigma_scale` measures the factor on a dataset store that is neither a training nor
an evaluation set, and :func:`calibrate_weights` writes the weights again with that factor in the
network's ``sigma_scale`` and the measurement on the card.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cenn.data.store import open_finished
from cenn.model.weights import load_weights, save_weights
from cenn.predict.api import Predictor

#: The coverage ±σ has for a Gaussian (erf(1/√2)).
ONE_SIGMA = math.erf(1.0 / math.sqrt(2.0))


def residual_ratios(weights: str | Path, store: str | Path, batch_size: int = 16) -> np.ndarray:
    """|residual| / σ of every pixel of the store's patches, float64, flattened: the network's CMB
    against the stored target, with the stored noise σ as input."""
    predictor = Predictor(weights, batch_size=batch_size)
    if not predictor.gives_sigma:
        raise ValueError(f"{weights} have no σ output: there is no σ to calibrate")
    data = open_finished(store, "the calibration store", checksums=True)
    meta = data.meta
    ratios = []
    for start in range(0, data.n_patches, batch_size):
        rows = slice(start, min(start + batch_size, data.n_patches))
        cmb, sigma = predictor.predict(data.read("inputs", rows), meta["frequencies_ghz"],
                                       meta["geometry"]["pixel_arcsec"], meta["units"],
                                       noise_sigma=data.noise_sigma(rows), return_sigma=True)
        ratios.append((np.abs(cmb - data.read("target", rows)) / sigma).ravel().astype(np.float64))
    return np.concatenate(ratios)


def fit_sigma_scale(ratios: np.ndarray) -> dict[str, Any]:
    """The factor on σ that puts 68.3 % of ``ratios`` (|residual| / σ) within one σ, and the coverage
    at 1σ and 2σ before and after it."""
    scale = float(np.quantile(ratios, ONE_SIGMA))
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"cannot calibrate σ: the 68.3 % quantile of |residual| / σ is {scale}")
    return {"scale": scale, "pixels": int(ratios.size),
            "coverage_before": [float(np.mean(ratios < k)) for k in (1.0, 2.0)],
            "coverage_after": [float(np.mean(ratios < k * scale)) for k in (1.0, 2.0)]}


def calibrate_weights(weights: str | Path, store: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``weights`` to ``out`` with σ multiplied by the factor :func:`fit_sigma_scale` finds on
    ``store`` (the network's ``sigma_scale``), the measurement recorded on the card under
    ``training.sigma_calibration``; returns that record."""
    fit = fit_sigma_scale(residual_ratios(weights, store))
    model, card = load_weights(weights)
    meta = open_finished(store).meta
    previous = float(card.architecture_params.get("sigma_scale", 1.0))
    card.architecture_params = {**card.architecture_params, "sigma_scale": previous * fit["scale"]}
    record = {**fit, "store": Path(store).name, "seed": meta["seed"], "n_patches": meta["n_patches"]}
    card.training = {**card.training, "sigma_calibration": record}
    model.log_sigma_scale = math.log(previous * fit["scale"])
    save_weights(out, model, card)
    return record
