"""What a component separation method is: the bands' maps in, the CMB out.

A :class:`Separator` takes patches ``(N, C, H, W)`` in µK_CMB at the frequencies described by an
:class:`InputInfo` and returns the CMB ``(N, 1, H, W)`` in µK_CMB at the target band's resolution.
The network (``cenn``) and the classical baselines are all separators, so ``cenn evaluate`` treats
them alike. Stokes Q and U: :meth:`Separator.separate_polarization` takes the bands' Q and U
``(N, 2, C, H, W)`` and returns the CMB's ``(N, 2, H, W)``; a method whose weights come from the
maps themselves (:attr:`Separator.stokes_agnostic`: the ILCs, the target band) separates Q and U
as two independent sets of maps, with the same code as the temperature.

Methods register themselves with :func:`register_separator`; they are built by name
with :func:`cenn.separators.build_separator`, which sits above the methods (this module sits below
them, so that the baselines can build on it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from cenn.io.units import UNITS
from cenn.registry import Registry
from cenn.sky.instrument import target_channel
from cenn.sky.noise import POLARIZATION_NOISE_FACTOR


@dataclass(frozen=True)
class InputInfo:
    """What a separator needs to know about its input maps (frequencies in GHz, beams' FWHM in
    arcmin, pixel side in arcsec, white-noise level per pixel in µK_CMB)."""

    frequencies_ghz: tuple[float, ...]
    band_names: tuple[str, ...]
    beam_fwhm_arcmin: tuple[float, ...]
    target_band: str
    target_beam_fwhm_arcmin: float
    pixel_arcsec: float
    noise_uk_per_pixel: tuple[float, ...]
    units: str = UNITS

    @classmethod
    def from_store_meta(cls, meta: dict[str, Any]) -> InputInfo:
        """From a dataset store's metadata (``DatasetStore.meta``)."""
        return cls(
            frequencies_ghz=tuple(float(f) for f in meta["frequencies_ghz"]),
            band_names=tuple(meta["band_names"]),
            beam_fwhm_arcmin=tuple(float(b) for b in meta["beam_fwhm_arcmin"]),
            target_band=meta["target_band"],
            target_beam_fwhm_arcmin=float(meta["target_beam_fwhm_arcmin"]),
            pixel_arcsec=float(meta["geometry"]["pixel_arcsec"]),
            noise_uk_per_pixel=tuple(float(n) for n in meta["noise_uk_per_pixel"]),
            units=meta.get("units", UNITS),
        )

    @property
    def target_channel(self) -> int:
        """Index of the target band among the input channels."""
        return target_channel(self.band_names, self.target_band)


class Separator(ABC):
    """A component separation method (see the module docstring)."""

    name: str = "separator"
    #: Whether the method applies unchanged to Stokes Q or U maps (its weights come from the maps
    #: themselves, with unit response to the CMB in every band): then :meth:`separate_polarization`
    #: separates Q and U as two independent sets of maps.
    stokes_agnostic: bool = False

    @abstractmethod
    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """The CMB ``(N, 1, H, W)`` float32 in µK_CMB from ``inputs (N, C, H, W)`` in µK_CMB.
        ``noise_sigma``: the inputs' per-pixel noise σ (µK_CMB, their shape), for methods that use
        it; None: each band's nominal level (``info.noise_uk_per_pixel``)."""

    def separate_with_sigma(
        self, inputs: torch.Tensor, info: InputInfo, noise_sigma: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CMB as :meth:`separate` and the per-pixel standard deviation of its residual
        ``(N, 1, H, W)`` µK_CMB, for methods that state one; None for the others."""
        return self.separate(inputs, info, noise_sigma), None

    def separate_polarization(self, polarization: torch.Tensor, info: InputInfo,
                              noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """The CMB's Q and U ``(N, 2, H, W)`` float32 in µK_CMB from the bands' Q and U
        ``polarization (N, 2, C, H, W)`` in µK_CMB (axis 1: Q, U; the frame of
        :mod:`cenn.sky.flat.spin2`). ``noise_sigma``: their per-pixel noise σ (µK_CMB, their
        shape); None: each band's nominal level × √2. A :attr:`stokes_agnostic` method runs
        :meth:`separate` once on the 2N maps of Q and U (with the Q/U noise levels in ``info``);
        other methods raise ``NotImplementedError`` unless they override this."""
        if not self.stokes_agnostic:
            raise NotImplementedError(f"method {self.name!r} does not separate Q and U")
        n, stokes, bands, height, width = polarization.shape
        levels = tuple(POLARIZATION_NOISE_FACTOR * s for s in info.noise_uk_per_pixel)
        sigma = None if noise_sigma is None else noise_sigma.reshape(n * stokes, bands, height, width)
        out = self.separate(polarization.reshape(n * stokes, bands, height, width),
                            replace(info, noise_uk_per_pixel=levels), sigma)
        return out.reshape(n, stokes, height, width)

    def polarization_refusal(self) -> str | None:
        """Why this method does not separate Q and U (``cenn evaluate`` records it under
        ``polarization.skipped``); None when :meth:`separate_polarization` works: the method is
        :attr:`stokes_agnostic` or overrides it."""
        if self.stokes_agnostic or type(self).separate_polarization is not Separator.separate_polarization:
            return None
        return "does not separate Q and U"

    def prepare(self, meta: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Called once per dataset store (with its metadata) before :meth:`separate`; methods that
        calibrate on the data's sky model (the oracle Wiener filter) do it here."""

    def describe(self) -> dict[str, Any]:
        """Provenance recorded in reports: the method's name and options."""
        return {"name": self.name}


def nominal_sigma(inputs: torch.Tensor, levels: tuple[float, ...] | list[float]) -> torch.Tensor:
    """Uniform per-pixel noise σ maps, ``inputs``' shape, each band at its level (µK_CMB)."""
    level = torch.as_tensor(levels, dtype=inputs.dtype, device=inputs.device)
    if len(level) != inputs.shape[1]:
        raise ValueError(f"{len(level)} noise levels for inputs with {inputs.shape[1]} bands")
    return level[None, :, None, None].expand(inputs.shape).clone()


#: Separator factories by name, filled by :func:`register_separator`.
SEPARATORS: Registry[Callable[..., Separator]] = Registry("method")


def register_separator(name: str) -> Callable[[Callable[..., Separator]], Callable[..., Separator]]:
    """Decorator adding a separator factory under ``name`` (refused if taken)."""
    return SEPARATORS.register(name)


@register_separator("target-band")
class TargetBandSeparator(Separator):
    """No separation: the target band's input map as the CMB estimate (the reference any method
    must beat; its residual is the foregrounds and noise at the target band)."""

    name = "target-band"
    stokes_agnostic = True

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        c = info.target_channel
        return inputs[:, c : c + 1].to(torch.float32)
