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


@pytest.mark.parametrize("name", ["minmax", "scale", "identity"])
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
    with pytest.raises(ValueError, match=r"unknown normalization 'zscore'.*identity, minmax, scale"):
        build_normalization("zscore")
    with pytest.raises(ValueError, match=r"'minmax' has no parameter\(s\) scale_uk.*reference_channel"):
        build_normalization("minmax", scale_uk=3.0)
    assert available_normalizations() == ["identity", "minmax", "scale"]


@pytest.mark.parametrize(("name", "params"), [("minmax", {"reference_channel": 2}),
                                              ("scale", {"scale_uk": 42.0}), ("identity", {})])
def test_params_rebuild_an_equal_transform(name, params):
    transform = build_normalization(name, **params)
    assert transform.name == name and transform.params() == params
    assert build_normalization(transform.name, **transform.params()) == transform
