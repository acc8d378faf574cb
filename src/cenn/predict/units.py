"""Heuristics on the spread of maps in µK_CMB: units no sky has (:func:`check_spread`) and bands
probably not in the order given (:func:`channel_order_warning`)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cenn.io.units import misread_units, power_of_ten
from cenn.model.weights import WeightsCard, fmt_list

#: Bands at or above this frequency (GHz) vary more the higher they are (in µK_CMB: dust and noise
#: rise, the CMB stays), which :func:`channel_order_warning` relies on.
_DUST_GHZ = 100.0
#: How many times more than the highest band another band of at least ``_DUST_GHZ`` must vary for
#: :func:`channel_order_warning` to doubt the order (synchrotron alone gives at most ~2 between
#: 143 and 353 GHz).
_ORDER_SPREAD_RATIO = 3.0


def check_spread(maps: torch.Tensor, channel: int, card: WeightsCard, given_units: str) -> None:
    """Raise ``ValueError`` when ``maps (N, C, H, W)`` in µK_CMB, converted from ``given_units``, vary
    as no sky does: the median over patches of the per-patch standard deviation of ``channel`` is 0,
    or says the units are wrong (:func:`~cenn.io.units.misread_units`)."""
    std = maps[:, channel].flatten(1).double().std(dim=1)
    typical = float(std.median())
    freq = f"{card.frequencies_ghz[channel]:g} GHz"
    if typical == 0:
        raise ValueError(f"the {freq} maps are constant in most patches (median per-patch standard deviation "
                         "0): they hold no sky; check the inputs")
    misread = misread_units(typical, given_units)
    if misread is None:
        return
    factor, units = misread
    if factor <= 1:
        head, fix = ((f"look like µK_CMB labelled {given_units}", "label them uK_CMB (--units uK_CMB)")
                     if factor < 1 else ("do not look like sky maps", "check their units and values"))
        raise ValueError(
            f"the inputs {head}: the {freq} maps vary by {typical:.3g} µK after conversion from "
            f"{given_units} (median per-patch standard deviation), more than any sky; {fix}"
        )
    looks = (f"look like {units}, not {given_units}" if units
             else f"look {power_of_ten(factor)} times too small")
    label = f", or label them {units} (--units {units})" if units else ""
    raise ValueError(
        f"the inputs {looks}: the {freq} maps vary by {typical:.3g} µK (median per-patch standard "
        "deviation) where sky maps vary by tens of µK or more (noise alone does); multiply the maps by "
        f"{power_of_ten(factor)}{label}"
    )


def channel_order_warning(spreads_uk: list[float], frequencies_ghz: list[float],
                          statistic: str) -> str | None:
    """A warning when maps said to be at ``frequencies_ghz`` and varying by ``spreads_uk`` (µK_CMB,
    the ``statistic`` named in the warning) are probably not in that order, else ``None``.

    Among bands of at least 100 GHz, the highest varies most in µK_CMB (dust and noise rise with
    frequency; the CMB is the same in all): a band varying 3 times more than it says the order is
    wrong. Bands in another order whose spreads are alike (a CMB-dominated sky) are not caught.
    """
    dusty = [i for i, f in enumerate(frequencies_ghz) if f >= _DUST_GHZ]
    if len(dusty) < 2:
        return None
    top = max(dusty, key=lambda i: frequencies_ghz[i])
    other = max((i for i in dusty if i != top), key=lambda i: spreads_uk[i])
    if not spreads_uk[other] > _ORDER_SPREAD_RATIO * spreads_uk[top]:
        return None
    return (f"the map given as {frequencies_ghz[top]:g} GHz varies by {spreads_uk[top]:.3g} µK but the one "
            f"given as {frequencies_ghz[other]:g} GHz by {spreads_uk[other]:.3g} µK ({statistic}): above "
            f"{_DUST_GHZ:g} GHz dust and noise make the highest band vary most, so the maps are probably not "
            f"in the order {fmt_list(frequencies_ghz)} GHz; check their order")


def patch_spreads(maps: np.ndarray, max_patches: int = 256) -> list[float]:
    """Per channel, the median over (up to ``max_patches`` evenly spaced) patches of ``maps``
    ``(N, C, H, W)`` or ``(C, H, W)`` of their standard deviation (NaN ignored), in the maps' units."""
    stack = maps.reshape(-1, *maps.shape[-3:])
    sample = stack[:: max(1, len(stack) // max_patches)].astype(np.float64)
    with warnings.catch_warnings():  # channels without finite pixels give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(sample.reshape(*sample.shape[:2], -1), axis=2)
        return [float(v) for v in np.nanmedian(std, axis=0)]
