"""The patch simulator: multi-frequency sky patches and their CMB target, batched in torch.

Each sample is a pure function of (seed, index): inputs ``(n_bands, H, W)`` = Σ components
convolved with each band's beam + noise (white per pixel, σ following the scan:
:mod:`cenn.sky.noise`), with component parameters drawn per patch where the sky is randomised
(:mod:`cenn.sky.randomise`); target ``(1, H, W)`` = the CMB convolved with
the target band's beam (the paper's Eq. 8); the patch centre in Galactic degrees. Fields are
generated on a grid padded by ``margin`` pixels and cropped, so patches are not periodic.

With ``stokes = "IQU"`` each sample also has Stokes Q and U: inputs ``(2, n_bands, H, W)`` = Σ
polarized components (:attr:`Component.polarized`) with the same beams + Q/U noise of √2 σ, and
target ``(2, H, W)`` = the CMB's Q and U at the target band's beam, in the patch frame of
:mod:`cenn.sky.flat.spin2`. The temperature maps are the same bytes with or without them.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cenn.config import ConfigBase, ConfigError, read_toml
from cenn.runtime import checked_device, tune_cpu_allocator
from cenn.sky import fields
from cenn.sky.components import COMPONENTS, Component, SkyContext, build_component
from cenn.sky.components.from_maps import resolve_map_paths
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import draw_centres
from cenn.sky.instrument import FWHM_TO_SIGMA, load_instrument
from cenn.sky.noise import NoiseConfig, NoiseModel
from cenn.sky.randomise import NOISE, check_ranges, draw_parameters, extremes_fraction
from cenn.sky.rng import SampleRandom, region_key
from cenn.sky.sky_split import SkySplit

#: Most patches simulated at once on the CPU (see :class:`PatchSimulator`): bounds memory;
#: throughput is flat above about 16.
CPU_MAX_BATCH = 32

#: Torch threads the simulator uses on the CPU. FFTs (MKL) and parallel reductions round
#: differently with the number of threads (by up to ~0.01 µK), so the simulator always works
#: on this many; parallel simulation goes through worker processes (``cenn simulate --workers``).
CPU_THREADS = 1

#: Half-mission maps per patch that a store can hold (``SimulationConfig.splits``).
N_SPLITS = 2

#: What ``SimulationConfig.stokes`` may be: temperature only, or temperature and linear polarization.
STOKES = ("I", "IQU")

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
        PatchGeometry(self.npix, self.pixel_arcsec)  # npix and pixel_arcsec refused here, before any work


@dataclass
class InstrumentConfig:
    """A preset name or a TOML path, and a factor on every band's noise (paper: 1, 5, 10)."""

    name: str = "planck_hfi"
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.noise_scale >= 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")
        if math.isinf(self.noise_scale):
            raise ValueError(f"noise_scale must be finite, got {self.noise_scale}")


@dataclass
class RegionConfig:
    """Patch centres are drawn uniformly in area with lat_min ≤ |b| ≤ lat_max (degrees), and only
    where the patch lies wholly in ``sky_split``'s part of the sky if one is given.

    ``strata``: |b| edges (degrees, increasing, inside [lat_min, lat_max]) of latitude bands that get
    the fractions ``strata_weights`` of the patches (equal by default), uniformly in area within
    each: ``strata = [0, 5, 30, 90]`` gives the Galactic plane a third of the training patches
    instead of the 8.7 % of the sky it covers. Empty: uniform over the whole band.
    """

    lat_min: float = 0.0
    lat_max: float = 90.0
    sky_split: SkySplit | None = None
    strata: list[float] = field(default_factory=list)
    strata_weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.lat_min < self.lat_max <= 90.0:
            raise ValueError(
                f"latitude band must satisfy 0 <= lat_min < lat_max <= 90, got "
                f"[{self.lat_min}, {self.lat_max}]"
            )
        if self.strata:
            edges, weights = self.strata, self.strata_weights or [1.0] * (len(self.strata) - 1)
            if (len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges))
                    or edges[0] < self.lat_min or edges[-1] > self.lat_max):
                raise ValueError(f"region.strata must be at least two increasing |b| edges inside "
                                 f"[{self.lat_min}, {self.lat_max}], got {edges}")
            if len(weights) != len(edges) - 1 or any(not w >= 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"region.strata_weights needs {len(edges) - 1} non-negative weights "
                                 f"(one per stratum), not all zero; got {weights}")
        elif self.strata_weights:
            raise ValueError("region.strata_weights needs region.strata (the |b| edges of the strata)")

    def latitude_strata(self) -> tuple[list[float], list[float]]:
        """Stratum edges and the probability of each stratum."""
        weights = self.strata_weights or [1.0] * (len(self.strata) - 1)
        return list(self.strata), [w / sum(weights) for w in weights]

    def random_key(self) -> int | None:
        """This region's key in every random stream (:func:`cenn.sky.rng.region_key`), from what
        decides where patches are drawn: None for the whole sky (no strata, no split), so that
        datasets with one seed in different regions are independent skies."""
        if (self.lat_min, self.lat_max) == (0.0, 90.0) and not self.strata and self.sky_split is None:
            return None
        edges, probabilities = self.latitude_strata() if self.strata else ([], [])
        split = self.sky_split
        where = {
            "lat": [float(self.lat_min), float(self.lat_max)],
            "strata": [[float(e) for e in edges], probabilities],
            "sky_split": None if split is None else [split.part, float(split.validation_fraction),
                                                     int(split.nside), int(split.seed)],
        }
        return region_key(json.dumps(where, sort_keys=True))


def _default_components() -> dict[str, dict[str, Any]]:
    return {name: {} for name in COMPONENTS}


@dataclass
class SimulationConfig(ConfigBase):
    """Everything that defines a simulated dataset, apart from its size.

    ``components`` maps a component name to its parameters; ``enabled = false`` switches one off.
    Components not listed run with their defaults. ``noise``: how the per-pixel noise σ varies over
    the sky. ``randomise``: ``{component: {parameter: [low, high]}}`` drawn per patch, and
    optionally ``extremes``, the fraction of patches drawn at the edges of every range
    (:mod:`cenn.sky.randomise`); empty for the nominal sky. ``splits``: 2 to store with every patch
    two half-mission maps, the same sky with independent noise of σ √2 averaging to the full map's
    (:meth:`PatchSimulator.simulate` ``with_splits``); 0 (or 1): none. It is left out of
    :meth:`to_dict` when 0, so stores without splits record the configuration they always did.
    ``stokes``: "I" (temperature) or "IQU" (also Q and U: :class:`PatchBatch` ``polarization``); left
    out of :meth:`to_dict` when "I", for the same reason.
    """

    seed: int = 0
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    region: RegionConfig = field(default_factory=RegionConfig)
    components: dict[str, dict[str, Any]] = field(default_factory=_default_components)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    randomise: dict[str, Any] = field(default_factory=dict)
    splits: int = 0
    stokes: str = "I"

    SECTION = "simulation"

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed (--seed) must be a whole number >= 0, got {self.seed}")
        try:
            check_ranges(self.randomise)
        except ValueError as err:
            raise ConfigError(f"simulation.{err}") from err
        if isinstance(self.splits, bool) or self.splits not in (0, 1, N_SPLITS):
            raise ConfigError(f"splits must be {N_SPLITS} (two half-mission maps, each with half "
                              f"the integration time) or 0 (none), got {self.splits!r}: only "
                              f"{N_SPLITS} halves are supported")
        self.splits = 0 if self.splits == 1 else self.splits
        if self.stokes not in STOKES:
            raise ConfigError(f"stokes must be one of {', '.join(STOKES)}, got {self.stokes!r}")

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> SimulationConfig:
        """The configuration a dataset recorded (its resolved :meth:`to_dict`). Stores list every
        component they had, so one they lack is switched off, and a store without ``noise`` had
        white noise: a store written by an earlier cenn is regenerated as it was."""
        data = dict(data)
        components = {name: dict(params) for name, params in data.get("components", {}).items()}
        for name in COMPONENTS:
            components.setdefault(name, {"enabled": False})
        data["components"] = components
        data.setdefault("noise", {"model": "white"})
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: Path | str) -> SimulationConfig:
        """The configuration in the TOML file ``path``; relative map paths are taken from its folder."""
        return cls.from_dict(read_simulation_toml(path), str(path))

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
        """Resolved configuration (all component parameters spelled out; ``splits`` and ``stokes``
        only when not the default)."""
        data = super().to_dict()
        data["components"] = self.resolved_components()
        for key, default in (("splits", 0), ("stokes", "I")):
            if data[key] == default:
                del data[key]
        return data


def read_simulation_toml(path: Path | str) -> dict[str, Any]:
    """A simulation TOML file's table, with its components' relative map paths made relative to
    the file's folder."""
    data = read_toml(path)
    components = data.get("components")
    if isinstance(components, dict):
        resolve_map_paths(components, Path(path).parent)
    return data


@dataclass
class PatchBatch:
    """A batch of simulated patches, all maps in µK_CMB, float32.

    Attributes:
        inputs: ``(batch, n_bands, H, W)`` observed maps.
        target: ``(batch, 1, H, W)`` CMB at the target band's resolution.
        lon, lat: patch centres, Galactic degrees, ``(batch,)`` float64.
        indices: sample indices.
        noise_sigma: ``(batch, n_bands, H, W)`` the per-pixel standard deviation of the noise in
            the inputs, µK_CMB.
        indices: sample indices.
        components: optional per-component maps ``(batch, n_bands, H, W)`` after the beam,
            including ``"noise"``; they sum to ``inputs``.
        parameters: the randomised parameters' values, ``{"component.parameter": (batch,)}``.
        splits: optional half-mission maps ``(batch, 2, n_bands, H, W)``: the inputs' sky with two
            independent noise realisations of σ √2 (``noise_sigma`` · √2) whose mean is the inputs'
            noise (:meth:`cenn.sky.noise.NoiseModel.draw_split`), so their mean is ``inputs``.
        polarization: with ``stokes = "IQU"``, the observed Q and U ``(batch, 2, n_bands, H, W)``;
            their noise σ is ``noise_sigma`` · √2 (:data:`cenn.sky.noise.POLARIZATION_NOISE_FACTOR`).
        target_polarization: with ``stokes = "IQU"``, the CMB's Q and U at the target band's beam
            ``(batch, 2, H, W)``.
        polarization_splits: with ``stokes = "IQU"`` and half-mission maps, their Q and U ``(batch, 2,
            2, n_bands, H, W)`` (half, Stokes, band), made as ``splits``: their mean is
            ``polarization``.
    """

    inputs: torch.Tensor
    target: torch.Tensor
    lon: torch.Tensor
    lat: torch.Tensor
    noise_sigma: torch.Tensor
    indices: list[int]
    components: dict[str, torch.Tensor] | None = None
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)
    splits: torch.Tensor | None = None
    polarization: torch.Tensor | None = None
    target_polarization: torch.Tensor | None = None
    polarization_splits: torch.Tensor | None = None

    @classmethod
    def concatenate(cls, parts: Sequence[PatchBatch]) -> PatchBatch:
        """One batch holding ``parts`` in order."""
        comps = None
        if parts[0].components is not None:
            comps = {k: torch.cat([p.components[k] for p in parts]) for k in parts[0].components}

        def joined(name: str) -> torch.Tensor | None:
            first = getattr(parts[0], name)
            return None if first is None else torch.cat([getattr(p, name) for p in parts])

        return cls(
            inputs=torch.cat([p.inputs for p in parts]),
            target=torch.cat([p.target for p in parts]),
            lon=torch.cat([p.lon for p in parts]),
            lat=torch.cat([p.lat for p in parts]),
            noise_sigma=torch.cat([p.noise_sigma for p in parts]),
            indices=[i for p in parts for i in p.indices],
            components=comps,
            parameters={k: torch.cat([p.parameters[k] for p in parts]) for k in parts[0].parameters},
            splits=joined("splits"),
            polarization=joined("polarization"),
            target_polarization=joined("target_polarization"),
            polarization_splits=joined("polarization_splits"),
        )


class PatchSimulator:
    """Simulates batches of patches for one :class:`SimulationConfig` on one device.

    On the CPU it works on :data:`CPU_THREADS` torch thread(s) whatever ``torch.set_num_threads``
    says, so a patch's bytes depend only on (configuration, index), the CPU type and the library
    versions; parallelism comes from processes (``cenn simulate --workers``)."""

    def __init__(
        self,
        config: SimulationConfig | None = None,
        device: torch.device | str = "cpu",
        max_batch: int | None = None,
    ):
        """``max_batch``: most patches simulated at once; larger requests are split (the result is
        the same). Default: :data:`CPU_MAX_BATCH` on the CPU and unlimited on accelerators."""
        self.config = config or SimulationConfig()
        self.device = checked_device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.max_batch = max_batch or (CPU_MAX_BATCH if self.device.type == "cpu" else None)
        with fixed_threads(self.device):
            self._build()

    def _build(self) -> None:
        """Resolve the geometry, instrument and components, and precompute their tables."""
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
        self.noise = NoiseModel(self.config.noise, self.instrument, self.geometry, self.device)
        self._ranges = check_ranges(self.config.randomise)
        self._extremes = extremes_fraction(self.config.randomise)
        self._ell = self.grid.ell(self.device)
        self._region_key = self.config.region.random_key()
        self._windows: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        for comp in self.components:  # refuses maps smoother than a band now, not at the first batch
            self.beam_windows(comp.applied_beam_arcmin())

    def beam_windows(self, applied_fwhm_arcmin: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """What the simulator multiplies a sky by (rfft2 grid): every band's beam
        ``(n_bands, n, n // 2 + 1)`` and the target band's ``(n, n // 2 + 1)``, float32, for maps that
        already carry a Gaussian beam of FWHM ``applied_fwhm_arcmin`` (the rest of each beam)."""
        if applied_fwhm_arcmin not in self._windows:
            bands = [*self.instrument.bands, self.instrument.target]
            sharpest = min(bands, key=lambda b: b.beam_fwhm_arcmin)
            if applied_fwhm_arcmin > sharpest.beam_fwhm_arcmin:
                raise ValueError(f"maps carry a beam of {applied_fwhm_arcmin}′, wider than the "
                                 f"{sharpest.name} band's {sharpest.beam_fwhm_arcmin}′: a beam cannot be "
                                 "sharpened; use maps at a resolution at least as fine as every band's")
            applied = math.radians(applied_fwhm_arcmin / 60.0) ** 2 * FWHM_TO_SIGMA**2
            windows = [torch.exp(-0.5 * self._ell * (self._ell + 1.0) * (b.beam_sigma_rad**2 - applied))
                       for b in bands]
            self._windows[applied_fwhm_arcmin] = (torch.stack(windows[:-1]).to(torch.float32),
                                                  windows[-1].to(torch.float32))
        return self._windows[applied_fwhm_arcmin]

    @property
    def component_names(self) -> list[str]:
        return [c.name for c in self.components]

    def _beam_crop(self, fourier: torch.Tensor, beams: torch.Tensor) -> torch.Tensor:
        return fields.to_real_cropped(fourier * beams, self.grid, self.margin)

    def simulate(
        self, indices: Sequence[int], with_components: bool = False, beam_components: bool = True,
        with_splits: bool = False,
    ) -> PatchBatch:
        """Simulate the samples ``indices``.

        ``with_components`` also returns each component's maps: after each band's beam (they
        then sum to the inputs), or on the sky before the beam with ``beam_components=False``.
        ``with_splits`` also returns the two half-mission maps (:attr:`PatchBatch.splits`, from
        their own random stream: the other maps are the same with or without them); the store
        writer asks for them when ``config.splits`` is set, nothing else does.
        """
        indices = [int(i) for i in indices]
        step = self.max_batch or len(indices)
        with fixed_threads(self.device):
            parts = [self._simulate_batch(indices[s:s + step], with_components, beam_components, with_splits)
                     for s in range(0, len(indices), step)]
        return parts[0] if len(parts) == 1 else PatchBatch.concatenate(parts)

    def _simulate_batch(
        self, indices: list[int], with_components: bool, beam_components: bool, with_splits: bool = False
    ) -> PatchBatch:
        random = SampleRandom(self.config.seed, indices, self.device, self._region_key)
        region = self.config.region
        lon, lat = draw_centres(random, region.lat_min, region.lat_max, region.sky_split, self.geometry,
                                strata=region.latitude_strata() if region.strata else None)
        draws = draw_parameters(random, self._ranges, self._extremes)
        ctx = SkyContext(self.grid, self.instrument, lon, lat, random, draws)
        n_bands = self.instrument.n_bands
        real_sums: dict[float, torch.Tensor] = {}  # by the beam already in the maps
        fourier_sums: dict[float, torch.Tensor] = {}
        target = torch.zeros((len(random), 1, *self.geometry.shape), device=self.device)
        per_component = {} if with_components else None
        polarized = self.config.stokes == "IQU"
        qu_sums: dict[float, torch.Tensor] = {}  # Fourier Q/U by the beam already in the maps
        target_qu = None
        for comp in self.components:
            applied = comp.applied_beam_arcmin()
            amplitude = draws.get(comp.name, {}).get("amplitude")
            sky = comp.sky_fourier(ctx) if comp.fourier_native else comp.sky(ctx)
            if comp.fourier_native:
                f = _times(sky, amplitude)
                _accumulate(fourier_sums, applied, f)
            else:
                m = _times(sky, amplitude)
                _accumulate(real_sums, applied, m)
                f = torch.fft.rfft2(m) if with_components or comp.name == "cmb" else None
            beams, target_beam = self.beam_windows(applied)
            if polarized and comp.polarized:
                qu = _times(comp.polarization(ctx, sky), amplitude)
                qu = qu if comp.fourier_native else torch.fft.rfft2(qu)
                _accumulate(qu_sums, applied, qu)
                if comp.name == "cmb":
                    target_qu = self._beam_crop(qu[:, :, 0], target_beam)
            if comp.name == "cmb":
                target = self._beam_crop(f, target_beam)
            if per_component is not None:
                shown = self._beam_crop(f, beams) if beam_components else self._beam_crop(f, 1.0)
                per_component[comp.name] = shown.expand(-1, n_bands, -1, -1)
        for applied, m in real_sums.items():
            _accumulate(fourier_sums, applied, torch.fft.rfft2(m))
        sigma = _times(self.noise.sigma(lon, lat), draws.get(NOISE, {}).get("amplitude"))
        noise = self.noise.draw(random, sigma)
        inputs = noise
        for applied, f in fourier_sums.items():
            inputs = self._beam_crop(f, self.beam_windows(applied)[0]) + inputs
        if per_component is not None:
            per_component["noise"] = noise
        inputs_qu = None
        if polarized:
            inputs_qu = self.noise.draw_polarization(random, sigma)
            for applied, f in qu_sums.items():
                inputs_qu = self._beam_crop(f, self.beam_windows(applied)[0]) + inputs_qu
            if target_qu is None:
                target_qu = torch.zeros((len(random), 2, *self.geometry.shape), device=self.device)
        splits = splits_qu = None
        if with_splits:  # sky + σ(z ± w) = inputs ± σw
            half = self.noise.draw_split(random, sigma)
            splits = torch.stack([inputs + half, inputs - half], dim=1)
            if polarized:
                half_qu = self.noise.draw_polarization(random, sigma, split=True)
                splits_qu = torch.stack([inputs_qu + half_qu, inputs_qu - half_qu], dim=1)
        return PatchBatch(
            inputs=inputs.contiguous(),
            target=target.contiguous(),
            lon=lon,
            lat=lat,
            noise_sigma=sigma.contiguous(),
            indices=list(random.indices),
            components=per_component,
            parameters={f"{c}.{p}": v for c, params in draws.items() for p, v in params.items()},
            splits=splits,
            polarization=None if inputs_qu is None else inputs_qu.contiguous(),
            target_polarization=None if target_qu is None else target_qu.contiguous(),
            polarization_splits=None if splits_qu is None else splits_qu.contiguous(),
        )


@contextmanager
def fixed_threads(device: torch.device) -> Iterator[None]:
    """On the CPU, torch on :data:`CPU_THREADS` threads while the block runs (then as before), so
    that a patch's bytes do not depend on ``torch.set_num_threads`` or ``--workers``."""
    before = torch.get_num_threads()
    if device.type != "cpu" or before == CPU_THREADS:
        yield
        return
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _times(maps: torch.Tensor, amplitude: torch.Tensor | None) -> torch.Tensor:
    """``maps (batch, ...)`` times each patch's randomised ``amplitude (batch,)``, or unchanged."""
    if amplitude is None:
        return maps
    return maps * amplitude.to(torch.float32).reshape(-1, *([1] * (maps.ndim - 1)))


def _accumulate(sums: dict[float, torch.Tensor], key: float, value: torch.Tensor) -> None:
    """``sums[key] += value``, starting from ``value``."""
    sums[key] = value if key not in sums else sums[key] + value
