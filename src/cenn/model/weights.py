"""Weights files: a model's state dict as safetensors, with a :class:`WeightsCard` in the metadata
describing the architecture, the maps it expects and how it was trained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from cenn._version import __version__
from cenn.checksums import edited_fields, fields_sha256
from cenn.data.stokes import check_stokes, maps_per_band
from cenn.io.disk import write_bytes
from cenn.io.units import UNITS, power_of_ten, uk_per_unit
from cenn.model.registry import build_model
from cenn.outputs import check_file_output

FORMAT = "cenn-weights-v1"
#: The metadata key of the card's checksums: the SHA-256 of each field (:func:`cenn.checksums.fields_sha256`).
CARD_SHA256 = "card_sha256"


class WeightsMismatchError(ValueError):
    """The maps given don't match those the weights were trained on."""


@dataclasses.dataclass(kw_only=True)
class WeightsCard:
    """What a weights file holds and expects. Frequencies in GHz, beams (FWHM) in arcmin.

    ``stokes``: the Stokes maps the network separates, ``"I"`` (temperature: one input map per
    band, the CMB out) or ``"QU"`` (the bands' Q then U in, ``in_channels`` = 2 × the bands, the
    CMB's Q and U out; :mod:`cenn.data.stokes`). Cards written before polarization read as ``"I"``.
    """

    architecture: str
    architecture_params: dict
    in_channels: int
    frequencies_ghz: list[float]
    beams_arcmin: list[float]
    target_frequency_ghz: float
    npix: int
    pixel_arcsec: float
    units: str = UNITS
    stokes: str = "I"
    normalization: str
    normalization_params: dict
    training: dict = dataclasses.field(default_factory=dict)  # provenance: data, seeds, config, epochs
    metrics: dict = dataclasses.field(default_factory=dict)  # validation metrics
    cenn_version: str = __version__
    created: str = dataclasses.field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self):
        self.frequencies_ghz = [float(f) for f in self.frequencies_ghz]
        self.beams_arcmin = [float(b) for b in self.beams_arcmin]
        per_band = maps_per_band(check_stokes(self.stokes, "the card's stokes"))
        if not len(self.frequencies_ghz) * per_band == len(self.beams_arcmin) * per_band == self.in_channels:
            raise ValueError(f"a card for {self.in_channels} input channels of Stokes {self.stokes} needs "
                             f"{self.in_channels // per_band} frequencies and beams; got "
                             f"{len(self.frequencies_ghz)} and {len(self.beams_arcmin)}")

    @property
    def target_channel(self) -> int:
        """Index of the input channel at (or nearest) the target frequency."""
        gaps = [abs(f - self.target_frequency_ghz) for f in self.frequencies_ghz]
        return gaps.index(min(gaps))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WeightsCard:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a cenn weights card: not a JSON object")
        try:
            return cls(**data)
        except TypeError as e:  # missing or unexpected fields
            raise ValueError(f"not a cenn weights card: {e}") from e


def _check_card_matches(model: nn.Module, card: WeightsCard) -> None:
    """Fail before writing a file whose card would rebuild a model with other weights."""
    with torch.device("meta"):
        expected = build_model(card.architecture, card.in_channels, **card.architecture_params).state_dict()
    actual = model.state_dict()
    mismatched = sorted(k for k in expected.keys() | actual.keys()
                        if k not in expected or k not in actual or expected[k].shape != actual[k].shape)
    if mismatched:
        raise ValueError(f"the card describes a {card.architecture!r} model whose weights differ from this "
                         f"model's in {len(mismatched)} tensors (e.g. {mismatched[0]}): fix "
                         "card.architecture, card.in_channels or card.architecture_params")


def load_grown(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load ``state`` into ``model`` whose tensors may be larger along some axes (a network given
    more input or output channels, e.g. ``noise_input`` or ``sigma_output`` added to a trained one):
    each tensor is copied into the leading corner of the model's and the rest set to zero, so the
    grown network computes what the old one did (new input channels ignored, new outputs 0). Returns
    the names of the tensors that grew; raises ValueError when a name is missing or a tensor would
    shrink."""
    own = model.state_dict()
    if set(own) != set(state):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"the initial weights do not fit this network: it has tensors they lack "
                         f"{missing[:3]} and they have tensors it lacks {extra[:3]}")
    grown = []
    with torch.no_grad():
        for name, target in own.items():
            source = state[name]
            if source.shape == target.shape:
                target.copy_(source)
                continue
            fits = source.ndim == target.ndim and all(
                s <= t for s, t in zip(source.shape, target.shape, strict=True))
            if not fits:
                raise ValueError(f"the initial weights' {name} has shape {tuple(source.shape)}, which does "
                                 f"not fit in this network's {tuple(target.shape)}")
            target.zero_()
            target[tuple(slice(0, s) for s in source.shape)].copy_(source)
            grown.append(name)
    model.load_state_dict(own)
    return grown


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 of named tensors: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensors[name].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_DIVERGED = ("the training run that made them diverged: retrain it (e.g. with a lower learning rate, or "
             "from a checkpoint before the loss became NaN)")

#: Storage precisions of :func:`save_weights` and ``cenn export-weights``, by name.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def save_weights(
    path: Path | str, model: nn.Module, card: WeightsCard, dtype: torch.dtype = torch.float32
) -> None:
    """Write ``model``'s weights and ``card`` to ``path`` atomically (temporary file, then rename),
    with the tensors' SHA-256 (:func:`tensors_sha256`, of the tensors as stored) and the SHA-256 of
    each field of the card (:data:`CARD_SHA256`), both checked by :func:`load_weights`.
    Floating-point tensors are stored as ``dtype`` (``torch.float16`` or
    ``torch.bfloat16`` halve the file; :func:`load_weights` returns them as float32). NaN or infinite
    weights (a diverged training, or values beyond ``dtype``'s range) are refused."""
    path = Path(path)
    _check_card_matches(model, card)
    tensors = {k: _stored(v, dtype) for k, v in model.state_dict().items()}
    bad = _nonfinite(tensors)
    if bad:
        cause = (_DIVERGED if _nonfinite(model.state_dict()) else
                 f"they exceed the range of {dtype}: store them as fp32 or bf16 (--dtype)")
        raise ValueError(f"refusing to write {path}: its weights would hold NaN or infinite values ({bad}); "
                         f"{cause}")
    text = card.to_json()
    metadata = {"cenn": text, "format": FORMAT, "sha256": tensors_sha256(tensors),
                CARD_SHA256: json.dumps(fields_sha256(json.loads(text)))}
    data = save(tensors, metadata=metadata)  # the bytes of save_file, written by Python: OS errors named
    write_bytes(path, data, "weights file", "rerun the same command (nothing was left half-written)")


def _nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """How many floating-point values of ``tensors`` are NaN or infinite, and in which tensor first
    (e.g. ``"3 values, in 'head.weight'"``); ``None`` when all are finite."""
    counts = {k: int((~torch.isfinite(v)).sum()) for k, v in tensors.items() if v.is_floating_point()}
    bad = [k for k in sorted(counts) if counts[k]]
    if not bad:
        return None
    total = sum(counts.values())
    return f"{total} value{'s' if total > 1 else ''}, in {bad[0]!r}" + (" and others" if len(bad) > 1 else "")


def _stored(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` on the CPU, contiguous, in ``dtype`` if it is floating-point (integer buffers stay)."""
    tensor = tensor.detach().cpu()
    return (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()


def export_weights(path_in: Path | str, path_out: Path | str, dtype: torch.dtype,
                   overwrite: bool = False) -> None:
    """Rewrite the weights file ``path_in`` as ``path_out`` with its floating-point tensors stored as
    ``dtype`` (e.g. ``torch.bfloat16``: half the size); the card is kept unchanged. ``path_out`` is
    checked first (:func:`cenn.outputs.check_file_output`): never ``path_in``, and an existing file
    only with ``overwrite``."""
    check_file_output(path_out, [("the input", path_in)], overwrite, "weights file", "the output")
    model, card = load_weights(path_in)
    save_weights(path_out, model, card, dtype=dtype)


def load_weights(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, WeightsCard]:
    """The model (in eval mode, on ``device``, float32 whatever the stored precision) and card stored
    in ``path``; a file whose tensors no longer match their recorded SHA-256 is refused as damaged,
    one whose card was edited as such (:func:`_read_card`; files saved without either checksum are
    read unchecked), and one holding NaN or infinite weights as the product of a diverged training."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    damaged = f"{path} is damaged or not a cenn weights file: re-export or re-download it"
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as e:
        raise ValueError(f"{damaged} ({e})") from e
    if "cenn" not in metadata:
        raise ValueError(f"{path} is a safetensors file without cenn metadata, not a cenn weights file: "
                         "export it with cenn.model.save_weights")
    if "sha256" in metadata and tensors_sha256(tensors) != metadata["sha256"]:
        raise ValueError(f"{damaged} (its tensors do not match the SHA-256 recorded when it was saved)")
    bad = _nonfinite(tensors)
    if bad:
        raise ValueError(f"{path} holds NaN or infinite weights ({bad}): {_DIVERGED}, or use other weights")
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is in format {metadata.get('format')!r} but this cenn reads {FORMAT!r}: "
                         "upgrade cenn or re-export the weights")
    card = _read_card(path, metadata, damaged)
    model = build_model(card.architecture, card.in_channels, **card.architecture_params).to(device)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()},
                              strict=True)
    except RuntimeError as e:
        raise ValueError(f"{damaged} (its weights don't fit the architecture on its card: {e})") from e
    return model.eval(), card


def _read_card(path: Path, metadata: dict[str, str], damaged: str) -> WeightsCard:
    """The card of the weights file ``path`` from its ``metadata``, refused when a field of it no
    longer matches the SHA-256 recorded when it was saved (a card edited by hand: it would describe
    another network). Files saved before cards had checksums are read unchecked: they were written
    by cenn, and there is nothing their owner could do but re-export them (which adds one)."""
    try:
        fields = json.loads(metadata["cenn"])
        recorded = json.loads(metadata.get(CARD_SHA256, "null"))
    except ValueError as e:
        raise ValueError(f"{damaged} (its card cannot be read: {e})") from e
    if not isinstance(fields, dict) or not isinstance(recorded, dict | None):
        raise ValueError(f"{damaged} (its card or the card's checksums are not a JSON table)")
    edited = edited_fields(fields, recorded)
    if edited:
        raise ValueError(f"{path}: its card was edited after the weights were saved ({', '.join(edited)} no "
                         "longer match the SHA-256 recorded then), so it may not describe this network: "
                         "restore the file as cenn wrote it (copy the run folder's weights.safetensors "
                         "again, or download it again); to change a card on purpose, save the network with "
                         "its new card through cenn.model.save_weights")
    try:
        return WeightsCard.from_json(metadata["cenn"])
    except ValueError as e:
        raise ValueError(f"{damaged} (its card cannot be read: {e})") from e


def _canonical_units(units: str) -> str:
    try:
        factor = uk_per_unit(units)
    except ValueError:
        raise WeightsMismatchError(f"unknown units {units!r}: convert the maps to µK_CMB "
                                   "('uK_CMB')") from None
    if factor != 1.0:
        raise WeightsMismatchError(f"inputs are in {units} but cenn weights work in µK_CMB: "
                                   f"multiply the maps by {power_of_ten(factor)}")
    return UNITS


def fmt_list(values: list[float]) -> str:
    """``[143, 217, 353]``: numbers in the shortest form, for messages."""
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _same_frequencies(a: list[float], b: list[float]) -> bool:
    """Whether ``a`` and ``b`` (GHz) are equal to 1e-3 GHz, in order."""
    return len(a) == len(b) and all(abs(x - y) <= 1e-3 for x, y in zip(a, b, strict=True))


def check_inputs(
    card: WeightsCard,
    frequencies_ghz: list[float],
    pixel_arcsec: float,
    units: str,
    npix: int | None = None,
) -> None:
    """Raise :class:`WeightsMismatchError` unless maps with these properties suit the weights.

    Frequencies must match to 1e-3 GHz, in order; pixel sizes to 1e-6 relative. The network is fully
    convolutional, so any ``npix`` that is a multiple of the model's ``multiple`` (``2**depth``: 64
    for ``cenn-paper``, 32 for ``unet``) works.
    """
    if _canonical_units(units) != _canonical_units(card.units):
        raise WeightsMismatchError(f"these weights expect {card.units} but the inputs are in {units}")
    freqs = [float(f) for f in frequencies_ghz]
    if _same_frequencies(sorted(freqs), sorted(card.frequencies_ghz)) and not _same_frequencies(
        freqs, card.frequencies_ghz
    ):
        raise WeightsMismatchError(
            f"these weights expect frequencies {fmt_list(card.frequencies_ghz)} GHz but the inputs have "
            f"{fmt_list(freqs)} GHz, the same bands in another order: put the channels (axis 1 of "
            f"(N, C, H, W)) in the order {fmt_list(card.frequencies_ghz)} GHz"
        )
    if not _same_frequencies(freqs, card.frequencies_ghz):
        raise WeightsMismatchError(
            f"these weights expect frequencies {fmt_list(card.frequencies_ghz)} GHz but the inputs have "
            f"{fmt_list(freqs)} GHz: give maps at the weights' frequencies, in that order, or use weights "
            "trained for yours"
        )
    if not math.isclose(pixel_arcsec, card.pixel_arcsec, rel_tol=1e-6):
        raise WeightsMismatchError(
            f"these weights expect {card.pixel_arcsec:g} arcsec pixels but the inputs have "
            f"{pixel_arcsec:g} arcsec: reproject the maps to the weights' pixel size or use matching weights"
        )
    with torch.device("meta"):
        multiple = build_model(card.architecture, card.in_channels, **card.architecture_params).multiple
    if npix is not None and npix % multiple:
        raise WeightsMismatchError(f"these weights need patches whose side is a multiple of {multiple} "
                                   f"pixels but the inputs have {npix}: crop or pad them")
