"""Weights shipped inside the package, used by ``cenn predict``, ``cenn evaluate`` and ``cenn demo``
when no ``--weights`` is given, or by name (``--weights unbiased``, ``--weights polarization``). Their
model cards are ``MODEL_CARD.md`` (the reference model), ``MODEL_CARD-unbiased.md``,
``MODEL_CARD-polarization.md`` (Q/U in, the CMB's Q/U out: the model ``cenn predict --stokes QU``, Q/U
input and ``cenn evaluate`` on stores with Q and U use when no weights are given) and
``MODEL_CARD-unbiased-polarization.md`` (the unbiased model's Q/U counterpart: ``--weights unbiased``
with Q/U input) beside them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cenn.checksums import file_sha256

#: The shipped models by name: the minimum-MSE reference map, the unbiased (unit-response) map and the
#: polarization (Q/U) map.
SHIPPED = {"reference": "cenn-unet-cpu.safetensors", "unbiased": "cenn-unbiased-cpu.safetensors",
           "polarization": "cenn-polarization-cpu.safetensors",
           "unbiased-polarization": "cenn-unbiased-polarization-cpu.safetensors"}
#: The shipped model for each Stokes choice of ``cenn predict --stokes`` (:mod:`cenn.data.stokes`).
BY_STOKES = {"I": "reference", "QU": "polarization"}
#: The Q/U counterpart of each shipped temperature model (the name a Q/U input resolves it to).
POLARIZATION_MODELS = {"reference": "polarization", "unbiased": "unbiased-polarization"}
#: The reference model's file name.
DEFAULT = SHIPPED["reference"]

#: ``sha256sum`` listing of the shipped files (written by ``scripts/ship_weights.py``), checked before use.
CHECKSUMS = "SHA256SUMS"


def available_weights() -> list[str]:
    """File names of the shipped weights."""
    folder = resources.files("cenn.pretrained")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".safetensors"))


def default_weights() -> Path:
    """Path of the reference model's weights; ``FileNotFoundError`` if this installation lacks it."""
    return shipped_weights("reference")


def is_shipped(name: str) -> bool:
    """Whether this installation ships the model ``name`` (a key of :data:`SHIPPED`)."""
    return resources.files("cenn.pretrained").joinpath(SHIPPED[name]).is_file()


def shipped_weights(name: str) -> Path:
    """Path of the shipped model ``name`` (a key of :data:`SHIPPED`), checked against its SHA-256;
    ``FileNotFoundError`` if this installation lacks it."""
    path = Path(str(resources.files("cenn.pretrained").joinpath(SHIPPED[name])))
    if not path.is_file():
        raise FileNotFoundError(f"this cenn installation ships no {name} weights ({SHIPPED[name]}): pass "
                                "--weights FILE.safetensors (from cenn train)")
    check_shipped(path)
    return path


def shipped_name(path: str | Path) -> str | None:
    """The name (a key of :data:`SHIPPED`) of the shipped model whose file ``path`` is, else None."""
    folder = Path(str(resources.files("cenn.pretrained"))).resolve()
    found = Path(path).resolve()
    return next((name for name, file in SHIPPED.items() if found == folder / file), None)


def shipped_checksums() -> dict[str, str]:
    """File name → SHA-256 of the shipped weights, from :data:`CHECKSUMS`."""
    text = resources.files("cenn.pretrained").joinpath(CHECKSUMS).read_text(encoding="utf-8")
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line.strip())}


def check_shipped(path: Path) -> None:
    """Refuse a shipped weights file whose SHA-256 is not the one it was shipped with."""
    found, expected = file_sha256(path), shipped_checksums().get(path.name)
    if found != expected:
        raise ValueError(f"the shipped weights {path} are damaged (SHA-256 {found[:12]}… instead of "
                         f"{str(expected)[:12]}…): reinstall cenn, or pass --weights FILE.safetensors")


def resolve_weights(weights: str | Path | None, stokes: str = "I") -> Path:
    """``weights`` if given (a file, or the name of a shipped model: ``reference``, ``unbiased``,
    ``polarization``, ``unbiased-polarization``; for ``stokes = "QU"`` a temperature model's name is
    its Q/U counterpart, :data:`POLARIZATION_MODELS`), else the shipped model for ``stokes``
    (:data:`BY_STOKES`: the reference model for temperature)."""
    if weights is None:
        return shipped_weights(BY_STOKES[stokes])
    if str(weights) in SHIPPED and not Path(weights).exists():
        name = str(weights)
        return shipped_weights(POLARIZATION_MODELS.get(name, name) if stokes == "QU" else name)
    return Path(weights)
