"""Galactic synchrotron component: power-law band ratios (per-patch β and curvature), the K_RJ ->
K_CMB conversion, levels in the plane and at high latitude, small-scale spectrum, RNG,
configuration. Expected values are computed here in numpy, independently of the component."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from galactic_support import (
    COARSE,
    GRID,
    INST,
    KCMB_PER_KRJ,
    NU,
    check_defaults,
    check_reproducible,
    check_scale,
    galactic_law,
    level_centres,
    patch_means,
    small_scale_slope,
)
from galactic_support import sky_context as _ctx

from cenn.config import ConfigError
from cenn.sky import units
from cenn.sky.components.synchrotron import Synchrotron
from cenn.sky.flat.projection import pixel_directions
from cenn.sky.instrument import Band, Instrument
from cenn.sky.shipped import shipped_toml
from cenn.sky.simulator import SimulationConfig

DEFAULTS = shipped_toml("synchrotron.toml")["parameters"]
NU0 = DEFAULTS["reference_ghz"]
SMOOTH = {"patch_scatter_ln": 0.0, "sigma_g_min": 0.0, "sigma_g_max": 0.0, "beta_patch_sigma": 0.0}


def sed_kcmb(beta, curvature=0.0, pivot=DEFAULTS["curvature_pivot_ghz"]):
    """µK_CMB per K_RJ at 408 MHz in every band."""
    return 1e6 * (NU / NU0) ** (beta + curvature * np.log(NU / pivot)) * KCMB_PER_KRJ


# ---------------------------------------------------------------------- parameters, config


def test_defaults_come_from_the_data_file():
    check_defaults(Synchrotron, DEFAULTS)
    assert set(Synchrotron.randomisable) == {"beta", "curvature"}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"reference_ghz": 0.0}, "reference_ghz must be > 0"),
        ({"beta": -4.0}, "beta_min <= beta <= beta_max"),
        ({"beta_patch_sigma": -0.1}, "beta_patch_sigma must be >= 0"),
        ({"thick_scale_height_deg": -1.0}, "thick_scale_height_deg must be > 0"),
        ({"slope": -2.0}, "slope must be < -2"),
        ({"coarse_npix": 16.5}, "coarse_npix must be an integer >= 8"),
        ({"curvature": float("inf")}, "must be a finite number"),
        ({"beta": True}, "must be a finite number"),
    ],
)
def test_invalid_parameters_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        Synchrotron(**bad)


def test_config_overrides_and_refuses_unknown_parameters():
    cfg = SimulationConfig.from_dict({"components": {"synchrotron": {"beta": -3.1, "curvature": -0.052}}})
    resolved = cfg.resolved_components()["synchrotron"]
    assert resolved["beta"] == -3.1 and resolved["curvature"] == -0.052
    assert resolved["reference_ghz"] == NU0
    with pytest.raises(ConfigError, match="unknown parameters"):
        SimulationConfig.from_dict({"components": {"synchrotron": {"index": -3.0}}}).resolved_components()
    with pytest.raises(ConfigError, match="beta_min"):
        SimulationConfig.from_dict({"components": {"synchrotron": {"beta": -2.0}}}).resolved_components()


# ---------------------------------------------------------------------- spectrum


def test_band_ratios_are_the_power_law_times_the_unit_conversion():
    """No β spread: every pixel has (ν₁/ν₂)^β × the K_RJ -> K_CMB ratio, β = -3."""
    maps = Synchrotron(beta_patch_sigma=0.0).sky(_ctx([10.0, 200.0], [1.0, -40.0]))
    expected = sed_kcmb(DEFAULTS["beta"])
    for band in (0, 2):
        ratio = (maps[:, band] / maps[:, 1]).double()
        assert float((ratio / (expected[band] / expected[1]) - 1).abs().max()) < 2e-5
    assert expected[0] / expected[1] == pytest.approx((143 / 217) ** -3.0 * KCMB_PER_KRJ[0] / KCMB_PER_KRJ[1])


def test_per_patch_beta_and_curvature_draws_are_used():
    """β and C drawn per patch (SkyContext.draws) set each patch's band ratios, and the level at
    143 GHz relative to the nominal sky (same brightness field) is (ν/ν₀)^(β - β₀)."""
    sync = Synchrotron(beta_patch_sigma=0.0)
    lon, lat = [30.0, 30.0, 30.0], [0.5, 0.5, 0.5]
    betas, curv = np.array([-2.7, -3.3, -3.0]), np.array([0.0, 0.0, -0.052])
    draws = {"synchrotron": {"beta": torch.tensor(betas), "curvature": torch.tensor(curv)}}
    drawn = sync.sky(_ctx(lon, lat, draws=draws)).double()
    nominal = sync.sky(_ctx(lon, lat)).double()
    for i in range(3):
        expected = sed_kcmb(betas[i], curv[i])
        ratio = (drawn[i] / drawn[i, 1]).mean(dim=(-2, -1)).numpy()
        np.testing.assert_allclose(ratio, expected / expected[1], rtol=1e-5)
        level = (drawn[i] / nominal[i]).mean(dim=(-2, -1)).numpy()
        np.testing.assert_allclose(level, expected / sed_kcmb(DEFAULTS["beta"]), rtol=1e-5)
    assert float(drawn[0, 0].mean()) > 5 * float(drawn[1, 0].mean())  # β = -2.7 vs -3.3 at 143 GHz


def test_unit_conversion_is_krj_per_kcmb_for_monochromatic_bands():
    """With U_ν the monochromatic dB/dT, the K_RJ -> K_CMB factor is units.krj_per_kcmb."""
    bands = tuple(
        Band(b.name, b.frequency_ghz, b.beam_fwhm_arcmin, b.noise_uk_deg,
             float(units.dbdt_mjysr_per_k(b.frequency_ghz)), b.tsz_kcmb_per_y)
        for b in INST.bands
    )
    mono = Instrument("mono", bands, INST.target_band)
    maps = Synchrotron(beta_patch_sigma=0.0).sky(_ctx([50.0], [20.0], instrument=mono)).double()
    ratio = (maps[0, 0] / maps[0, 2]).mean().item()
    expected = (143 / 353) ** DEFAULTS["beta"] * units.krj_per_kcmb(353.0) / units.krj_per_kcmb(143.0)
    assert ratio == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------- levels


@pytest.mark.parametrize(("lon", "lat"), [(20.0, 0.0), (180.0, 0.0), (30.0, 30.0), (200.0, -70.0)])
def test_patch_mean_follows_the_documented_law(lon, lat):
    """Smooth sky: the patch mean is the numpy law averaged over the pixel directions (numpy
    gnomonic projection) times the power law."""
    got = patch_means(Synchrotron(**SMOOTH), [lon], [lat], seed=2)[0]
    pl, pb = pixel_directions(np.array([lon]), np.array([lat]), COARSE)
    np.testing.assert_allclose(got, galactic_law(pl, pb, DEFAULTS).mean() * sed_kcmb(DEFAULTS["beta"]),
                               rtol=0.01)


@pytest.mark.parametrize(
    ("region", "expected"),
    [("inner_plane", (8.2, 4.3, 4.5)), ("high", (0.93, 0.48, 0.51))],
)
def test_band_levels_match_the_documented_numbers(region, expected):
    """Mean patch level (µK_CMB) with the default scatter over 96 patches, as in docs/sky-model.md:
    centres at |b| < 2°, |l| < 30° and uniform in area at |b| > 30°. Small above 100 GHz, a few
    µK even in the plane."""
    lon, lat = level_centres(region, 96, seed=5)
    means = patch_means(Synchrotron(), lon, lat, seed=5).mean(axis=0)
    np.testing.assert_allclose(means, expected, rtol=0.3)


# ---------------------------------------------------------------------- small scales, RNG


def test_small_scale_spectrum_has_the_configured_slope():
    """σ_g fixed at 0.1: the power of δ = T/⟨T⟩ - 1 falls as ℓ^slope over 300 < ℓ < 3000."""
    sync = Synchrotron(patch_scatter_ln=0.0, sigma_g_min=0.1, sigma_g_max=0.1)
    assert small_scale_slope(sync) == pytest.approx(DEFAULTS["slope"], abs=0.1)


def test_maps_are_positive_float32():
    maps = Synchrotron().sky(_ctx([30.0, 200.0], [0.5, 70.0]))
    assert maps.shape == (2, 3, GRID.npix, GRID.npix) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and bool((maps > 0).all())


def test_same_sample_same_map_different_index_differs():
    check_reproducible(Synchrotron(), [10.0, 20.0], [2.0, -50.0])


def test_scale_multiplies_maps():
    check_scale(Synchrotron, [10.0], [1.0], 0.5)
