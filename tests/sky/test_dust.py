"""Galactic thermal dust component: brightness by position, spectrum, statistics, SED, RNG,
configuration. Small grids (128-pixel patches, 32-pixel margin) keep the file fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from galactic_support import (
    COARSE,
    GEOM,
    GRID,
    INST,
    MARGIN,
    check_defaults,
    check_reproducible,
    check_scale,
    simulate_alone,
)
from galactic_support import sky_context as _ctx

from cenn.config import ConfigError
from cenn.sky import fields
from cenn.sky.components import SkyContext
from cenn.sky.components.dust import Dust, load_defaults
from cenn.sky.flat.projection import draw_centres
from cenn.sky.flat.spectra import Binning, cl_to_dl, expected_spectrum, power_spectrum
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import SimulationConfig

I143, I217, I353 = 0, 1, 2
U353 = INST.bands[I353].mjysr_per_kcmb
NO_SPREAD = {
    "beta_patch_sigma": 0.0, "beta_field_sigma": 0.0,
    "temperature_patch_sigma_k": 0.0, "temperature_field_sigma_k": 0.0,
}


def _draw(dust, lon, lat, seed=0, start=0):
    """Dust maps cropped to the 128-pixel patch, µK_CMB, (batch, 3, 128, 128)."""
    return fields.crop(dust.sky(_ctx(lon, lat, seed, start)), MARGIN)


def _band_patches(dust, lat_min, lat_max, n, seed, grid=GRID, margin=MARGIN):
    """n patches with centres uniform in area in a |b| band, drawn in chunks of 32."""
    out = []
    for start in range(0, n, 32):
        random = SampleRandom(seed, range(start, min(n, start + 32)))
        lon, lat = draw_centres(random, lat_min, lat_max)
        out.append(fields.crop(dust.sky(SkyContext(grid, INST, lon, lat, random)), margin))
    return torch.cat(out)


def _dl(maps, edges):
    """Mean-subtracted binned D_ℓ (µK²) of maps (..., n, n), and the bin centres."""
    binning = Binning(tuple(float(e) for e in edges))
    cl = power_spectrum(maps, GEOM, binning)
    return cl_to_dl(torch.as_tensor(binning.centres), cl), binning.centres


# ---------------------------------------------------------------------- parameters, config


def test_defaults_come_from_the_data_file():
    check_defaults(Dust, load_defaults())


def test_config_overrides_and_refuses_unknown_parameters():
    cfg = SimulationConfig.from_dict(
        {"components": {"dust": {"csc_amplitude_mjysr": 0.2, "slope_faint": -2.8}}}
    )
    resolved = cfg.resolved_components()["dust"]
    assert resolved["csc_amplitude_mjysr"] == 0.2
    assert resolved["slope_faint"] == -2.8
    assert resolved["beta"] == load_defaults()["beta"]
    with pytest.raises(ConfigError, match="unknown parameters"):
        SimulationConfig.from_dict({"components": {"dust": {"amplitude": 1.0}}}).resolved_components()
    for bad in ({"patch_scatter_ln": -0.1}, {"beta": "1.5"}, {"slope_faint": -1.5},
                {"slope_shift": 0.7}):
        with pytest.raises(ConfigError):
            SimulationConfig.from_dict({"components": {"dust": bad}}).resolved_components()


def test_simulator_runs_with_dust_alone():
    dust = simulate_alone("dust", {"lat_min": 30.0}, [0, 1], {"csc_amplitude_mjysr": 0.1})
    # 353 GHz patch mean of a few hundred µK at high latitude; dust fades towards 143 GHz
    mean = dust.mean(dim=(-2, -1))
    assert torch.all((mean[:, I353] > 50) & (mean[:, I353] < 5000))
    assert torch.all(mean[:, I143] < mean[:, I217]) and torch.all(mean[:, I217] < mean[:, I353])


# ---------------------------------------------------------------------- mean brightness


def test_mean_brightness_follows_latitude_and_longitude():
    d = Dust()
    lon = torch.tensor([30.0, 30.0, 30.0, 30.0, 180.0, 0.0, 180.0, 330.0])
    lat = torch.tensor([0.5, 3.0, 15.0, 60.0, 3.0, 2.0, 20.0, -20.0])
    i = d.mean_brightness(lon, lat)
    assert i[0] > i[1] > i[2] > i[3] > 0  # towards the plane
    assert i[5] > 3 * d.mean_brightness(torch.tensor(180.0), torch.tensor(2.0))  # inner vs anticentre
    assert i[1] > 1.5 * i[4]
    assert i[7] > i[6]  # inner Galaxy brighter at intermediate latitude too
    assert 0.03 < float(i[3]) < 0.2  # |b| = 60°: ~0.06 MJy/sr
    assert 20 < float(d.mean_brightness(torch.tensor(0.0), torch.tensor(0.0))) < 200
    # symmetric in b, periodic in l
    assert torch.allclose(d.mean_brightness(lon, -lat), i)
    assert torch.allclose(d.mean_brightness(lon + 360.0, lat), i)


@pytest.mark.parametrize(
    ("lat_min", "lat_max", "low", "high"),
    [(30.0, 90.0, 0.06, 0.14), (5.0, 30.0, 0.2, 0.6), (0.0, 5.0, 2.0, 10.0)],
)
def test_band_mean_brightness(lat_min, lat_max, low, high):
    """Patch-mean 353 GHz brightness averaged over a band (§3.3: ~0.1 / 0.4 / 5 MJy/sr) on
    full-size 6.4° patches with coarse 6' pixels; the patch scatter is switched off to test the
    deterministic law."""
    d = Dust(patch_scatter_ln=0.0, **NO_SPREAD)
    maps = _band_patches(d, lat_min, lat_max, 64, seed=11, grid=COARSE.padded(16), margin=16)
    brightness = maps[:, I353].mean(dim=(-2, -1)) * U353 * 1e-6
    assert low < float(brightness.mean()) < high


def test_patch_scatter_spreads_brightness_over_a_decade():
    maps = _band_patches(Dust(), 30.0, 90.0, 96, seed=5, grid=COARSE.padded(16), margin=16)
    brightness = (maps[:, I353].mean(dim=(-2, -1)) * U353 * 1e-6).numpy()
    p5, p95 = np.percentile(brightness, [5, 95])
    assert p95 / p5 > 5
    assert 0.05 < brightness.mean() < 0.2


def test_brightness_gradient_across_low_latitude_patch():
    """Rows run towards increasing latitude: a patch centred at b = 3° is brighter on its
    plane-facing side, and the large-scale gradient is resolved pixel by pixel."""
    d = Dust(patch_scatter_ln=0.0, sigma_g_min=0.05, sigma_g_max=0.05, **NO_SPREAD)
    maps = _draw(d, [30.0, 30.0], [3.0, -3.0])[:, I353]
    low_rows, high_rows = maps[:, :16].mean(dim=(-2, -1)), maps[:, -16:].mean(dim=(-2, -1))
    assert low_rows[0] > 2 * high_rows[0]  # north of the plane: bottom rows nearer b = 0
    assert high_rows[1] > 2 * low_rows[1]  # south of the plane: the opposite


# ---------------------------------------------------------------------- structure


def test_sigma_g_and_slope_grow_with_brightness():
    d = Dust()
    b = torch.tensor([0.01, 0.1, 0.4, 5.0, 1e4], dtype=torch.float64)
    s = d.sigma_g(b)
    assert torch.all(s[1:] >= s[:-1])
    assert s[1] == pytest.approx(d.sigma_g_ref)
    assert 0.35 < float(s[2]) < 0.5 and 0.6 < float(s[3]) <= 1.0  # §3.4
    assert float(s[0]) == pytest.approx(d.sigma_g_min) and float(s[-1]) == pytest.approx(d.sigma_g_max)
    a = d.slope(b)
    assert float(a[1]) == pytest.approx(d.slope_faint) and float(a[3]) == pytest.approx(d.slope_bright)
    assert d.slope_bright < float(a[2]) < d.slope_faint


@pytest.mark.parametrize(
    ("slope", "params"),
    [
        (-2.6, {"slope_faint": -2.6, "slope_bright": -2.6}),
        (-3.0, {"slope_faint": -3.0, "slope_bright": -3.0}),
        # every patch counts as bright: the slope is picked from the patch brightness
        (-3.0, {"slope_faint": -2.5, "slope_bright": -3.0, "slope_faint_mjysr": 1e-4,
                "slope_bright_mjysr": 2e-4}),
        # a shift beyond either end of the slope table (faint patches: -2.6 + 0.3; one slope - 0.4)
        (-2.3, {"slope_shift": 0.3}),
        (-3.0, {"slope_faint": -2.6, "slope_bright": -2.6, "slope_shift": -0.4}),
    ],
)
def test_spectrum_slope_matches_configuration(slope, params):
    """Near-Gaussian fluctuations (σ_g = 0.2) in faint, flat patches: the measured spectrum
    follows the configured power law, seen through the same taper (expected_spectrum includes
    the window's mode coupling), and its log-slope over ℓ = 300-3000 is the configured one."""
    sigma = 0.2
    d = Dust(sigma_g_min=sigma, sigma_g_max=sigma, patch_scatter_ln=0.0, **NO_SPREAD, **params)
    maps = _draw(d, torch.linspace(0, 330, 24), torch.full((24,), 75.0), seed=3)[:, I353]
    maps = maps / maps.mean(dim=(-2, -1), keepdim=True)
    edges = np.geomspace(300, 3000, 8)
    dl, ell = _dl(maps, edges)
    cl = dl.mean(0).numpy() * 2 * math.pi / (ell * (ell + 1))
    ell_table = np.arange(1.0, 12000.0)
    model = sigma**2 * 2 * math.pi * (-slope - 2) * d.sigma_g_lmin ** (-slope - 2) * ell_table**slope
    expected = expected_spectrum(
        ell_table, model, GEOM, Binning(tuple(edges)), generation=GRID
    )
    ratio = cl / expected
    assert np.all((ratio > 0.85) & (ratio < 1.3))  # amplitude (lognormal adds a few %)
    fit = np.polyfit(np.log(ell), np.log(cl), 1)[0]
    fit_expected = np.polyfit(np.log(ell), np.log(expected), 1)[0]
    assert fit == pytest.approx(fit_expected, abs=0.08)
    assert fit_expected == pytest.approx(slope, abs=0.15)


def test_a_randomised_slope_shift_past_minus_two_is_refused_when_drawn():
    d = Dust(slope_faint=-2.3, slope_bright=-2.3)
    lon, lat = torch.zeros(1), torch.full((1,), 60.0)
    with pytest.raises(ValueError, match="slope_shift range"):
        d.sky(_ctx(lon, lat, draws={"dust": {"slope_shift": torch.tensor([0.4])}}))


def test_fluctuation_power_scales_with_brightness_squared():
    """At fixed σ_g and slope, D_ℓ ∝ ⟨I⟩² between a bright and a faint position."""
    d = Dust(
        sigma_g_min=0.3, sigma_g_max=0.3, slope_bright=-2.6, patch_scatter_ln=0.0, **NO_SPREAD
    )
    lon = torch.linspace(0, 330, 12)
    faint = _draw(d, lon, torch.full((12,), 70.0), seed=9)[:, I353]
    bright = _draw(d, lon, torch.full((12,), 20.0), seed=9)[:, I353]  # same u fields
    edges = (300.0, 1000.0)
    ratio = (_dl(bright, edges)[0] / _dl(faint, edges)[0]).squeeze(-1)
    expected = (bright.mean(dim=(-2, -1)) / faint.mean(dim=(-2, -1))) ** 2
    assert torch.allclose(ratio, expected.double(), rtol=0.3)
    assert float(expected.min()) > 2  # the test compares genuinely different brightnesses


@pytest.mark.parametrize(
    ("lat_min", "lat_max", "low", "high"),
    [(30.0, 90.0, 50.0, 200.0), (5.0, 30.0, 1e3, 1e4), (0.0, 5.0, 1e5, 1e8)],
)
def test_d200_at_217_per_latitude_band(lat_min, lat_max, low, high):
    """Mean over patches of D_ℓ at ℓ = 200, 217 GHz, dust alone before the beam (§3.3, §8)."""
    maps = _band_patches(Dust(), lat_min, lat_max, 128, seed=21)[:, I217]
    dl, _ = _dl(maps, (150.0, 250.0))
    assert low < float(dl.mean()) < high


def test_maps_are_positive_and_positively_skewed():
    lon = torch.linspace(0, 330, 12)
    maps = _draw(Dust(), torch.cat([lon, lon]), torch.cat([torch.full((12,), 50.0), torch.full((12,), 2.0)]))
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert bool((maps > 0).all())
    x = maps[:, I353].flatten(-2).double()
    x = x - x.mean(-1, keepdim=True)
    skew = (x**3).mean(-1) / (x**2).mean(-1) ** 1.5
    assert float(skew[:12].median()) > 0.3  # high latitude
    assert float(skew.median()) > 0.3
    assert float((skew > 0).double().mean()) > 0.8


# ---------------------------------------------------------------------- SED


def test_sed_ratios_without_spread_match_reference():
    """Band-averaged K_CMB ratios of §3.1 for β = 1.53, T = 19.6 K: 217/353 = 0.1294,
    143/353 = 0.0387; identical at every pixel."""
    d = Dust(**NO_SPREAD)
    maps = _draw(d, [10.0, 200.0], [40.0, -3.0])
    for band, expected in ((I217, 0.1294), (I143, 0.0387)):
        ratio = maps[:, band] / maps[:, I353]
        assert float(ratio.mean()) == pytest.approx(expected, rel=2e-3)
        assert float(ratio.std() / ratio.mean()) < 1e-4
    # the 353 GHz map is the brightness itself in the reference band's convention
    i353 = d.mean_brightness(torch.tensor(10.0), torch.tensor(40.0))
    assert float(maps[0, I353].mean()) * U353 * 1e-6 == pytest.approx(float(i353), rel=0.3)


def test_sed_varies_with_spread():
    maps = _draw(Dust(), [10.0, 100.0, 200.0, 300.0], [40.0, 40.0, 40.0, 40.0])
    ratio = maps[:, I143] / maps[:, I353]
    per_patch = ratio.mean(dim=(-2, -1))
    assert float(per_patch.std() / per_patch.mean()) > 0.02  # β, T differ between patches
    assert float((ratio.std(dim=(-2, -1)) / per_patch).min()) > 1e-3  # and within a patch
    assert 0.025 < float(per_patch.mean()) < 0.06


# ---------------------------------------------------------------------- determinism


def test_same_sample_same_map_different_index_differs():
    check_reproducible(Dust(), [10.0, 20.0], [40.0, -50.0])


def test_scale_multiplies_maps():
    check_scale(Dust, [10.0], [40.0], 2.0)
