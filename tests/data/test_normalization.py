"""Normalisation transforms between µK_CMB maps and network space."""

import pytest
import torch

from cenn.data.normalization import available_normalizations, build_normalization


@pytest.fixture
def maps() -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (3, 3, 16, 16) with per-channel offsets and spreads in µK, and a CMB-like target."""
    g = torch.Generator().manual_seed(0)
    target = 80.0 * torch.randn(3, 1, 16, 16, generator=g)
    spread = torch.tensor([1.0, 3.0, 40.0])[:, None, None]
    offset = torch.tensor([-20.0, 500.0, 3000.0])[:, None, None]
    inputs = target + spread * 100.0 * torch.rand(3, 3, 16, 16, generator=g) + offset
    return inputs, target


def _round_trip_error(name: str, inputs: torch.Tensor, target: torch.Tensor) -> float:
    transform = build_normalization(name)
    stats = transform.fit(inputs)
    back = transform.denormalize_target(transform.normalize_target(target, stats), stats)
    assert back.dtype == target.dtype and back.shape == target.shape
    span = target.amax(dim=(1, 2, 3)) - target.amin(dim=(1, 2, 3))
    return ((back - target).abs().amax(dim=(1, 2, 3)) / span).max().item()


def test_minmax_inputs_span_zero_to_one_per_patch_and_channel(maps):
    inputs, _ = maps
    transform = build_normalization("minmax")
    stats = transform.fit(inputs)
    assert stats.shape == (3, 6) and stats.dtype == inputs.dtype
    normalized = transform.normalize_inputs(inputs, stats)
    assert normalized.shape == inputs.shape and normalized.dtype == inputs.dtype
    flat = normalized.flatten(2)
    assert torch.all(flat.amin(dim=2) == 0) and torch.all(flat.amax(dim=2) == 1)


def test_minmax_scales_the_target_with_the_reference_channel(maps):
    inputs, target = maps
    transform = build_normalization("minmax")  # reference channel 1: 217 GHz in 143/217/353
    normalized = transform.normalize_target(target, transform.fit(inputs))
    lo, hi = inputs[0, 1].min().item(), inputs[0, 1].max().item()
    assert normalized[0, 0, 5, 7].item() == pytest.approx((target[0, 0, 5, 7].item() - lo) / (hi - lo))
    other = build_normalization("minmax", reference_channel=2)
    lo2, hi2 = inputs[0, 2].min().item(), inputs[0, 2].max().item()
    assert other.normalize_target(target, other.fit(inputs))[0, 0, 5, 7].item() == pytest.approx(
        (target[0, 0, 5, 7].item() - lo2) / (hi2 - lo2))


@pytest.mark.parametrize("name", ["minmax", "scale", "identity", "asinh"])
def test_target_round_trip_is_exact_to_float32_precision(maps, name):
    assert _round_trip_error(name, *maps) < 1e-6


def test_constant_channel_is_rejected_naming_patch_and_channel(maps):
    inputs, _ = maps
    inputs[2, 0] = 7.0
    with pytest.raises(ValueError, match="input channel 0 of patch 2 is constant"):
        build_normalization("minmax").fit(inputs)


def test_missing_reference_channel_is_rejected(maps):
    with pytest.raises(ValueError, match="reference_channel 5"):
        build_normalization("minmax", reference_channel=5).fit(maps[0])


def test_scale_divides_by_the_fixed_scale(maps):
    inputs, target = maps
    transform = build_normalization("scale", scale_uk=50.0)
    stats = transform.fit(inputs)
    assert stats.shape == (3, 0)
    torch.testing.assert_close(transform.normalize_inputs(inputs, stats), inputs / 50.0)
    torch.testing.assert_close(transform.normalize_target(target, stats), target / 50.0)


def test_unknown_name_and_parameter_are_reported():
    with pytest.raises(ValueError, match=r"unknown normalization 'zscore'.*asinh, identity, minmax, scale"):
        build_normalization("zscore")
    with pytest.raises(ValueError, match=r"'minmax' has no parameter\(s\) scale_uk.*reference_channel"):
        build_normalization("minmax", scale_uk=3.0)
    assert available_normalizations() == ["asinh", "identity", "minmax", "scale"]


@pytest.mark.parametrize(("name", "params"), [("minmax", {"reference_channel": 2}),
                                              ("scale", {"scale_uk": 42.0}), ("identity", {})])
def test_params_rebuild_an_equal_transform(name, params):
    transform = build_normalization(name, **params)
    assert transform.name == name and transform.params() == params
    assert build_normalization(transform.name, **transform.params()) == transform


def test_asinh_compresses_inputs_on_one_scale_and_keeps_the_target_linear():
    transform = build_normalization("asinh", scale_uk=50.0)
    inputs = torch.tensor([1.0, -1.0, 50.0, -5.0e4, 1.0e5]).reshape(1, 5, 1, 1)
    x = transform.normalize_inputs(inputs, transform.fit(inputs)).flatten()
    # linear (x / 50) well below the scale, sign kept, logarithmic far above: asinh(2000) = ln(4000) + ...
    assert x[0].item() == pytest.approx(0.02, rel=1e-4) and x[1].item() == pytest.approx(-0.02, rel=1e-4)
    assert x[2].item() == pytest.approx(0.881374, rel=1e-5)
    assert x[3].item() == pytest.approx(-7.6009027, rel=1e-6)
    assert x[4].item() == pytest.approx(8.2940496, rel=1e-6)
    target = torch.tensor([[[[-150.0, 25.0]]]])
    assert transform.normalize_target(target, transform.fit(inputs)).flatten().tolist() == [-3.0, 0.5]


def test_asinh_keeps_the_cmb_equal_in_every_band():
    """One scale for all bands: a map equal in every band stays equal after the transform."""
    transform = build_normalization("asinh")
    cmb = 120.0 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    x = transform.normalize_inputs(cmb.expand(2, 3, 8, 8), transform.fit(cmb))
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_asinh_refuses_a_scale_that_is_not_positive(scale):
    with pytest.raises(ValueError, match="scale_uk must be a finite, positive"):
        build_normalization("asinh", scale_uk=scale)
