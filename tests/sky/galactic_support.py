"""What the tests of the Galactic components (dust, co, free_free, synchrotron) share: a small
generation grid (128-pixel patches, 32-pixel margin) and the Planck HFI bands, contexts for given
patch centres, the numpy brightness law of free-free and synchrotron, and the checks every one of
these components passes (defaults from its TOML, running alone in the simulator, reproducible
draws). Imported by the test modules beside it (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from cenn.sky import fields
from cenn.sky.components import COMPONENTS, SkyContext
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import draw_centres
from cenn.sky.instrument import Instrument, load_instrument
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import PatchSimulator, SimulationConfig

GEOM = PatchGeometry(128, 90.0)
MARGIN = 32
GRID = GEOM.padded(MARGIN)
COARSE = PatchGeometry(64, 360.0)  # a full 6.4° patch with 6' pixels, for levels
INST = load_instrument("planck_hfi")
NU = np.array([b.frequency_ghz for b in INST.bands])
U = np.array([b.mjysr_per_kcmb for b in INST.bands])
# K_CMB per K_RJ at the band centre: (2 k nu^2 / c^2) / U, U in MJy/sr per K_CMB
KCMB_PER_KRJ = 2 * 1.380649e-23 * (NU * 1e9) ** 2 / 2.99792458e8**2 / 1e-20 / U


def sky_context(
    lon, lat, seed=0, start=0, grid=GRID, draws=None, instrument: Instrument = INST
) -> SkyContext:
    """A context for patches centred at (``lon``, ``lat``) (degrees), samples ``start``, ``start + 1``,
    … of ``seed``, with the randomised parameters ``draws``."""
    lon = torch.as_tensor(lon, dtype=torch.float64)
    lat = torch.as_tensor(lat, dtype=torch.float64)
    random = SampleRandom(seed, range(start, start + len(lon)))
    return SkyContext(grid, instrument, lon, lat, random, draws or {})


def patch_means(comp, lon, lat, seed) -> np.ndarray:
    """Patch means (µK_CMB, (batch, 3)) of full 6.4° patches on the coarse grid."""
    maps = fields.crop(comp.sky(sky_context(lon, lat, seed, grid=COARSE.padded(16))), 16)
    return maps.mean(dim=(-2, -1)).double().numpy()


def level_centres(region: str, n: int, seed: int) -> tuple:
    """Centres of ``n`` patches: ``"inner_plane"``, |b| < 2° and |l| < 30°; ``"high"``, uniform in area
    at |b| > 30°."""
    if region == "inner_plane":
        rng = np.random.default_rng(seed)
        return rng.uniform(-30, 30, n) % 360, rng.uniform(-2, 2, n)
    return draw_centres(SampleRandom(seed, range(n)), 30.0, 90.0)


def galactic_law(lon, lat, p) -> np.ndarray:
    """The documented mean brightness of free-free and synchrotron at Galactic (l, b) in degrees, for
    the parameters ``p`` (units of the component's ``*_amplitude``)."""
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    b = np.radians(lat)
    layer = p["csc_amplitude"] / np.sqrt(np.sin(b) ** 2 + np.sin(np.radians(p["csc_softening_deg"])) ** 2)
    layer = layer + p["thick_amplitude"] * np.exp(-np.abs(lat) / p["thick_scale_height_deg"])
    boost = 1 + p["inner_boost"] * np.exp(-0.5 * (lon / p["inner_width_deg"]) ** 2) * np.cos(b)
    f = p["disk_anticentre_fraction"]
    along = f + (1 - f) * np.exp(-np.abs(lon) / p["disk_longitude_scale_deg"])
    return layer * boost + p["disk_amplitude"] * along * np.exp(-np.abs(lat) / p["disk_scale_height_deg"])


def small_scale_slope(comp) -> float:
    """Log-slope over 300 < ℓ < 3000 of the power of δ = I/⟨I⟩ - 1 in the 217 GHz maps of 8 patches at
    b = 80°, numpy FFT of the full (periodic) generation grid."""
    maps = comp.sky(sky_context(np.linspace(0, 315, 8), np.full(8, 80.0), seed=4))[:, 1].double().numpy()
    delta = maps / maps.mean(axis=(-2, -1), keepdims=True) - 1
    power = (np.abs(np.fft.fft2(delta)) ** 2).mean(axis=0)
    k = np.fft.fftfreq(GRID.npix)
    ell = 2 * np.pi * np.hypot(*np.meshgrid(k, k, indexing="ij")) / GRID.pixel_rad
    edges = np.geomspace(300, 3000, 9)
    which = np.digitize(ell, edges)
    centres = np.array([ell[which == i].mean() for i in range(1, len(edges))])
    binned = np.array([power[which == i].mean() for i in range(1, len(edges))])
    return float(np.polyfit(np.log(centres), np.log(binned), 1)[0])


def check_defaults(cls, defaults: dict) -> None:
    """``cls`` is registered under its name, its fields are ``scale`` and the shipped ``defaults``,
    whose values it takes, and it randomises only its own fields."""
    names = {f.name for f in dataclasses.fields(cls)} - {"scale"}
    assert set(defaults) == names
    comp = cls()
    for key, value in defaults.items():
        assert getattr(comp, key) == value, key
    assert COMPONENTS[cls.name] is cls
    assert set(cls.randomisable) <= names


def simulate_alone(name: str, region: dict, indices, params=None) -> torch.Tensor:
    """The maps of component ``name`` (with ``params``) from a simulator that has only it, for the
    samples ``indices`` of 64-pixel patches in ``region``."""
    comps = {other: {"enabled": False} for other in COMPONENTS if other != name}
    comps[name] = params or {}
    cfg = SimulationConfig.from_dict(
        {"geometry": {"npix": 64, "margin": 16}, "region": region, "components": comps}
    )
    sim = PatchSimulator(cfg)
    assert sim.component_names == [name]
    maps = sim.simulate(list(indices), with_components=True).components[name]
    assert maps.shape == (len(indices), 3, 64, 64)
    return maps


def check_reproducible(comp, lon, lat) -> None:
    """Two patches (samples 7 and 8 of seed 4) drawn twice give the same bytes; sample 8 alone, in
    another batch, the same map up to rounding (this torch's batched inverse FFT is not bitwise
    batch-invariant); other samples or another seed, other maps."""
    a = comp.sky(sky_context(lon, lat, seed=4, start=7))
    assert torch.equal(a, comp.sky(sky_context(lon, lat, seed=4, start=7)))
    alone = comp.sky(sky_context(lon[1:], lat[1:], seed=4, start=8))
    torch.testing.assert_close(a[1:], alone, rtol=1e-5, atol=0.0)
    assert not torch.allclose(a, comp.sky(sky_context(lon, lat, seed=4, start=9)))
    assert not torch.allclose(a, comp.sky(sky_context(lon, lat, seed=5, start=7)))


def check_scale(cls, lon, lat, factor: float) -> None:
    """``cls(scale=factor)`` gives ``factor`` times the maps of ``cls()``."""
    nominal = cls().sky(sky_context(lon, lat))
    scaled = cls(scale=factor).sky(sky_context(lon, lat))
    torch.testing.assert_close(scaled, factor * nominal, rtol=1e-6, atol=0.0)
