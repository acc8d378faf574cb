"""Map units: cenn works in µK_CMB (:data:`UNITS`); maps labelled K_CMB or mK_CMB are converted
(:func:`uk_per_unit`), noise variances in K_CMB² and the like too (:func:`uk_per_root_variance_unit`),
and a spread no sky has says the label is wrong (:func:`misread_units`)."""

from __future__ import annotations

import math

UNITS = "uK_CMB"
_UK_PER_UNIT = {"K": 1e6, "MK": 1e3, "MILLIK": 1e3, "UK": 1.0, "MUK": 1.0, "MICROK": 1.0}
"""µK_CMB per unit, for the unit names upper-cased, without their optional ``_CMB``/``CMB`` suffix."""
_UNIT_NAMES = {1e6: "K_CMB", 1e3: "mK_CMB", 1.0: UNITS}

MIN_SKY_STD_UK = 10.0
"""Below this spread (standard deviation, µK) maps read as µK_CMB are refused: sky maps at CMB
frequencies vary by more (simulated 217 GHz patches of 90″ pixels, median per-patch standard
deviation: 85–1550 µK from high latitudes to the Galactic plane; their noise alone 31 µK), while
maps in mK_CMB read as µK vary by 0.03–1.6 and maps in K_CMB by 1e-4–2e-3 (see
:func:`misread_units`)."""
KELVIN_STD_UK = 1e-2
"""Below this spread (µK) the maps are taken to be in K_CMB rather than mK_CMB (see
:data:`MIN_SKY_STD_UK`)."""
MAX_SKY_STD_UK = 1e7
"""Above this spread (µK) maps are taken to be µK_CMB labelled K_CMB: even the Galactic centre at
353 GHz varies by less than 10 K."""


def uk_per_unit(units: str) -> float:
    """µK_CMB per unit of ``units``: K_CMB, KCMB, K → 1e6; mK_CMB, mK → 1e3; uK_CMB, µK_CMB, uK, muK,
    microK → 1 (any case). ``ValueError`` for other units."""
    key = units.strip().replace("µ", "u").replace("μ", "u").upper()
    for suffix in ("_CMB", "CMB"):
        key = key.removesuffix(suffix)
    if key not in _UK_PER_UNIT:
        raise ValueError(f"unknown map units {units!r}; convert the map to K_CMB, mK_CMB or uK_CMB (K_RJ "
                         "and MJy/sr need a band-dependent conversion) and pass units='K_CMB', 'mK_CMB' "
                         "or 'uK_CMB'")
    return _UK_PER_UNIT[key]


def uk_per_root_variance_unit(units: str) -> float:
    """µK_CMB per square root of the variance unit ``units``, so that σ[µK] = √variance × this:
    K_CMB^2, Kcmb^2, K_CMB**2, (K_CMB)^2, K2 → 1e6; mK_CMB^2 → 1e3; uK_CMB^2, µK^2 → 1 (any case).
    ``ValueError`` for units that are not a squared temperature in CMB units."""
    key = units.strip().replace("**", "^").replace("(", "").replace(")", "").replace(" ", "")
    base = key.removesuffix("^2") if key.endswith("^2") else key.removesuffix("2")
    try:
        if not base or base == key:
            raise ValueError("not squared")
        return uk_per_unit(base)
    except ValueError:
        raise ValueError(f"unknown variance units {units!r}: a noise variance must be in K_CMB^2, mK_CMB^2 "
                         "or uK_CMB^2 (variances in MJy²/sr² or K_RJ² need a band-dependent conversion); "
                         "pass units='K_CMB^2', 'mK_CMB^2' or 'uK_CMB^2'") from None


def power_of_ten(factor: float) -> str:
    """``factor`` as ``1e6``, ``1e3``, ``1e-6``..."""
    return f"1e{round(math.log10(factor))}"


def misread_units(std_uk: float, units: str) -> tuple[float, str | None] | None:
    """When sky maps read as ``units`` vary by ``std_uk`` µK_CMB (a standard deviation), which no sky
    does: the factor to multiply them by and the units they are probably in (``None`` when no unit
    has that factor), else ``None``.

    Below :data:`MIN_SKY_STD_UK` the maps are 1e3 (mK read as µK) or, below 1e-2 µK, 1e6 (K read as
    µK) times too small; above :data:`MAX_SKY_STD_UK` they are µK labelled ``units`` (factor
    1 / µK per unit: 1 when ``units`` is µK already, and the maps are no sky maps at all). µK maps
    labelled mK (spread ×1e3, like the Galactic centre's) are not caught.
    """
    given = uk_per_unit(units)
    if std_uk > MAX_SKY_STD_UK:
        return 1.0 / given, UNITS
    if std_uk >= MIN_SKY_STD_UK:
        return None
    factor = 1e6 if std_uk < KELVIN_STD_UK else 1e3
    return factor, _UNIT_NAMES.get(given * factor)
