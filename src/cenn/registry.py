"""Named entries of one kind (models, losses, normalisations, separators, sky components): one
registry helper for all of them, so a name is taken once and a second entry under it is refused
instead of silently replacing the first."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """A read-only mapping name → entry, filled by :meth:`add` or the :meth:`register` decorator.

    ``kind`` names what it holds in messages (``"model"``, ``"loss"``, ``"method"``...).
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; ``ValueError`` for an empty name or one already taken."""
        if not name:
            raise ValueError(f"a {self.kind} needs a name")
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering what it decorates under ``name`` (:meth:`add`)."""
        return lambda entry: self.add(name, entry)

    def lookup(self, name: str) -> T:
        """The entry ``name``; ``ValueError`` naming the available ones for an unknown name."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
