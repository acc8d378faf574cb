"""Noise: the scan's hit pattern (ecliptic geometry checked against healpy), σ per pixel, and
realised noise that has exactly the stated σ."""

import healpy as hp
import numpy as np
import pytest
import torch

from cenn.sky.components import COMPONENTS
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument
from cenn.sky.noise import NoiseConfig, NoiseModel, galactic_to_ecliptic, hit_map
from cenn.sky.simulator import GeometryConfig, PatchSimulator, SimulationConfig

INSTRUMENT = load_instrument("planck_hfi")
NOMINAL = np.array([22.0, 31.2, 102.4])  # µK per 90″ pixel: 0.55 / 0.78 / 2.56 µK deg over 0.025°


def _galactic(lon_ecl: float, lat_ecl: float) -> tuple[float, float]:
    """Galactic (l, b) in degrees of an ecliptic direction, by healpy (independent of cenn)."""
    theta, phi = hp.rotator.Rotator(coord=["E", "G"])(np.radians(90.0 - lat_ecl), np.radians(lon_ecl))
    return float(np.degrees(phi)) % 360.0, 90.0 - float(np.degrees(theta))


def test_galactic_to_ecliptic_rotation_agrees_with_healpy():
    rotation = galactic_to_ecliptic()
    assert np.allclose(rotation, hp.rotator.Rotator(coord=["G", "E"]).mat, atol=5e-7)
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    # the north ecliptic pole lies at Galactic (96.38°, 29.81°)
    pole = rotation.T @ np.array([0.0, 0.0, 1.0])
    lon, lat = np.degrees(np.arctan2(pole[1], pole[0])) % 360, np.degrees(np.arcsin(pole[2]))
    assert (lon, lat) == pytest.approx((96.38, 29.81), abs=0.01)


def test_hits_are_deep_at_the_ecliptic_poles_and_vary_several_fold():
    h = hit_map(NoiseConfig())
    sin_beta = (np.arange(h.shape[0]) + 0.5) / h.shape[0] * 2.0 - 1.0
    plane = h[np.abs(sin_beta) < np.sin(np.radians(10.0))].mean()
    caps = h[np.abs(sin_beta) > np.sin(np.radians(80.0))].mean()
    assert h.mean() == pytest.approx(1.0)
    assert caps / plane > 4.0
    assert np.percentile(h, 95) / np.percentile(h, 5) > 3.0  # "hits vary several-fold"
    # stripes along the scan: at fixed ecliptic latitude the hits vary with longitude
    row = h[np.argmin(np.abs(sin_beta))]
    assert row.std() / row.mean() > 0.1


def _noise_only(model: str, seed: int = 4, npix: int = 64) -> SimulationConfig:
    off = {name: {"enabled": False} for name in COMPONENTS}
    return SimulationConfig(seed=seed, geometry=GeometryConfig(npix=npix, margin=8), components=off,
                            noise=NoiseConfig(model=model))


def test_realised_noise_over_noise_sigma_has_unit_variance():
    batch = PatchSimulator(_noise_only("scan")).simulate(range(48))
    ratio = (batch.inputs / batch.noise_sigma).double()
    assert float(ratio.mean()) == pytest.approx(0.0, abs=0.01)
    assert ratio.var(dim=(0, 2, 3)).numpy() == pytest.approx([1.0, 1.0, 1.0], abs=0.01)
    # σ varies within and between patches, and the bands keep their ratio
    sigma = batch.noise_sigma.double()
    assert float(sigma[:, 1].max() / sigma[:, 1].min()) > 2.0
    assert torch.allclose(sigma[:, 2] / sigma[:, 1], torch.full_like(sigma[:, 1], 102.4 / 31.2), rtol=1e-3)


def test_sky_average_noise_variance_is_the_nominal_level():
    """Patch centres uniform on the sphere: the mean of σ² over all pixels is each band's nominal σ²."""
    model = NoiseModel(NoiseConfig(), INSTRUMENT, PatchGeometry(16, 90.0))
    rng = np.random.default_rng(1)
    lon = torch.from_numpy(rng.uniform(0, 360, 4000))
    lat = torch.from_numpy(np.degrees(np.arcsin(rng.uniform(-1, 1, 4000))))
    sigma = model.sigma(lon, lat).double()
    rms = sigma.pow(2).mean(dim=(0, 2, 3)).sqrt().numpy()
    assert rms == pytest.approx(NOMINAL, rel=0.03)


def test_a_patch_at_the_ecliptic_pole_is_deeper_than_one_on_the_ecliptic():
    model = NoiseModel(NoiseConfig(), INSTRUMENT, PatchGeometry(32, 90.0))
    where = [_galactic(0.0, 88.0), _galactic(120.0, 0.0), _galactic(300.0, 0.0)]
    lon = torch.tensor([w[0] for w in where], dtype=torch.float64)
    lat = torch.tensor([w[1] for w in where], dtype=torch.float64)
    sigma = model.relative_sigma(lon, lat).mean(dim=(1, 2, 3)).numpy()
    assert sigma[0] < 0.75 * min(sigma[1], sigma[2])


def test_white_model_is_uniform_at_the_nominal_level():
    batch = PatchSimulator(_noise_only("white")).simulate(range(4))
    expected = torch.tensor(NOMINAL, dtype=torch.float32)[None, :, None, None].expand_as(batch.noise_sigma)
    assert torch.allclose(batch.noise_sigma, expected, rtol=2e-3)
    assert len(torch.unique(batch.noise_sigma[:, 1])) == 1


def test_noise_scale_multiplies_sigma():
    config = _noise_only("scan")
    config.instrument.noise_scale = 5.0
    scaled = PatchSimulator(config).simulate(range(2)).noise_sigma
    nominal = PatchSimulator(_noise_only("scan")).simulate(range(2)).noise_sigma
    assert torch.allclose(scaled, 5.0 * nominal, rtol=1e-6)


@pytest.mark.parametrize(("field", "value"), [
    ("model", "pink"), ("opening_angle_deg", 120.0), ("precession_amplitude_deg", -1.0),
    ("days", 0.0), ("rings_per_day", 2), ("dwell_scatter", 5.0), ("min_relative_hits", 0.0),
])
def test_bad_noise_parameters_are_refused(field, value):
    with pytest.raises(ValueError, match=f"noise.{field}"):
        NoiseConfig(**{field: value})
