"""The simulator: spectra recovered, noise levels, determinism, non-periodic fields."""

import platform
import sys

import numpy as np
import pytest
import torch

from cenn.config import ConfigError
from cenn.sky.components.cmb.spectrum import lensed_tt
from cenn.sky.flat.spectra import Binning, expected_spectrum, power_spectrum
from cenn.sky.noise import NoiseConfig
from cenn.sky.simulator import PatchSimulator, SimulationConfig


def test_cmb_target_has_the_camb_spectrum_times_the_beam(cmb_only_config):
    """Mean binned spectrum of 96 targets against the exact expectation, per bin within 4σ,
    and the χ² over all bins within its expected range."""
    sim = PatchSimulator(cmb_only_config)
    batch = sim.simulate(range(96))
    bins = Binning.paper(sim.geometry)
    ps = power_spectrum(batch.target[:, 0], sim.geometry, bins, subtract_mean=False).numpy()
    mean, err = ps.mean(0), ps.std(0) / np.sqrt(len(ps))
    ell, cl = lensed_tt()
    beam2 = sim.instrument.target.beam_window(torch.from_numpy(ell)).numpy() ** 2
    model = expected_spectrum(ell, cl * beam2, sim.geometry, bins, generation=sim.grid)
    # above ℓ ≈ 4000 the beam-suppressed CMB is dominated by the window's leakage from low ℓ,
    # which makes those bins one correlated number; test the bins that carry signal
    signal = bins.centres < 4000
    z = ((mean - model) / err)[signal]
    assert np.all(np.abs(z) < 4.0), z
    assert np.mean(z**2) < 2.0
    # and the beam matters: a 143 GHz beam would be rejected at ℓ ~ 2000
    wrong = expected_spectrum(
        ell, cl * sim.instrument.bands[0].beam_window(torch.from_numpy(ell)).numpy() ** 2,
        sim.geometry, bins, generation=sim.grid)
    high = (bins.centres > 1500) & (bins.centres < 3000)
    assert np.all(np.abs((mean - wrong) / err)[high] > 10)


def test_cmb_is_the_same_in_every_band_before_the_beam(cmb_only_config):
    cmb_only_config.instrument.noise_scale = 0.0
    sim = PatchSimulator(cmb_only_config)
    b = sim.simulate([0, 1])
    # 217 and 353 beams differ by 0.02′: the maps agree to well under 1 %
    diff = (b.inputs[:, 2] - b.inputs[:, 1]).std() / b.inputs[:, 1].std()
    assert diff < 0.01
    # the target is the 217 GHz channel without noise
    assert torch.allclose(b.target[:, 0], b.inputs[:, 1], atol=1e-3)


def test_noise_level_per_pixel_and_white_spectrum(small_config):
    small_config.components = {"cmb": {"enabled": False}} | {
        n: {"enabled": False} for n in small_config.resolved_components()}
    small_config.noise = NoiseConfig(model="white")
    sim = PatchSimulator(small_config)
    b = sim.simulate(range(64), with_components=True)
    sigma = b.inputs.std(dim=(0, 2, 3)).numpy()
    assert sigma == pytest.approx([22.0, 31.2, 102.4], rel=0.01)
    bins = Binning.linear(100, 7000, 700)
    cl = power_spectrum(b.inputs, sim.geometry, bins).mean(0).numpy()
    expected = np.array(sim.instrument.noise_uk_per_pixel(sim.geometry)) ** 2 * sim.geometry.pixel_area_sr
    assert cl / expected[:, None] == pytest.approx(np.ones_like(cl), rel=0.05)
    assert torch.equal(b.components["noise"], b.inputs)


def test_samples_are_pure_functions_of_seed_and_index(small_config):
    sim = PatchSimulator(small_config)
    a = sim.simulate([5, 6, 7])
    b = sim.simulate([7, 5])
    assert torch.equal(a.inputs[2], b.inputs[0]) and torch.equal(a.inputs[0], b.inputs[1])
    assert torch.equal(a.target[2], b.target[0])
    assert a.lon[2] == b.lon[0] and a.lat[0] == b.lat[1]
    # different indices and different seeds are independent; compared through second differences, as
    # a 1.6° patch holds few independent large-scale modes: two independent patches' pixels correlate
    # by chance with an RMS of 0.23, their second differences with 0.07
    d = np.diff(a.target[:2, 0].numpy(), n=2, axis=-1)
    r = np.corrcoef(d[0].ravel(), d[1].ravel())[0, 1]
    assert abs(r) < 0.2
    small_config.seed += 1
    c = PatchSimulator(small_config).simulate([5])
    assert not torch.equal(c.inputs[0], a.inputs[0])


def test_large_requests_are_split_without_changing_the_patches(small_config):
    whole = PatchSimulator(small_config, max_batch=None).simulate(range(5), with_components=True)
    split = PatchSimulator(small_config, max_batch=2).simulate(range(5), with_components=True)
    assert split.indices == [0, 1, 2, 3, 4] and split.inputs.shape == whole.inputs.shape
    torch.testing.assert_close(split.inputs, whole.inputs, rtol=0, atol=1e-3)
    # the same draws; MKL's batched FFTs may round float32 differently by batch size (on some CPUs)
    torch.testing.assert_close(split.target, whole.target, rtol=0, atol=1e-3)
    assert torch.equal(split.lat, whole.lat)
    assert set(split.components) == set(whole.components)
    torch.testing.assert_close(split.components["dust"], whole.components["dust"], rtol=1e-5, atol=1e-4)


def test_cpu_allocator_tuning_can_be_switched_off(monkeypatch):
    from cenn import runtime

    monkeypatch.setattr(runtime, "_tuned", False)
    monkeypatch.setenv("CENN_NO_MALLOC_TUNING", "1")
    assert runtime.tune_cpu_allocator() is False
    monkeypatch.delenv("CENN_NO_MALLOC_TUNING")
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert runtime.tune_cpu_allocator() is True


def test_fields_are_not_periodic(cmb_only_config):
    """Opposite edges of a patch differ as much as distant rows, far more than neighbours."""
    sim = PatchSimulator(cmb_only_config)
    t = sim.simulate(range(32)).target[:, 0]
    n = t.shape[-1]
    edge = ((t[:, 0] - t[:, -1]) ** 2).mean()
    neighbours = ((t[:, 1:] - t[:, :-1]) ** 2).mean()
    far = ((t[:, : n // 2] - t[:, n // 2 :]) ** 2).mean()
    assert edge > 20 * neighbours
    assert edge > 0.5 * far


def test_components_sum_to_inputs(small_config):
    sim = PatchSimulator(small_config)
    b = sim.simulate([0, 1], with_components=True)
    total = sum(b.components.values())
    assert torch.allclose(total, b.inputs, atol=1e-2 * b.inputs.abs().max().item() * 1e-3 + 1e-2)
    assert set(b.components) == {*sim.component_names, "noise"}


def test_patch_centres_follow_the_latitude_band(small_config):
    small_config.region.lat_min, small_config.region.lat_max = 30.0, 90.0
    sim = PatchSimulator(small_config)
    lat = sim.simulate(range(400)).lat.numpy()
    assert np.all(np.abs(lat) >= 30.0) and np.all(np.abs(lat) <= 90.0)
    # uniform in area: sin|b| uniform on [0.5, 1], mean 0.75
    assert np.mean(np.sin(np.radians(np.abs(lat)))) == pytest.approx(0.75, abs=0.02)
    assert 0.4 < np.mean(lat > 0) < 0.6


@pytest.mark.parametrize(("data", "match"), [
    ({"components": {"nonsense": {}}}, "unknown component"),
    ({"components": {"cmb": {"colour": 1}}}, "colour"),
    ({"region": {"lat_min": 40.0, "lat_max": 20.0}}, "latitude"),
    ({"instrument": {"noise_scale": -1.0}}, "noise_scale"),
    ({"geometry": {"npix": "big"}}, "integer"),
    ({"seeds": 3}, "unknown key"),
])
def test_bad_configuration_is_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        SimulationConfig.from_dict(data).resolved_components()


def _second_differences(maps: torch.Tensor) -> np.ndarray:
    """Second differences along x of every map, flattened: few large-scale modes fit in a 1.6° patch,
    so pixels of independent maps correlate by chance far more than their second differences."""
    return np.diff(maps.double().numpy(), n=2, axis=-1).ravel()


def test_the_region_is_part_of_every_random_key(small_config):
    """One seed in two latitude bands gives two independent skies (the CMB, noise and CIB were the
    same maps at other positions before); one seed in one band gives the same bytes every time."""
    small_config.region.lat_min, small_config.region.lat_max = 5.0, 30.0
    low = PatchSimulator(small_config).simulate(range(8), with_components=True)
    again = PatchSimulator(small_config).simulate(range(8), with_components=True)
    small_config.region.lat_min, small_config.region.lat_max = 30.0, 90.0
    high = PatchSimulator(small_config).simulate(range(8), with_components=True)
    assert torch.equal(low.inputs, again.inputs) and torch.equal(low.target, again.target)
    assert all(torch.equal(low.components[k], again.components[k]) for k in low.components)
    for name, bound in (("cmb", 0.1), ("cib", 0.1), ("noise", 0.02)):
        r = np.corrcoef(_second_differences(low.components[name]), _second_differences(high.components[name]))
        assert abs(r[0, 1]) < bound, (name, r[0, 1])
    assert not torch.equal(low.components["radio"], high.components["radio"])


def test_the_whole_sky_keeps_its_draws_and_equivalent_regions_share_a_key():
    from cenn.sky.rng import stream_seed
    from cenn.sky.simulator import RegionConfig
    from cenn.sky.sky_split import SkySplit

    assert RegionConfig().random_key() is None
    assert stream_seed(7, 3, "cmb") == stream_seed(7, 3, "cmb", None) == 2600817440100463912  # as before
    keys = {RegionConfig(5.0, 30.0).random_key(), RegionConfig(strata=[0.0, 5.0, 90.0]).random_key(),
            RegionConfig(sky_split=SkySplit("train")).random_key(),
            RegionConfig(sky_split=SkySplit("validation")).random_key()}
    assert len(keys) == 4 and None not in keys
    assert RegionConfig(5, 30).random_key() == RegionConfig(5.0, 30.0).random_key()
    assert (RegionConfig(strata=[0, 5, 90], strata_weights=[2, 2]).random_key()
            == RegionConfig(strata=[0.0, 5.0, 90.0]).random_key())
