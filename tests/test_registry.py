"""One registry helper for every named kind: a name is taken once, and an unknown one is named with
the choices."""

import dataclasses

import pytest

from cenn.data.normalization import _register, available_normalizations, build_normalization
from cenn.model import available_models
from cenn.model.registry import register_model
from cenn.registry import Registry
from cenn.separation import register_separator
from cenn.separators import available_separators
from cenn.sky.components import COMPONENTS
from cenn.sky.components.base import register
from cenn.train.losses import LOSSES, build_loss


def test_a_name_is_registered_once_and_an_unknown_one_names_the_choices():
    shapes = Registry("shape", {"square": 4})
    assert shapes.register("triangle")(3) == 3
    assert dict(shapes) == {"square": 4, "triangle": 3} and shapes.lookup("square") == 4 and len(shapes) == 2
    with pytest.raises(ValueError, match="a shape named 'square' is already registered"):
        shapes.add("square", 5)
    with pytest.raises(ValueError, match="a shape needs a name"):
        shapes.add("", 0)
    with pytest.raises(ValueError, match=r"unknown shape 'circle'; available: square, triangle"):
        shapes.lookup("circle")
    assert shapes["square"] == 4  # the first entry was kept
    with pytest.raises(TypeError):
        shapes["hexagon"] = 6  # read-only: entries go through add or register


def test_every_registry_refuses_a_second_entry_under_a_taken_name():
    available_models(), available_separators()  # their modules registered their entries
    attempts = {
        "model named 'unet'": lambda: register_model("unet")(lambda in_channels: None),
        "method named 'nilc'": lambda: register_separator("nilc")(object),
        "normalization named 'minmax'": lambda: _register(
            dataclasses.make_dataclass("Other", [], namespace={"name": "minmax"})),
        "sky component named 'dust'": lambda: register(type("Other", (), {"name": "dust"})),
        "loss named 'mse'": lambda: LOSSES.add("mse", lambda a, b: a),
    }
    for message, attempt in attempts.items():
        with pytest.raises(ValueError, match=f"a {message} is already registered"):
            attempt()
    assert build_normalization("minmax").name == "minmax" and build_loss("mse") is LOSSES["mse"]
    assert "dust" in COMPONENTS and "unet" in available_models() and "nilc" in available_separators()
    assert "minmax" in available_normalizations()
