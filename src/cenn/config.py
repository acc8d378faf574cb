"""Typed configuration read from TOML: unknown keys, wrong types and impossible values are refused.

Every configuration is a dataclass tree; :func:`from_dict` builds one from parsed TOML,
:func:`to_dict` gives back the resolved values, saved with every output.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and how to fix it."""


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if value is None or o is not type(None)]
        if len(options) == 1:  # an optional value that is given: its own error is the clearest
            return _check_type(value, options[0], where)
        for option in options:
            try:
                return _check_type(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {hint}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected nothing, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types; missing keys keep their
    defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed keys are {sorted(names)}"
        )
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def given_options(args: Any, defaults: dict[str, Any]) -> list[str]:
    """The command-line options, as ``--name``, among ``defaults`` (destination → default) that
    ``args`` (an ``argparse.Namespace``) sets to something else: those the user gave."""
    return [f"--{name.replace('_', '-')}" for name, default in defaults.items()
            if getattr(args, name, default) != default]


def check_finite(where: str, value: float, minimum: float | None = None, strict: bool = False) -> None:
    """Refuse a ``value`` of ``where`` that is NaN or infinite, or below ``minimum`` (at or below it
    when ``strict``), naming both (``ValueError``)."""
    if not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{where} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


class ConfigBase:
    """from_dict/to_dict of a configuration dataclass (one TOML table); ``SECTION`` names the table
    in messages (``simulation.seed: expected an integer``)."""

    SECTION: typing.ClassVar[str] = "config"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> typing.Self:
        """The configuration from ``data``, checked (:func:`from_dict`); ``where`` overrides ``SECTION``."""
        return from_dict(cls, data, where or cls.SECTION)

    def to_dict(self) -> dict[str, Any]:
        """Resolved configuration as plain TOML-serialisable values."""
        return dataclasses.asdict(self)


def read_toml(path: Path | str) -> dict[str, Any]:
    """Parse a TOML file, naming the file in any error."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML text of a resolved configuration (None values dropped)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, tuple | list):
            return [clean(x) for x in v]
        return v

    return tomli_w.dumps(clean(data))
