"""Checks that full-sky band maps (read by :mod:`cenn.io.healpix_maps`) suit a method: their
frequencies, when their headers state them, are its bands in its order (:func:`check_band_order`),
and their spread is a sky's in µK_CMB (:func:`check_sky_spread`)."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np

from cenn.io.healpix_maps import HealpixMap
from cenn.io.units import check_unit_label
from cenn.model.weights import fmt_list

_SAME_BAND = 0.1
"""Relative difference within which a stated frequency is taken for a band's (nominal and effective
band centres differ by a few %; neighbouring bands by 40 % or more)."""


def check_band_order(paths: list[Path], found_ghz: list[float | None], expected_ghz: list[float],
                     method: str, source: str = "its header") -> None:
    """Refuse maps whose frequencies ``found_ghz`` (read from ``source``; ``None``: not stated) are
    not the bands ``expected_ghz`` of ``method`` in that order, saying the order to give them in."""
    bands = [_band_of(f, expected_ghz) for f in found_ghz]
    wanted = f"the {method} method takes {fmt_list(expected_ghz)} GHz, in that order"
    for path, f, band in zip(paths, found_ghz, bands, strict=True):
        if f is not None and band is None:
            raise ValueError(f"{path} is a {f:g} GHz map (from {source}) but {wanted}: give maps at those "
                             "frequencies")
    stated = [b for b in bands if b is not None]
    if len(set(stated)) < len(stated):
        raise ValueError(f"two maps are of one band ({_listing(paths, found_ghz)}, from {source}) but "
                         f"{wanted}")
    if all(b == i for i, b in enumerate(bands) if b is not None):
        return
    fix = "give them in that order"
    if None not in bands:
        fix = "pass --maps " + " ".join(str(p) for _, p in sorted(zip(bands, paths, strict=True)))
    raise ValueError(f"the maps are in the wrong order ({_listing(paths, found_ghz)}, from {source}) but "
                     f"{wanted}: {fix}")


def _band_of(frequency_ghz: float | None, expected_ghz: list[float]) -> int | None:
    """Index of the band within :data:`_SAME_BAND` of ``frequency_ghz``, or ``None``."""
    if frequency_ghz is None:
        return None
    gaps = [abs(frequency_ghz - f) / f for f in expected_ghz]
    return gaps.index(min(gaps)) if min(gaps) <= _SAME_BAND else None


def _listing(paths: list[Path], found_ghz: list[float | None]) -> str:
    return ", ".join(f"{p.name}: {'?' if f is None else f'{f:g}'} GHz" for p, f in zip(paths, found_ghz,
                                                                                   strict=True))


def robust_std(values: np.ndarray) -> float:
    """1.4826 × the median absolute deviation: the standard deviation of Gaussian values, unmoved by
    the Galactic plane's few bright pixels."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def check_sky_spread(m: HealpixMap, frequency_ghz: float | None = None) -> float:
    """The robust spread (µK) of the seen pixels of the band map ``m`` at ``frequency_ghz`` (stated or
    taken from the band's place); refused when it is 0 (a constant map holds no sky) or contradicts
    the map's units (:func:`~cenn.io.units.check_unit_label`: a robust spread over most of the sky is
    set by intermediate latitudes; over a map that sees less than half the sky, by the Galactic
    plane)."""
    spread = robust_std(m.values[m.values != hp.UNSEEN])
    if spread == 0:
        raise ValueError(f"{m.path} is constant over most of the sky (robust standard deviation 0): it "
                         "holds no sky map; check the file and its column")
    check_unit_label(spread, m.units_in, subject=str(m.path), measured="it varies", plural=False,
                     statistic="robust standard deviation of its seen pixels",
                     relabel="label it {units} (TUNIT1, or --units {units} if all maps are)",
                     frequency_ghz=frequency_ghz, bright_plane=m.unseen_fraction > 0.5)
    return spread
