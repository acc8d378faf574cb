"""The data files shipped in ``cenn/sky/data``: parameter tables with their sources (TOML) and
numeric tables (CSV), read from the installed package whatever the working folder."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

DATA: Traversable = resources.files("cenn.sky") / "data"
"""The folder of the shipped data."""


def shipped_text(name: str) -> str:
    """The text of the shipped file ``name`` (a path relative to ``cenn/sky/data``)."""
    return (DATA / name).read_text(encoding="utf-8")


def shipped_toml(name: str) -> dict:
    """The shipped TOML file ``name`` as a table."""
    return tomllib.loads(shipped_text(name))


def is_shipped(name: str) -> bool:
    """Whether ``name`` (relative to ``cenn/sky/data``) is a shipped file."""
    return (DATA / name).is_file()


@contextmanager
def shipped_path(name: str) -> Iterator[Path]:
    """A file-system path of the shipped file ``name``, valid inside the ``with`` block (the
    package may be installed as a zip)."""
    with resources.as_file(DATA / name) as path:
        yield path
