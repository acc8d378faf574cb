"""Reading HEALPix maps from FITS files and checking that a set of bands fits together.

Maps come back RING-ordered, float64, in µK_CMB, with unobserved pixels as ``healpy.UNSEEN``
(non-finite values are turned into UNSEEN too). Orderings and units are taken from the FITS header
and refused when missing, unknown or implausible, never guessed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

_UK_PER_UNIT = {"K": 1e6, "UK": 1.0, "MUK": 1.0, "MICROK": 1.0}
"""µK_CMB per unit, for the unit names without their optional ``_CMB``/``CMB`` suffix."""

_ORDERINGS = {"RING": "RING", "NESTED": "NESTED", "NEST": "NESTED"}

MIN_STD_UK = 1e-2
"""Below this standard deviation (µK) of the seen pixels a map is taken for one in K read as µK."""

MAX_STD_UK = 1e7
"""Above this standard deviation (µK) a map is taken for one in µK read as K."""


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
    if not path.is_file():
        raise FileNotFoundError(f"HEALPix map {path} not found; check the path")
    header = fits.getheader(path, ext=1)
    n_columns = int(header.get("TFIELDS", 1))
    if not 0 <= field < n_columns:
        raise ValueError(f"{path} has {n_columns} column(s); pass field in 0..{n_columns - 1}")
    ordering_in = _ordering(path, header, ordering)
    units_in = units if units is not None else _header_units(path, header, field)
    factor = uk_per_unit(units_in)
    raw = hp.read_map(path, field=field, nest=None, dtype=np.float64)
    unseen = ~np.isfinite(raw) | (raw == hp.UNSEEN)
    values = np.where(unseen, hp.UNSEEN, raw * factor)
    if ordering_in == "NESTED":
        values = hp.reorder(values, n2r=True)
        unseen = values == hp.UNSEEN
    _check_amplitude(path, values[~unseen], units_in)
    return HealpixMap(values=values, nside=hp.npix2nside(values.size), ordering_in=ordering_in,
                      units_in=units_in, unseen_fraction=float(unseen.mean()), path=path)


def uk_per_unit(units: str) -> float:
    """µK_CMB per unit of ``units`` (K_CMB, KCMB, K → 1e6; uK_CMB, µK_CMB, uK, muK, microK → 1)."""
    key = units.strip().replace("µ", "u").replace("μ", "u").upper()
    for suffix in ("_CMB", "CMB"):
        key = key.removesuffix(suffix)
    if key not in _UK_PER_UNIT:
        raise ValueError(f"unknown map units {units!r}; convert the map to K_CMB or uK_CMB (K_RJ and "
                         "MJy/sr need a band-dependent conversion) and pass units='K_CMB' or 'uK_CMB'")
    return _UK_PER_UNIT[key]


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
