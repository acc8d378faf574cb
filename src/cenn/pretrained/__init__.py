"""Weights shipped inside the package, used by ``cenn predict``, ``cenn evaluate`` and ``cenn demo``
when no ``--weights`` is given. Their model card is ``MODEL_CARD.md`` beside them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The reference model's file name.
DEFAULT = "cenn-paper-preview.safetensors"


def available_weights() -> list[str]:
    """File names of the shipped weights."""
    folder = resources.files("cenn.pretrained")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".safetensors"))


def default_weights() -> Path:
    """Path of the reference model's weights; ``FileNotFoundError`` if this installation lacks it."""
    path = Path(str(resources.files("cenn.pretrained").joinpath(DEFAULT)))
    if not path.is_file():
        raise FileNotFoundError(f"this cenn installation ships no reference weights ({DEFAULT}): pass "
                                "--weights FILE.safetensors (from cenn train)")
    return path


def resolve_weights(weights: str | Path | None) -> Path:
    """``weights`` if given, else the reference model."""
    return Path(weights) if weights is not None else default_weights()
