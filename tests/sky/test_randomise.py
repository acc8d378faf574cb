"""Randomised skies: per-patch draws within their ranges, used by the components, refused when
malformed; the nominal sky unchanged."""

import math

import numpy as np
import pytest
import torch

from cenn.config import ConfigError
from cenn.sky.components import COMPONENTS
from cenn.sky.randomise import check_ranges, draw_parameters
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import GeometryConfig, PatchSimulator, SimulationConfig

GEOMETRY = GeometryConfig(npix=32, margin=8)


def _only(name: str, **extra) -> SimulationConfig:
    components = {n: {"enabled": n == name} for n in COMPONENTS}
    config = SimulationConfig(seed=2, geometry=GEOMETRY, components=components, **extra)
    config.instrument.noise_scale = 0.0
    return config


def test_draws_stay_in_their_ranges_and_amplitudes_are_log_uniform():
    ranges = check_ranges({"dust": {"beta": [1.3, 1.8], "amplitude": [0.3, 3.0]}})
    draws = draw_parameters(SampleRandom(5, range(4000)), ranges)["dust"]
    beta, amplitude = draws["beta"].numpy(), draws["amplitude"].numpy()
    assert beta.min() >= 1.3 and beta.max() <= 1.8
    assert amplitude.min() >= 0.3 and amplitude.max() <= 3.0
    assert np.mean(beta) == pytest.approx(1.55, abs=0.01)  # uniform: mean at the middle
    assert np.median(amplitude) == pytest.approx(math.sqrt(0.3 * 3.0), rel=0.05)  # log-uniform
    assert np.mean(amplitude < 1.0) == pytest.approx(0.5, abs=0.03)


def test_extremes_draw_that_fraction_of_patches_in_the_outer_quarters_of_every_range():
    table = {"dust": {"beta": [1.3, 1.8], "amplitude": [0.5, 2.0]}, "cib": {"amplitude": [0.5, 1.5]}}
    plain = draw_parameters(SampleRandom(5, range(4000)), check_ranges(table))
    draws = draw_parameters(SampleRandom(5, range(4000)), check_ranges(table), extremes=0.4)
    u = {"beta": (draws["dust"]["beta"].numpy() - 1.3) / 0.5,  # each range's position in [0, 1]
         "dust": np.log(draws["dust"]["amplitude"].numpy() / 0.5) / math.log(4.0),
         "cib": np.log(draws["cib"]["amplitude"].numpy() / 0.5) / math.log(3.0)}
    outer = {name: (v < 0.25) | (v >= 0.75) for name, v in u.items()}
    all_outer = outer["beta"] & outer["dust"] & outer["cib"]
    # a patch at the edges has every parameter outside the middle half; the others are uniform, so
    # all three land there by chance in 1/8 of them: 0.4 + 0.6 / 8 of the patches
    assert np.mean(all_outer) == pytest.approx(0.4 + 0.6 / 8, abs=0.025)
    assert all(v.min() >= 0.0 and v.max() <= 1.0 for v in u.values())
    moved = draws["dust"]["beta"] != plain["dust"]["beta"]
    assert np.mean(moved.numpy()) == pytest.approx(0.4, abs=0.025)  # the others keep their draws
    none = draw_parameters(SampleRandom(5, range(8)), check_ranges(table), extremes=0.0)
    assert torch.equal(none["cib"]["amplitude"], plain["cib"]["amplitude"][:8])


def test_each_parameter_has_its_own_stream():
    one = draw_parameters(SampleRandom(5, range(8)), check_ranges({"dust": {"beta": [1.3, 1.8]}}))
    two = draw_parameters(SampleRandom(5, range(8)),
                          check_ranges({"cib": {"amplitude": [0.5, 1.5]}, "dust": {"beta": [1.3, 1.8]}}))
    assert torch.equal(one["dust"]["beta"], two["dust"]["beta"])


def test_amplitude_multiplies_the_component_maps_exactly():
    nominal = PatchSimulator(_only("cib")).simulate(range(3))
    doubled = PatchSimulator(_only("cib", randomise={"cib": {"amplitude": [2.0, 2.0]}})).simulate(range(3))
    assert torch.allclose(doubled.inputs, 2.0 * nominal.inputs, rtol=1e-5, atol=1e-4)
    assert doubled.parameters["cib.amplitude"].tolist() == [2.0, 2.0, 2.0]


def test_a_drawn_sed_parameter_is_the_one_the_component_uses():
    fixed = _only("dust")
    fixed.components["dust"]["beta"] = 1.7
    drawn = _only("dust", randomise={"dust": {"beta": [1.7, 1.7]}})
    assert torch.equal(PatchSimulator(fixed).simulate(range(2)).inputs,
                       PatchSimulator(drawn).simulate(range(2)).inputs)
    wider = PatchSimulator(_only("dust", randomise={"dust": {"beta": [1.3, 1.8]}})).simulate(range(64))
    # 353/143 dust ratio steepens with β: the drawn β must order the patches' band ratios
    ratio = (wider.inputs[:, 2].mean((1, 2)) / wider.inputs[:, 0].mean((1, 2))).numpy()
    beta = wider.parameters["dust.beta"].numpy()
    assert np.corrcoef(beta, np.log(ratio))[0, 1] > 0.5


@pytest.mark.parametrize(("component", "parameter"),
                         [(c, p) for c in sorted(COMPONENTS) for p in COMPONENTS[c].randomisable])
def test_every_randomisable_parameter_drawn_at_one_value_equals_that_value_configured(component, parameter):
    value = getattr(COMPONENTS[component](), parameter)
    value = value * 1.1 if value else 0.1  # not the default, so a draw that is ignored shows
    stokes = "IQU" if COMPONENTS[component].polarized else "I"
    fixed = _only(component, stokes=stokes)
    fixed.components[component][parameter] = value
    drawn = _only(component, stokes=stokes, randomise={component: {parameter: [value, value]}})
    fixed_batch, drawn_batch = (PatchSimulator(c).simulate(range(2)) for c in (fixed, drawn))
    assert torch.equal(fixed_batch.inputs, drawn_batch.inputs)
    if stokes == "IQU":
        assert torch.equal(fixed_batch.polarization, drawn_batch.polarization)


def test_a_drawn_dust_polarization_fraction_scales_its_q_and_u():
    sims = {p: PatchSimulator(_only("dust", stokes="IQU",
                                    randomise={"dust": {"pol_fraction_median": [p, p]}}))
            for p in (0.005, 0.015)}
    qu = {p: sim.simulate(range(4)).polarization for p, sim in sims.items()}
    # p = p_med e^{σ g} capped at 22 %: far below the cap, Q and U scale with the median exactly
    assert torch.allclose(qu[0.015], 3.0 * qu[0.005], rtol=1e-4, atol=1e-4)  # µK


def test_a_drawn_noise_amplitude_scales_sigma_and_the_noise_it_describes():
    off = {n: {"enabled": False} for n in COMPONENTS}
    config = SimulationConfig(seed=4, geometry=GEOMETRY, components=off,
                              randomise={"noise": {"amplitude": [0.5, 2.0]}})
    nominal = PatchSimulator(SimulationConfig(seed=4, geometry=GEOMETRY, components=off))
    batch, base = PatchSimulator(config).simulate(range(64)), nominal.simulate(range(64))
    amplitude = batch.parameters["noise.amplitude"]
    assert amplitude.min() >= 0.5 and amplitude.max() <= 2.0 and amplitude.std() > 0.2
    assert torch.allclose(batch.noise_sigma, base.noise_sigma * amplitude.float()[:, None, None, None],
                          rtol=1e-6)
    z = (batch.inputs / batch.noise_sigma).numpy()  # noise only: unit variance whatever the draw
    assert z.std() == pytest.approx(1.0, abs=0.01)
    # the same unit draws, scaled: the realised noise is the nominal sky's times the drawn factor
    assert torch.allclose(batch.inputs, base.inputs * amplitude.float()[:, None, None, None], rtol=1e-5)


def test_a_drawn_dust_lognormal_width_sets_the_small_scale_contrast():
    sims = {ref: PatchSimulator(_only("dust", randomise={"dust": {"sigma_g_ref": [ref, ref]}}))
            for ref in (0.3, 0.6)}
    # Patches at |b| ~ 50°, where Ī is faint and σ_g = σ_ref (Ī / I_ref)^γ stays above its floor
    # only for the larger reference: the log-map's pixel scatter must grow with σ_ref.
    contrast = {}
    for ref, sim in sims.items():
        log_map = torch.log(sim.simulate(range(16)).inputs[:, 2].clamp_min(1e-6))
        contrast[ref] = float(log_map.std(dim=(1, 2)).median())
    assert contrast[0.6] > 1.3 * contrast[0.3]


@pytest.mark.parametrize(("table", "message"), [
    ({"ghost": {"amplitude": [1, 2]}}, "unknown component"),
    ({"noise": {"beta": [1, 2]}}, "cannot draw 'beta'"),
    ({"dust": {"slope_faint": [-3, -2]}}, "cannot draw 'slope_faint'"),
    ({"dust": {"beta": [1.8, 1.3]}}, "low <= high"),
    ({"dust": {"beta": [1.3]}}, r"\[low, high\]"),
    ({"dust": {"beta": "wide"}}, r"\[low, high\]"),
    ({"cib": {"amplitude": [0.0, 2.0]}}, "positive"),
    ({"dust": [1, 2]}, "table of parameter"),
    ({"extremes": 1.5}, "fraction of the patches"),
    ({"extremes": "half"}, "fraction of the patches"),
])
def test_bad_ranges_are_refused_before_any_simulation(table, message):
    with pytest.raises(ConfigError, match=message):
        SimulationConfig(randomise=table)
