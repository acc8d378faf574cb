"""Galactic free-free component: Draine spectrum per band, emission-measure levels in the plane and
at high latitude, per-patch electron temperature, small-scale spectrum, RNG, configuration. Expected
values are computed here in numpy, independently of the component's torch code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from galactic_support import (
    COARSE,
    GRID,
    KCMB_PER_KRJ,
    MARGIN,
    NU,
    check_defaults,
    check_reproducible,
    check_scale,
    galactic_law,
    level_centres,
    patch_means,
    simulate_alone,
    small_scale_slope,
)
from galactic_support import sky_context as _ctx

from cenn.config import ConfigError
from cenn.sky import fields
from cenn.sky.components.free_free import FreeFree
from cenn.sky.flat.projection import pixel_directions
from cenn.sky.shipped import shipped_toml
from cenn.sky.simulator import SimulationConfig

DEFAULTS = shipped_toml("free_free.toml")["parameters"]
# deterministic sky: no patch scatter, no small-scale field, T_e fixed
SMOOTH = {"patch_scatter_ln": 0.0, "sigma_g_min": 0.0, "sigma_g_max": 0.0,
          "electron_temperature_patch_sigma_k": 0.0}


def draine_rj_uk(nu_ghz, em, t_e):
    """Free-free T_RJ (µK), Draine 2011 / Planck 2015 X Table 4."""
    t4 = t_e / 1e4
    g_ff = np.log(np.exp(5.960 - math.sqrt(3) / math.pi * np.log(nu_ghz * t4**-1.5)) + math.e)
    tau = 0.05468 * t_e**-1.5 * nu_ghz**-2.0 * em * g_ff
    return 1e6 * t_e * -np.expm1(-tau)


# ---------------------------------------------------------------------- parameters, config


def test_defaults_come_from_the_data_file():
    check_defaults(FreeFree, DEFAULTS)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"disk_scale_height_deg": 0.0}, "disk_scale_height_deg must be > 0"),
        ({"csc_amplitude": -1.0}, "csc_amplitude must be >= 0"),
        ({"csc_amplitude": 0.0, "thick_amplitude": 0.0, "disk_amplitude": 0.0}, "all zero"),
        ({"disk_anticentre_fraction": 1.5}, "disk_anticentre_fraction must be <= 1"),
        ({"slope": -1.5}, "slope must be < -2"),
        ({"coarse_npix": 4}, "coarse_npix must be an integer >= 8"),
        ({"sigma_g_min": 0.5, "sigma_g_max": 0.2}, "sigma_g_min <= sigma_g_max"),
        ({"electron_temperature_k": 20000.0}, "electron_temperature_min_k <= electron_temperature_k"),
        ({"electron_temperature_min_k": 0.0, "electron_temperature_k": 1.0},
         "electron_temperature_min_k must be > 0"),
        ({"patch_scatter_ln": float("nan")}, "must be a finite number"),
        ({"electron_temperature_k": "7000"}, "must be a finite number"),
    ],
)
def test_invalid_parameters_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        FreeFree(**bad)


def test_config_overrides_and_refuses_unknown_parameters():
    cfg = SimulationConfig.from_dict({"components": {"free_free": {"disk_amplitude": 5000.0}}})
    resolved = cfg.resolved_components()["free_free"]
    assert resolved["disk_amplitude"] == 5000.0
    assert resolved["electron_temperature_k"] == DEFAULTS["electron_temperature_k"]
    with pytest.raises(ConfigError, match="unknown parameters"):
        SimulationConfig.from_dict({"components": {"free_free": {"em": 1.0}}}).resolved_components()
    with pytest.raises(ConfigError, match="slope"):
        SimulationConfig.from_dict({"components": {"free_free": {"slope": -2.0}}}).resolved_components()


def test_simulator_runs_with_free_free_alone():
    ff = simulate_alone("free_free", {"lat_max": 3.0}, [0, 1, 2])
    assert torch.all(ff.mean(dim=(-2, -1)) > 0.5)  # tens to hundreds of µK_CMB near the plane


# ---------------------------------------------------------------------- spectrum


def test_band_ratios_follow_the_draine_formula():
    """Without T_e scatter every pixel has the numpy Draine ratio between bands (optically thin,
    so EM cancels), and the T_RJ index between 143 and 217 GHz is -2.16 (-2.14 at 30 GHz)."""
    maps = FreeFree(electron_temperature_patch_sigma_k=0.0).sky(_ctx([10.0, 200.0], [1.0, -40.0]))
    t_e = DEFAULTS["electron_temperature_k"]
    kcmb = draine_rj_uk(NU, 1.0, t_e) * KCMB_PER_KRJ
    for band in (0, 2):
        ratio = (maps[:, band] / maps[:, 1]).double()
        assert float((ratio / (kcmb[band] / kcmb[1]) - 1).abs().max()) < 2e-5
    trj = maps.double().mean(dim=(-2, -1)).numpy() / KCMB_PER_KRJ
    index = np.log(trj[:, 0] / trj[:, 1]) / np.log(NU[0] / NU[1])
    expected = np.log(draine_rj_uk(143.0, 1, t_e) / draine_rj_uk(217.0, 1, t_e)) / np.log(143 / 217)
    assert index == pytest.approx(expected, abs=1e-4)
    assert -2.18 < expected < -2.14
    at_30 = np.log(draine_rj_uk(44.0, 1, t_e) / draine_rj_uk(30.0, 1, t_e)) / np.log(44 / 30)
    assert at_30 == pytest.approx(-2.14, abs=0.01)


def test_per_patch_electron_temperature_draws_are_used():
    """T_e drawn per patch (SkyContext.draws) sets the spectrum and level of that patch: the same
    EM field at T_e = 4000 K and 12000 K differs by the numpy Draine ratio in every band."""
    ff = FreeFree(electron_temperature_patch_sigma_k=0.0)
    lon, lat = [30.0, 30.0], [0.5, 0.5]
    t_e = torch.tensor([4000.0, 12000.0])
    cold = ff.sky(_ctx(lon, lat, draws={"free_free": {"electron_temperature_k": t_e}}))
    hot = ff.sky(_ctx(lon, lat, draws={"free_free": {"electron_temperature_k": t_e.flip(0)}}))
    nominal = ff.sky(_ctx(lon, lat))
    expected = draine_rj_uk(NU, 1.0, 4000.0) / draine_rj_uk(NU, 1.0, 12000.0)
    ratio = (cold[0] / hot[0]).double().mean(dim=(-2, -1)).numpy()
    assert ratio == pytest.approx(expected, rel=1e-4)
    assert (hot[1] / cold[1]).double().mean(dim=(-2, -1)).numpy() == pytest.approx(expected, rel=1e-4)
    assert np.all(expected > 1.2)  # colder gas emits more per unit EM
    ratio_nominal = (nominal[0] / cold[0]).double().mean(dim=(-2, -1)).numpy()
    expected_nominal = draine_rj_uk(NU, 1.0, 7000.0) / draine_rj_uk(NU, 1.0, 4000.0)
    assert ratio_nominal == pytest.approx(expected_nominal, rel=1e-4)


# ---------------------------------------------------------------------- levels


@pytest.mark.parametrize(
    ("lon", "lat"), [(20.0, 0.0), (330.0, 1.5), (180.0, 0.0), (60.0, 15.0), (250.0, -60.0)]
)
def test_patch_mean_follows_the_documented_law(lon, lat):
    """Smooth sky (no scatter, no small-scale field): the patch mean is the numpy law averaged
    over the pixel directions (numpy gnomonic projection), times the Draine spectrum."""
    got = patch_means(FreeFree(**SMOOTH), [lon], [lat], seed=2)[0]
    pl, pb = pixel_directions(np.array([lon]), np.array([lat]), COARSE)
    em = galactic_law(pl, pb, DEFAULTS).mean()
    expected = draine_rj_uk(NU, em, DEFAULTS["electron_temperature_k"]) * KCMB_PER_KRJ
    np.testing.assert_allclose(got, expected, rtol=0.02)  # log-bilinear upsampling of the ridge cusp: < 1 %


@pytest.mark.parametrize(
    ("region", "expected_143"),
    [("inner_plane", 121.0), ("high", 0.34)],
)
def test_band_levels_match_the_documented_numbers(region, expected_143):
    """Mean patch level (µK_CMB) with the default scatter, over 96 patches: centres at |b| < 2°,
    |l| < 30° (121 / 87 / 135 µK_CMB at 143 / 217 / 353 in docs/sky-model.md) and uniform in area
    at |b| > 30° (0.34 / 0.24 / 0.38)."""
    lon, lat = level_centres(region, 96, seed=5)
    means = patch_means(FreeFree(), lon, lat, seed=5).mean(axis=0)
    assert means[0] == pytest.approx(expected_143, rel=0.25)
    # the bands keep the Draine ratios on average (T_e scatter moves them by < 1 %)
    kcmb = draine_rj_uk(NU, 1.0, DEFAULTS["electron_temperature_k"]) * KCMB_PER_KRJ
    np.testing.assert_allclose(means / means[0], kcmb / kcmb[0], rtol=0.01)


def test_plane_is_bright_and_high_latitude_faint():
    """Free-free above 100 GHz matters only in the plane: a patch on the inner ridge is > 100x a
    patch at b = 60°."""
    plane, high = patch_means(FreeFree(**SMOOTH), [15.0, 15.0], [0.0, 60.0], seed=3)
    assert np.all(plane > 100 * high)
    assert 50.0 < plane[0] < 500.0 and 0.1 < high[0] < 1.0


# ---------------------------------------------------------------------- small scales, RNG


def test_small_scale_spectrum_has_the_configured_slope():
    """σ_g fixed at 0.1: the power of δ = I/⟨I⟩ - 1 falls as ℓ^slope over 300 < ℓ < 3000."""
    ff = FreeFree(patch_scatter_ln=0.0, sigma_g_min=0.1, sigma_g_max=0.1)
    assert small_scale_slope(ff) == pytest.approx(DEFAULTS["slope"], abs=0.1)


def test_maps_are_positive_float32_and_clumpier_in_the_plane():
    maps = FreeFree().sky(_ctx([30.0, 30.0, 200.0], [0.5, 70.0, 0.0]))
    assert maps.shape == (3, 3, GRID.npix, GRID.npix) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and bool((maps > 0).all())
    x = fields.crop(maps[:, 0], MARGIN).double()
    rel = (x.std(dim=(-2, -1)) / x.mean(dim=(-2, -1))).numpy()
    assert rel[0] > 0.3 and rel[0] > rel[1]  # HII-region clumps on the ridge, smooth WIM at 70°


def test_same_sample_same_map_different_index_differs():
    check_reproducible(FreeFree(), [10.0, 20.0], [2.0, -50.0])


def test_scale_multiplies_maps():
    check_scale(FreeFree, [10.0], [1.0], 2.0)
