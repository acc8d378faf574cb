"""FITS files: opened with truncation caught (:func:`fits_file`), and the frequencies their headers
state read in any usual spelling (:func:`stated_frequency_ghz`)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

_GHZ_PER_UNIT = {"THZ": 1e3, "GHZ": 1.0, "MHZ": 1e-3, "KHZ": 1e-6, "HZ": 1e-9}


@contextmanager
def fits_file(path: Path) -> Iterator[fits.HDUList]:
    """The HDUs of the FITS file ``path``; a file that is not FITS, or is truncated, is refused
    (``ValueError`` naming it) when it is opened or its data read in the block."""
    try:
        with warnings.catch_warnings(), fits.open(path) as hdus:
            warnings.filterwarnings("error", "File may have been truncated", AstropyUserWarning)
            yield hdus
    except (OSError, TypeError, AstropyUserWarning) as err:  # TypeError: data cut short
        raise ValueError(f"{path} is not a readable FITS file ({err}): download or write it again") from None


def parse_frequency_ghz(value: object, comment: str = "") -> float:
    """GHz from a header value such as ``143``, ``143.0``, ``'143GHz'``, ``'143 GHz'``,
    ``'143000 MHz'`` or ``1.43E11``. The unit is the value's, else the one named in ``comment``,
    else read from the magnitude: below 1e4 GHz, from 1e4 to 1e7 MHz, from 1e8 Hz.
    ``ValueError`` saying why otherwise."""
    if isinstance(value, bool):
        raise ValueError("a logical, not a frequency")
    found = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if found is None:
        raise ValueError("not a number with an optional unit (GHz, MHz, Hz)")
    number, unit = float(found.group(1).replace("d", "e").replace("D", "e")), found.group(2).upper()
    if not unit:
        named = re.search(r"\b(THz|GHz|MHz|kHz|Hz)\b", comment, re.IGNORECASE)
        unit = named.group(1).upper() if named else _unit_from_magnitude(number)
    if unit not in _GHZ_PER_UNIT:
        raise ValueError(f"unknown unit {unit!r}; use GHz, MHz or Hz")
    ghz = number * _GHZ_PER_UNIT[unit]
    if not 0.1 <= ghz <= 1e4:
        raise ValueError(f"{ghz:g} GHz is no frequency of a CMB band")
    return ghz


def _unit_from_magnitude(number: float) -> str:
    """The unit a bare frequency is in, from its size (see :func:`parse_frequency_ghz`)."""
    if number < 1e4:
        return "GHZ"
    if number < 1e7:
        return "MHZ"
    if number >= 1e8:
        return "HZ"
    raise ValueError("a bare number between 1e7 and 1e8 could be MHz or Hz; state the unit")


def stated_frequency_ghz(path: Path, header: fits.Header, key: str) -> float:
    """The frequency (GHz) in ``header[key]`` of the file ``path`` (see :func:`parse_frequency_ghz`);
    ``ValueError`` naming the file, the key and what it holds when it cannot be read."""
    try:
        return parse_frequency_ghz(header[key], header.comments[key])
    except ValueError as err:
        raise ValueError(f"{path}: cannot read a frequency from {key} = {header[key]!r} ({err}); fix the "
                         f"header (e.g. {key} = '143 GHz') or state the frequencies with "
                         "--frequencies") from None
