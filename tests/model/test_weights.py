"""Weights files: round trip, damaged files, and checking inputs against the card."""

import pytest
import torch
from safetensors.torch import save_file

from cenn.model import (
    WeightsCard,
    WeightsMismatchError,
    build_model,
    check_inputs,
    load_weights,
    save_weights,
)

PARAMS = {"output_activation": "identity"}


def _card(**changes) -> WeightsCard:
    fields = dict(
        architecture="cenn-small", architecture_params=PARAMS, in_channels=3,
        frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.3, 5.0, 4.9], target_frequency_ghz=217.0,
        npix=256, pixel_arcsec=90.0, normalization="minmax", normalization_params={"reference_channel": 1},
        training={"dataset": "train.zarr", "seed": 7, "epochs": 3}, metrics={"val_mse": 0.01},
    )
    return WeightsCard(**(fields | changes))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("cenn-small", 3, **PARAMS)
    path = tmp_path / "w.safetensors"
    save_weights(path, model, _card())
    return path, model


def test_round_trip_restores_weights_card_and_outputs(saved):
    path, model = saved
    loaded, card = load_weights(path)
    assert card == _card(created=card.created) and card.created
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_card_json_round_trip():
    card = _card()
    assert WeightsCard.from_json(card.to_json()) == card
    with pytest.raises(ValueError, match="not a cenn weights card"):
        WeightsCard.from_json('{"architecture": "cenn-small"}')


def test_save_leaves_no_temporary_files(saved):
    path, _ = saved
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_card_that_cannot_rebuild_the_model_is_refused(tmp_path):
    model = build_model("cenn-small", 3)
    with pytest.raises(ValueError, match=r"differ from this model's.*fix card"):
        save_weights(tmp_path / "w.safetensors", model, _card(architecture="cenn-paper"))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_file_is_reported(saved, damage):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a weights file" * 10)
    with pytest.raises(ValueError, match="damaged"):
        load_weights(path)


def test_changed_tensor_bytes_are_caught_by_the_checksum(saved):
    """One flipped byte in the tensor data still parses as safetensors, but not as these weights."""
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"damaged.*SHA-256 recorded"):
        load_weights(path)


def test_shipped_weights_are_checked_against_their_checksum(tmp_path):
    from cenn.pretrained import DEFAULT, check_shipped, default_weights

    check_shipped(default_weights())  # the installed file passes
    copy = tmp_path / DEFAULT
    copy.write_bytes(default_weights().read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match=r"shipped weights .* are damaged.*reinstall cenn"):
        check_shipped(copy)


def test_safetensors_without_cenn_metadata_is_reported(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="without cenn metadata"):
        load_weights(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(tmp_path / "absent.safetensors")


def test_matching_inputs_pass():
    check_inputs(_card(), [143, 217, 353.0004], 90.0 * (1 + 1e-8), "µK_CMB", npix=320)
    check_inputs(_card(), [143, 217, 353], 90.0, "uK")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (([100, 143, 217], 90.0, "uK_CMB"), r"expect frequencies \[143, 217, 353\] GHz but the inputs have "
                                             r"\[100, 143, 217\] GHz"),
        (([143, 217], 90.0, "uK_CMB"), "expect frequencies"),
        (([143, 217, 353], 60.0, "uK_CMB"), "expect 90 arcsec pixels but the inputs have 60"),
        (([143, 217, 353], 90.0, "K_CMB"), "multiply the maps by 1e6"),
        (([143, 217, 353], 90.0, "MJy/sr"), "unknown units"),
    ],
)
def test_mismatched_inputs_are_reported(inputs, message):
    with pytest.raises(WeightsMismatchError, match=message):
        check_inputs(_card(), *inputs)


def test_patch_size_must_be_a_multiple_of_64():
    with pytest.raises(WeightsMismatchError, match="multiple of 64"):
        check_inputs(_card(), [143, 217, 353], 90.0, "uK_CMB", npix=100)


def _with_tensor_changed(path, change) -> None:
    """Rewrite the weights file ``path`` with its first floating-point tensor changed by ``change``
    and a matching SHA-256, as a training that wrote NaN weights would have."""
    from safetensors import safe_open

    from cenn.model.weights import tensors_sha256

    with safe_open(path, framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    change(tensors[first])
    save_file(tensors, path, metadata={**metadata, "sha256": tensors_sha256(tensors)})


def test_nonfinite_weights_are_refused_naming_the_file(saved):
    path, _ = saved

    def poison(t):
        t.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 0.5])

    _with_tensor_changed(path, poison)
    with pytest.raises(ValueError, match=rf"{path.name} holds NaN or infinite weights \(2 values, in "
                                         r"'[\w.]+'\): the training run that made them diverged: retrain"):
        load_weights(path)


def test_nonfinite_weights_are_not_written(tmp_path):
    torch.manual_seed(0)
    model = build_model("cenn-small", 3, **PARAMS)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=r"refusing to write .*w\.safetensors: its weights would hold NaN "
                                         r"or infinite values \(1 value, in .*\); the training .* diverged"):
        save_weights(tmp_path / "w.safetensors", model, _card())
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6  # finite, beyond float16
    with pytest.raises(ValueError, match=r"exceed the range of torch\.float16: store them as fp32 or bf16"):
        save_weights(tmp_path / "w.safetensors", model, _card(), dtype=torch.float16)
    assert not list(tmp_path.iterdir())


def test_millikelvin_and_bands_in_another_order_are_named():
    with pytest.raises(WeightsMismatchError, match=r"inputs are in mK_CMB .* multiply the maps by 1e3"):
        check_inputs(_card(), [143, 217, 353], 90.0, "mK_CMB")
    with pytest.raises(WeightsMismatchError, match=r"inputs have \[353, 217, 143\] GHz, the same bands in "
                                                   r"another order: .* in the order \[143, 217, 353\] GHz"):
        check_inputs(_card(), [353, 217, 143], 90.0, "uK_CMB")


@pytest.mark.parametrize(("std_uk", "units", "expected"), [
    (85.0, "uK_CMB", None),  # simulated 217 GHz patches, high latitudes
    (31.0, "uK_CMB", None),  # their noise alone
    (1550.0, "uK_CMB", None),  # the Galactic plane
    (0.031, "uK_CMB", (1e3, "mK_CMB")),  # noise alone, in mK
    (1.55, "uK_CMB", (1e3, "mK_CMB")),  # the Galactic plane, in mK
    (1.55e-3, "uK_CMB", (1e6, "K_CMB")),  # the Galactic plane, in K
    (85.0e-3, "mK_CMB", (1e3, "K_CMB")),  # K labelled mK, converted to µK
    (85.0e-6, "K_CMB", (1e6, None)),
    (85.0e6, "K_CMB", (1e-6, "uK_CMB")),  # µK labelled K, converted
])
def test_misread_units_on_realistic_spreads(std_uk, units, expected):
    from cenn.io.units import misread_units

    assert misread_units(std_uk, units) == expected
