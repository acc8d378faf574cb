"""Which Stokes maps a network separates, and the layout of a polarization network's maps.

- ``"I"`` (temperature, the default): inputs ``(B, C, H, W)``, one map per band; the CMB out
  ``(B, 1, H, W)``.
- ``"QU"`` (linear polarization): inputs ``(B, 2C, H, W)``, **the bands' Q, then the bands' U**:
  channel ``k`` is Q of band ``k`` and channel ``C + k`` U of band ``k``, bands in increasing
  frequency (for 143, 217, 353 GHz: Q143, Q217, Q353, U143, U217, U353), which is the store's
  ``polarization (N, 2, C, H, W)`` with its two leading map axes merged; the CMB's Q and U at the
  target band's beam out ``(B, 2, H, W)``. Q and U are in the patch frame of
  :mod:`cenn.sky.flat.spin2`. Their per-pixel noise σ is √2 × the temperature σ
  (:data:`cenn.sky.noise.POLARIZATION_NOISE_FACTOR`), laid out like the maps.

All maps in µK_CMB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from cenn.sky.noise import POLARIZATION_NOISE_FACTOR

if TYPE_CHECKING:
    from cenn.data.store import DatasetStore
    from cenn.sky.simulator import PatchBatch

#: The Stokes maps a network may separate: temperature, or Q and U.
STOKES = ("I", "QU")

Maps = TypeVar("Maps", np.ndarray, torch.Tensor)


def check_stokes(stokes: str, where: str) -> str:
    """``stokes`` if it is one of :data:`STOKES`, else ``ValueError`` naming ``where`` it was set."""
    if stokes not in STOKES:
        raise ValueError(f"{where} must be one of {', '.join(repr(s) for s in STOKES)} (temperature, or "
                         f"Q and U), got {stokes!r}")
    return stokes


def maps_per_band(stokes: str) -> int:
    """Input maps per band, and output maps: 1 for ``"I"``, 2 for ``"QU"``."""
    return len(check_stokes(stokes, "stokes"))


def qu_channels(polarization: Maps) -> Maps:
    """``(..., 2, C, H, W)`` Q and U of each band → ``(..., 2C, H, W)``: Q of every band, then U."""
    *lead, stokes, bands, height, width = polarization.shape
    if stokes != 2:
        raise ValueError(f"Q/U maps need axis -4 of length 2 (Q, U); got shape {tuple(polarization.shape)}")
    return polarization.reshape(*lead, 2 * bands, height, width)


def qu_noise_sigma(noise_sigma: Maps) -> Maps:
    """The Q/U noise σ ``(..., 2C, H, W)`` from the temperature σ ``(..., C, H, W)`` (µK_CMB):
    √2 × it, for Q and again for U (:func:`qu_channels`' order)."""
    scaled = noise_sigma * POLARIZATION_NOISE_FACTOR
    if isinstance(scaled, torch.Tensor):
        return torch.cat([scaled, scaled], dim=-3)
    return np.concatenate([scaled, scaled], axis=-3)


def reference_channels(channel: int, n_bands: int, stokes: str) -> list[int]:
    """The input channels of the target band (index ``channel`` among ``n_bands``): its map, or its Q
    and U."""
    return [channel + k * n_bands for k in range(maps_per_band(stokes))]


def store_maps(store: DatasetStore, rows: slice, stokes: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A store's patches ``rows`` for a network of ``stokes``: its inputs, target and noise σ (µK_CMB),
    the temperature's or (``"QU"``, a store simulated with ``--stokes IQU``) :func:`qu_channels` of
    its Q and U, the CMB's Q and U and :func:`qu_noise_sigma`."""
    if maps_per_band(stokes) == 1:
        return store.read("inputs", rows), store.read("target", rows), store.noise_sigma(rows)
    return (qu_channels(store.read("polarization", rows)), store.read("target_polarization", rows),
            qu_noise_sigma(store.noise_sigma(rows)))


def batch_maps(batch: PatchBatch, stokes: str) -> dict[str, torch.Tensor]:
    """A simulated batch's ``inputs``, ``target`` and ``noise_sigma`` for a network of ``stokes``
    (temperature, or :func:`qu_channels` of a batch simulated with ``stokes = "IQU"``)."""
    if maps_per_band(stokes) == 1:
        return {"inputs": batch.inputs, "target": batch.target, "noise_sigma": batch.noise_sigma}
    if batch.polarization is None:
        raise ValueError("Q/U training needs patches simulated with Q and U: set stokes = \"IQU\" in the "
                         "simulation")
    return {"inputs": qu_channels(batch.polarization), "target": batch.target_polarization,
            "noise_sigma": qu_noise_sigma(batch.noise_sigma)}
