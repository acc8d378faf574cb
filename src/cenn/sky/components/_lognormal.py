"""What the lognormal Galactic components (``dust``, ``co``, ``free_free``, ``synchrotron``) share:
their shipped defaults and parameter checks, the amplitude of a Gaussian field of ``C_ℓ ∝ ℓ^α``
with its unit-variance normalisation, the lognormal width by brightness, and the coarse grid on
which the smooth fields are evaluated and from which they are upsampled bilinearly.

Each component multiplies a smooth brightness by ``exp(σ_g u - σ_g² v / 2)``, with ``u`` a Gaussian
field of ``C_ℓ = 2π(-α-2) ℓ_lo^-(α+2) ℓ^α`` (unit variance over ℓ ≥ ℓ_lo in the continuous
normalisation, so independent of the grid) and ``v`` its pixel variance on the grid.

The helpers keep the arithmetic of every component as it was, operation for operation:
``tests/sky/test_component_bytes.py`` pins the maps.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import torch

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.shipped import shipped_toml


def load_parameters(name: str) -> dict[str, Any]:
    """The ``[parameters]`` table of the shipped ``<name>.toml``."""
    return shipped_toml(f"{name}.toml")["parameters"]


def wrap_lon(lon_deg: torch.Tensor) -> torch.Tensor:
    """Longitude in (-180, 180]."""
    return 180.0 - torch.remainder(180.0 - lon_deg, 360.0)


# ---------------------------------------------------------------------- parameter checks


def finite_number(value: Any, what: str) -> float:
    """``value`` as a float; a ``ValueError`` naming ``what`` unless it is a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_parameters(
    component: Any,
    *,
    tables: tuple[str, ...] = (),
    positive: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    at_most_one: tuple[str, ...] = (),
    slopes: tuple[str, ...] = (),
    ordered: tuple[tuple[str, ...], ...] = (),
    not_all_zero: tuple[str, ...] = (),
) -> None:
    """Make every field of the dataclass ``component`` a float (``coarse_npix`` an int >= 8), except
    the ``tables`` it checks itself, and refuse, with messages naming ``component.name``: fields
    in ``positive`` not > 0, in ``non_negative`` not >= 0, in ``at_most_one`` above 1, ``slopes``
    (log-slopes α of C_ℓ) not < -2, each group of ``ordered`` not non-decreasing, and the
    ``not_all_zero`` fields all zero."""
    name = component.name
    for f in dataclasses.fields(component):
        if f.name in tables:
            continue
        value = getattr(component, f.name)
        if f.name == "coarse_npix":
            integer = isinstance(value, float) and value.is_integer()
            if not (integer or (isinstance(value, int) and not isinstance(value, bool))) or value < 8:
                raise ValueError(f"{name}: coarse_npix must be an integer >= 8, got {value!r}")
            component.coarse_npix = int(value)
        else:
            setattr(component, f.name, finite_number(value, f"{name} parameter {f.name}"))
    for key in positive:
        if not getattr(component, key) > 0:
            raise ValueError(f"{name} parameter {key} must be > 0, got {getattr(component, key)}")
    for key in non_negative:
        if not getattr(component, key) >= 0:
            raise ValueError(f"{name} parameter {key} must be >= 0, got {getattr(component, key)}")
    for key in at_most_one:
        if not getattr(component, key) <= 1:
            raise ValueError(f"{name} parameter {key} must be <= 1, got {getattr(component, key)}")
    for key in slopes:
        if not getattr(component, key) < -2:
            raise ValueError(f"{name}: {key} must be < -2 (C_ℓ ∝ ℓ^{key} with a finite variance at "
                             f"large ℓ), got {getattr(component, key)}")
    for keys in ordered:
        values = [getattr(component, key) for key in keys]
        if not all(a <= b for a, b in itertools.pairwise(values)):
            raise ValueError(f"{name}: need {' <= '.join(keys)}, got {', '.join(map(str, values))}")
    if not_all_zero and sum(getattr(component, key) for key in not_all_zero) <= 0:
        raise ValueError(f"{name}: {', '.join(not_all_zero[:-1])} and {not_all_zero[-1]} are all zero")


# ---------------------------------------------------------------------- small-scale field


def power_law_amplitude(
    geometry: PatchGeometry, slope: torch.Tensor | float, device: torch.device, log_norm: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude ``exp((α ln ℓ + log_norm) / 2)`` on the rfft2 grid of ``geometry`` (zero at ℓ = 0:
    the field has zero mean), float64, and the pixel variance ``Σ_w amp² / N²`` of the field that
    ``fields.to_real(fields.white_fourier(...) * amp)`` makes (``w`` counts each rfft2 column's
    conjugate twin). ``slope`` is a float or a tensor ``(k, 1, 1)`` for a table of ``k`` slopes;
    the variance has the shape of ``slope`` without the last two axes."""
    n = geometry.npix
    ell = geometry.ell(device)
    weights = torch.full(ell.shape, 2.0, dtype=torch.float64, device=device)
    weights[:, 0] = 1.0
    if n % 2 == 0:
        weights[:, -1] = 1.0
    exponent = slope * torch.log(ell.clamp_min(1e-30))
    if log_norm:
        exponent = exponent + log_norm
    amp = torch.exp(0.5 * exponent)
    amp[..., 0, 0] = 0.0
    var = (amp.square() * weights).sum(dim=(-2, -1)) / (n * n)
    return amp, var


def log_unit_variance_norm(
    slope: torch.Tensor | float, ell_min: float, pixel_area_sr: float
) -> torch.Tensor | float:
    """``ln C₀`` with ``C₀ = 2π(-α-2) ℓ_lo^-(α+2) / Ω_pix``: the factor on ``ℓ^α`` that gives a field of
    unit variance over ℓ ≥ ``ell_min`` in :func:`power_law_amplitude`'s units (a float for a float
    ``slope``, else a tensor like it)."""
    log = math.log if isinstance(slope, int | float) else torch.log
    return (math.log(2.0 * math.pi) + log(-slope - 2.0)
            - (slope + 2.0) * math.log(ell_min) - math.log(pixel_area_sr))


def unit_variance_field(
    geometry: PatchGeometry, slope: float, ell_min: float, device: torch.device
) -> tuple[torch.Tensor, float]:
    """The float32 amplitude of ``u`` (``C_ℓ = 2π(-α-2) ℓ_lo^-(α+2) ℓ^α``, unit variance over
    ℓ ≥ ``ell_min``) on the rfft2 grid of ``geometry``, and ``v``, its pixel variance there."""
    log_norm = log_unit_variance_norm(slope, ell_min, geometry.pixel_area_sr)
    amp, var = power_law_amplitude(geometry, slope, device, log_norm)
    return amp.to(torch.float32), float(var)


def lognormal_width(
    brightness: torch.Tensor, sigma_ref: float | torch.Tensor, level: float, index: float, sigma_min: float,
    sigma_max: float,
) -> torch.Tensor:
    """σ_g = clip(σ_ref (I / I_ref)^γ, σ_min, σ_max) for a local mean brightness ``I`` (``σ_ref``
    a number or a tensor broadcasting against ``I``)."""
    ratio = (brightness / level).clamp_min(1e-30)
    return (sigma_ref * ratio**index).clamp(sigma_min, sigma_max)


# ---------------------------------------------------------------------- coarse grid


class CoarseGrid:
    """A grid of ``npix`` pixels covering the same square as the generation grid ``fine``, on which
    smooth fields are evaluated, and their bilinear upsampling to ``fine``."""

    def __init__(self, fine: PatchGeometry, npix: int, device: torch.device) -> None:
        n = fine.npix
        self.geometry = PatchGeometry(npix, n * fine.pixel_arcsec / npix)
        # Interpolation matrix, coarse pixel centres -> fine pixel centres, clamped at the border
        # like F.interpolate(align_corners=False).
        src = ((torch.arange(n, dtype=torch.float64) + 0.5) * npix / n - 0.5).clamp(0, npix - 1)
        i0 = src.floor().long().clamp(max=npix - 2)
        frac = src - i0
        interp = torch.zeros(n, npix, dtype=torch.float64)
        rows = torch.arange(n)
        interp[rows, i0] = 1.0 - frac
        interp[rows, i0 + 1] = frac
        self.matrix = interp.to(device=device, dtype=torch.float32)

    def upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """Bilinear upsampling of ``(..., npix, npix)`` to the generation grid, float32, as two matrix
        products (several times faster on CPU than ``F.interpolate``)."""
        w = self.matrix
        return torch.matmul(w, torch.matmul(coarse.to(torch.float32), w.T))
