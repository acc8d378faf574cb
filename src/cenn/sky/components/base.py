"""The interface every sky component implements, and the registry of components.

A component turns a batch of patch positions and random streams into sky maps in µK_CMB at
every band of the instrument, *before* the beam, on the padded generation grid. The simulator
sums them, convolves each band with its beam, crops, and adds noise.

To add a component: subclass :class:`Component` as a dataclass whose fields are its parameters
(with defaults and units in the docstring), give it a unique ``name``, decorate it with
:func:`register`, and implement :meth:`Component.sky` (real space) or, for Gaussian fields,
:meth:`Component.sky_fourier` with ``fourier_native = True``. A polarized component sets
``polarized = True`` and implements :meth:`Component.polarization` (Stokes Q and U in the patch
frame of :mod:`cenn.sky.flat.spin2`); the others are unpolarized.

Randomised skies: a component lists in ``randomisable`` the scalar parameters that a simulation
may draw afresh for every patch (``[randomise.<component>]`` of the simulation TOML), and reads
them with :meth:`Component.per_patch`, which returns the patch's draw or, when the parameter is
not randomised, the configured value for every patch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from cenn.config import from_dict
from cenn.registry import Registry
from cenn.sky import fields
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument
from cenn.sky.rng import SampleRandom


@dataclass
class SkyContext:
    """What a component needs to draw one batch.

    Attributes:
        geometry: the padded generation grid.
        instrument: bands, with unit conversions.
        lon_deg, lat_deg: patch centres, Galactic, degrees, float64, shape (batch,).
        random: per-sample random streams.
        draws: per-patch values of randomised parameters, ``{component: {parameter: (batch,)
            float64}}``; empty for the nominal sky.
    """

    geometry: PatchGeometry
    instrument: Instrument
    lon_deg: torch.Tensor
    lat_deg: torch.Tensor
    random: SampleRandom
    draws: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.random.device

    @property
    def batch(self) -> int:
        return len(self.random)


@dataclass
class Component:
    """Base class of sky components. ``scale`` multiplies the component's maps (ablations)."""

    name: ClassVar[str] = ""
    fourier_native: ClassVar[bool] = False
    #: Whether the component emits linear polarization (:meth:`polarization`).
    polarized: ClassVar[bool] = False
    #: Scalar parameters a randomised sky may draw per patch (read them with :meth:`per_patch`).
    randomisable: ClassVar[tuple[str, ...]] = ()
    scale: float = 1.0

    def per_patch(self, ctx: SkyContext, parameter: str) -> torch.Tensor:
        """The value of ``parameter`` for every patch of the batch, ``(batch,)`` float64 on the
        context's device: the patch's draw when the sky randomises it, else the configured value."""
        drawn = ctx.draws.get(self.name, {}).get(parameter)
        if drawn is not None:
            return drawn.to(device=ctx.device, dtype=torch.float64)
        return torch.full((ctx.batch,), float(getattr(self, parameter)), dtype=torch.float64,
                          device=ctx.device)

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        """Precompute anything that depends only on the instrument and the grid (optional)."""

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Maps in µK_CMB before the beam, ``(batch, n_bands or 1, npix, npix)``, float32."""
        return fields.to_real(self.sky_fourier(ctx), ctx.geometry)

    def sky_fourier(self, ctx: SkyContext) -> torch.Tensor:
        """``rfft2`` of :meth:`sky`, for components generated in Fourier space."""
        return torch.fft.rfft2(self.sky(ctx))

    def polarization(self, ctx: SkyContext, intensity: torch.Tensor) -> torch.Tensor:
        """Stokes Q and U in µK_CMB before the beam, ``(batch, 2, n_bands or 1, npix, npix)``
        float32 (their ``rfft2`` for ``fourier_native`` components), for the same draw as
        ``intensity`` (what :meth:`sky` or :meth:`sky_fourier` returned for ``ctx``, which a
        component may modulate). Only components with ``polarized = True`` are asked."""
        raise NotImplementedError(f"{self.name} is not polarized")

    def applied_beam_arcmin(self) -> float:
        """FWHM (arcmin) of the Gaussian beam already in :meth:`sky`: 0 for simulated skies; the
        simulator applies the rest of each band's beam."""
        return 0.0

    def parameters(self) -> dict[str, Any]:
        """The component's resolved parameters, for provenance."""
        return dataclasses.asdict(self)


COMPONENTS: Registry[type[Component]] = Registry("sky component")


def register(cls: type[Component]) -> type[Component]:
    """Class decorator adding a component to :data:`COMPONENTS` under ``cls.name`` (refused if the
    name is empty or taken)."""
    return COMPONENTS.add(cls.name, cls)


def build_checked(cls: type[Component], params: dict[str, Any], what: str, **fixed: Any) -> Component:
    """``cls(**params, **fixed)``, refusing parameters ``cls`` lacks and values of the wrong type
    (``what`` names the component in messages; ``fixed`` are set by the caller, not the user)."""
    allowed = {f.name for f in dataclasses.fields(cls)} - set(fixed)
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{what}: unknown parameters {sorted(unknown)}; allowed {sorted(allowed)}")
    return from_dict(cls, {**params, **fixed}, what)
