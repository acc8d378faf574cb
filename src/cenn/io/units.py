"""Map units: cenn works in µK_CMB (:data:`UNITS`); maps labelled K_CMB or mK_CMB are converted
(:func:`uk_per_unit`), noise variances in K_CMB² and the like too (:func:`uk_per_root_variance_unit`),
and a spread no sky has at a map's frequency says its label is wrong (:func:`check_unit_label`, the
one check of every path that reads maps: patches, full-sky bands and the maps of ``cenn simulate
--map``).

The criterion (:func:`plausible_spread`), in µK_CMB after conversion from the label:

- at least :data:`MIN_SKY_STD_UK` (10 µK) for a sky or CMB map: the CMB alone varies by 45–110 µK
  (1.6° patches to the whole sky), noise adds; :data:`KELVIN_STD_UK` for a foreground map, which may
  be faint (synchrotron at 353 GHz);
- when the label converts (mK_CMB or K_CMB), at most 30 times (:data:`SPREAD_MARGIN`) the typical
  spread of a sky map at that frequency (:func:`typical_spread`): the CMB and thermal dust, whose
  µK_CMB brightness rises steeply with frequency (a modified black body), at its level in the
  Galactic plane (|b| < 5°) for patches or a standard deviation over the sky, which the plane may
  dominate, and at intermediate latitudes for a robust spread over most of the sky. For 90″ patches
  that is 1.5e4, 4.7e4 and 3.5e5 µK at 143, 217 and 353 GHz; for whole-sky robust spreads 2.8e3,
  3.5e3 and 1.7e4 µK; for a CMB map 2.7e3 µK at any frequency. A sky in µK labelled mK varies by
  1e3 times its 45 µK or more, so it is refused: patches at 143 GHz (and at 217 GHz above 47 µK),
  whole-sky maps at each band, CMB maps always;
- for maps labelled µK_CMB, at most :data:`MAX_SKY_STD_UK` (1e7 µK) at any frequency (a map in µK
  that varies more is no sky map; one that varies more than the bound above is bright, not
  mislabelled). Below 100 GHz (synchrotron, free-free) and at unknown frequencies that is the bound
  for every label.

Not caught: a factor 1e3 that lands in the range: maps in mK of the inner Galactic plane read as µK
(they vary like a faint sky), µK patches labelled mK that vary by less than 16 µK at 143 GHz, a
faint foreground map in µK labelled mK (synchrotron at 353 GHz).
"""

from __future__ import annotations

import math
from typing import Literal

UNITS = "uK_CMB"
_UK_PER_UNIT = {"K": 1e6, "MK": 1e3, "MILLIK": 1e3, "UK": 1.0, "MUK": 1.0, "MICROK": 1.0}
"""µK_CMB per unit, for the unit names upper-cased, without their optional ``_CMB``/``CMB`` suffix."""
_UNIT_NAMES = {1e6: "K_CMB", 1e3: "mK_CMB", 1.0: UNITS}

MIN_SKY_STD_UK = 10.0
"""Below this spread (standard deviation, µK) sky and CMB maps read as µK_CMB are refused: they vary
by more (simulated 217 GHz patches of 90″ pixels, median per-patch standard deviation: 85–1550 µK from
high latitudes to the Galactic plane; their noise alone 31 µK), while maps in mK_CMB read as µK vary
by 0.03–1.6 and maps in K_CMB by 1e-4–2e-3."""
KELVIN_STD_UK = 1e-2
"""Below this spread (µK) a foreground map is refused: it is in K_CMB read as µK."""
MAX_SKY_STD_UK = 1e7
"""Above this spread (µK) maps are no sky maps in µK_CMB at CMB frequencies: even the Galactic
centre at 353 GHz varies by less than 10 K."""
SPREAD_MARGIN = 30.0
"""How many times more than the typical sky at its frequency (:func:`typical_spread`) a map
converted from mK_CMB or K_CMB may vary before its label is refused."""
CMB_STD_UK = 90.0
"""The CMB's spread in a 6.4° patch after the Planck beams (µK; 97 before them)."""
DUST_STD_217_UK = {"plane": 1550.0, "sky": 72.0}
"""Thermal dust's spread at 217 GHz (µK_CMB): the median per-patch standard deviation of simulated
|b| < 5° patches ("plane"; the mean brightness there, 2.3e3 µK, times a patch rms/mean of 0.5–1),
and at 5–30° ("sky": mean 180 µK times 0.4), which sets a robust spread over most of the sky."""
_DUST_BETA, _DUST_T_K, _T_CMB_K = 1.53, 19.6, 2.7255
_H_OVER_K = 4.799243e-11  # h/k in K s
MapContent = Literal["sky", "cmb", "foreground"]
"""What a map holds: a band of the sky (CMB, foregrounds, noise), the CMB alone, or one foreground."""


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


def dust_ratio(frequency_ghz: float) -> float:
    """Thermal dust's brightness at ``frequency_ghz`` relative to 217 GHz, in µK_CMB (a modified black
    body, β = 1.53, T = 19.6 K: 0.32 at 143 GHz, 7.5 at 353)."""
    def uk_cmb(nu_ghz: float) -> float:
        nu = nu_ghz * 1e9
        x_dust, x_cmb = _H_OVER_K * nu / _DUST_T_K, _H_OVER_K * nu / _T_CMB_K
        return nu ** (_DUST_BETA - 1) / math.expm1(x_dust) * math.expm1(x_cmb) ** 2 / math.exp(x_cmb)

    return uk_cmb(frequency_ghz) / uk_cmb(217.0)


def typical_spread(frequency_ghz: float | None, content: MapContent = "sky",
                   bright_plane: bool = True) -> float:
    """The typical spread (µK_CMB) of a map of ``content`` at ``frequency_ghz`` (see the module's
    docstring): the CMB's, and for sky and foreground maps at 100 GHz or more the CMB and dust in
    quadrature, dust at its level in the Galactic plane (``bright_plane``: patches, or a standard
    deviation over the sky) or at intermediate latitudes (a robust spread over most of the sky)."""
    if content == "cmb" or frequency_ghz is None or frequency_ghz < 100:
        return CMB_STD_UK
    dust = DUST_STD_217_UK["plane" if bright_plane else "sky"] * dust_ratio(frequency_ghz)
    return math.hypot(CMB_STD_UK, dust)


def plausible_spread(units: str, frequency_ghz: float | None = None, content: MapContent = "sky",
                     bright_plane: bool = True) -> tuple[float, float]:
    """The range (µK_CMB) of spreads that agree with maps of ``content`` at ``frequency_ghz`` labelled
    ``units`` (see the module's docstring)."""
    low = KELVIN_STD_UK if content == "foreground" else MIN_SKY_STD_UK
    bounded = content == "cmb" or (frequency_ghz is not None and frequency_ghz >= 100)
    high = SPREAD_MARGIN * typical_spread(frequency_ghz, content, bright_plane) if bounded else MAX_SKY_STD_UK
    return low, (high if uk_per_unit(units) != 1.0 else max(high, MAX_SKY_STD_UK))


def misread_units(std_uk: float, units: str, frequency_ghz: float | None = None,
                  content: MapContent = "sky", bright_plane: bool = True) -> tuple[float, str | None] | None:
    """When maps read as ``units`` vary by ``std_uk`` µK_CMB (a standard deviation) outside
    :func:`plausible_spread`: the factor to multiply them by and the units they are probably in
    (``None`` when no unit has that factor), else ``None``. The factor is the power of 1e3 that
    brings the spread closest to the sky's (between the CMB's and :func:`typical_spread`) within the
    plausible range; ``(1.0, None)`` when none does."""
    low, high = plausible_spread(units, frequency_ghz, content, bright_plane)
    if low <= std_uk <= high:
        return None
    low, sky_high = plausible_spread("K_CMB", frequency_ghz, content, bright_plane)
    middle = math.sqrt(CMB_STD_UK * typical_spread(frequency_ghz, content, bright_plane))
    fits = [f for f in (1e3, 1e6, 1e-3, 1e-6) if low <= std_uk * f <= sky_high]
    if not fits:
        return 1.0, None
    factor = min(fits, key=lambda f: abs(math.log(std_uk * f / middle)))
    return factor, _UNIT_NAMES.get(uk_per_unit(units) * factor)


def check_unit_label(std_uk: float, units: str, *, subject: str, measured: str, statistic: str,
                     relabel: str, plural: bool = True, frequency_ghz: float | None = None,
                     content: MapContent = "sky", bright_plane: bool = True) -> None:
    """Refuse (``ValueError``) maps labelled ``units`` whose spread ``std_uk`` (µK_CMB after conversion;
    the ``statistic`` named) says the label is wrong (:func:`misread_units`), naming both and the fix.

    ``subject`` names the maps (``"the inputs"``, ``"143.fits"``; ``plural`` for the verb),
    ``measured`` what varies (``"the 143 GHz maps vary"``), ``relabel`` how to state other units,
    with ``{units}`` for them (``"label them {units} (--units {units})"``).
    """
    misread = misread_units(std_uk, units, frequency_ghz, content, bright_plane)
    if misread is None:
        return
    factor, likely = misread
    low, high = plausible_spread(units, frequency_ghz, content, bright_plane)
    look, are, they, them = ("look", "are", "they", "them") if plural else ("looks", "is", "it", "it")
    kind = {"sky": "sky maps", "cmb": "CMB maps", "foreground": "maps of any sky component"}[content]
    at = f" at {frequency_ghz:g} GHz" if frequency_ghz is not None and content != "cmb" else ""
    where = (f"where {kind}{at} vary by {low:.3g} µK or more" if std_uk < low else
             f"where {kind}{at} vary by at most {high:.3g} µK")
    converted = f" after conversion from {units}" if uk_per_unit(units) != 1.0 else ""
    found = f"{measured} by {std_uk:.3g} µK{converted} ({statistic}), {where}"
    if likely is not None:
        fix = f"{relabel.format(units=likely)}, or multiply {them} by {power_of_ten(factor)}"
        uk_high = plausible_spread(UNITS, frequency_ghz, content, bright_plane)[1]
        if factor < 1 and content != "cmb" and std_uk <= uk_high:
            fix += (f"; if {they} really {are} in {units} (the brightest Galactic regions), convert {them} "
                    f"to uK_CMB and label {them} so")
        raise ValueError(f"{subject} {look} like {likely} but {are} labelled {units}: {found}; {fix}")
    if factor != 1.0:
        raise ValueError(f"{subject} {look} {power_of_ten(max(factor, 1 / factor))} times too "
                         f"{'small' if factor > 1 else 'large'} for {units}: {found}; multiply {them} by "
                         f"{power_of_ten(factor)}")
    raise ValueError(f"{subject} {'do' if plural else 'does'} not look like sky maps in {units}: {found}; "
                     f"check {'their' if plural else 'its'} units and values")
