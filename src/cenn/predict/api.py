"""The :class:`Predictor`: weights loaded once, applied to batches of maps in µK_CMB (K_CMB and
mK_CMB converted), after every check of the maps against the weights' card."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from cenn.data.normalization import build_normalization
from cenn.io.units import UNITS, uk_per_unit
from cenn.model.apply import apply_network
from cenn.model.weights import check_inputs, fmt_list, load_weights
from cenn.predict.units import check_spread
from cenn.predict.values import check_finite, check_real, fill_nonfinite_pixels

PRECISIONS = ("32", "bf16")


class Predictor:
    """Weights loaded once, applied to batches of maps.

    Args:
        weights: a weights file written by :func:`cenn.model.save_weights`.
        device: where the network runs ("cpu", "cuda", ...).
        precision: "32" (float32) or "bf16" (bfloat16 autocast; the output is float32 either way).
        batch_size: patches per forward pass.
    """

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu", precision: str = "32",
                 batch_size: int = 32):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.model, self.card = load_weights(weights, self.device)
        # NHWC is 1.4x faster on the CPU (77 against 56 patches/s for cenn-paper on 2 cores)
        self.channels_last = True
        self.model.to(memory_format=torch.channels_last)
        self.normalization = build_normalization(self.card.normalization, **self.card.normalization_params)

    def predict(
        self,
        inputs: np.ndarray | torch.Tensor,
        frequencies_ghz: list[float],
        pixel_arcsec: float,
        units: str = UNITS,
        fill_nonfinite: bool = False,
    ) -> np.ndarray:
        """The CMB in µK_CMB, float32: ``(N, 1, H, W)`` from ``inputs (N, C, H, W)``, or ``(1, H, W)``
        from one patch ``(C, H, W)``.

        ``inputs`` are maps at ``frequencies_ghz`` (GHz, one per channel) with pixels of side
        ``pixel_arcsec`` (arcsec) in ``units`` (µK_CMB, or K_CMB and mK_CMB converted here). Raises
        ``ValueError`` when they don't suit the weights (see :meth:`check`); NaN or infinite pixels
        are refused unless ``fill_nonfinite``, which fills them (:func:`fill_nonfinite_pixels`) and
        warns with the fraction filled.
        """
        maps = _as_float32_tensor(inputs)
        single = maps.ndim == 3
        if single:
            maps = maps[None]
        factor = uk_per_unit(units)  # converted here; the spread check below catches a wrong label
        if factor != 1.0:
            maps = maps * factor
        if fill_nonfinite and maps.ndim == 4:
            maps, fraction = fill_nonfinite_pixels(maps)
            if fraction > 0:
                warnings.warn(f"{100 * fraction:.4g} % of the input pixels were NaN or infinite and were "
                              "filled with their patch and channel median", stacklevel=2)
        self.check(maps, frequencies_ghz, pixel_arcsec, UNITS, given_units=units)
        out = np.empty((maps.shape[0], 1, *maps.shape[2:]), dtype=np.float32)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            for start in range(0, maps.shape[0], self.batch_size):
                batch = maps[start : start + self.batch_size].to(self.device)
                cmb = apply_network(self.model, self.normalization, batch, self.channels_last)
                out[start : start + len(batch)] = cmb.float().cpu().numpy()
        return out[0] if single else out

    def check(self, maps: torch.Tensor, frequencies_ghz: list[float], pixel_arcsec: float,
              units: str, given_units: str | None = None) -> None:
        """Raise ``ValueError`` unless ``maps (N, C, H, W)`` suit the weights: frequencies, pixel
        size and units as on the card; at least one patch; one channel per frequency; square patches
        whose side is a multiple of the network's; finite values; a spread of sky maps in µK rather
        than K or mK (``given_units``: the units the maps came in before conversion to ``units``)."""
        card = self.card
        if maps.ndim != 4:
            raise ValueError(f"inputs must be (N, C, H, W) or one patch (C, H, W); got shape "
                             f"{tuple(maps.shape)}")
        if maps.numel() == 0:
            raise ValueError(f"the inputs are empty (shape {tuple(maps.shape)}): give at least one patch")
        _, channels, height, width = maps.shape
        if height != width:
            multiple = getattr(self.model, "multiple", 64)
            raise ValueError(f"the patches are {height}×{width} pixels but these weights need square "
                             f"patches: crop or pad them to a square whose side is a multiple of {multiple}")
        check_inputs(card, frequencies_ghz, pixel_arcsec, units, npix=height)
        if channels != card.in_channels:
            raise ValueError(
                f"the inputs have {channels} channels but these weights take {card.in_channels}, one per "
                f"frequency {fmt_list(card.frequencies_ghz)} GHz: give one map per frequency, in that order, "
                "along axis 1 of (N, C, H, W)"
            )
        check_finite(maps)
        check_spread(maps, card.target_channel, card, given_units or units)


def _as_float32_tensor(inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``inputs`` as a float32 CPU tensor (float64, integer and big-endian arrays converted; complex,
    boolean and other non-numeric ones refused)."""
    if isinstance(inputs, torch.Tensor):
        check_real(inputs.dtype, "the inputs")
        return inputs.detach().to("cpu", torch.float32)
    array = np.asarray(inputs)
    check_real(array.dtype, "the inputs")
    array = array.astype(np.float32, copy=False)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    return torch.from_numpy(array)
