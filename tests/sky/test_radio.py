"""Radio point sources: counts, spectral indices, flux conservation, shot noise, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cenn.sky.components import COMPONENTS, SkyContext, build_component
from cenn.sky.components.sources.radio import Radio
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning, cosine_taper, power_spectrum
from cenn.sky.instrument import instrument_from_dict, load_instrument
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import PatchSimulator, SimulationConfig

INSTRUMENT = load_instrument("planck_hfi")
PATCH = PatchGeometry(256, 90.0)
GRID = PATCH.padded(64)  # the simulator's default generation grid, 384 pixels


def context(indices, seed: int = 0, grid: PatchGeometry = GRID) -> SkyContext:
    n = len(indices)
    random = SampleRandom(seed, list(indices))
    zeros = torch.zeros(n, dtype=torch.float64)
    return SkyContext(grid, INSTRUMENT, zeros, zeros, random)


def band(name: str) -> int:
    return INSTRUMENT.band_names.index(name)


def to_jy(maps: torch.Tensor) -> torch.Tensor:
    """Painted single-pixel µK_CMB values back to Jy, per band: S = ΔT Ω_pix U_ν."""
    u = torch.tensor(INSTRUMENT.mjysr_per_kcmb(), dtype=torch.float64)
    return maps.to(torch.float64) * GRID.pixel_area_sr * u[:, None, None]


# ------------------------------------------------------------------------------------ counts


def test_model_counts_match_physics_reference():
    """Tucci-model numbers per 6.4° patch (physics-reference §5.1: 26 / 22 / 18 above 10 mJy,
    2.1 / 1.7 / 1.4 above 0.1 Jy at 150 / 225 / 350 GHz), and the table itself."""
    r = Radio()
    a = PATCH.area_sr
    assert r.table_counts.number_per_sr(0.01) * a == pytest.approx(26.1, rel=0.01)
    assert r.table_counts.number_per_sr(0.1) * a == pytest.approx(2.11, rel=0.01)
    assert r.table_counts.poisson_cl(1e-5, 0.3) == pytest.approx(5.60, rel=0.01)
    # the simulated 217 GHz counts
    assert r.source_counts.number_per_sr(0.01) * a == pytest.approx(22.1, rel=0.01)
    assert r.source_counts.number_per_sr(0.1) * a == pytest.approx(1.79, rel=0.01)
    for nu, n10, n100 in [(150, 26, 2.1), (225, 22, 1.7), (350, 18, 1.4)]:
        assert r.expected_number(nu, 0.01) * a == pytest.approx(n10, rel=0.05)
        assert r.expected_number(nu, 0.1) * a == pytest.approx(n100, rel=0.05)


@pytest.mark.parametrize(
    ("flux", "tucci_225"),
    [(0.01, 1.91), (0.03, 2.95), (0.1, 4.83), (0.2, 6.60), (0.3, 7.62), (0.5, 9.49), (1.0, 11.44)],
)
def test_carried_counts_reproduce_tucci_225ghz(flux, tucci_225):
    """150 GHz counts carried by the PCCS2 indices give the Tucci-model counts at 225 GHz
    (S^2.5 dN/dS, Lagache+2020 table, physics-reference §5.1) within 5 %."""
    r = Radio()
    f = 1.02
    dn_dlns = r.expected_number(225, flux / f, flux * f) / (2 * math.log(f))
    assert dn_dlns * flux**1.5 == pytest.approx(tucci_225, rel=0.05)


def test_number_above_flux_matches_counts_integral():
    """Drawn sources above 10 mJy and 0.1 Jy in every band and at the table's 150 GHz: the mean
    over many patches matches the integral of the counts within 4 Poisson σ."""
    r = Radio()
    n_patch = 300
    cat = r.catalogue(context(range(n_patch), seed=3))
    area = GRID.area_sr * n_patch
    for s in (0.01, 0.1):
        expected = r.source_counts.number_per_sr(s) * area  # the 217 GHz counts
        observed = int((cat.flux_ref_jy >= s).sum())
        assert abs(observed - expected) < 4 * math.sqrt(expected), (s, observed, expected)
        for b, nu in enumerate(INSTRUMENT.frequencies_ghz):
            expected = r.expected_number(nu, s) * area
            observed = int((cat.flux_jy[:, b] >= s).sum())
            assert abs(observed - expected) < 4 * math.sqrt(expected), (nu, s, observed, expected)
        # carried back to 150 GHz, the sources follow the table there within 3 % (the index
        # scatter, applied twice, adds exp(γ² σ_Δ²) − 1 ≈ 2 %)
        expected = r.expected_number(150, s) * area
        assert expected == pytest.approx(r.table_counts.number_per_sr(s) * area, rel=0.03)
        observed = int((cat.flux_counts_jy >= s).sum())
        assert abs(observed - expected) < 4 * math.sqrt(expected), (s, observed, expected)
    # ≈ 1.8 sources above 0.1 Jy at 217 GHz per 6.4° patch
    per_patch = float((cat.flux_ref_jy >= 0.1).sum()) / n_patch * PATCH.area_sr / GRID.area_sr
    assert 1.5 < per_patch < 2.1
    # the flux range applies at the reference frequency
    assert float(cat.flux_ref_jy.min()) >= r.flux_min_jy
    assert float(cat.flux_ref_jy.max()) < r.flux_max_jy
    assert torch.equal(cat.flux_ref_jy, cat.flux_jy[:, band("217")])


def test_brightest_excluded_by_flux_max():
    cut = Radio(flux_max_jy=0.3).catalogue(context(range(50)))
    full = Radio().catalogue(context(range(50)))
    assert float(cut.flux_ref_jy.max()) < 0.3
    assert float(full.flux_ref_jy.max()) > 0.3


# ------------------------------------------------------------------------------ spectral indices


def test_spectral_indices_recovered_from_painted_fluxes():
    """α(143→217) ~ N(−0.43, 0.36) and α(217→353) ~ N(−0.54, 0.55) (PCCS2, physics-reference
    §5.2), read back from the painted maps of every band."""
    r = Radio()
    s = to_jy(r.sky(context(range(24), seed=1)))
    ref = s[:, band("217")]
    mask = ref > 0
    s143, s217, s353 = (s[:, band(b)][mask] for b in ("143", "217", "353"))
    a1 = (torch.log(s217 / s143) / math.log(217 / 143)).numpy()
    a2 = (torch.log(s353 / s217) / math.log(353 / 217)).numpy()
    n = a1.size
    assert n > 3000
    assert abs(a1.mean() - (-0.43)) < 4 * 0.36 / math.sqrt(n)
    assert abs(a2.mean() - (-0.54)) < 4 * 0.55 / math.sqrt(n)
    assert a1.std() == pytest.approx(0.36, rel=0.05)
    assert a2.std() == pytest.approx(0.55, rel=0.05)
    assert np.corrcoef(a1, a2)[0, 1] == pytest.approx(0.36 / 0.55, abs=0.05)


def test_radio_source_brighter_at_143_and_353_than_217_in_kcmb():
    """§5.2: in µK_CMB a radio source is brighter at 143 and 353 than at 217 GHz. Median ratios
    (143/217)^ᾱ₁ U_217/U_143 = 1.56 and (353/217)^ᾱ₂ U_217/U_353 = 1.29."""
    maps = Radio().sky(context(range(16), seed=2)).to(torch.float64)
    t217 = maps[:, band("217")]
    mask = t217 > 0
    r143 = (maps[:, band("143")][mask] / t217[mask]).numpy()
    r353 = (maps[:, band("353")][mask] / t217[mask]).numpy()
    u = dict(zip(INSTRUMENT.band_names, INSTRUMENT.mjysr_per_kcmb(), strict=True))
    assert np.median(r143) == pytest.approx((143 / 217) ** -0.43 * u["217"] / u["143"], rel=0.03)
    assert np.median(r353) == pytest.approx((353 / 217) ** -0.54 * u["217"] / u["353"], rel=0.04)
    assert r143.mean() > 1.4 and r353.mean() > 1.2
    assert (r143 > 1).mean() > 0.8 and (r353 > 1).mean() > 0.6


def test_sed_extends_to_other_frequencies():
    """Piecewise power law through the anchors: first segment below 143, last above 353."""
    r = Radio()
    e = r.log_sed_matrix([100.0, 143.0, 217.0, 300.0, 353.0, 545.0])
    expected = np.array([
        [math.log(100 / 143), 0.0],
        [0.0, 0.0],
        [math.log(217 / 143), 0.0],
        [math.log(217 / 143), math.log(300 / 217)],
        [math.log(217 / 143), math.log(353 / 217)],
        [math.log(217 / 143), math.log(545 / 217)],
    ])
    np.testing.assert_allclose(e, expected, atol=1e-12)
    # an instrument with other bands: fluxes continue the first and last power laws
    other = instrument_from_dict({
        "name": "wide", "bands": [
            {"frequency_ghz": nu, "beam_fwhm_arcmin": 5.0, "noise_uk_deg": 1.0}
            for nu in (100.0, 217.0, 545.0)
        ],
    })
    random = SampleRandom(0, [0, 1])
    zeros = torch.zeros(2, dtype=torch.float64)
    cat = r.catalogue(SkyContext(GRID, other, zeros, zeros, random))
    hfi = r.catalogue(context([0, 1]))
    torch.testing.assert_close(cat.flux_ref_jy, hfi.flux_ref_jy, rtol=0, atol=0)
    a1, a2 = cat.alpha[:, 0], cat.alpha[:, 1]
    torch.testing.assert_close(cat.flux_jy[:, 0], hfi.flux_jy[:, 0] * (100 / 143) ** a1)
    torch.testing.assert_close(cat.flux_jy[:, 1], hfi.flux_jy[:, 1])
    torch.testing.assert_close(cat.flux_jy[:, 2], hfi.flux_jy[:, 2] * (545 / 353) ** a2)
    assert r.sky(SkyContext(GRID, other, zeros, zeros, random)).shape == (2, 3, 384, 384)


# ---------------------------------------------------------------------------- flux conservation


def test_flux_conserved_through_simulator_beam():
    """An isolated source, through the simulator's beam and crop (no noise, radio alone):
    Σ_pixels ΔT Ω_pix U_ν = S in every band within 1e-3."""
    params = {name: {"enabled": False} for name in COMPONENTS if name != "radio"}
    params["radio"] = {"flux_min_jy": 0.3}
    config = SimulationConfig.from_dict(
        {"seed": 4, "instrument": {"noise_scale": 0.0}, "components": params}
    )
    sim = PatchSimulator(config)
    indices = list(range(48))
    batch = sim.simulate(indices)
    radio = sim.components[0]
    assert radio.name == "radio"
    ctx = SkyContext(sim.grid, sim.instrument, batch.lon, batch.lat,
                     SampleRandom(config.seed, indices))
    cat = radio.catalogue(ctx)
    u = torch.tensor(sim.instrument.mjysr_per_kcmb(), dtype=torch.float64)
    edge = 20  # pixels, > 6 beam σ at 143 GHz
    lo, hi = sim.margin + edge, sim.margin + sim.geometry.npix - edge
    checked = 0
    for i in range(len(indices)):
        sel = cat.sample == i
        if int(sel.sum()) != 1:
            continue
        r, c = int(cat.row[sel]), int(cat.col[sel])
        if not (lo <= r < hi and lo <= c < hi):
            continue
        flux = batch.inputs[i].to(torch.float64).sum((-1, -2)) * sim.geometry.pixel_area_sr * u
        torch.testing.assert_close(flux, cat.flux_jy[sel][0], rtol=1e-3, atol=0.0)
        checked += 1
    assert checked >= 2


# ------------------------------------------------------------------------------- shot noise


def test_poisson_power_matches_counts_integral():
    """Flat C_ℓ of the painted maps (before beam) at high ℓ, for S_217 < 0.1 Jy, against
    ∫ S² dN/dS / U_ν², in every band; the scatter follows from ∫ S⁴ dN/dS."""
    r = Radio(flux_max_jy=0.1)
    n_patch = 48
    maps = r.sky(context(range(n_patch), seed=6))
    binning = Binning.linear(2000, 6000, 4000)
    cl = power_spectrum(maps, GRID, binning)[..., 0]  # (patch, band), µK² sr
    w = cosine_taper(GRID.npix, GRID.npix // 8)
    w2, w4 = float((w**2).mean()), float((w**4).mean())
    for b, nu in enumerate(INSTRUMENT.frequencies_ghz):
        u = INSTRUMENT.bands[b].mjysr_per_kcmb
        expected = r.expected_poisson_cl(nu) / u**2
        sigma = math.sqrt(r.expected_moment(nu, 4) * w4 / (GRID.area_sr * w2**2) / n_patch) / u**2
        measured = float(cl[:, b].mean())
        assert abs(measured - expected) < 4 * sigma, (nu, measured, expected, sigma)
        assert sigma < 0.06 * expected


def test_shot_noise_of_catalogues_matches_counts_integral():
    """Σ S_ν² per steradian of the drawn sources with S_217 < 0.3 Jy, over many patches, against
    ∫ S² dN/dS (Jy² sr⁻¹) within 4 σ (σ ≈ 1 %), and the level in D_ℓ."""
    r = Radio(flux_max_jy=0.3)
    n_patch = 2000
    cat = r.catalogue(context(range(n_patch), seed=9))
    area = GRID.area_sr * n_patch
    for b, nu in enumerate(INSTRUMENT.frequencies_ghz):
        measured = float((cat.flux_jy[:, b] ** 2).sum()) / area
        expected = r.expected_poisson_cl(nu)
        sigma = math.sqrt(r.expected_moment(nu, 4) / area)
        assert abs(measured - expected) < 4 * sigma, (nu, measured, expected, sigma)
        assert sigma < 0.015 * expected
    # the model's levels (Jy² sr⁻¹) and D_3000 (µK²): 143 / 217 / 353 GHz
    d_per_cl = 3000 * 3001 / (2 * math.pi)
    for nu, cl_jy, d3000 in [(143, 7.05, 73.1), (217, 4.71, 28.9), (353, 3.22, 55.8)]:
        u = INSTRUMENT.bands[INSTRUMENT.frequencies_ghz.index(nu)].mjysr_per_kcmb
        assert r.expected_poisson_cl(nu) == pytest.approx(cl_jy, rel=0.01)
        assert d_per_cl * r.expected_poisson_cl(nu) / u**2 == pytest.approx(d3000, rel=0.01)
    # Planck 2013 XXX's 217 GHz radio shot noise, 3.12 Jy² sr⁻¹ (19 µK², physics-reference §4.1),
    # is that of the sources below ≈ 0.2 Jy
    assert Radio(flux_max_jy=0.2).expected_poisson_cl(217) == pytest.approx(3.12, rel=0.05)


def test_shot_noise_of_realised_sources():
    """Per patch, the high-ℓ periodogram equals Σ_i (ΔT_i w_i)² Ω_pix / (N_pix ⟨w²⟩) of its own
    sources: the painting puts each source's flux in one pixel."""
    r = Radio(flux_max_jy=1.0)
    ctx = context(range(6), seed=8)
    maps = r.sky(ctx)
    cat = r.catalogue(ctx)
    binning = Binning.linear(1500, 7000, 5500)
    cl = power_spectrum(maps[:, band("217")], GRID, binning)[:, 0]
    w = cosine_taper(GRID.npix, GRID.npix // 8)
    t = cat.flux_jy[:, band("217")] / (GRID.pixel_area_sr * INSTRUMENT.target.mjysr_per_kcmb)
    wt2 = (t * w[cat.row, cat.col]) ** 2
    per_patch = torch.zeros(6, dtype=torch.float64).index_add_(0, cat.sample, wt2)
    expected = per_patch * GRID.pixel_area_sr / (GRID.npix**2 * (w**2).mean())
    torch.testing.assert_close(cl, expected, rtol=0.02, atol=0.0)


# ---------------------------------------------------------------------------- reproducibility


def test_patches_independent_and_reproducible():
    r = Radio()
    a = r.catalogue(context([3, 7]))
    b = r.catalogue(context([7]))
    c = r.catalogue(context([7], seed=1))
    sel = a.sample == 1
    for name in ("row", "col", "flux_jy", "alpha"):
        torch.testing.assert_close(getattr(a, name)[sel], getattr(b, name), rtol=0, atol=0)
    first = a.sample == 0
    for name in ("row", "col", "flux_jy", "alpha"):  # another patch, another seed: other sources
        assert not torch.equal(getattr(a, name)[first][:5], getattr(b, name)[:5]), name
        assert not torch.equal(getattr(c, name)[:5], getattr(b, name)[:5]), name
    torch.testing.assert_close(r.sky(context([3, 7]))[1:], r.sky(context([7])), rtol=0, atol=0)


def test_configuration_and_validation():
    r = build_component("radio", {"flux_min_jy": 0.005, "counts": "tucci_c2ex_148ghz"})
    assert isinstance(r, Radio)
    assert r.counts_ghz == 148.0
    assert r.parameters()["flux_min_jy"] == 0.005
    # the C2Ex table has 13 % fewer sources above 10 mJy than the default Lagache+2020 table
    assert r.expected_number(217, 0.01) / Radio().expected_number(217, 0.01) == pytest.approx(
        0.87, abs=0.03
    )
    assert Radio(scale=2.0).sky(context([1])).abs().sum() == pytest.approx(
        2 * float(Radio().sky(context([1])).abs().sum()), rel=1e-6
    )
    with pytest.raises(ValueError, match="flux_min_jy"):
        Radio(flux_min_jy=1.0, flux_max_jy=0.5)
    with pytest.raises(ValueError, match="steepening"):
        Radio(anchors_ghz=[100.0, 143.0, 217.0, 353.0])
    with pytest.raises(ValueError, match="counts_ghz"):
        Radio(counts="my_counts.csv")
