"""The :class:`Predictor`: weights loaded once, applied to batches of maps in µK_CMB (K_CMB and
mK_CMB converted), after every check of the maps against the weights' card."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cenn.data.normalization import build_normalization
from cenn.data.stokes import maps_per_band, qu_noise_sigma
from cenn.io.units import UNITS, uk_per_unit
from cenn.model.apply import apply_network, noise_input, sigma_output
from cenn.model.weights import check_inputs, fmt_list, load_weights
from cenn.predict.units import check_spread
from cenn.predict.values import check_finite, check_real, fill_nonfinite_pixels
from cenn.runtime import DEFAULT_PRECISION, checked_device, resolve_precision
from cenn.separation import nominal_sigma


class Predictor:
    """Weights loaded once, applied to batches of maps: temperature, or for weights of ``stokes =
    "QU"`` the bands' Q then U ``(N, 2C, H, W)`` giving the CMB's Q and U ``(N, 2, H, W)``
    (:mod:`cenn.data.stokes`).

    Args:
        weights: a weights file written by :func:`cenn.model.save_weights`.
        device: where the network runs ("cpu", "cuda", ...).
        precision: "auto" (bf16 on a CPU with AVX-512 BF16 or AMX, else 32:
            :func:`cenn.runtime.resolve_precision`), "32" (float32) or "bf16" (bfloat16 autocast; the
            output is float32 either way). :attr:`precision` is the one chosen, "32" or "bf16".
        batch_size: patches per forward pass.
    """

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu",
                 precision: str = DEFAULT_PRECISION, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = checked_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.model, self.card = load_weights(weights, self.device)
        # NHWC is 1.4x faster on the CPU (77 against 56 patches/s for cenn-paper on 2 cores)
        self.channels_last = True
        self.model.to(memory_format=torch.channels_last)
        self.normalization = build_normalization(self.card.normalization, **self.card.normalization_params)
        self.maps = maps_per_band(self.card.stokes)

    @property
    def takes_noise(self) -> bool:
        """Whether the network takes the inputs' per-pixel noise σ."""
        return noise_input(self.model)

    @property
    def gives_sigma(self) -> bool:
        """Whether the network returns the standard deviation of its residual."""
        return sigma_output(self.model)

    def nominal_noise(self) -> list[float]:
        """Each band's per-pixel noise σ (µK_CMB) of the data the network was trained on, used where
        none is given."""
        levels = self.card.training.get("noise_uk_per_pixel")
        if levels is None:
            raise ValueError("these weights take the noise σ of their inputs but their card does not "
                             "record the training data's noise level: give noise_sigma")
        return [float(n) for n in levels]

    def nominal_sigma(self, maps: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
        """Uniform per-pixel noise σ (µK_CMB) for ``maps`` in this network's layout ``(N, C, H, W)`` or,
        for Q/U weights, ``(N, 2C, H, W)``: band ``k`` at ``levels[k]`` (the temperature level), × √2 in
        Q and U (:func:`cenn.data.stokes.qu_noise_sigma`)."""
        if self.maps == 1:
            return nominal_sigma(maps, levels)
        return qu_noise_sigma(nominal_sigma(maps[:, :len(levels)], levels))

    def predict(
        self,
        inputs: np.ndarray | torch.Tensor,
        frequencies_ghz: list[float],
        pixel_arcsec: float,
        units: str = UNITS,
        fill_nonfinite: bool = False,
        noise_sigma: np.ndarray | torch.Tensor | None = None,
        return_sigma: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The CMB in µK_CMB, float32: ``(N, 1, H, W)`` from ``inputs (N, C, H, W)``, or ``(1, H, W)``
        from one patch ``(C, H, W)`` (Q/U weights: ``(N, 2, H, W)`` from the bands' Q then U ``(N, 2C,
        H, W)``, and ``noise_sigma`` in that layout); with ``return_sigma``, also the per-pixel standard
        deviation of
        its residual (same shape and units; only for weights with a σ output).

        ``noise_sigma``: the inputs' per-pixel noise σ (their shape and ``units``), for weights that
        take it; without it they get the training data's nominal level everywhere, with a warning.

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
        if return_sigma and not self.gives_sigma:
            raise ValueError(f"the weights {self.card.architecture!r} have no σ output, so they cannot "
                             "give an uncertainty: use weights trained with sigma_output (the shipped "
                             "reference model has one)")
        self.check(maps, frequencies_ghz, pixel_arcsec, UNITS, given_units=units)
        sigma = self._noise(noise_sigma, maps, factor, single)
        shape = (2 if return_sigma else 1, maps.shape[0], self.maps, *maps.shape[2:])
        out = np.empty(shape, dtype=np.float32)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            for start in range(0, maps.shape[0], self.batch_size):
                rows = slice(start, start + self.batch_size)
                batch = maps[rows].to(self.device)
                noise = None if sigma is None else sigma[rows].to(self.device)
                cmb, spread = apply_network(self.model, self.normalization, batch, self.channels_last, noise,
                                            self.maps)
                out[0, rows] = cmb.float().cpu().numpy()
                if return_sigma:
                    out[1, rows] = spread.float().cpu().numpy()
        out = out[:, 0] if single else out
        return (out[0], out[1]) if return_sigma else out[0]

    def _noise(self, noise_sigma: np.ndarray | torch.Tensor | None, maps: torch.Tensor, factor: float,
               single: bool) -> torch.Tensor | None:
        """The per-pixel noise σ in µK_CMB for weights that take it (None otherwise): ``noise_sigma``
        checked against the maps, or the nominal level everywhere (with a warning)."""
        if not self.takes_noise:
            return None
        if noise_sigma is None:
            levels = self.nominal_noise()
            warnings.warn(f"no noise σ given: the training data's nominal per-pixel levels "
                          f"{fmt_list(levels)} µK_CMB are used everywhere", stacklevel=3)
            return self.nominal_sigma(maps, levels)
        sigma = _as_float32_tensor(noise_sigma)
        sigma = sigma[None] if single else sigma
        if sigma.shape != maps.shape:
            raise ValueError(f"noise_sigma has shape {tuple(sigma.shape)} but the inputs "
                             f"{tuple(maps.shape)}: give one σ map per input map")
        sigma = sigma * factor
        if not bool(torch.isfinite(sigma).all()) or bool((sigma <= 0).any()):
            raise ValueError("noise_sigma holds zero, negative, NaN or infinite values: σ must be a "
                             "positive standard deviation in every pixel")
        return sigma

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
        self._check_stokes(channels)
        if channels != card.in_channels:
            raise ValueError(
                f"the inputs have {channels} channels but these weights take {card.in_channels}, one per "
                f"frequency {fmt_list(card.frequencies_ghz)} GHz: give one map per frequency, in that order, "
                "along axis 1 of (N, C, H, W)"
            )
        check_finite(maps)
        check_spread(maps, card, given_units or units)

    def _check_stokes(self, channels: int) -> None:
        """Refuse maps whose channel count is that of the other Stokes layout (temperature maps for Q/U
        weights, or the bands' Q and U for temperature weights), saying which weights they need."""
        bands = fmt_list(self.card.frequencies_ghz)
        n_bands = len(self.card.frequencies_ghz)
        if self.maps == 2 and channels == n_bands:
            raise ValueError(f"these weights separate Q and U (their card's stokes = \"QU\"): they take "
                             f"{2 * n_bands} maps, the Q of the bands {bands} GHz then their U, but the "
                             f"inputs have {channels}, one per band (temperature): give Q/U maps, or use "
                             "temperature weights (the default reference model)")
        if self.maps == 1 and channels == 2 * n_bands:
            raise ValueError(f"the inputs have {channels} maps, the Q and U of the bands {bands} GHz, but "
                             "these weights separate temperature (their card's stokes = \"I\"), one map per "
                             "band: use weights trained on Q and U (data.stokes = \"QU\"; --weights FILE), "
                             "or give temperature maps")


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
