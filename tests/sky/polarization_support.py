"""What the tests of Q and U (test_polarization, test_synchrotron_polarization) share: their own
estimator of T, E and B spectra (numpy's full FFT and the convention of docs/sky-model.md,
"Polarization", not the simulator's spin-2 code), simulators of chosen components with Q and U, and
high-latitude maps of one polarized component. Imported by the test modules beside it (pytest puts
this folder on ``sys.path``)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from cenn.sky.components import COMPONENTS, Component
from cenn.sky.components.base import SkyContext
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import draw_centres
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import (
    GeometryConfig,
    InstrumentConfig,
    PatchSimulator,
    RegionConfig,
    SimulationConfig,
)

# ------------------------------------------------------------------ the tests' own estimator


def wavevectors(n: int, pixel_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """|ℓ| and φ_ℓ (from the rows, north, towards the columns, west) of numpy's ``fft2`` grid."""
    l_row = 2 * np.pi * np.fft.fftfreq(n, d=pixel_rad)[:, None]
    l_col = 2 * np.pi * np.fft.fftfreq(n, d=pixel_rad)[None, :]
    return np.hypot(l_row, l_col), np.arctan2(l_col, l_row) * np.ones((n, n))


def teb_modes(t, q, u, pixel_rad, window=None):
    """fft2 of T, E and B for maps ``(..., n, n)``: E = Q cos 2φ + U sin 2φ, B = −Q sin 2φ + U cos 2φ."""
    n = q.shape[-1]
    w = np.ones((n, n)) if window is None else window
    _, phi = wavevectors(n, pixel_rad)
    tf, qf, uf = (np.fft.fft2((x - x.mean(axis=(-2, -1), keepdims=True)) * w) for x in (t, q, u))
    c, s = np.cos(2 * phi), np.sin(2 * phi)
    return tf, qf * c + uf * s, -qf * s + uf * c


def bin_mean(values, ell, edges):
    """Mean of ``values (n, n)`` over the modes of each ℓ bin."""
    return np.array([values[(ell >= lo) & (ell < hi)].mean() for lo, hi in itertools.pairwise(edges)])


def band_powers(a, b, ell, edges, pixel_rad):
    """Mean of Re(a b*) Ω_pix / N_pix over the modes of each ℓ bin and every map: C_ℓ in µK² sr."""
    n = a.shape[-1]
    cross = (a * np.conj(b)).real.reshape(-1, n, n).mean(axis=0) * pixel_rad**2 / n**2
    return bin_mean(cross, ell, edges)


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


# ------------------------------------------------------------------ simulated skies


def only(*names: str, **params) -> dict[str, dict]:
    return {n: {"enabled": n in names, **params.get(n, {})} for n in COMPONENTS}


def simulator(components, npix=128, margin=0, noise_scale=0.0, lat=(0.0, 90.0), seed=11):
    config = SimulationConfig(seed=seed, geometry=GeometryConfig(npix=npix, margin=margin), stokes="IQU",
                              instrument=InstrumentConfig(noise_scale=noise_scale), components=components,
                              region=RegionConfig(lat_min=lat[0], lat_max=lat[1]))
    return PatchSimulator(config)


def high_latitude_maps(component: Component, n_patches: int, npix: int, margin: int, seed: int,
                       band: int) -> tuple[np.ndarray, ...]:
    """``component``'s I, Q and U in band ``band`` before the beam, ``(n_patches, npix, npix)`` each,
    cut from a grid padded by ``margin``, centres uniform in area at |b| > 30°, each divided by its
    mean I."""
    sim = simulator(only(component.name), npix=npix, margin=margin)
    random = SampleRandom(seed, range(n_patches))
    lon, lat = draw_centres(random, 30.0, 90.0)
    ctx = SkyContext(sim.grid, sim.instrument, lon, lat, random)
    intensity = component.sky(ctx)
    crop = (..., slice(margin, margin + npix), slice(margin, margin + npix))
    t, q, u = (as_numpy(x[:, band][crop])
               for x in (intensity, *component.polarization(ctx, intensity).unbind(1)))
    mean = t.mean(axis=(-2, -1), keepdims=True)
    return t / mean, q / mean, u / mean


def hann_spectra(t, q, u, geometry: PatchGeometry, edges) -> dict[str, np.ndarray]:
    """EE, BB, TT and TE band powers over the ℓ bins ``edges`` of maps ``(N, n, n)`` on ``geometry``'s
    pixels, each map Hann-windowed."""
    n = geometry.npix
    window = np.outer(np.hanning(n), np.hanning(n))
    t, e, b = teb_modes(t, q, u, geometry.pixel_rad, window)
    ell, _ = wavevectors(n, geometry.pixel_rad)
    pairs = {"ee": (e, e), "bb": (b, b), "tt": (t, t), "te": (t, e)}
    return {k: band_powers(x, y, ell, edges, 1.0) for k, (x, y) in pairs.items()}
