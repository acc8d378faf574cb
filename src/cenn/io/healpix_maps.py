"""Reading HEALPix maps from FITS files and checking that a set of bands fits together.

Maps come back RING-ordered, float64, in µK_CMB, with unobserved pixels as ``healpy.UNSEEN``
(non-finite values are turned into UNSEEN too). Orderings and units are taken from the FITS header
and refused when missing, unknown or implausible, never guessed. Files that are not full-sky HEALPix
tables (images, cut-sky maps, tables of the wrong length, truncated files) are refused naming the
file. A band's frequency, when its header states one, is read in any usual spelling
(:func:`header_frequency_ghz`). Stokes Q and U (:func:`read_polarization`) come back in the COSMO
convention, from the header's POLCCONV (IAU maps have their U negated; none stated is refused).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from cenn.io.fits import fits_file, stated_frequency_ghz
from cenn.io.units import check_unit_label, uk_per_unit

_ORDERINGS = {"RING": "RING", "NESTED": "NESTED", "NEST": "NESTED"}

_FREQUENCY_KEYS = ("FREQ", "FREQUENC", "FREQUENCY")
"""Header keys that may state a map's frequency (besides ``FREQ<column>``), in the table's header or
the primary one."""


@dataclass(frozen=True)
class HealpixMap:
    """One band's map: ``values`` (12·nside², RING, float64, µK_CMB, UNSEEN kept), the ordering and
    units it was stored with, the fraction of UNSEEN pixels, the file it came from and the coordinate
    system its header states (``G``, ``C`` or ``E``; ``None`` when it states none)."""

    values: np.ndarray
    nside: int
    ordering_in: str
    units_in: str
    unseen_fraction: float
    path: Path
    coordsys: str | None = None


def read_map(path: str | Path, units: str | None = None, field: int | str = 0,
             ordering: str | None = None) -> HealpixMap:
    """Column ``field`` (an index, or a name such as ``'I_STOKES'`` in any case) of the HEALPix FITS
    file ``path`` in µK_CMB, RING-ordered.

    ``units`` overrides the header's TUNIT/BUNIT and is required when the header has none;
    ``ordering`` is required when the header has no ORDERING keyword.
    """
    path = Path(path)
    header = table_header(path)
    field = column_index(path, header, field)
    ordering_in = stored_ordering(path, header, ordering)
    units_in = units if units is not None else _header_units(path, header, field)
    factor = uk_per_unit(units_in)
    raw = ring_column(path, header, field, ordering_in)
    unseen = ~np.isfinite(raw) | (raw == hp.UNSEEN)
    values = np.where(unseen, hp.UNSEEN, raw * factor)
    _check_amplitude(path, values[~unseen], units_in, field)
    return HealpixMap(values=values, nside=hp.npix2nside(values.size), ordering_in=ordering_in,
                      units_in=units_in, unseen_fraction=float(unseen.mean()), path=path,
                      coordsys=coordinate_system(path, header))


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


def column_names(header: fits.Header) -> list[str]:
    """The names (TTYPEn) of the columns of a table's ``header``, ``''`` for an unnamed one."""
    return [str(header.get(f"TTYPE{i + 1}", "")).strip() for i in range(int(header.get("TFIELDS", 1)))]


def find_column(header: fits.Header, name: str) -> int | None:
    """Index of the first column named ``name`` (TTYPEn, any case) in ``header``, else ``None``."""
    wanted = name.strip().upper()
    return next((i for i, found in enumerate(column_names(header)) if found.upper() == wanted), None)


def column_index(path: Path, header: fits.Header, field: int | str) -> int:
    """Index of column ``field`` (an index, or a name in any case) of the map ``path``; ``ValueError``
    naming the file (and its columns) when it has no such column."""
    n_columns = int(header.get("TFIELDS", 1))
    if isinstance(field, str):
        found = find_column(header, field)
        if found is None:
            names = column_names(header)
            listing = ", ".join(name or f"unnamed column {i + 1}" for i, name in enumerate(names))
            raise ValueError(f"{path} has no column {field!r} (its columns: {listing}); pass one of these "
                             "names, or the column's index, as field")
        return found
    if not 0 <= field < n_columns:
        raise ValueError(f"{path} has {n_columns} column(s); pass field in 0..{n_columns - 1}")
    return int(field)


def ring_column(path: Path, header: fits.Header, field: int, ordering_in: str) -> np.ndarray:
    """Column ``field`` of the map ``path`` (``header`` its table's, ``ordering_in`` its stored
    ordering from :func:`stored_ordering`) as float64 in RING order, values as stored (UNSEEN and NaN
    kept); its pixel count is checked first (see :func:`_check_pixel_count`)."""
    _check_pixel_count(path, header, field)
    raw = _read_column(path, field)
    return hp.reorder(raw, n2r=True) if ordering_in == "NESTED" else raw


def _check_pixel_count(path: Path, header: fits.Header, field: int) -> int:
    """The number of pixels in column ``field``; refuse a table whose pixels are not 12·Nside² (or the
    NSIDE stated), and a cut-sky (explicitly indexed) map."""
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
    return n_pixels


def header_nside(path: Path, field: int = 0) -> int:
    """The Nside of the HEALPix map ``path`` from its header (its pixels are not read); refused as by
    :func:`read_map` when the file is not a full-sky HEALPix table."""
    header = table_header(path)
    return hp.npix2nside(_check_pixel_count(path, header, column_index(path, header, field)))


#: COORDSYS values and the system they name: G (Galactic), C (celestial, equatorial) or E (ecliptic).
_COORDINATE_SYSTEMS = {"G": "G", "GAL": "G", "GALACTIC": "G", "C": "C", "CEL": "C", "CELESTIAL": "C",
                       "Q": "C", "EQ": "C", "EQU": "C", "EQUATORIAL": "C", "ICRS": "C", "FK5": "C",
                       "E": "E", "ECL": "E", "ECLIPTIC": "E"}


def coordinate_system(path: Path, header: fits.Header) -> str | None:
    """``G``, ``C`` or ``E`` from the COORDSYS of the map's table ``header`` or of its primary header,
    ``None`` when neither states one; an unknown value is refused, naming the file."""
    for found in (header.get("COORDSYS"), fits.getheader(path).get("COORDSYS")):
        if found is not None and str(found).strip():
            key = str(found).strip().upper()
            if key not in _COORDINATE_SYSTEMS:
                raise ValueError(f"{path}: unknown COORDSYS {found!r}; expected G (Galactic), C (celestial) "
                                 "or E (ecliptic): fix the header")
            return _COORDINATE_SYSTEMS[key]
    return None


def _read_column(path: Path, field: int) -> np.ndarray:
    """Column ``field`` of the HEALPix map ``path`` as stored (float64); a file that cannot be read
    (truncated, damaged) is refused, naming it."""
    try:
        return hp.read_map(path, field=field, nest=None, dtype=np.float64)
    except (ValueError, OSError, IndexError, KeyError, TypeError) as err:
        raise ValueError(f"{path} cannot be read as a HEALPix map ({err}): it may be truncated or "
                         "damaged; download or write it again") from None


def header_frequency_ghz(path: Path, field: int = 0) -> float | None:
    """The frequency (GHz) the header of the HEALPix map ``path`` states for column ``field``
    (keys FREQ, FREQUENC, FREQUENCY or FREQ<column>, in the table's header, then the primary one);
    ``None`` when none does, ``ValueError`` naming the file and key when the value cannot be read."""
    for header in (table_header(path), fits.getheader(path)):
        for key in (*_FREQUENCY_KEYS, f"FREQ{field + 1}"):
            if key in header and str(header[key]).strip():
                return stated_frequency_ghz(path, header, key)
    return None


def check_bands(maps: list[HealpixMap]) -> None:
    """Refuse bands that differ in Nside, stored ordering or coordinate system (a band stating none
    among bands that state one included: their pixels would be combined as if on one sky); warn about
    UNSEEN pixels."""
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
    if len({m.coordsys for m in maps}) > 1:
        listing = ", ".join(f"{m.path.name}: {m.coordsys or 'none stated'}" for m in maps)
        raise ValueError(f"bands are in different coordinate systems (COORDSYS: {listing}); their pixels "
                         "would be combined as if they were the same sky: rotate them to one system "
                         "(healpy.Rotator(coord=['C', 'G']).rotate_map_pixel) and write it in every "
                         "header, or add the COORDSYS a header lacks")
    holed = [f"{m.path.name}: {m.unseen_fraction:.2%}" for m in maps if m.unseen_fraction > 0]
    if holed:
        warnings.warn(f"UNSEEN pixels ({', '.join(holed)}); patches touching them are flagged by "
                      "cut_patches and those pixels get no weight in predict_full_sky", stacklevel=2)


def stored_ordering(path: Path, header: fits.Header, given: str | None) -> str:
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
    for value in (column_unit(header, field), header.get("BUNIT"), fits.getheader(path).get("BUNIT")):
        if value is not None and str(value).strip():
            return str(value).strip()
    raise ValueError(f"{path} states no units (TUNIT{field + 1} or BUNIT); pass units='K_CMB' or 'uK_CMB'")


def column_unit(header: fits.Header, field: int) -> str | None:
    """The units TUNIT<field+1> states for column ``field`` of a table's ``header``, else ``None``."""
    value = header.get(f"TUNIT{field + 1}")
    return str(value).strip() if value is not None and str(value).strip() else None


def _check_amplitude(path: Path, seen_uk: np.ndarray, units: str, field: int) -> None:
    """Refuse a map without observed pixels, or whose seen pixels' standard deviation says its units
    are wrong by 10⁶ or more (:func:`~cenn.io.units.check_unit_label` for a map of unknown frequency
    and content; the callers check sky and component maps more closely)."""
    if seen_uk.size == 0:
        raise ValueError(f"{path} has no observed pixels (all UNSEEN); check the file and field")
    check_unit_label(float(seen_uk.std()), units, subject=str(path), measured="it varies", plural=False,
                     statistic="standard deviation of its seen pixels", content="foreground",
                     relabel=f"pass units='{{units}}' or fix its TUNIT{field + 1}")


#: POLCCONV values: the basis HEALPix Q/U are measured in. COSMO (HEALPix's, Planck's): (e_θ, e_φ);
#: IAU: north and east, so that U_IAU = −U_COSMO (Q unchanged).
POLARIZATION_CONVENTIONS = ("COSMO", "IAU")


def polarization_convention(path: Path, header: fits.Header, given: str | None = None) -> str:
    """COSMO or IAU from the POLCCONV of the map's table ``header`` or of its primary header, else
    ``given``; a missing or unknown convention is refused (a wrong one flips the sign of U, turning E
    into −E's mirror and mixing TE/EB), as is a ``given`` one that contradicts the header."""
    found = next((str(h["POLCCONV"]).strip().upper() for h in (header, fits.getheader(path))
                  if str(h.get("POLCCONV", "")).strip()), None)
    stated = given.strip().upper() if given is not None else None
    for value, where in ((found, "its POLCCONV"), (stated, "polcconv")):
        if value is not None and value not in POLARIZATION_CONVENTIONS:
            raise ValueError(f"{path}: unknown polarization convention {value!r} ({where}); expected COSMO "
                             "(HEALPix and Planck) or IAU: fix the header's POLCCONV")
    if found is not None and stated is not None and found != stated:
        raise ValueError(f"{path}: its header says POLCCONV = {found!r} but polcconv={given!r} was passed; "
                         "drop the argument or fix the header")
    if found is None and stated is None:
        raise ValueError(f"{path} states no polarization convention (POLCCONV), so the sign of its U is "
                         "unknown: add POLCCONV = 'COSMO' (HEALPix and Planck maps) or 'IAU' to its header, "
                         f"e.g. astropy.io.fits.setval('{path.name}', 'POLCCONV', value='COSMO', ext=1)")
    return found or stated  # type: ignore[return-value]


_QU_COLUMNS = ("Q_STOKES", "U_STOKES")


def check_polarization_file(path: Path, polcconv: str | None = None) -> str:
    """From its headers only (no pixel is read): the polarization convention of the HEALPix map
    ``path`` (:func:`polarization_convention`), refused as there, and a file without ``Q_STOKES`` and
    ``U_STOKES`` columns refused naming its columns."""
    header = table_header(path)
    if any(find_column(header, name) is None for name in _QU_COLUMNS):
        listing = ", ".join(name or f"unnamed column {i + 1}" for i, name in enumerate(column_names(header)))
        raise ValueError(f"{path} has no Q_STOKES and U_STOKES columns (its columns: {listing}): write its Q "
                         "and U under those names (Planck layout), or separate its temperature (--stokes I)")
    return polarization_convention(path, header, polcconv)


def read_polarization(path: str | Path, units: str | None = None,
                      polcconv: str | None = None) -> tuple[HealpixMap, HealpixMap]:
    """The ``Q_STOKES`` and ``U_STOKES`` columns of the HEALPix FITS file ``path`` (Planck layout) as
    :func:`read_map` reads a column (µK_CMB from the header's units or ``units``, RING, float64), in
    the COSMO convention: U is negated when the file's POLCCONV (or ``polcconv``, for a header
    without one; :func:`polarization_convention`) is IAU. A pixel UNSEEN in Q or U is UNSEEN in both.
    Returns ``(q, u)``."""
    path = Path(path)
    convention = check_polarization_file(path, polcconv)
    q, u = (read_map(path, units=units, field=name) for name in _QU_COLUMNS)
    unseen = (q.values == hp.UNSEEN) | (u.values == hp.UNSEEN)
    sign = -1.0 if convention == "IAU" else 1.0
    fraction = float(unseen.mean())
    return (replace(q, values=np.where(unseen, hp.UNSEEN, q.values), unseen_fraction=fraction),
            replace(u, values=np.where(unseen, hp.UNSEEN, sign * u.values), unseen_fraction=fraction))
