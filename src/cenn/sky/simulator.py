"""The patch simulator: multi-frequency sky patches and their CMB target, batched in torch.

Each sample is a pure function of (seed, index): inputs ``(n_bands, H, W)`` = Σ components
convolved with each band's beam + white noise; target ``(1, H, W)`` = the CMB convolved with
the target band's beam (the paper's Eq. 8); the patch centre in Galactic degrees. Fields are
generated on a grid padded by ``margin`` pixels and cropped, so patches are not periodic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cenn.config import ConfigError, from_dict, read_toml
from cenn.runtime import tune_cpu_allocator
from cenn.sky import fields
from cenn.sky.components import COMPONENTS, Component, SkyContext, build_component
from cenn.sky.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument
from cenn.sky.noise import white_noise
from cenn.sky.projection import draw_centres
from cenn.sky.rng import SampleRandom

#: Most patches simulated at once on the CPU (see :class:`PatchSimulator`): bounds memory;
#: throughput is flat above about 16.
CPU_MAX_BATCH = 32

LATITUDE_BANDS: dict[str, tuple[float, float]] = {
    "all": (0.0, 90.0),
    "inner": (0.0, 5.0),
    "intermediate": (5.0, 30.0),
    "high": (30.0, 90.0),
}
"""The paper's validation regions, |b| in degrees."""


@dataclass
class GeometryConfig:
    """Patch pixels (``npix``), pixel side in arcsec, and the generation margin in pixels."""

    npix: int = 256
    pixel_arcsec: float = 90.0
    margin: int = 64

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0 pixels, got {self.margin}")


@dataclass
class InstrumentConfig:
    """A preset name or a TOML path, and a factor on every band's noise (paper: 1, 5, 10)."""

    name: str = "planck_hfi"
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")


@dataclass
class RegionConfig:
    """Patch centres are drawn uniformly in area with lat_min ≤ |b| ≤ lat_max (degrees)."""

    lat_min: float = 0.0
    lat_max: float = 90.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lat_min < self.lat_max <= 90.0:
            raise ValueError(
                f"latitude band must satisfy 0 <= lat_min < lat_max <= 90, got "
                f"[{self.lat_min}, {self.lat_max}]"
            )


def _default_components() -> dict[str, dict[str, Any]]:
    return {name: {} for name in COMPONENTS}


@dataclass
class SimulationConfig:
    """Everything that defines a simulated dataset, apart from its size.

    ``components`` maps a component name to its parameters; ``enabled = false`` switches one off.
    Components not listed run with their defaults.
    """

    seed: int = 0
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    region: RegionConfig = field(default_factory=RegionConfig)
    components: dict[str, dict[str, Any]] = field(default_factory=_default_components)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationConfig:
        return from_dict(cls, data, "simulation")

    @classmethod
    def load(cls, path: Path | str) -> SimulationConfig:
        return from_dict(cls, read_toml(path), str(path))

    def resolved_components(self) -> dict[str, dict[str, Any]]:
        """Every registered component with its full parameter set and ``enabled`` flag."""
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise ConfigError(
                f"simulation.components: unknown component(s) {sorted(unknown)}; known: "
                f"{sorted(COMPONENTS)}"
            )
        out = {}
        for name in COMPONENTS:
            params = dict(self.components.get(name, {}))
            enabled = params.pop("enabled", True)
            if not isinstance(enabled, bool):
                raise ConfigError(f"simulation.components.{name}.enabled must be true or false")
            try:
                comp = build_component(name, params)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"simulation.components.{name}: {err}") from err
            out[name] = {"enabled": enabled, **comp.parameters()}
        return out

    def to_dict(self) -> dict[str, Any]:
        """Resolved configuration (all component parameters spelled out)."""
        data = dataclasses.asdict(self)
        data["components"] = self.resolved_components()
        return data


@dataclass
class PatchBatch:
    """A batch of simulated patches, all maps in µK_CMB, float32.

    Attributes:
        inputs: ``(batch, n_bands, H, W)`` observed maps.
        target: ``(batch, 1, H, W)`` CMB at the target band's resolution.
        lon, lat: patch centres, Galactic degrees, ``(batch,)`` float64.
        indices: sample indices.
        components: optional per-component maps ``(batch, n_bands, H, W)`` after the beam,
            including ``"noise"``; they sum to ``inputs``.
    """

    inputs: torch.Tensor
    target: torch.Tensor
    lon: torch.Tensor
    lat: torch.Tensor
    indices: list[int]
    components: dict[str, torch.Tensor] | None = None

    @classmethod
    def concatenate(cls, parts: Sequence[PatchBatch]) -> PatchBatch:
        """One batch holding ``parts`` in order."""
        comps = None
        if parts[0].components is not None:
            comps = {k: torch.cat([p.components[k] for p in parts]) for k in parts[0].components}
        return cls(
            inputs=torch.cat([p.inputs for p in parts]),
            target=torch.cat([p.target for p in parts]),
            lon=torch.cat([p.lon for p in parts]),
            lat=torch.cat([p.lat for p in parts]),
            indices=[i for p in parts for i in p.indices],
            components=comps,
        )


class PatchSimulator:
    """Simulates batches of patches for one :class:`SimulationConfig` on one device."""

    def __init__(
        self,
        config: SimulationConfig | None = None,
        device: torch.device | str = "cpu",
        max_batch: int | None = None,
    ):
        """``max_batch``: most patches simulated at once; larger requests are split (the result is
        the same). Default: :data:`CPU_MAX_BATCH` on the CPU and unlimited on accelerators."""
        self.config = config or SimulationConfig()
        self.device = torch.device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.max_batch = max_batch or (CPU_MAX_BATCH if self.device.type == "cpu" else None)
        g = self.config.geometry
        self.geometry = PatchGeometry(g.npix, g.pixel_arcsec)
        self.margin = g.margin
        self.grid = self.geometry.padded(g.margin)
        inst = self.config.instrument
        self.instrument = load_instrument(inst.name).with_noise_scale(inst.noise_scale)
        self.components: list[Component] = []
        for name, params in self.config.resolved_components().items():
            params = dict(params)
            if params.pop("enabled"):
                comp = build_component(name, params)
                comp.setup(self.instrument, self.grid, self.device)
                self.components.append(comp)
        ell = self.grid.ell(self.device)
        self._beams = self.instrument.beam_windows(ell).to(torch.float32)
        self._target_beam = self.instrument.target.beam_window(ell).to(torch.float32)

    @property
    def component_names(self) -> list[str]:
        return [c.name for c in self.components]

    def _beam_crop(self, fourier: torch.Tensor, beams: torch.Tensor) -> torch.Tensor:
        return fields.to_real_cropped(fourier * beams, self.grid, self.margin)

    def simulate(
        self, indices: Sequence[int], with_components: bool = False, beam_components: bool = True
    ) -> PatchBatch:
        """Simulate the samples ``indices``.

        ``with_components`` also returns each component's maps: after each band's beam (they
        then sum to the inputs), or on the sky before the beam with ``beam_components=False``.
        """
        indices = [int(i) for i in indices]
        step = self.max_batch or len(indices)
        parts = [self._simulate_batch(indices[s:s + step], with_components, beam_components)
                 for s in range(0, len(indices), step)]
        return parts[0] if len(parts) == 1 else PatchBatch.concatenate(parts)

    def _simulate_batch(
        self, indices: list[int], with_components: bool, beam_components: bool
    ) -> PatchBatch:
        random = SampleRandom(self.config.seed, indices, self.device)
        region = self.config.region
        lon, lat = draw_centres(random, region.lat_min, region.lat_max)
        ctx = SkyContext(self.grid, self.instrument, lon, lat, random)
        n_bands = self.instrument.n_bands
        total_real = total_fourier = cmb_fourier = None
        per_component = {} if with_components else None
        for comp in self.components:
            if comp.fourier_native:
                f = comp.sky_fourier(ctx)
                total_fourier = f if total_fourier is None else total_fourier + f
            else:
                m = comp.sky(ctx)
                total_real = m if total_real is None else total_real + m
                f = torch.fft.rfft2(m) if with_components or comp.name == "cmb" else None
            if comp.name == "cmb":
                cmb_fourier = f
            if per_component is not None:
                beams = self._beams if beam_components else torch.ones_like(self._beams)
                per_component[comp.name] = self._beam_crop(f, beams).expand(
                    -1, n_bands, -1, -1
                )
        if total_real is not None:
            f = torch.fft.rfft2(total_real)
            total_fourier = f if total_fourier is None else total_fourier + f
        noise = white_noise(random, self.instrument, self.geometry)
        if total_fourier is None:
            inputs = noise
        else:
            inputs = self._beam_crop(total_fourier, self._beams) + noise
        if cmb_fourier is None:
            target = torch.zeros((len(random), 1, *self.geometry.shape), device=self.device)
        else:
            target = self._beam_crop(cmb_fourier, self._target_beam)
        if per_component is not None:
            per_component["noise"] = noise
        return PatchBatch(
            inputs=inputs.contiguous(),
            target=target.contiguous(),
            lon=lon,
            lat=lat,
            indices=list(random.indices),
            components=per_component,
        )
