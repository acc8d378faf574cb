"""Transforms between µK_CMB maps and the network's (normalised) space, chosen by name.

Each transform computes per-patch statistics from the inputs, ``stats = t.fit(inputs)``, then maps
inputs and target into network space and the network's output back to µK_CMB with the same
``stats``. ``build_normalization(t.name, **t.params())`` rebuilds an equal transform.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from cenn.registry import Registry

_NORMALIZATIONS: Registry[type[Normalization]] = Registry("normalization")


def _register(cls: type[Normalization]) -> type[Normalization]:
    """Class decorator registering a transform under its ``name`` (refused if taken)."""
    return _NORMALIZATIONS.add(cls.name, cls)


def available_normalizations() -> list[str]:
    """Names accepted by :func:`build_normalization`, sorted."""
    return sorted(_NORMALIZATIONS)


def build_normalization(name: str, **params) -> Normalization:
    """The transform ``name`` with ``params``. Raises ``ValueError`` for an unknown name or parameter."""
    cls = _NORMALIZATIONS.lookup(name)
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"normalization {name!r} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters are: {', '.join(accepted) or 'none'}")
    return cls(**params)


@dataclasses.dataclass(frozen=True)
class Normalization(ABC):
    """A swappable transform; subclasses are frozen dataclasses whose fields are its parameters.

    Shapes: ``inputs (B, C, H, W)``, ``target`` and network ``output (B, 1, H, W)`` (``(B, 2, H, W)``,
    Q and U, for a polarization network: the ``signed`` transforms act on each map alike), ``stats (B, k)``
    with ``k`` fixed by the transform. µK_CMB in, µK_CMB out; results keep the dtype of the map given.
    """

    name: ClassVar[str]
    #: Whether the transform suits signed, zero-mean maps (Stokes Q and U): it treats +x and −x alike
    #: and needs no patch statistic that only a positive map makes meaningful.
    signed: ClassVar[bool] = True

    def params(self) -> dict:
        """The parameters that rebuild this transform with :func:`build_normalization`."""
        return dataclasses.asdict(self)

    def fit(self, inputs: torch.Tensor) -> torch.Tensor:
        """Per-patch statistics ``(B, k)`` of ``inputs (B, C, H, W)`` (µK_CMB)."""
        return inputs.new_zeros((inputs.shape[0], 0))

    @abstractmethod
    def normalize_inputs(self, inputs: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` µK_CMB → network space."""

    @abstractmethod
    def normalize_target(self, target: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` µK_CMB → network space."""

    @abstractmethod
    def denormalize_target(self, output: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` network space → µK_CMB; inverts :meth:`normalize_target`."""


def _affine(x: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(x - offset) / scale`` in float64, returned in ``x``'s dtype; offset/scale ``(B, C)``."""
    out = (x.double() - offset.double()[..., None, None]) / scale.double()[..., None, None]
    return out.to(x.dtype)


def _inverse_affine(x: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * scale + offset`` in float64, returned in ``x``'s dtype; offset/scale ``(B, C)``."""
    out = x.double() * scale.double()[..., None, None] + offset.double()[..., None, None]
    return out.to(x.dtype)


@_register
@dataclasses.dataclass(frozen=True)
class MinMax(Normalization):
    """The paper's transform: each input channel min-max scaled per patch to [0, 1]; the target
    scaled with the min and max of input channel ``reference_channel`` (217 GHz in 143/217/353).

    ``stats (B, 2C)``: the per-channel minima ``[:, :C]`` then maxima ``[:, C:]``, in µK_CMB.

    Not for Q and U (``signed`` False): a patch's span of a zero-mean field is set by its noise and
    its brightest source, so it maps the same µK to different network values patch by patch, and one
    reference channel's span cannot scale both target maps. Q/U training refuses it.
    """

    name: ClassVar[str] = "minmax"
    signed: ClassVar[bool] = False
    reference_channel: int = 1

    def fit(self, inputs: torch.Tensor) -> torch.Tensor:
        n_channels = inputs.shape[1]
        if not 0 <= self.reference_channel < n_channels:
            raise ValueError(f"reference_channel {self.reference_channel} does not exist in inputs "
                             f"with {n_channels} channels")
        flat = inputs.flatten(2)
        lo, hi = flat.amin(dim=2), flat.amax(dim=2)
        constant = (hi == lo).nonzero()
        if len(constant):
            patch, channel = constant[0].tolist()
            raise ValueError(f"input channel {channel} of patch {patch} is constant "
                             f"({lo[patch, channel].item():g} µK): min-max normalisation needs its "
                             "maximum to exceed its minimum; drop the patch or use another normalization")
        return torch.cat([lo, hi], dim=1)

    def _split(self, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = stats.double().chunk(2, dim=1)
        return lo, hi - lo

    def _reference(self, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo, span = self._split(stats)
        ref = self.reference_channel
        return lo[:, ref : ref + 1], span[:, ref : ref + 1]

    def normalize_inputs(self, inputs: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return _affine(inputs, *self._split(stats))

    def normalize_target(self, target: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return _affine(target, *self._reference(stats))

    def denormalize_target(self, output: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return _inverse_affine(output, *self._reference(stats))


@_register
@dataclasses.dataclass(frozen=True)
class Scale(Normalization):
    """Every map divided by a fixed ``scale_uk`` (µK_CMB). ``stats (B, 0)``."""

    name: ClassVar[str] = "scale"
    scale_uk: float = 100.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale_uk) and self.scale_uk != 0.0):
            raise ValueError(f"scale_uk must be a finite, non-zero number of µK, got {self.scale_uk!r}")

    def normalize_inputs(self, inputs: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return (inputs.double() / self.scale_uk).to(inputs.dtype)

    def normalize_target(self, target: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return (target.double() / self.scale_uk).to(target.dtype)

    def denormalize_target(self, output: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return (output.double() * self.scale_uk).to(output.dtype)


@_register
@dataclasses.dataclass(frozen=True)
class Identity(Normalization):
    """Network space is µK_CMB. ``stats (B, 0)``."""

    name: ClassVar[str] = "identity"

    def normalize_inputs(self, inputs: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return inputs

    def normalize_target(self, target: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return target

    def denormalize_target(self, output: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return output



@_register
@dataclasses.dataclass(frozen=True)
class Asinh(Scale):
    """Inputs compressed with one fixed µK scale for every band, ``asinh(x / scale_uk)``: linear for
    |x| ≪ ``scale_uk``, logarithmic above, sign kept, so maps from 10 µK to 10⁵ µK all reach the
    network at order one and the bands keep their ratios (the CMB's equal response in K_CMB). The
    target is only divided by ``scale_uk`` (as in :class:`Scale`), so the loss is in units of one
    fixed µK scale. ``stats (B, 0)``."""

    name: ClassVar[str] = "asinh"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale_uk) and self.scale_uk > 0.0):
            raise ValueError(f"scale_uk must be a finite, positive number of µK, got {self.scale_uk!r}")

    def normalize_inputs(self, inputs: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return torch.asinh(inputs.double() / self.scale_uk).to(inputs.dtype)
