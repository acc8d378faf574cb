"""The CIB: clustered spectra and band correlations recovered, shot levels not double counted."""

import math

import numpy as np
import pytest
import torch

from cenn.sky import fields, units
from cenn.sky.components import SkyContext
from cenn.sky.components.cib import (
    CIB,
    band_mapping,
    clustered_cl_jy2,
    correlated_modes_,
    measured_shot_jy2,
    mode_factor,
    nearest_valid_covariance,
    white_modes,
)
from cenn.sky.components.sources.infrared_galaxies import InfraredGalaxies
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning, cl_to_dl, expected_spectrum, power_spectrum
from cenn.sky.instrument import Band, Instrument, load_instrument
from cenn.sky.rng import SampleRandom

INSTRUMENT = load_instrument("planck_hfi")
PATCH = PatchGeometry(256)
GRID = PATCH.padded(64)  # the simulator's default generation grid
MARGIN = 64
SMALL = PatchGeometry(128)
SMALL_GRID = SMALL.padded(16)
ELL = np.arange(0, 12001, dtype=np.float64)
MEASURED = np.array([[1.2, 4.3, 15.0], [4.3, 16.0, 59.0], [15.0, 59.0, 225.0]])  # §4.1, Jy² sr⁻¹


def _ctx(geometry, indices, seed=21, instrument=INSTRUMENT):
    zeros = torch.zeros(len(indices), dtype=torch.float64)
    return SkyContext(geometry, instrument, zeros, zeros, SampleRandom(seed, indices))


def _maps(comp, indices, seed=21, geometry=GRID, margin=MARGIN, instrument=INSTRUMENT):
    comp.setup(instrument, geometry, torch.device("cpu"))
    f = comp.sky_fourier(_ctx(geometry, indices, seed, instrument))
    return fields.crop(fields.to_real(f, geometry), margin)


def _dl(cl, ell):
    return ell * (ell + 1) * cl / (2 * math.pi)


def test_model_matches_the_reference_tables():
    """Clustered C_ℓ (Jy² sr⁻¹) at the physics-reference §4.2 multipoles, and D_ℓ (µK²) at 3000:
    5.9 / 64 / 3040 at 143 / 217 / 353 GHz (§8)."""
    cl = clustered_cl_jy2(INSTRUMENT.frequencies_ghz, np.array([100.0, 1000.0, 3000.0]))
    table = {  # §4.2 rows ℓ = 100, 1000, 3000
        (0, 0): [38.2, 2.68, 0.568], (1, 1): [687, 47.6, 10.4], (2, 2): [11600, 780, 175],
        (0, 1): [162, 11.3, 2.40], (1, 2): [2810, 192, 42.5], (0, 2): [661, 45.4, 9.78],
    }
    for (a, b), ref in table.items():
        assert cl[a, b] == pytest.approx(ref, rel=0.01), (a, b)
        assert cl[b, a] == pytest.approx(ref, rel=0.01)
    uk = CIB().clustered_cl(INSTRUMENT, np.array([3000.0]))[..., 0]
    assert _dl(np.diag(uk), 3000) == pytest.approx([5.9, 64, 3040], rel=0.02)
    # the measured shot levels in D_ℓ(3000): 12.4 / 98 / 3900 µK² (§4.1)
    u = np.array(INSTRUMENT.mjysr_per_kcmb())
    assert _dl(np.diag(MEASURED) / u**2, 3000) == pytest.approx([12.4, 98, 3900], rel=0.02)


def test_clustered_auto_spectra_match_the_model():
    """Mean spectrum of 64 patches per band against the exact expectation (field periodic on the
    generation grid, seen through the taper): every bin within 4σ, χ²/bin < 2."""
    comp = CIB(shot=False)
    maps = _maps(comp, range(64))
    bins = Binning.paper(PATCH)
    ps = power_spectrum(maps, PATCH, bins).numpy()  # (64, 3, bins)
    model = comp.model_cl(INSTRUMENT, ELL)
    for b in range(3):
        mean, err = ps[:, b].mean(0), ps[:, b].std(0) / math.sqrt(len(ps))
        expected = expected_spectrum(ELL, model[b, b], PATCH, bins, generation=GRID)
        z = (mean - expected) / err
        assert np.all(np.abs(z) < 4.0), (b, z)
        assert np.mean(z**2) < 2.0
        # and a 10 % error in amplitude would be seen
        assert np.mean(((mean - 1.1 * expected) / err) ** 2) > 4.0
    # D_ℓ(3000) of the realised maps against physics-reference §8: 5.9 / 64 / 3040 µK²
    dl = cl_to_dl(3000.0, power_spectrum(maps, PATCH, Binning((2800.0, 3200.0)))[..., 0].numpy())
    mean, err = dl.mean(0), dl.std(0) / math.sqrt(len(dl))
    target = np.array([5.9, 64.0, 3040.0])
    assert np.all(np.abs(mean - target) < 4 * err + 0.02 * target), (mean, err)


def test_band_correlations_match_the_model():
    """Correlation coefficient between bands, measured per bin from the mean cross and auto
    spectra of the clustered part, against the model's (0.98–1.0 for ℓ ≤ 3000)."""
    comp = CIB(shot=False)
    maps = _maps(comp, range(16), seed=5)
    bins = Binning.linear(100, 3100, 500)
    model = comp.model_cl(INSTRUMENT, ELL)
    auto = power_spectrum(maps, PATCH, bins).mean(0).numpy()
    ex_auto = [expected_spectrum(ELL, model[i, i], PATCH, bins, generation=GRID) for i in range(3)]
    for a, b, low in [(0, 1, 0.985), (1, 2, 0.995), (0, 2, 0.975)]:
        cross = power_spectrum(maps[:, a], PATCH, bins, other=maps[:, b]).mean(0).numpy()
        r = cross / np.sqrt(auto[a] * auto[b])
        ex_cross = expected_spectrum(ELL, model[a, b], PATCH, bins, generation=GRID)
        r_model = ex_cross / np.sqrt(ex_auto[a] * ex_auto[b])
        assert np.all(r_model > low) and np.all(r_model < 1.0)
        assert r == pytest.approx(r_model, abs=0.003), (a, b)
    # the model's correlations at ℓ = 3000, from the tables (physics-reference §4.2)
    c = clustered_cl_jy2(INSTRUMENT.frequencies_ghz, np.array([3000.0]))[..., 0]
    r = c / np.sqrt(np.outer(np.diag(c), np.diag(c)))
    assert [r[0, 1], r[1, 2], r[0, 2]] == pytest.approx([0.988, 0.997, 0.980], abs=0.002)


def test_shot_level_and_no_double_counting():
    """The white part's measured level per band is the model's; added to the painted galaxies'
    Poisson power it gives the measured Planck levels 1.2 / 16 / 225 Jy² sr⁻¹ (the autos
    exactly, the crosses within the 2 % needed to make them a valid covariance)."""
    comp = CIB(clustered=False)
    shot = comp.shot_cl_jy2(INSTRUMENT.frequencies_ghz)
    painted = InfraredGalaxies().poisson_cl_jy2(INSTRUMENT.frequencies_ghz)
    total = shot + painted
    assert np.diag(total) == pytest.approx(np.diag(MEASURED), rel=1e-9)
    assert total == pytest.approx(MEASURED, rel=0.01)
    assert np.all(np.linalg.eigvalsh(shot) > 0)
    assert np.diag(painted) == pytest.approx([0.145, 1.71, 33.1], rel=0.02)
    # without subtraction the white part alone carries the measured levels
    alone = CIB(clustered=False, subtract_infrared_galaxies=False).shot_cl_jy2([143.0, 217.0, 353.0])
    assert np.diag(alone) == pytest.approx(np.diag(MEASURED))
    # the realised maps: flat C_ℓ at the model level in every band and cross
    maps = _maps(comp, range(96), seed=9, geometry=SMALL_GRID, margin=16)
    bins = Binning.linear(1000, 7000, 6000)
    model = comp.shot_cl(INSTRUMENT)
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        cl = power_spectrum(maps[:, a], SMALL, bins, other=maps[:, b])[:, 0].numpy()
        assert cl.mean() == pytest.approx(model[a, b], rel=0.01), (a, b)


def test_total_shot_power_of_cib_and_galaxies_is_the_measured_one():
    """Maps of the CIB shot part plus the painted galaxies: mean C_ℓ at high ℓ equals the measured
    levels converted to µK² sr (D_3000 = 12.4 / 98 / 3900 µK²), within 4σ of the scatter.

    The galaxies are capped at 0.1 Jy here: above it, a dozen galaxies per steradian carry a
    quarter of their Poisson power, which a test-sized sample cannot average. The CIB is told
    the cap, so the total must still be the measured level.
    """
    cap = {"flux_max_jy": 0.1}
    cib = CIB(clustered=False, infrared_galaxies=cap)
    galaxies = InfraredGalaxies(**cap)
    indices = range(150)
    cib_maps = _maps(cib, indices, seed=2, geometry=SMALL_GRID, margin=16)
    gal_maps = fields.crop(galaxies.sky(_ctx(SMALL_GRID, indices, seed=2)), 16)
    maps = cib_maps + gal_maps
    patch = SMALL
    bins = Binning.linear(2000, 7000, 5000)
    u = np.array(INSTRUMENT.mjysr_per_kcmb())
    for b in range(3):
        cl = power_spectrum(maps[:, b], patch, bins)[:, 0].numpy()
        err = cl.std() / math.sqrt(len(cl))
        target = MEASURED[b, b] / u[b] ** 2
        assert abs(cl.mean() - target) < 4 * err, (b, cl.mean(), target, err)
        assert err < 0.03 * target
        # counting the galaxies twice would be detected
        twice = target + galaxies.poisson_cl(INSTRUMENT)[b, b]
        assert abs(cl.mean() - twice) > 3 * err or b == 0


def test_parts_switch_separately():
    ell = np.array([500.0, 3000.0])
    both, clus, shot = (CIB(clustered=c, shot=s).model_cl(INSTRUMENT, ell)
                        for c, s in [(True, True), (True, False), (False, True)])
    assert both == pytest.approx(clus + shot)
    assert np.all(shot[..., 0] == shot[..., 1]) and not np.any(clus[..., 0] == clus[..., 1])
    off = CIB(clustered=False, shot=False)
    off.setup(INSTRUMENT, GRID, torch.device("cpu"))
    out = off.sky_fourier(_ctx(GRID, [0, 1]))
    assert out.shape == (2, 3, GRID.npix, GRID.npix // 2 + 1) and out.dtype == torch.complex64
    assert not out.abs().any()
    # shot only is white: equal power at low and high ℓ
    maps = _maps(CIB(clustered=False), range(48), seed=3, geometry=SMALL_GRID, margin=16)
    ps = power_spectrum(maps[:, 1], SMALL, Binning((200.0, 1500.0, 7000.0))).mean(0).numpy()
    assert ps[0] == pytest.approx(ps[1], rel=0.1)
    # scale multiplies the maps
    a = _maps(CIB(), [3], seed=4, geometry=SMALL_GRID, margin=16)
    b = _maps(CIB(scale=2.0), [3], seed=4, geometry=SMALL_GRID, margin=16)
    assert torch.allclose(b, 2 * a, rtol=1e-5, atol=1e-4)


def test_draws_depend_only_on_seed_and_index():
    comp = CIB()
    comp.setup(INSTRUMENT, GRID, torch.device("cpu"))
    a = comp.sky_fourier(_ctx(GRID, [2, 7]))
    b = comp.sky_fourier(_ctx(GRID, [7]))
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(comp.sky_fourier(_ctx(GRID, [7], seed=22))[0], b[0])
    # the maps are real fields: irfft2 ∘ rfft2 gives the same modes back
    real = fields.to_real(b, GRID)
    assert torch.allclose(torch.fft.rfft2(real), b, atol=1e-3 * b.abs().max().item())


def test_batched_path_used_on_gpu_gives_the_same_modes():
    comp = CIB()
    grid = PatchGeometry(40)
    comp.setup(INSTRUMENT, grid, torch.device("cpu"))
    random = SampleRandom(1, [3, 4, 8])
    per_sample, batched = (torch.empty(3, 3, 40, 21, 2) for _ in range(2))
    correlated_modes_(per_sample, random.generators("cib"), comp._factor, per_sample=True)
    correlated_modes_(batched, random.generators("cib"), comp._factor, per_sample=False)
    assert torch.equal(per_sample, batched)


def test_white_modes_are_those_of_fields_white_fourier():
    """The same draws as the stream's ``random.normal`` and the same Hermitian columns as
    :func:`cenn.sky.fields.white_fourier` (which they equal times √(N_pix/2))."""
    grid = PatchGeometry(48)
    random = SampleRandom(3, [0, 5])
    ours = torch.view_as_complex(white_modes(random, "cib", grid, 3)) * math.sqrt(48**2 / 2)
    ref = fields.white_fourier(random, "cib", grid, channels=3)
    assert torch.allclose(ours, ref, rtol=1e-6, atol=1e-5)


def test_mode_factor_reproduces_valid_matrices_and_repairs_rounding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 3))
    c = torch.from_numpy(np.einsum("mij,mkj->ikm", x, x))  # (3, 3, 5), positive definite
    low = mode_factor(c)
    rebuilt = torch.einsum("ijm,kjm->ikm", low, low)
    assert torch.allclose(rebuilt, c, rtol=1e-6)
    assert torch.all(low[0, 1] == 0) and torch.all(low[1, 2] == 0)
    # a rounded, slightly invalid correlation matrix, a zero mode and a zero band
    bad = torch.tensor([[1.0, 0.9994, 0.9937], [0.9994, 1.0, 0.9972], [0.9937, 0.9972, 1.0]])
    assert torch.linalg.eigvalsh(bad)[0] < 0
    cl = torch.stack([bad, torch.zeros(3, 3), torch.diag(torch.tensor([1.0, 0.0, 2.0]))], -1)
    low = mode_factor(cl.to(torch.float64))
    rebuilt = torch.einsum("ijm,kjm->ikm", low, low)
    assert torch.allclose(rebuilt[..., 0], bad.to(torch.float64), atol=2e-4)
    assert torch.diagonal(rebuilt[..., 0]) == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert torch.linalg.eigvalsh(rebuilt[..., 0])[0] > 0
    assert not low[..., 1].any() and not low[1, :, 2].any()
    assert rebuilt[0, 0, 2] == pytest.approx(1.0) and rebuilt[2, 2, 2] == pytest.approx(2.0)
    # Higham projection keeps the diagonal and barely moves a nearly valid matrix
    fixed = nearest_valid_covariance(MEASURED)
    assert np.diag(fixed) == pytest.approx(np.diag(MEASURED))
    assert np.linalg.eigvalsh(fixed)[0] > 0 and fixed == pytest.approx(MEASURED, rel=0.01)
    valid = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert np.array_equal(nearest_valid_covariance(valid), valid)


def test_other_frequencies_follow_the_sed_of_the_nearest_channel():
    """An instrument at 100 / 220 / 545 GHz: 220 uses the 217 columns, 100 the 143 ones and 545
    the 353 ones scaled by the T = 24 K, β = 1.2 modified blackbody; the field draws."""
    bands = tuple(
        Band(f"{nu:g}", nu, 5.0, 1.0, float(units.dbdt_mjysr_per_k(nu)), 0.0)
        for nu in (100.0, 220.0, 545.0)
    )
    inst = Instrument("test", bands, "220")
    mapping = band_mapping(inst.frequencies_ghz, [143.0, 217.0, 353.0])
    f100 = units.modified_blackbody(100.0, 1.2, 24.0, 143.0)
    f545 = units.modified_blackbody(545.0, 1.2, 24.0, 353.0)
    assert mapping == [(0, pytest.approx(f100)), (1, 1.0), (2, pytest.approx(f545))]
    ell = np.array([1000.0])
    ours = clustered_cl_jy2(inst.frequencies_ghz, ell)[..., 0]
    ref = clustered_cl_jy2(INSTRUMENT.frequencies_ghz, ell)[..., 0]
    scale = np.array([f100, 1.0, f545])
    assert ours == pytest.approx(ref * np.outer(scale, scale))
    assert measured_shot_jy2(inst.frequencies_ghz) == pytest.approx(MEASURED * np.outer(scale, scale))
    grid = PatchGeometry(64)
    maps = _maps(CIB(), range(4), geometry=grid, margin=0, instrument=inst)
    assert maps.shape == (4, 3, 64, 64) and torch.isfinite(maps).all()


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="unknown parameters"):
        CIB(infrared_galaxies={"flux_min": 0.003})
    with pytest.raises(ValueError, match="flux_min_jy"):
        CIB(infrared_galaxies={"flux_min_jy": 0.3, "flux_max_jy": 0.1})
    # painting galaxies down to 0.1 mJy leaves less than nothing for the 353 GHz shot term
    with pytest.raises(ValueError, match="353"):
        CIB(infrared_galaxies={"flux_min_jy": 1e-4}).shot_cl_jy2(INSTRUMENT.frequencies_ghz)
