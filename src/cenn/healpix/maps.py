"""Reading HEALPix maps from FITS files and checking that a set of bands fits together.

Maps come back RING-ordered, float64, in µK_CMB, with unobserved pixels as ``healpy.UNSEEN``
(non-finite values are turned into UNSEEN too). Orderings and units are taken from the FITS header
and refused when missing, unknown or implausible, never guessed. Files that are not full-sky HEALPix
tables (images, cut-sky maps, tables of the wrong length, truncated files) are refused naming the
file. A band's frequency, when its header states one, is read in any usual spelling and checked
against the order the method takes the bands in (:func:`check_band_order`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from cenn.model.weights import fmt_list, misread_units, power_of_ten, uk_per_unit

_ORDERINGS = {"RING": "RING", "NESTED": "NESTED", "NEST": "NESTED"}

MIN_STD_UK = 1e-2
"""Below this standard deviation (µK) of the seen pixels a map is taken for one in K read as µK."""

MAX_STD_UK = 1e7
"""Above this standard deviation (µK) a map is taken for one in µK read as K."""

_FREQUENCY_KEYS = ("FREQ", "FREQUENC", "FREQUENCY")
"""Header keys that may state a map's frequency (besides ``FREQ<column>``), in the table's header or
the primary one."""

_GHZ_PER_UNIT = {"THZ": 1e3, "GHZ": 1.0, "MHZ": 1e-3, "KHZ": 1e-6, "HZ": 1e-9}

_SAME_BAND = 0.1
"""Relative difference within which a stated frequency is taken for a band's (nominal and effective
band centres differ by a few %; neighbouring bands by 40 % or more)."""


@dataclass(frozen=True)
class HealpixMap:
    """One band's map: ``values`` (12·nside², RING, float64, µK_CMB, UNSEEN kept), the ordering and
    units it was stored with, the fraction of UNSEEN pixels and the file it came from."""

    values: np.ndarray
    nside: int
    ordering_in: str
    units_in: str
    unseen_fraction: float
    path: Path


def read_map(path: str | Path, units: str | None = None, field: int = 0,
             ordering: str | None = None) -> HealpixMap:
    """Column ``field`` of the HEALPix FITS file ``path`` in µK_CMB, RING-ordered.

    ``units`` overrides the header's TUNIT/BUNIT and is required when the header has none;
    ``ordering`` is required when the header has no ORDERING keyword.
    """
    path = Path(path)
    header = table_header(path)
    n_columns = int(header.get("TFIELDS", 1))
    if not 0 <= field < n_columns:
        raise ValueError(f"{path} has {n_columns} column(s); pass field in 0..{n_columns - 1}")
    ordering_in = _ordering(path, header, ordering)
    units_in = units if units is not None else _header_units(path, header, field)
    factor = uk_per_unit(units_in)
    _check_pixel_count(path, header, field)
    raw = _read_column(path, field)
    unseen = ~np.isfinite(raw) | (raw == hp.UNSEEN)
    values = np.where(unseen, hp.UNSEEN, raw * factor)
    if ordering_in == "NESTED":
        values = hp.reorder(values, n2r=True)
        unseen = values == hp.UNSEEN
    _check_amplitude(path, values[~unseen], units_in)
    return HealpixMap(values=values, nside=hp.npix2nside(values.size), ordering_in=ordering_in,
                      units_in=units_in, unseen_fraction=float(unseen.mean()), path=path)


def table_header(path: Path) -> fits.Header:
    """The header of the binary table (HDU 1) that holds a HEALPix map's pixels; a missing file, one
    that is not FITS and a FITS file without such a table are refused, naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"HEALPix map {path} not found; check the path")
    with fits_file(path) as hdus:
        kinds = [type(h).__name__ for h in hdus]
        if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU):
            raise ValueError(f"{path} is not a HEALPix map: it holds {', '.join(kinds)} but no binary table "
                             "after the primary HDU (HEALPix maps are tables of pixels, as healpy.write_map "
                             "writes them); for patches (N, C, H, W) use cenn predict INPUT OUTPUT")
        return hdus[1].header.copy()


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


def _check_pixel_count(path: Path, header: fits.Header, field: int) -> None:
    """Refuse a table of column ``field`` whose pixels are not 12·Nside² (or the NSIDE stated), and a
    cut-sky (explicitly indexed) map."""
    if str(header.get("INDXSCHM", "IMPLICIT")).strip().upper() == "EXPLICIT":
        raise ValueError(f"{path} is a cut-sky HEALPix map (INDXSCHM = 'EXPLICIT'): write it as a full-sky "
                         "map, with healpy.UNSEEN where it has no data")
    form = re.match(r"\s*(\d*)", str(header.get(f"TFORM{field + 1}", "")))
    n_pixels = int(header.get("NAXIS2", 0)) * int(form.group(1) or 1)
    stated = header.get("NSIDE")
    expected = f"12·{stated}² = {12 * int(stated) ** 2} for its NSIDE = {stated}" if stated else "12·Nside²"
    if not hp.isnpixok(n_pixels) or (stated and n_pixels != 12 * int(stated) ** 2):
        raise ValueError(f"{path} holds {n_pixels} pixels in column {field + 1}, not {expected}: it is "
                         "truncated or not a full-sky HEALPix map; write it again with healpy.write_map")


def _read_column(path: Path, field: int) -> np.ndarray:
    """Column ``field`` of the HEALPix map ``path`` as stored (float64); a file that cannot be read
    (truncated, damaged) is refused, naming it."""
    try:
        return hp.read_map(path, field=field, nest=None, dtype=np.float64)
    except (ValueError, OSError, IndexError, KeyError, TypeError) as err:
        raise ValueError(f"{path} cannot be read as a HEALPix map ({err}): it may be truncated or "
                         "damaged; download or write it again") from None


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


def header_frequency_ghz(path: Path, field: int = 0) -> float | None:
    """The frequency (GHz) the header of the HEALPix map ``path`` states for column ``field``
    (keys FREQ, FREQUENC, FREQUENCY or FREQ<column>, in the table's header, then the primary one);
    ``None`` when none does, ``ValueError`` naming the file and key when the value cannot be read."""
    for header in (table_header(path), fits.getheader(path)):
        for key in (*_FREQUENCY_KEYS, f"FREQ{field + 1}"):
            if key in header and str(header[key]).strip():
                return stated_frequency_ghz(path, header, key)
    return None


def stated_frequency_ghz(path: Path, header: fits.Header, key: str) -> float:
    """The frequency (GHz) in ``header[key]`` of the file ``path`` (see :func:`parse_frequency_ghz`);
    ``ValueError`` naming the file, the key and what it holds when it cannot be read."""
    try:
        return parse_frequency_ghz(header[key], header.comments[key])
    except ValueError as err:
        raise ValueError(f"{path}: cannot read a frequency from {key} = {header[key]!r} ({err}); fix the "
                         f"header (e.g. {key} = '143 GHz') or state the frequencies with "
                         "--frequencies") from None


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


def check_sky_spread(m: HealpixMap) -> float:
    """The robust spread (µK) of the seen pixels of the band map ``m``; refused when it says the
    map's units are wrong (:func:`~cenn.model.weights.misread_units`), or when it is 0 (a constant
    map holds no sky)."""
    spread = robust_std(m.values[m.values != hp.UNSEEN])
    if spread == 0:
        raise ValueError(f"{m.path} is constant over most of the sky (robust standard deviation 0): it "
                         "holds no sky map; check the file and its column")
    misread = misread_units(spread, m.units_in)
    if misread is None:
        return spread
    factor, units = misread
    found = (f"{m.path} read as {m.units_in!r} varies by {spread:.3g} µK (robust standard deviation of its "
             "seen pixels)")
    label = f"label it {units} (TUNIT1, or --units {units} if all maps are)" if units else ""
    if factor <= 1:
        fix = label if factor < 1 else "check its units and values"
        raise ValueError(f"{found}, more than any sky: {fix}")
    label = f"{label} or " if label else ""
    raise ValueError(f"{found} where sky maps vary by tens of µK or more: {label}multiply it by "
                     f"{power_of_ten(factor)}")


def check_bands(maps: list[HealpixMap]) -> None:
    """Refuse bands that differ in Nside or stored ordering; warn about UNSEEN pixels."""
    if not maps:
        raise ValueError("no maps given; pass one HealpixMap per band")
    if len({m.nside for m in maps}) > 1:
        listing = ", ".join(f"{m.path.name}: Nside {m.nside}" for m in maps)
        raise ValueError(f"bands have different Nside ({listing}); bring them to one Nside with "
                         "healpy.ud_grade (after smoothing to a common beam) before cutting patches")
    if len({m.ordering_in for m in maps}) > 1:
        listing = ", ".join(f"{m.path.name}: {m.ordering_in}" for m in maps)
        raise ValueError(f"bands were stored with different orderings ({listing}); mixed orderings "
                         "suggest files from different pipelines: check them and write all bands with "
                         "one ordering (healpy.write_map(..., nest=False))")
    holed = [f"{m.path.name}: {m.unseen_fraction:.2%}" for m in maps if m.unseen_fraction > 0]
    if holed:
        warnings.warn(f"UNSEEN pixels ({', '.join(holed)}); patches touching them are flagged by "
                      "cut_patches and those pixels get no weight in predict_full_sky", stacklevel=2)


def _ordering(path: Path, header: fits.Header, given: str | None) -> str:
    """RING or NESTED from the header's ORDERING, or ``given`` when the header has none."""
    found = header.get("ORDERING")
    if found is None and given is None:
        raise ValueError(f"{path} has no ORDERING keyword; pass ordering='RING' or 'NESTED'")
    names = {_ordering_name(path, str(name)) for name in (found, given) if name is not None}
    if len(names) > 1:
        raise ValueError(f"{path}: header says ORDERING={found} but ordering={given!r} was passed; "
                         "drop the argument or fix the header")
    return names.pop()


def _ordering_name(path: Path, name: str) -> str:
    """RING or NESTED for a header value or argument (NEST is accepted for NESTED)."""
    key = name.strip().upper()
    if key not in _ORDERINGS:
        raise ValueError(f"{path}: unknown ordering {name!r}; expected RING or NESTED")
    return _ORDERINGS[key]


def _header_units(path: Path, header: fits.Header, field: int) -> str:
    """TUNIT<field+1> or BUNIT of the map's extension or primary header."""
    for value in (header.get(f"TUNIT{field + 1}"), header.get("BUNIT"), fits.getheader(path).get("BUNIT")):
        if value is not None and str(value).strip():
            return str(value).strip()
    raise ValueError(f"{path} states no units (TUNIT{field + 1} or BUNIT); pass units='K_CMB' or 'uK_CMB'")


def _check_amplitude(path: Path, seen_uk: np.ndarray, units: str) -> None:
    """Refuse maps whose seen pixels' spread says the units are wrong by 10⁶ (or that are empty)."""
    if seen_uk.size == 0:
        raise ValueError(f"{path} has no observed pixels (all UNSEEN); check the file and field")
    std = float(seen_uk.std())
    if std < MIN_STD_UK:
        raise ValueError(f"{path} read as {units!r} has a standard deviation of {std:.3g} µK: it looks "
                         "like a map in K_CMB; pass units='K_CMB'")
    if std > MAX_STD_UK:
        raise ValueError(f"{path} read as {units!r} has a standard deviation of {std:.3g} µK: it looks "
                         "like a map in µK_CMB; pass units='uK_CMB'")
