"""Heuristics on the spread of maps in µK_CMB: units no sky has (:func:`check_spread`) and bands
not in the order given (:func:`check_channel_order`)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cenn.io.units import check_unit_label, uk_per_unit
from cenn.model.weights import WeightsCard, fmt_list

#: Bands at or above this frequency (GHz) vary more the higher they are (in µK_CMB: dust and noise
#: rise, the CMB stays), which :func:`check_channel_order` relies on.
_DUST_GHZ = 100.0
#: How many times more than a higher band a lower band of at least ``_DUST_GHZ`` must vary for
#: :func:`check_channel_order` to refuse the order (synchrotron alone gives at most ~2 between 143 and
#: 353 GHz, and never dominates there), and to doubt it.
_ORDER_REFUSE_RATIO = 3.0
_ORDER_DOUBT_RATIO = 1.25


def check_spread(maps: torch.Tensor, card: WeightsCard, given_units: str) -> None:
    """Raise ``ValueError`` when ``maps (N, C, H, W)`` in µK_CMB, converted from ``given_units``, vary
    as no sky does: the median over patches of the per-patch standard deviation of the target
    channel is 0, or that of a channel contradicts the label (:func:`~cenn.io.units.check_unit_label`
    at the channel's frequency). The target channel is always checked; every channel when the maps
    were converted (a mK_CMB or K_CMB label to test: µK maps labelled mK show best at 143 GHz, where
    dust is faintest). Maps given in µK_CMB, as the full-sky path gives its patches batch by batch
    (its maps were checked whole), are checked on the target channel only. The Q and U of weights
    of ``stokes = "QU"`` (the target band's Q is the target channel) are held to the bounds of any
    sky component: with little noise they vary by a few µK (the CMB's polarization)."""
    target, n_bands = card.target_channel, len(card.frequencies_ghz)
    content = "sky" if card.stokes == "I" else "foreground"
    converted = uk_per_unit(given_units) != 1.0
    channels = [target, *(c for c in range(maps.shape[1]) if c != target and converted)]
    for channel in channels:
        typical = float(maps[:, channel].flatten(1).double().std(dim=1).median())
        frequency = card.frequencies_ghz[channel % n_bands]
        freq = f"{frequency:g} GHz"
        if typical == 0 and channel == target:
            raise ValueError(f"the {freq} maps are constant in most patches (median per-patch standard "
                             "deviation 0): they hold no sky; check the inputs")
        check_unit_label(typical, given_units, subject="the inputs", measured=f"the {freq} maps vary",
                         statistic="median per-patch standard deviation",
                         relabel="label them {units} (--units {units})", frequency_ghz=frequency,
                         content=content)


def check_channel_order(spreads_uk: list[float], frequencies_ghz: list[float], statistic: str,
                        fix: str) -> str | None:
    """Refuse (``ValueError``, ending with ``fix``) maps said to be at ``frequencies_ghz`` whose spreads
    ``spreads_uk`` (µK_CMB, the ``statistic`` named) say clearly that they are not in that order;
    return a warning when they make the order doubtful, else ``None``.

    Among bands of at least 100 GHz a higher band varies more in µK_CMB (dust and noise rise with
    frequency, the CMB is the same in all; radio sources and synchrotron, brighter at lower
    frequencies, never dominate there): a lower band varying :data:`_ORDER_REFUSE_RATIO` (3) times
    more than a higher one is refused, 1.25 times (:data:`_ORDER_DOUBT_RATIO`) more warned about
    (the reversed bands of a high-latitude sky vary 1.8 times more). Bands whose spreads are alike
    (143 and 217 GHz swapped on a CMB-dominated sky) cannot be told apart.
    """
    dusty = [i for i, f in enumerate(frequencies_ghz) if f >= _DUST_GHZ]
    pairs = [(i, j) for i in dusty for j in dusty if frequencies_ghz[i] < frequencies_ghz[j]]
    if not pairs:
        return None
    low, high = max(pairs, key=lambda p: spreads_uk[p[0]] / max(spreads_uk[p[1]], 1e-300))
    ratio = spreads_uk[low] / max(spreads_uk[high], 1e-300)
    if not ratio > _ORDER_DOUBT_RATIO:
        return None
    found = (f"the map given as {frequencies_ghz[low]:g} GHz varies by {spreads_uk[low]:.3g} µK but the one "
             f"given as {frequencies_ghz[high]:g} GHz by {spreads_uk[high]:.3g} µK ({statistic}): above "
             f"{_DUST_GHZ:g} GHz dust and noise make a higher band vary more, so the maps are")
    order = f"in the order {fmt_list(frequencies_ghz)} GHz"
    if ratio >= _ORDER_REFUSE_RATIO:
        raise ValueError(f"{found} not {order}; {fix}")
    return f"{found} probably not {order}; check their order"


def patch_spreads(maps: np.ndarray, max_patches: int = 256) -> list[float]:
    """Per channel, the median over (up to ``max_patches`` evenly spaced) patches of ``maps``
    ``(N, C, H, W)`` or ``(C, H, W)`` of their standard deviation (NaN ignored), in the maps' units."""
    stack = maps.reshape(-1, *maps.shape[-3:])
    sample = stack[:: max(1, len(stack) // max_patches)].astype(np.float64)
    with warnings.catch_warnings():  # channels without finite pixels give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(sample.reshape(*sample.shape[:2], -1), axis=2)
        return [float(v) for v in np.nanmedian(std, axis=0)]
