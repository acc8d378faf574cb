"""Network architectures (by name) and weights files."""

from cenn.model.cenn_paper import CENN
from cenn.model.registry import available_models, build_model, register_model
from cenn.model.weights import (
    WeightsCard,
    WeightsMismatchError,
    check_inputs,
    export_weights,
    load_weights,
    save_weights,
)

__all__ = [
    "CENN",
    "WeightsCard",
    "WeightsMismatchError",
    "available_models",
    "build_model",
    "check_inputs",
    "export_weights",
    "load_weights",
    "register_model",
    "save_weights",
]
