"""Infrared galaxies: counts per patch, spectral indices, flux conservation, Poisson power."""

import math

import numpy as np
import pytest
import torch

from cenn.sky.components import COMPONENTS, SkyContext
from cenn.sky.components.sources.infrared_galaxies import (
    COUNTS_FREQUENCY_GHZ,
    InfraredGalaxies,
    source_counts,
)
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning, power_spectrum
from cenn.sky.instrument import load_instrument
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import GeometryConfig, InstrumentConfig, PatchSimulator, SimulationConfig

INSTRUMENT = load_instrument("planck_hfi")


def _ctx(geometry, indices, seed=11):
    zeros = torch.zeros(len(indices), dtype=torch.float64)
    return SkyContext(geometry, INSTRUMENT, zeros, zeros, SampleRandom(seed, indices))


def test_counts_table_matches_the_reference_values():
    """The shipped Béthermin+2011 217 GHz counts (physics-reference §6): S^2.5 dN/dS at the
    tabulated fluxes, and N(> 10 mJy) = 23 per 6.4° patch."""
    counts = source_counts()
    s = np.array([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    dnds = np.exp(np.interp(np.log(s), np.log(counts.flux_jy), np.log(counts.dnds)))
    assert s**2.5 * dnds == pytest.approx([144, 48.7, 5.60, 1.22, 0.72, 0.44, 0.037], rel=0.015)
    patch = PatchGeometry(256)
    assert counts.number_per_sr(0.01) * patch.area_sr == pytest.approx(23.0, rel=0.02)
    assert COUNTS_FREQUENCY_GHZ == 217.0


def test_number_above_a_flux_matches_the_counts():
    """Mean number per patch above 5 mJy (all) and 20 mJy, against the integral of the counts,
    within 4 Poisson σ of the total over 300 patches."""
    comp = InfraredGalaxies()
    grid = PatchGeometry(256).padded(64)
    cat = comp.catalogue(_ctx(grid, range(300)))
    for flux in (comp.flux_min_jy, 0.02):
        observed = int((cat.flux_ref_jy >= flux).sum())
        expected = comp.number_per_sr(flux) * grid.area_sr * 300
        assert abs(observed - expected) < 4 * math.sqrt(expected), (flux, observed, expected)
    assert expected == pytest.approx(300 * 7.82, rel=0.01)  # N(> 20 mJy) on the 384² grid
    # every painted galaxy lies in the flux range at 217 GHz and on the grid
    assert cat.flux_ref_jy.min() >= comp.flux_min_jy and cat.flux_ref_jy.max() < comp.flux_max_jy
    assert 0 <= int(cat.row.min()) and int(cat.row.max()) < grid.npix
    # positions are uniform: a quarter of the galaxies in each quadrant
    quad = (cat.row >= grid.npix // 2).to(torch.float64).mean().item()
    assert quad == pytest.approx(0.5, abs=4 * 0.5 / math.sqrt(len(cat)))


def test_spectral_indices_recovered_from_painted_fluxes():
    """Fluxes read back from the painted maps (pixels holding one galaxy) follow Eq. 1 with one
    index per galaxy; the indices have mean 3.0 and dispersion 0.3."""
    comp = InfraredGalaxies()
    grid = PatchGeometry(128)
    ctx = _ctx(grid, range(40))
    cat = comp.catalogue(ctx)
    maps = comp.sky(_ctx(grid, range(40)))
    flat = (cat.sample * grid.npix + cat.row) * grid.npix + cat.col
    unique, counts = torch.unique(flat, return_counts=True)
    alone = torch.isin(flat, unique[counts == 1])
    u = torch.tensor(INSTRUMENT.mjysr_per_kcmb(), dtype=torch.float64)
    pix = maps[cat.sample[alone], :, cat.row[alone], cat.col[alone]].to(torch.float64)
    flux = pix * grid.pixel_area_sr * u  # µK × sr × MJy sr⁻¹ K⁻¹ = Jy
    assert torch.allclose(flux, cat.flux_jy[alone], rtol=1e-5)
    nu = torch.tensor(INSTRUMENT.frequencies_ghz, dtype=torch.float64)
    alpha = torch.log(flux / flux[:, 1:2]) / torch.log(nu / 217.0)
    a143, a353 = alpha[:, 0].numpy(), alpha[:, 2].numpy()
    assert np.allclose(a143, a353, atol=1e-3)  # one index per galaxy
    n = len(a353)
    assert n > 1500
    assert a353.mean() == pytest.approx(3.0, abs=4 * 0.3 / math.sqrt(n))
    assert a353.std() == pytest.approx(0.3, abs=4 * 0.3 / math.sqrt(2 * n))


def test_flux_is_conserved_through_the_simulator_beam():
    """With no margin the generation grid is the patch: Σ pixels × Ω_pix × U_ν of the beamed
    simulator output equals the total flux of the galaxies in every band (to float32)."""
    keep = {"infrared_galaxies"}
    config = SimulationConfig(
        seed=5,
        geometry=GeometryConfig(npix=96, margin=0),
        instrument=InstrumentConfig(noise_scale=0.0),
        components={n: {"enabled": n in keep, **({"flux_min_jy": 0.05} if n in keep else {})}
                    for n in COMPONENTS},
    )
    sim = PatchSimulator(config)
    batch = sim.simulate([0, 1, 2, 3])
    comp = sim.components[0]
    random = SampleRandom(config.seed, [0, 1, 2, 3])
    cat = comp.catalogue(SkyContext(sim.grid, sim.instrument, batch.lon, batch.lat, random))
    assert len(cat) > 0
    u = torch.tensor(sim.instrument.mjysr_per_kcmb(), dtype=torch.float64)
    measured = batch.inputs.to(torch.float64).sum(dim=(2, 3)) * sim.geometry.pixel_area_sr * u
    expected = torch.zeros(4, 3, dtype=torch.float64).index_add_(0, cat.sample, cat.flux_jy)
    assert torch.allclose(measured, expected, rtol=1e-4, atol=1e-6)
    # the beam spreads a 1 Jy-class source: the peak is far below its single-pixel value
    brightest = int(cat.flux_jy[:, 1].argmax())
    s, r, c = int(cat.sample[brightest]), int(cat.row[brightest]), int(cat.col[brightest])
    single_pixel = cat.flux_jy[brightest, 1] / (sim.geometry.pixel_area_sr * u[1])
    assert batch.inputs[s, 1, r, c] < 0.2 * single_pixel


def test_poisson_power_matches_the_model():
    """Mean spectrum of painted maps at high ℓ, per band, against poisson_cl (µK² sr), within 4σ
    of the patch-to-patch scatter; the cross spectra likewise. Galaxies capped at 0.1 Jy, so a
    test-sized sample averages their power (above it, ~12 galaxies per sr carry 26 % of it)."""
    comp = InfraredGalaxies(flux_max_jy=0.1)
    grid = PatchGeometry(128)
    maps = comp.sky(_ctx(grid, range(200), seed=3))
    bins = Binning.linear(1500, 7000, 5500)
    model = comp.poisson_cl(INSTRUMENT)
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 2)]:
        cl = power_spectrum(maps[:, a], grid, bins, other=maps[:, b])[:, 0].numpy()
        err = cl.std() / math.sqrt(len(cl))
        assert abs(cl.mean() - model[a, b]) < 4 * err, (a, b, cl.mean(), model[a, b], err)
        assert err < 0.1 * model[a, b]
    # in Jy² sr⁻¹ at 217 GHz: the integral of S² dN/dS above 5 mJy (1.71, computed from the table)
    assert InfraredGalaxies().poisson_cl_jy2([217.0])[0, 0] == pytest.approx(1.71, rel=0.01)
    assert comp.poisson_cl_jy2([217.0])[0, 0] == pytest.approx(1.71 - 0.45, rel=0.02)
    # the index moment: E[(353/217)^(2α)] for α ~ N(3, 0.3)
    lg = 2 * math.log(353 / 217)
    jy2 = comp.poisson_cl_jy2(INSTRUMENT.frequencies_ghz)
    assert jy2[2, 2] / jy2[1, 1] == pytest.approx(math.exp(3 * lg + 0.5 * 0.09 * lg**2), rel=1e-9)


def test_draws_depend_only_on_seed_and_index():
    comp = InfraredGalaxies()
    grid = PatchGeometry(64)
    a = comp.sky(_ctx(grid, [4, 9]))
    b = comp.sky(_ctx(grid, [9]))
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])
    c = comp.sky(_ctx(grid, [9], seed=12))
    assert not torch.equal(c[0], b[0])


def test_scale_and_invalid_parameters():
    grid = PatchGeometry(64)
    full = InfraredGalaxies().sky(_ctx(grid, [1]))
    half = InfraredGalaxies(scale=0.5).sky(_ctx(grid, [1]))
    assert torch.allclose(half, 0.5 * full)
    assert InfraredGalaxies(scale=0.5).poisson_cl(INSTRUMENT) == pytest.approx(
        0.25 * InfraredGalaxies().poisson_cl(INSTRUMENT))
    with pytest.raises(ValueError, match="flux_min_jy"):
        InfraredGalaxies(flux_min_jy=0.2, flux_max_jy=0.1)
    with pytest.raises(ValueError, match="flux_min_jy"):
        InfraredGalaxies(flux_min_jy=20.0, flux_max_jy=30.0)
    with pytest.raises(ValueError, match="alpha_sigma"):
        InfraredGalaxies(alpha_sigma=-1.0)
