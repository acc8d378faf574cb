"""Galactic CO lines: band conversions, where the lines land, levels in the inner plane and at high
latitude, line ratios, randomised parameters, RNG and configuration. Small grids (128-pixel patches,
32-pixel margin) keep the file fast; estimates are plain numpy on the maps."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
from galactic_support import GEOM, GRID, INST, MARGIN, check_defaults, check_scale, simulate_alone
from galactic_support import sky_context as _ctx

from cenn.sky.components import build_component
from cenn.sky.components.co import CO, LINES_GHZ, load_defaults, top_hat_conversion_uk
from cenn.sky.instrument import Instrument

I143, I217, I353 = 0, 1, 2
F217, F353 = 45.85, 175.1  # µK_CMB per K_RJ km/s of CO(2-1) at 217 and CO(3-2) at 353 (co.toml)
FIXED_RATIOS = {"ratio_21_scatter_ln": 0.0, "ratio_32_scatter_ln": 0.0}


def _draw(co, lon, lat, seed=0, start=0, draws=None) -> np.ndarray:
    """CO maps cropped to the 128-pixel patch, µK_CMB, numpy (batch, 3, 128, 128)."""
    maps = co.sky(_ctx(lon, lat, seed, start, draws=draws))
    assert maps.dtype == torch.float32 and maps.shape == (len(lon), 3, GRID.npix, GRID.npix)
    return maps[..., MARGIN:-MARGIN, MARGIN:-MARGIN].numpy()


def _latitudes_on_equator() -> np.ndarray:
    """Galactic latitude (degrees) of the 128 × 128 pixels of a gnomonic patch centred on b = 0,
    written out here (rows towards the north): sin b = y / sqrt(1 + x² + y²)."""
    offsets = (np.arange(GEOM.npix) - (GEOM.npix - 1) / 2) * math.radians(GEOM.pixel_deg)
    y, x = np.meshgrid(offsets, offsets, indexing="ij")
    return np.degrees(np.arcsin(y / np.sqrt(1.0 + x**2 + y**2)))


# ---------------------------------------------------------------------- parameters, conversions


def test_defaults_come_from_the_data_file():
    check_defaults(CO, load_defaults())
    assert {"ratio_21", "ratio_32"} <= set(CO.randomisable)


def test_top_hat_conversion_against_a_hand_computed_value():
    # 1 K_RJ km/s of CO(2-1) spread over a top-hat 217 GHz band of width 0.33 x 217 GHz:
    # 2 k nu0^3 / c^3 x 1000 m/s = 2 x 1.380649e-23 x (230.538e9)^3 / (2.99792458e8)^3 x 1e3
    #   = 1.25525e-11 W m^-2 sr^-1, over 71.61e9 Hz x 483.69e-20 W m^-2 Hz^-1 sr^-1 K^-1 -> 36.25 µK
    value = top_hat_conversion_uk(230.538, 217.0, 483.69, 0.33)
    assert value == pytest.approx(36.2525, abs=1e-3)
    assert 30 < value < 45  # the order of magnitude of a top-hat band
    # CO(3-2) in a 353 GHz band: 126.55 µK for w = 0.33, 144.0 for the shipped w = 0.29
    assert top_hat_conversion_uk(345.796, 353.0, 287.45, 0.33) == pytest.approx(126.549, abs=1e-2)
    assert top_hat_conversion_uk(345.796, 353.0, 287.45, 0.29) == pytest.approx(144.004, abs=1e-2)
    # A line outside the band gives exactly zero: nothing at 143 GHz, even with a wide band
    for line in LINES_GHZ.values():
        assert top_hat_conversion_uk(line, 143.0, 371.74, 0.33) == 0.0
    assert top_hat_conversion_uk(230.538, 353.0, 287.45, 0.33) == 0.0


def test_planck_bands_see_one_line_each_and_143_none():
    table = CO().conversion_table(INST).numpy()  # (band, line 1-0 / 2-1 / 3-2)
    np.testing.assert_array_equal(table[I143], 0.0)
    np.testing.assert_array_equal(table[I217], [0.0, F217, 0.0])
    np.testing.assert_array_equal(table[I353], [0.0, 0.0, F353])
    # A band the table does not know takes the top-hat value of the lines inside it
    bands = (dataclasses.replace(INST.bands[0], name="f100", frequency_ghz=110.0, mjysr_per_kcmb=300.0),
             dataclasses.replace(INST.bands[1], name="f225", frequency_ghz=225.0))
    other = Instrument("test", bands, "f225")
    t = CO().conversion_table(other).numpy()
    assert t[0, 0] == pytest.approx(top_hat_conversion_uk(115.2712018, 110.0, 300.0, 0.29))
    assert t[0, 0] > 0 and t[0, 1] == 0 and t[0, 2] == 0
    assert t[1, 1] == pytest.approx(top_hat_conversion_uk(230.538, 225.0, 483.69, 0.29)) and 30 < t[1, 1] < 50
    assert t[1, 0] == 0 and t[1, 2] == 0


def test_invalid_parameters_are_refused():
    bad = [
        {"ratio_21": -0.1}, {"ratio_32": float("nan")}, {"sigma_g": -1.0}, {"slope": -1.5},
        {"cloud_probability": 1.5}, {"cloud_cover_fraction": 0.0}, {"cloud_cover_fraction": 1.0},
        {"disk_latitude_scale_deg": 0.0}, {"disk_anticentre_fraction": 1.2}, {"coarse_npix": 4},
        {"fractional_bandwidth": 0.0}, {"fractional_bandwidth": 2.5}, {"ratio_21": "0.6"},
        {"ratio_21": True}, {"conversion_uk_per_kkms": {"217:4-3": 10.0}},
        {"conversion_uk_per_kkms": {"217": 10.0}}, {"conversion_uk_per_kkms": {"217:2-1": -1.0}},
        {"conversion_uk_per_kkms": [45.85]},
    ]
    for params in bad:
        with pytest.raises(ValueError, match="co"):
            CO(**params)
    with pytest.raises(ValueError, match="unknown parameters"):
        build_component("co", {"amplitude_kkms": 1.0})
    assert build_component("co", {"ratio_21": 0.7}).ratio_21 == 0.7


# ---------------------------------------------------------------------- maps


def test_nothing_at_143_and_positive_lines_elsewhere():
    co = CO()
    lon, lat = [20.0, 180.0, 30.0, 100.0], [0.0, 1.0, 15.0, 60.0]
    maps = _draw(co, lon, lat)
    assert np.all(maps[:, I143] == 0.0)  # exactly zero, not just small
    assert np.all(np.isfinite(maps)) and np.all(maps >= 0)
    assert np.all(maps[:2, I217] > 0) and np.all(maps[:2, I353] > 0)
    randomised = {"co": {"ratio_21": torch.tensor([0.3, 0.9, 0.6, 0.5]),
                         "sigma_g": torch.tensor([0.6, 1.8, 1.2, 1.0])}}
    assert np.all(_draw(co, lon, lat, draws=randomised)[:, I143] == 0.0)


def test_inner_plane_level():
    """Mean W_CO(1-0) at |b| < 1°, l = 20°, read back from the 217 GHz map: the documented ≈ 40 K km/s
    (co.toml: 60 (1 - e^-1) = 37.9 from the disk, 2.5 x 6 (1 - e^-1/6) = 2.3 from the local layer)."""
    co = CO(patch_scatter_ln=0.0, **FIXED_RATIOS)
    inner = np.abs(_latitudes_on_equator()) < 1.0
    levels = []
    for start in (0, 64):
        maps = _draw(co, [20.0] * 64, [0.0] * 64, seed=1, start=start)
        levels.append(maps[:, I217][:, inner].mean(axis=1) / (0.595 * F217))
    w = np.concatenate(levels)
    # the per-patch clump field spreads single patches by ~50 %; 128 patches average to ~4 %
    assert w.mean() == pytest.approx(40.2, rel=0.2)
    assert np.median(w) > 10 and w.max() < 400
    assert maps[:, I217].max() / (0.595 * F217) <= 3000 * (1 + 1e-5)  # saturation W_s = 3000 K km/s
    # much fainter towards the anticentre (f_ac = 0.1, thicker in angle), same estimator
    anti = _draw(co, [180.0] * 32, [0.0] * 32, seed=1)[:, I217][:, inner].mean(axis=1) / (0.595 * F217)
    assert 2 < anti.mean() < 0.35 * w.mean()
    # concentrated in latitude: |b| < 0.5° over 1.2° < |b| < 1.6° is (47.2 + 2.4) / (15.1 + 2.3) = 2.9
    b = np.abs(_latitudes_on_equator())
    near, far = (maps[:, I217][:, mask].mean() for mask in (b < 0.5, b > 1.2))
    assert 1.8 < near / far < 5


def test_353_over_217_is_the_line_ratio_pixel_by_pixel():
    co = CO(**FIXED_RATIOS)
    maps = _draw(co, [20.0, 200.0, 300.0], [0.5, -3.0, 12.0], seed=4)
    expected = (0.297 * F353) / (0.595 * F217)
    ok = maps[:, I217] > 1e-6
    assert ok.mean() > 0.99
    np.testing.assert_allclose(maps[:, I353][ok] / maps[:, I217][ok], expected, rtol=1e-5)
    # with the default per-patch scatter the ratio is constant within a patch, different between them
    ratios = [m[I353][m[I217] > 0] / m[I217][m[I217] > 0] for m in _draw(CO(), [20.0] * 4, [0.0] * 4)]
    assert all(np.ptp(r) < 1e-5 * r.mean() for r in ratios)
    assert np.ptp([r.mean() for r in ratios]) > 0.05 * expected


def test_high_latitude_mostly_co_free():
    co = CO()
    rng = np.random.default_rng(0)
    n = 96
    lon = rng.uniform(0.0, 360.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(40.0)), 1.0, n))) * rng.choice([-1, 1], n)
    maps = _draw(co, lon, lat, seed=2)
    mean_217 = maps[:, I217].mean(axis=(-2, -1))
    free = mean_217 < 0.5  # µK_CMB: < 0.02 K km/s of CO(1-0)
    assert 0.6 < free.mean() < 0.97  # most patches are empty, a few hold a cloud (p = 0.2)
    w_max = maps[:, I217].max(axis=(-2, -1)) / (0.595 * F217)
    assert np.median(w_max) < 0.1 and w_max.max() < 30  # clouds are faint: K km/s, not tens
    clouds = ~free
    covered = (maps[clouds, I217] > 0.1 * 0.595 * F217).mean(axis=(-2, -1))  # W > 0.1 K km/s
    assert np.all(covered < 0.5)  # a cloud complex covers a fraction of the patch


def test_randomised_ratios_are_used():
    co = CO(**FIXED_RATIOS)
    lon, lat = [20.0, 30.0, 340.0], [0.0, -1.0, 2.0]
    nominal = _draw(co, lon, lat, seed=5)
    r21 = torch.tensor([0.3, 0.9, 0.6], dtype=torch.float64)
    drawn = _draw(co, lon, lat, seed=5, draws={"co": {"ratio_21": r21}})
    for i in range(3):
        np.testing.assert_allclose(drawn[i, I217], nominal[i, I217] * r21[i].item() / 0.595, rtol=1e-5)
    np.testing.assert_array_equal(drawn[:, I353], nominal[:, I353])  # ratio_32 not drawn
    assert np.array_equal(drawn[:, I143], nominal[:, I143])
    # a drawn cloud probability of 1 puts a cloud in every high-latitude patch
    high = _draw(co, [100.0] * 8, [70.0] * 8, draws={"co": {"cloud_probability": torch.ones(8)}})
    assert np.all(high[:, I217].max(axis=(-2, -1)) > 0.1 * 0.595 * F217)


def test_reproducible_from_seed_and_index():
    lon, lat = [20.0, 150.0, 250.0], [0.0, 8.0, -45.0]
    a = CO().sky(_ctx(lon, lat, seed=3, start=10))
    b = CO().sky(_ctx(lon, lat, seed=3, start=10))
    assert a.numpy().tobytes() == b.numpy().tobytes()
    alone = CO().sky(_ctx(lon[1:2], lat[1:2], seed=3, start=11))  # same sample, other batch
    assert alone[0].numpy().tobytes() == a[1].numpy().tobytes()
    other = CO().sky(_ctx(lon, lat, seed=3, start=11))  # different indices
    assert not torch.equal(other[0, I217], a[0, I217])
    assert not torch.equal(CO().sky(_ctx(lon, lat, seed=4, start=10))[0, I217], a[0, I217])


def test_scale_and_mean_intensity_law():
    check_scale(CO, [20.0], [0.0], 0.5)
    co = CO()
    lon = torch.tensor([20.0, 20.0, 20.0, 180.0, 20.0])
    w = co.mean_intensity(lon, torch.tensor([0.0, 2.0, 10.0, 0.0, 60.0]))
    assert w[0] == pytest.approx(0.1 * 60 + 0.9 * 60 / (1 + math.exp(-7)) + 2.5, rel=1e-9)
    assert w[0] > w[1] > w[2] > w[4] and w[4] < 1e-3
    assert w[3] < 0.25 * w[0]


def test_simulator_runs_with_co_alone():
    co = simulate_alone("co", {"lat_max": 2.0}, [0, 1])
    assert torch.all(co[:, I143] == 0) and torch.all(co[:, I217] > 0)


@pytest.mark.parametrize("slope", [-2.4, -3.0])
def test_drawn_clump_slope_is_the_log_map_spectrum_slope(slope):
    """Near-Gaussian clumps (σ_g = 0.2, no clouds) in faint high-latitude patches, the slope drawn per
    patch: the spectrum of log W, by a plain numpy FFT, falls as ℓ^slope over ℓ = 600-3000, where
    the smooth mean is flat (the taper-free FFT's leakage is far below these slopes' power)."""
    co = CO(sigma_g=0.2, cloud_probability=0.0, patch_scatter_ln=0.0)
    n = 16
    maps = _draw(co, np.linspace(0.0, 330.0, n), [60.0] * n, seed=2,
                 draws={"co": {"slope": torch.full((n,), slope, dtype=torch.float64)}})
    log_w = np.log(maps[:, I217])
    log_w -= log_w.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(log_w)) ** 2).mean(axis=0)
    k = np.fft.fftfreq(GEOM.npix)
    ell = 2 * math.pi * np.hypot(*np.meshgrid(k, k, indexing="ij")) / math.radians(GEOM.pixel_deg)
    edges = np.geomspace(600, 3000, 7)
    centres, binned = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (ell >= lo) & (ell < hi)
        centres.append(ell[sel].mean())
        binned.append(power[sel].mean())
    fit = np.polyfit(np.log(centres), np.log(binned), 1)[0]
    assert fit == pytest.approx(slope, abs=0.15)
