"""Calibrating a network's stated σ on held-out patches, so that 68.3 % of the residuals lie within
±σ at every level of σ.

A σ head trained with a Gaussian likelihood on one sky (the randomised training sky, on 128² crops)
states the spread it saw there; on other patches its σ can be too wide or too narrow, and by an
amount that depends on σ (:mod:`cenn.model.sigma_curve`). :func:`stated_sigma` measures the residuals
and the stated σ on a dataset store that is neither a training nor an evaluation set, and
:func:`calibrate_weights` writes the weights again with the fitted :class:`SigmaCurve` as the
network's ``sigma_curve`` and the measurement on the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cenn.data.stokes import store_maps
from cenn.data.store import DatasetStore, open_finished
from cenn.model.sigma_curve import SigmaCurve
from cenn.model.weights import load_weights, save_weights
from cenn.predict.api import Predictor

#: Bins of stated σ the curve is fitted in (each with the same number of pixels).
CURVE_BINS = 8


def stated_sigma(weights: str | Path, store: DatasetStore,
                 batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """|residual| and the stated σ (µK, float64, flattened) of every pixel of ``store``'s patches (an
    opened store, e.g. :func:`open_finished`'s): the network's CMB against the stored target, with the
    stored noise σ as input (Q/U weights: the store's Q and U, :func:`cenn.data.stokes.store_maps`); in
    float32 whatever the CPU, so that the curve written on the weights does not depend on the machine
    that fitted it."""
    predictor = Predictor(weights, precision="32", batch_size=batch_size)
    if not predictor.gives_sigma:
        raise ValueError(f"{weights} have no σ output: there is no σ to calibrate")
    meta = store.meta
    residuals, sigmas = [], []
    for start in range(0, store.n_patches, batch_size):
        rows = slice(start, min(start + batch_size, store.n_patches))
        inputs, target, noise = store_maps(store, rows, predictor.card.stokes)
        cmb, sigma = predictor.predict(inputs, meta["frequencies_ghz"], meta["geometry"]["pixel_arcsec"],
                                       meta["units"], noise_sigma=noise, return_sigma=True)
        residuals.append(np.abs(cmb - target).ravel().astype(np.float64))
        sigmas.append(sigma.ravel().astype(np.float64))
    return np.concatenate(residuals), np.concatenate(sigmas)


def coverage(abs_residual: np.ndarray, sigma: np.ndarray) -> list[float]:
    """Fractions of pixels with |residual| < σ and < 2σ."""
    return [float(np.mean(abs_residual < k * sigma)) for k in (1.0, 2.0)]


def calibrate_weights(weights: str | Path, store: str | Path, out: str | Path,
                      bins: int = CURVE_BINS) -> dict[str, Any]:
    """Write ``weights`` to ``out`` with the σ curve :meth:`SigmaCurve.fit` finds on the store at
    ``store`` (every chunk verified; in ``bins`` bins of stated σ) as the network's ``sigma_curve``,
    the measurement recorded on the card under ``training.sigma_calibration``; returns that record.
    Weights that already have a curve are refused: calibrate the weights the run wrote before
    calibration."""
    model, card = load_weights(weights)
    if card.architecture_params.get("sigma_curve") is not None:
        raise ValueError(f"{weights} are already calibrated (their card holds a sigma_curve): calibrate "
                         "the weights the training run wrote before calibration")
    data = open_finished(store, "the calibration store", checksums=True)
    abs_residual, sigma = stated_sigma(weights, data)
    curve = SigmaCurve.fit(abs_residual, sigma, bins)
    calibrated = curve(torch.from_numpy(sigma)).numpy()
    record = {"bins": bins, "pixels": int(sigma.size), "coverage_before": coverage(abs_residual, sigma),
              "coverage_after": coverage(abs_residual, calibrated), "store": data.path.name,
              "seed": data.meta["seed"], "n_patches": data.meta["n_patches"]}
    card.architecture_params = {**card.architecture_params, "sigma_curve": curve.to_params()}
    card.training = {**card.training, "sigma_calibration": record}
    model.sigma_curve = curve
    save_weights(out, model, card)
    return record
