"""The per-pixel noise standard deviation σ of a band, read from its Planck-layout frequency map.

Planck frequency maps are binary tables whose columns include, besides the maps (``I_STOKES``,
``Q_STOKES``, ``U_STOKES``), the number of hits per pixel (``HITS``) and the variances of the maps per
pixel (``II_COV``, ``QQ_COV``, ``UU_COV``, in K_CMB²). :func:`read_noise_sigma` turns ``II_COV`` into
σ = √variance in µK_CMB, or, for a file with only ``HITS``, σ = σ_hit / √hits for a σ per hit the
caller states; with ``stokes="Q"`` or ``"U"`` it reads σ of Q or U from ``QQ_COV`` or ``UU_COV`` the
same way. Columns are found by name in any case, and σ comes back RING-ordered with the pixels the
map does not observe as ``healpy.UNSEEN``. :func:`has_noise_column` says which column a file has;
:func:`check_sigma_matches` refuses a σ map that does not fit its band's map. Headers, orderings and
pixel counts are checked as for the maps themselves (:mod:`cenn.io.healpix_maps`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from cenn.io.healpix_maps import (
    HealpixMap,
    column_names,
    column_unit,
    find_column,
    ring_column,
    stored_ordering,
    table_header,
)
from cenn.io.units import power_of_ten, uk_per_root_variance_unit

NOISE_COLUMNS = ("II_COV", "HITS")
"""The columns the temperature σ can be read from, in the order they are preferred."""
POLARIZATION_NOISE_COLUMNS = {"Q": "QQ_COV", "U": "UU_COV"}
"""The column the σ of Q and of U is read from (no HITS fallback: a σ per hit differs per Stokes)."""
STOKES = ("I", *POLARIZATION_NOISE_COLUMNS)
"""The Stokes maps whose σ :func:`read_noise_sigma` reads."""
MAP_COLUMNS = ("I_STOKES", "TEMPERATURE", "T", "I")
"""Names of the map's own column (Planck's, then those healpy writes), whose UNSEEN pixels are the
unobserved ones."""
MIN_SIGMA_UK = 0.1
"""Below this median σ (µK_CMB per pixel) the units are taken to be wrong: even a Planck map degraded
to Nside 64 has more noise per pixel, while a variance in K_CMB² read as µK² gives σ 10⁶ times too
small (~1e-5 µK at Nside 2048)."""
MAX_SIGMA_UK = 1e5
"""Above this median σ (µK_CMB per pixel) the units are taken to be wrong: Planck's noisiest CMB
band (353 GHz, Nside 2048) has σ of a few hundred µK per pixel."""


@dataclass(frozen=True)
class NoiseSigma:
    """A band's noise σ per pixel: ``values`` (12·nside², RING, float64, µK_CMB; ``healpy.UNSEEN``
    where the map observes nothing, or where a bad value was masked), the column it was read from
    (``source``: ``'II_COV'``, ``'HITS'``, ``'QQ_COV'`` or ``'UU_COV'``), the file, the number of
    observed pixels whose bad value was masked (``n_masked``) and the ordering the file was stored in."""

    values: np.ndarray
    source: str
    path: Path
    n_masked: int
    ordering_in: str = "RING"

    @property
    def nside(self) -> int:
        return hp.npix2nside(self.values.size)


def has_noise_column(path: str | Path, stokes: str = "I") -> str | None:
    """The column that the HEALPix map ``path`` has to read the σ of ``stokes`` from (names in any
    case), else ``None``: for ``"I"`` ``'II_COV'`` or ``'HITS'`` (:data:`NOISE_COLUMNS`, in that order
    of preference), for ``"Q"`` and ``"U"`` ``'QQ_COV'`` and ``'UU_COV'``."""
    return _noise_column(table_header(Path(path)), _checked_stokes(stokes))


def read_noise_sigma(path: str | Path, sigma_per_hit_uk: float | None = None, units: str | None = None,
                     ordering: str | None = None, *, mask_bad: bool = False, stokes: str = "I") -> NoiseSigma:
    """The noise σ per pixel (µK_CMB, RING) of the ``stokes`` map (``"I"``, ``"Q"`` or ``"U"``) of the
    Planck-layout frequency map ``path``.

    For ``"I"``, from ``II_COV`` when the file has it: σ = √variance, in the units of its TUNIT
    (K_CMB^2, Kcmb^2, mK^2, uK^2...; ``units`` overrides them and is required when the header states
    none). Else from ``HITS``: σ = ``sigma_per_hit_uk`` / √hits, which needs ``sigma_per_hit_uk``
    (µK_CMB). For ``"Q"`` and ``"U"``, from ``QQ_COV`` and ``UU_COV`` as from ``II_COV``; a file
    without the column is refused. ``ordering`` is required when the header has no ORDERING keyword.

    Pixels the map does not observe (UNSEEN or not finite in its own column, ``I_STOKES`` or another
    of :data:`MAP_COLUMNS`; without one, UNSEEN in the noise column) are UNSEEN. Observed pixels whose
    variance is zero, negative or not finite (hits ≤ 0) are refused with a ``ValueError`` naming the
    file and column and counting them, unless ``mask_bad``: then they are UNSEEN too, counted in
    ``n_masked``, and a warning says how many.
    """
    path = Path(path)
    header = table_header(path)
    source = _noise_column(header, _checked_stokes(stokes))
    if source is None:
        raise ValueError(_no_noise_column(path, header, stokes))
    field = find_column(header, source)
    if source != "HITS":
        if sigma_per_hit_uk is not None:
            warnings.warn(f"{path} has {source}: σ is read from it and sigma_per_hit_uk={sigma_per_hit_uk} "
                          "is not used", stacklevel=2)
        factor = _uk_per_root_variance(path, header, field, units, source)
    else:
        factor = _sigma_per_hit(path, sigma_per_hit_uk, units)
    ordering_in = stored_ordering(path, header, ordering)
    raw = ring_column(path, header, field, ordering_in)
    unobserved = _unobserved(path, header, ordering_in, raw)
    bad = ~unobserved & ~(np.isfinite(raw) & (raw > 0))
    n_bad = int(bad.sum())
    if n_bad and not mask_bad:
        what = "hits" if source == "HITS" else "variance"
        raise ValueError(f"{path}: column {source} has {n_bad} observed pixel(s) with zero, negative or "
                         f"non-finite {what} ({_count_kinds(raw[bad])}); pass mask_bad=True to treat them as "
                         "unobserved (healpy.UNSEEN), or fix the file")
    if n_bad:
        warnings.warn(f"{path}: {n_bad} observed pixel(s) with zero, negative or non-finite {source} masked "
                      "(set to healpy.UNSEEN)", stacklevel=2)
    blank = unobserved | bad
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = factor / np.sqrt(raw) if source == "HITS" else np.sqrt(raw) * factor
    values = np.where(blank, hp.UNSEEN, sigma)
    return NoiseSigma(values=values, source=source, path=path, n_masked=n_bad, ordering_in=ordering_in)


def check_sigma_matches(sigma: NoiseSigma, band_map: HealpixMap) -> None:
    """Refuse a σ map whose Nside differs from its band's map (naming both files), or whose median
    over the observed pixels is outside :data:`MIN_SIGMA_UK`..:data:`MAX_SIGMA_UK` µK_CMB (wrong
    units); warn when the map observes pixels that have no σ."""
    if sigma.nside != band_map.nside:
        raise ValueError(f"the noise σ of {sigma.path} (Nside {sigma.nside}) does not fit the map "
                         f"{band_map.path} (Nside {band_map.nside}): read σ from the file of the map itself, "
                         "or from one of the same Nside")
    check_sigma_plausible(sigma)
    lacking = int(((sigma.values == hp.UNSEEN) & (band_map.values != hp.UNSEEN)).sum())
    if lacking:
        warnings.warn(f"{lacking} pixel(s) observed in {band_map.path} have no noise σ in {sigma.path} "
                      "(UNSEEN there): they get no noise weight", stacklevel=2)


def check_sigma_plausible(sigma: NoiseSigma) -> float:
    """The median σ (µK_CMB) over the observed pixels of ``sigma``; ``ValueError`` naming the file when
    there are none, or when the median says the units are wrong (see :data:`MIN_SIGMA_UK`)."""
    seen = sigma.values[sigma.values != hp.UNSEEN]
    if seen.size == 0:
        raise ValueError(f"{sigma.path}: the noise σ has no observed pixels (all UNSEEN); check the file")
    median = float(np.median(seen))
    if MIN_SIGMA_UK <= median <= MAX_SIGMA_UK:
        return median
    likely = "K_CMB^2" if median < MIN_SIGMA_UK else "uK_CMB^2"
    given = ("sigma_per_hit_uk is probably not in µK_CMB" if sigma.source == "HITS" else
             f"the units of {sigma.source} are probably wrong: if it is in {likely}, pass units='{likely}'")
    raise ValueError(f"{sigma.path}: the median noise σ per pixel is {median:.3g} µK_CMB, outside "
                     f"{MIN_SIGMA_UK:g} to {power_of_ten(MAX_SIGMA_UK)} µK: {given}")


def _checked_stokes(stokes: str) -> str:
    """``stokes`` if it is one of :data:`STOKES`, else ``ValueError``."""
    if stokes not in STOKES:
        raise ValueError(f"stokes must be one of {', '.join(map(repr, STOKES))}, got {stokes!r}")
    return stokes


def _noise_column(header: fits.Header, stokes: str = "I") -> str | None:
    """The column the σ of ``stokes`` is read from that the table of ``header`` has: the first of
    :data:`NOISE_COLUMNS` for ``"I"``, that of :data:`POLARIZATION_NOISE_COLUMNS` for ``"Q"``, ``"U"``."""
    names = NOISE_COLUMNS if stokes == "I" else (POLARIZATION_NOISE_COLUMNS[stokes],)
    return next((name for name in names if find_column(header, name) is not None), None)


def _no_noise_column(path: Path, header: fits.Header, stokes: str) -> str:
    """Why the σ of ``stokes`` cannot be read from ``path``, listing the columns it has."""
    listing = ", ".join(name or "(unnamed)" for name in column_names(header))
    lacking = ("neither an II_COV nor a HITS column" if stokes == "I"
               else f"no {POLARIZATION_NOISE_COLUMNS[stokes]} column")
    return (f"{path} has {lacking} (its columns: {listing}), so no {stokes} noise σ can be read from it: "
            "use the Planck frequency map itself (e.g. HFI_SkyMap_217_2048_R3.01_full.fits), which has "
            "II_COV, QQ_COV, UU_COV and HITS")


def _uk_per_root_variance(path: Path, header: fits.Header, field: int, units: str | None,
                          column: str) -> float:
    """µK_CMB per √(unit of the variance column ``column``), from ``units`` or else the column's TUNIT."""
    if units is not None:
        return uk_per_root_variance_unit(units)
    stated = column_unit(header, field)
    if stated is None:
        raise ValueError(f"{path} states no units for {column} (TUNIT{field + 1}); pass units='K_CMB^2' "
                         "(Planck's), 'mK_CMB^2' or 'uK_CMB^2'")
    try:
        return uk_per_root_variance_unit(stated)
    except ValueError as err:
        raise ValueError(f"{path}: TUNIT{field + 1} of {column} is {stated!r}: {err}") from None


def _sigma_per_hit(path: Path, sigma_per_hit_uk: float | None, units: str | None) -> float:
    """``sigma_per_hit_uk`` checked, for a file whose only noise column is HITS."""
    if sigma_per_hit_uk is None:
        raise ValueError(f"{path} has no II_COV column, only HITS: pass sigma_per_hit_uk (the noise σ of "
                         "one hit, in µK_CMB) to read σ = sigma_per_hit_uk / √hits, or use a file with "
                         "II_COV")
    if units is not None:
        raise ValueError(f"{path} has no II_COV column, so units={units!r} would apply to nothing: drop it "
                         "(sigma_per_hit_uk is in µK_CMB)")
    if not (math.isfinite(sigma_per_hit_uk) and sigma_per_hit_uk > 0):
        raise ValueError(f"sigma_per_hit_uk must be a positive number of µK_CMB, not {sigma_per_hit_uk!r}")
    return float(sigma_per_hit_uk)


def _unobserved(path: Path, header: fits.Header, ordering_in: str, noise: np.ndarray) -> np.ndarray:
    """Pixels the map does not observe: UNSEEN or not finite in its own column when the file has one of
    :data:`MAP_COLUMNS`, else UNSEEN in the noise column (RING, as ``noise``)."""
    field = next((f for f in (find_column(header, name) for name in MAP_COLUMNS) if f is not None), None)
    if field is None:
        return noise == hp.UNSEEN
    values = ring_column(path, header, field, ordering_in)
    return ~np.isfinite(values) | (values == hp.UNSEEN)


def _count_kinds(values: np.ndarray) -> str:
    """``'2 zero, 1 negative, 3 NaN or infinite'`` for the bad values ``values`` (zero counts left out)."""
    counts = {"zero": int((values == 0).sum()), "negative": int((values < 0).sum()),
              "NaN or infinite": int((~np.isfinite(values)).sum())}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
