"""Modes larger than the patch: drawn exactly on the sphere, and carried by the CMB target, whose patch
means and mean gradients match those of 256 × 90″ patches cut from a full-sky CMB."""

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from scipy.special import eval_legendre

from cenn.config import ConfigError
from cenn.sky.components import COMPONENTS
from cenn.sky.components.cmb.large_scales import LargeScaleField, harmonic_degrees, low_weight, real_harmonics
from cenn.sky.components.cmb.spectrum import lensed_tt
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.flat.spectra import Binning, expected_spectrum, power_spectrum
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import PatchSimulator, SimulationConfig

PATCHES = 512
"""CMB-only targets simulated with the large-scale modes: the RMS of their means is known to 3 %, of
their gradients to 2 % (x and y)."""
CHUNK = 128
SUBGRID = 32
"""The expectation sums the correlation function over 32 × 32 block centres of the patch."""
BINS = Binning.linear(200, 2000, 100)


def _unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _cmb_only(large_scales: bool) -> PatchSimulator:
    components = {name: {"enabled": name == "cmb"} for name in COMPONENTS}
    components["cmb"]["large_scales"] = large_scales
    return PatchSimulator(SimulationConfig(seed=11, components=components))


def _target_statistics(sim: PatchSimulator, patches: int) -> dict[str, np.ndarray]:
    """Per target: ``mean`` (µK), least-squares ``slope`` along x and y (µK per degree of flat
    offset, (patches, 2)) and the binned ``spectrum`` (patch mean removed)."""
    n = sim.geometry.npix
    x = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * sim.geometry.pixel_deg
    stats: dict[str, list[torch.Tensor]] = {"mean": [], "slope": [], "spectrum": []}
    for start in range(0, patches, CHUNK):
        t = sim.simulate(range(start, start + CHUNK)).target[:, 0].double()
        stats["mean"].append(t.mean(dim=(-2, -1)))
        moments = torch.stack([(t * x).sum(dim=(-2, -1)), (t * x[:, None]).sum(dim=(-2, -1))], dim=-1)
        stats["slope"].append(moments / (n * (x**2).sum()))
        stats["spectrum"].append(power_spectrum(t, sim.geometry, BINS))
    return {k: torch.cat(v).numpy() for k, v in stats.items()}


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2)))


def _sphere_expectation(sim: PatchSimulator) -> tuple[float, float]:
    """RMS of the target's patch mean (µK) and of one component of its least-squares mean gradient
    (µK/deg) over a patch on the sphere: wᵀΞw with Ξ the full-sky correlation function
    ξ(θ) = Σ_ℓ (2ℓ+1)/4π C_ℓ B_ℓ² P_ℓ(cos θ), every ℓ of the spectrum, between the block centres of
    the patch placed on the sphere by the package's projection (the pixel window is negligible)."""
    ell, cl = lensed_tt()
    beam = sim.instrument.target.beam_window(torch.from_numpy(ell)).numpy()
    block = sim.geometry.npix // SUBGRID
    centres = PatchGeometry(SUBGRID, sim.geometry.pixel_arcsec * block)
    lon, lat = pixel_coordinates(torch.tensor([40.0]), torch.tensor([-50.0]), centres)
    n = _unit_vectors(lon[0].numpy().ravel(), lat[0].numpy().ravel())
    separation = np.arccos(np.clip(n @ n.T, -1.0, 1.0))
    theta = np.linspace(0.0, separation.max(), 4001)
    xi_table = legendre.legval(np.cos(theta), (2 * ell + 1) / (4 * math.pi) * cl * beam**2)
    xi = np.interp(separation, theta, xi_table)
    mean_weights = np.full(SUBGRID**2, 1.0 / SUBGRID**2)
    x = np.degrees(centres.offsets_rad().numpy())
    slope_weights = np.tile(x, SUBGRID) / (SUBGRID * np.sum(x**2))
    return math.sqrt(mean_weights @ xi @ mean_weights), math.sqrt(slope_weights @ xi @ slope_weights)


@pytest.fixture(scope="module")
def measured():
    """Expected (mean, slope) RMS on the sphere, and target statistics with and without the modes."""
    sim = _cmb_only(True)
    return {
        "expected": _sphere_expectation(sim),
        "sim": sim,
        "on": _target_statistics(sim, PATCHES),
        "off": _target_statistics(_cmb_only(False), PATCHES // 4),
    }


def test_real_harmonics_obey_the_addition_theorem():
    """Σ_m Y_ℓm(n₁) Y_ℓm(n₂) = (2ℓ+1)/4π P_ℓ(n₁·n₂) for every ℓ ≤ 100, anywhere on the sphere: the
    basis gives every field exactly the covariance of its spectrum."""
    rng = np.random.default_rng(0)
    theta, phi = np.arccos(rng.uniform(-1.0, 1.0, 40)), rng.uniform(0.0, 2 * math.pi, 40)
    n = _unit_vectors(np.degrees(phi), 90.0 - np.degrees(theta))
    cos_separation = np.clip(n @ n.T, -1.0, 1.0)
    harmonics = real_harmonics(100, theta, phi)
    degrees = harmonic_degrees(100)
    for ell in range(101):
        y = harmonics[:, degrees == ell]
        expected = (2 * ell + 1) / (4 * math.pi) * eval_legendre(ell, cos_separation)
        np.testing.assert_allclose(y @ y.T, expected, rtol=0, atol=1e-10 * (2 * ell + 1))


def _low_spectrum(lmax: int) -> np.ndarray:
    """The CMB spectrum's part drawn on the sphere, C_ℓ w(ℓ) for ℓ = 0..lmax."""
    ell, cl = lensed_tt()
    return (cl * low_weight(ell, lmax))[: lmax + 1]


def test_fields_are_the_harmonic_sum_at_every_pixel():
    """The interpolation from the nodes loses nothing: pixels of the padded default grid, placed on
    the sphere by cenn.sky.flat.projection around the pole, hold Σ a_ℓm Y_ℓm to float32 precision."""
    grid = PatchGeometry(256, 90.0).padded(64)
    cl_low = _low_spectrum(100)
    field = LargeScaleField(cl_low, grid)
    coefficients = torch.randn(2, field.n_terms, generator=torch.Generator().manual_seed(0))
    maps = torch.fft.irfft2(field.transform(coefficients), s=grid.shape)[:, 0].double().numpy()
    lon, lat = pixel_coordinates(torch.tensor([270.0]), torch.tensor([90.0]), grid)
    rows, cols = np.random.default_rng(1).integers(0, grid.npix, (2, 300))
    theta, phi = np.radians(90.0 - lat[0, rows, cols].numpy()), np.radians(lon[0, rows, cols].numpy())
    harmonics = real_harmonics(100, theta, phi) * np.sqrt(cl_low[harmonic_degrees(100)])
    direct = harmonics @ coefficients.double().numpy().T
    assert np.abs(maps[:, rows, cols].T - direct).max() < 1e-5 * direct.std()


def test_a_sample_is_the_same_in_any_batch():
    """On the CPU (seed, index) fixes a sample's field to the last bit, whatever the batch; the
    one-at-a-time products agree with the batched ones used on accelerators."""
    field = LargeScaleField(_low_spectrum(100), PatchGeometry(64, 90.0).padded(16))
    batch = field.fourier(SampleRandom(5, [3, 4, 9]), "cmb_large")
    assert torch.equal(batch[2], field.fourier(SampleRandom(5, [9]), "cmb_large")[0])
    batched = field.transform(SampleRandom(5, [3, 4, 9]).normal("cmb_large", (field.n_terms,)))
    torch.testing.assert_close(batched, batch, rtol=0, atol=1e-5 * batch.abs().max().item())


def test_patch_means_and_gradients_match_the_sphere(measured):
    """256 × 90″ targets: patch-mean RMS ≈ 47 µK and mean-gradient RMS ≈ 10.4 µK/deg, as patches cut
    from a full-sky CMB have, within 10 %; without the modes the mean RMS is ≈ 13 µK."""
    mean, slope = measured["expected"]
    assert 45.0 < mean < 50.0 and 9.5 < slope < 11.5  # the expectation itself (Planck 2018, 4.9′ beam)
    assert _rms(measured["on"]["mean"]) == pytest.approx(mean, rel=0.10)
    assert _rms(measured["on"]["slope"]) == pytest.approx(slope, rel=0.10)
    assert _rms(measured["off"]["mean"]) < 0.4 * mean


def test_high_multipoles_are_unchanged(measured):
    """At 200 < ℓ < 2000 the targets' spectrum is the CMB's times the beam (per bin within 4σ, χ²
    within its range, as in test_simulator), and the same seeds without the modes give it within 1 %."""
    sim, on, off = measured["sim"], measured["on"]["spectrum"], measured["off"]["spectrum"]
    ell, cl = lensed_tt()
    beam2 = sim.instrument.target.beam_window(torch.from_numpy(ell)).numpy() ** 2
    model = expected_spectrum(ell, cl * beam2, sim.geometry, BINS, generation=sim.grid)
    z = (on.mean(0) - model) / (on.std(0) / np.sqrt(len(on)))
    assert np.all(np.abs(z) < 4.0), z
    assert np.mean(z**2) < 2.0
    np.testing.assert_allclose(on[: len(off)].mean(0), off.mean(0), rtol=0.01)


def test_parameters_are_recorded_and_checked():
    resolved = SimulationConfig().to_dict()["components"]["cmb"]
    assert resolved["large_scales"] is True and resolved["large_scale_lmax"] == 100
    for bad in ({"large_scale_lmax": 2}, {"large_scales": "yes"}):
        with pytest.raises(ConfigError, match="cmb"):
            SimulationConfig(components={"cmb": bad}).to_dict()
