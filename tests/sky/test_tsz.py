"""Thermal SZ from clusters: band response, Y conservation, halo counts, power spectrum, RNG."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import torch

from cenn.sky.components import COMPONENTS, SkyContext, build_component
from cenn.sky.components.tsz.component import TSZ, HaloCounts
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning, cl_to_dl, power_spectrum
from cenn.sky.instrument import load_instrument
from cenn.sky.rng import SampleRandom

INSTRUMENT = load_instrument("planck_hfi")
PATCH = PatchGeometry(256, 90.0)
GRID = PATCH.padded(64)  # the simulator's default generation grid, 384 pixels
MARGIN = 64

TUNED_D3000_143 = 4.28
"""Mean D_3000 at 143 GHz (µK²) of the default model on 256² patches before the beam: 4.28 ±
0.06 over 640 patches (seed 0), inside 3.42 ± 0.54 (Reichardt+2021) – 4.91 ± 0.37 (SPT-3G)."""


@pytest.fixture(scope="module")
def tsz() -> TSZ:
    return TSZ()


def context(indices, seed: int = 0, grid: PatchGeometry = GRID) -> SkyContext:
    n = len(indices)
    zeros = torch.zeros(n, dtype=torch.float64)
    return SkyContext(grid, INSTRUMENT, zeros, zeros, SampleRandom(seed, list(indices)))


def band(name: str) -> int:
    return INSTRUMENT.band_names.index(name)


def paint_one(tsz: TSZ, theta500_pix: float, y_sr: float, x: float = 100.3, y: float = 57.8,
              grid: PatchGeometry = GRID) -> torch.Tensor:
    t = lambda v, dt=torch.float64: torch.tensor([v], dtype=dt)  # noqa: E731
    return tsz.paint_y(t(0, torch.int64), t(x), t(y), t(theta500_pix), t(y_sr), 1, grid)[0]


@pytest.fixture(scope="module")
def batch64(tsz) -> torch.Tensor:
    """64 default patches (seed 0, indices 0–63) on the 384² grid, µK_CMB, before the beam."""
    return tsz.sky(context(range(64)))


# ------------------------------------------------------------------------------ registration


def test_registered_and_configurable():
    assert COMPONENTS["tsz"] is TSZ
    comp = build_component("tsz", {"mass_bias": 0.2, "log10_m_min": 14.0})
    assert comp.mass_bias == 0.2 and comp.log10_m_min == 14.0
    params = comp.parameters()
    assert "_state" not in params and params["z_max"] == 3.0
    with pytest.raises(ValueError, match="unknown parameters"):
        build_component("tsz", {"bias": 0.2})
    with pytest.raises(ValueError, match="mass_bias"):
        TSZ(mass_bias=1.2)
    with pytest.raises(ValueError, match="outside the table"):
        TSZ(log10_m_max=16.5)


# ------------------------------------------------------------------------------ band response


def test_sign_and_band_ratios(batch64):
    """Decrement at 143, increment at 353, ≈ null at 217; every pixel in the ratio of the bands'
    K_CMB per y (−2.784 / +0.194 / +6.208)."""
    m = batch64.to(torch.float64)
    assert m.shape == (64, 3, GRID.npix, GRID.npix) and batch64.dtype == torch.float32
    t143, t217, t353 = (m[:, band(b)] for b in ("143", "217", "353"))
    assert t143.sum() < 0 and t353.sum() > 0
    assert t143.min() < -50.0  # some cluster core is a deep decrement before the beam
    assert t143.max() <= 1e-4 * t143.abs().max()  # no positive 143 pixel beyond FFT noise
    assert t217.abs().max() < 0.08 * t143.abs().max()
    k = {b.name: b.tsz_kcmb_per_y for b in INSTRUMENT.bands}
    strong = t143.abs() > 1.0
    assert torch.allclose(t353[strong] / t143[strong],
                          torch.full_like(t143[strong], k["353"] / k["143"]), rtol=1e-5)
    assert torch.allclose(t217[strong] / t143[strong],
                          torch.full_like(t143[strong], k["217"] / k["143"]), rtol=1e-5)
    assert (t353.sum() / t143.sum()).item() == pytest.approx(6.208 / -2.784, rel=1e-5)


# ------------------------------------------------------------------------------ Y per cluster


@pytest.mark.parametrize("theta500_pix", [0.05, 0.4, 1.3, 2.6, 9.0, 60.0])
def test_isolated_cluster_conserves_y(tsz, theta500_pix):
    """Σ y Ω_pix of one painted cluster equals its Y (sub-pixel cores included), non-negative,
    centred where it was put."""
    y_sr = tsz.y_total_sr(5e14, 0.3)
    ymap = paint_one(tsz, theta500_pix, y_sr).to(torch.float64)
    assert (ymap.sum() * GRID.pixel_area_sr).item() == pytest.approx(y_sr, rel=1e-4)
    assert ymap.min() >= -1e-5 * ymap.max()
    row, col = divmod(int(ymap.argmax()), GRID.npix)
    assert (row, col) == (57, 100)


def test_stamp_follows_projected_profile(tsz):
    """A resolved cluster (θ500 = 20 pixels): the painted Y inside radius R follows the
    cylindrical integral of the projected UPP, and nothing lies beyond 5 θ500."""
    s, y_sr = 20.0, 1e-9
    ymap = paint_one(tsz, s, y_sr, x=150.5, y=150.5).to(torch.float64)
    off = torch.arange(GRID.npix, dtype=torch.float64) + 0.5 - 150.5
    r = torch.sqrt(off[:, None] ** 2 + off[None, :] ** 2) / s  # in θ500
    assert ymap[r > 5.0 + 1.0 / s].abs().max() == 0.0
    prof = tsz.profile
    x = np.linspace(1e-6, 5.0, 20001)
    g = prof.projected(x) * x
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(x))])
    for big_r in (0.5, 1.0, 2.0, 3.5):
        painted = (ymap[r < big_r].sum() * GRID.pixel_area_sr / y_sr).item()
        assert painted == pytest.approx(np.interp(big_r, x, cum) / cum[-1], abs=0.01)


def test_y_m_relation_and_catalogue(tsz):
    """Y500 at the pivot is the Planck 2015 XXIV value; J = Y(5 R500)/Y(R500) ≈ 1.8 (Arnaud+2010);
    catalogue Y and θ500 follow the relation when the scatter is off."""
    h = tsz.background.h
    pivot = 6e14 / (1.0 - tsz.mass_bias)
    expected = 1e-4 * 10**-0.19 * (h / 0.7) ** (1.79 - 2.0)
    assert tsz.y500_mpc2(pivot, 0.0) == pytest.approx(expected, rel=1e-9)
    assert tsz.j_ratio == pytest.approx(1.796, abs=0.01)
    # Arnaud+2010 Eq. 22, same pivot, b = 0: 10^-4.739 (M / 3e14 h70^-1)^1.79 h70^-5/2 Mpc²
    h70 = h / 0.7
    arnaud = 10**-4.739 * (6e14 / (3e14 / h70)) ** 1.79 * h70**-2.5
    assert TSZ(mass_bias=0.0).y500_mpc2(6e14, 0.0) == pytest.approx(arnaud, rel=0.01)
    # R500 of a 10^15 M☉ cluster at z = 0: (3M / 4π 500 ρc)^(1/3), ρc = 3H0²/8πG: 1.56 Mpc
    rho_c = 3.0 * (100.0 * h) ** 2 / (8.0 * math.pi * 4.30091e-9)
    r500 = (3e15 / (4.0 * math.pi * 500.0 * rho_c)) ** (1 / 3)
    assert tsz.background.r500(1e15, 0.0) == pytest.approx(r500, rel=1e-4)
    assert r500 == pytest.approx(1.56, abs=0.01)
    quiet = TSZ(y_scatter_dex=0.0)
    cat = quiet.draw_catalogue(context(range(3)))
    # (draws interpolate D_A linearly inside each redshift bin of the table: ≤ 3e-4 in Y)
    np.testing.assert_allclose(cat["y_total"], quiet.y_total_sr(cat["m500"], cat["z"]), rtol=5e-4)
    np.testing.assert_allclose(cat["theta500"], quiet.theta500_rad(cat["m500"], cat["z"]),
                               rtol=3e-4)
    scattered = tsz.draw_catalogue(context(range(20)))
    dex = np.log10(scattered["y_total"] / tsz.y_total_sr(scattered["m500"], scattered["z"]))
    assert np.std(dex) == pytest.approx(0.075, rel=0.05)
    assert abs(np.mean(dex)) < 0.005


# ------------------------------------------------------------------------------ counts


def test_counts_per_patch_match_shipped_table(tsz):
    """Mean halo numbers per patch above 10^14 and 10^14.5 M☉ equal the integral of the shipped
    CSV (read here directly) within Poisson errors; ranges and z limits respected."""
    text = (resources.files("cenn.sky") / "data" / "tsz_halo_counts.csv").read_text()
    data = np.loadtxt(text.splitlines(), delimiter=",", comments="#")
    edges = HaloCounts.read().log10m_edges
    z_lo, z_hi, per_bin = data[:, 0], data[:, 1], data[:, 2:]
    assert z_lo[0] == pytest.approx(0.01) and z_hi[-1] == pytest.approx(3.0)
    n_patches = 300
    cat = tsz.draw_catalogue(context(range(n_patches)))
    assert cat["m500"].min() >= 10**13.7 and cat["m500"].max() <= 10**15.5
    assert cat["z"].min() >= 0.01 and cat["z"].max() <= 3.0
    for lm in (14.0, 14.5):
        cols = (edges[:-1] >= lm - 1e-9) & (edges[1:] <= 15.5 + 1e-9)
        expected = per_bin[:, cols].sum() * GRID.area_sr
        assert tsz.mean_count(GRID.area_sr, lm) == pytest.approx(expected, rel=1e-9)
        found = np.sum(cat["m500"] >= 10**lm) / n_patches
        assert abs(found - expected) < 4.0 * math.sqrt(expected / n_patches)
    # about 10 halos per deg² above 10^14 M☉ (Tinker+2008, Planck 2018 cosmology)
    per_deg2 = tsz.mean_count(1.0, 14.0) * (math.pi / 180) ** 2
    assert 8.0 < per_deg2 < 13.0
    # positions uniform over the grid
    assert 0.0 <= cat["x"].min() and cat["x"].max() < GRID.npix
    assert np.mean(cat["x"]) == pytest.approx(GRID.npix / 2, rel=0.01)


# ------------------------------------------------------------------------------ spectrum


def test_power_spectrum_amplitude_and_shape(tsz, batch64):
    """D_3000 at 143 GHz of 64 patches within 15 % of the tuned 4.28 µK²; the shape D_ℓ/D_3000
    near the Planck template (0.087 at ℓ=100, 0.664 at ℓ=1000 before the pixel window); the
    measured spectrum follows the model's C_ℓ^yy."""
    b = Binning((56.0, 150.0, 900.0, 1100.0, 2900.0, 3100.0))
    crop = batch64[..., MARGIN:-MARGIN, MARGIN:-MARGIN]
    dl = cl_to_dl(torch.tensor(b.centres), power_spectrum(crop, PATCH, b)).mean(0)  # (3, nb)
    d100, d1000, d3000 = dl[band("143"), 0], dl[band("143"), 2], dl[band("143"), 4]
    assert d3000.item() == pytest.approx(TUNED_D3000_143, rel=0.15)
    assert 0.6 < (d1000 / d3000).item() < 0.9
    # per-patch low-ℓ power is very skewed (rare massive clusters): a loose bound on 64 patches
    assert 0.02 < (d100 / d3000).item() < 0.3
    ratio353 = (dl[band("353"), 4] / d3000).item()
    assert ratio353 == pytest.approx((6.208 / 2.784) ** 2, rel=1e-4)
    # the model spectrum (continuous sky) shaped as the template at ℓ = 100 / 1000 / 3000
    ell = np.array([100.0, 1000.0, 3000.0])
    model = cl_to_dl(ell, tsz.cl_yy(ell)) * 2.784e6**2
    assert model[0] / model[2] == pytest.approx(0.087, abs=0.02)
    assert model[1] / model[2] == pytest.approx(0.664, abs=0.07)
    assert model[2] == pytest.approx(4.83, rel=0.02)
    # the measurement carries the pixel window (≈ 0.89 in power at ℓ = 3000 over 640 patches)
    assert (d3000 / model[2]).item() == pytest.approx(0.89, abs=0.1)


@pytest.mark.parametrize("params", [{"kernel_groups": 3}, {"stamp_min_theta500_pix": 1.5},
                                    {"stamp_min_theta500_pix": 6.0, "kernel_groups": 2}])
def test_painting_choices_keep_the_spectrum(batch64, params):
    """The same halos painted with other stamp / kernel-group settings: same D_ℓ at ℓ = 1000 /
    3000 / 6000 within 5 % (both paths average the profile over the pixel; the kernels are exact
    for the mean, so realisations differ by a few %), same total Y."""
    other = TSZ(**params).sky(context(range(64)))
    ref = batch64
    b = Binning((900.0, 1100.0, 2900.0, 3100.0, 5900.0, 6100.0))
    crop = lambda m: m[:, :1, MARGIN:-MARGIN, MARGIN:-MARGIN]  # noqa: E731
    d_ref = power_spectrum(crop(ref), PATCH, b).mean(0)[0, ::2]
    d_other = power_spectrum(crop(other), PATCH, b).mean(0)[0, ::2]
    torch.testing.assert_close(d_other, d_ref, rtol=0.05, atol=0)
    total = lambda m: m[:, 0].to(torch.float64).sum()  # noqa: E731
    assert total(other).item() == pytest.approx(total(ref).item(), rel=1e-4)


def test_kernel_is_nonnegative_and_unit(tsz):
    painter = tsz._painter(GRID, torch.device("cpu"))
    k = painter["kernels"]
    real = torch.fft.irfft2(k.to(torch.complex128), s=GRID.shape)
    assert real.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert real.min().item() > -1e-6 * real.max().item()


# ------------------------------------------------------------------------------ RNG


def test_deterministic_and_independent(tsz, batch64):
    """A sample depends only on (seed, index): the same alone or inside any batch; other indices
    and seeds differ."""
    again = tsz.sky(context([5, 9, 2]))
    torch.testing.assert_close(again[0], batch64[5], rtol=0, atol=1e-4)
    torch.testing.assert_close(again[1], batch64[9], rtol=0, atol=1e-4)
    torch.testing.assert_close(again[2], batch64[2], rtol=0, atol=1e-4)
    assert (batch64[5] - batch64[9]).abs().max() > 1.0
    other_seed = tsz.sky(context([5], seed=1))
    assert (other_seed[0] - batch64[5]).abs().max() > 1.0
    cat_a = tsz.draw_catalogue(context([5]))
    cat_b = tsz.draw_catalogue(context([4, 5]))
    sel = cat_b["sample"] == 1
    np.testing.assert_array_equal(cat_a["m500"], cat_b["m500"][sel])


def test_small_grid(tsz):
    """Any grid works (stamps are capped at half the grid), e.g. the test suite's 96² grid."""
    grid = PatchGeometry(96, 90.0)
    maps = tsz.sky(context(range(2), grid=grid))
    assert maps.shape == (2, 3, 96, 96) and torch.isfinite(maps).all()
    huge = paint_one(tsz, 30.0, 1e-9, x=40.0, y=40.0, grid=grid)
    assert huge.min() >= 0 and 0.3 < (huge.sum() * grid.pixel_area_sr / 1e-9).item() < 1.0
