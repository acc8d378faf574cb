"""SHA-256 of files, for provenance (maps a dataset was cut from) and integrity (shipped weights),
and of metadata fields, so that a weights card or a store's attributes edited by hand are noticed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

_HASHES: dict[tuple[str, int, int], str] = {}
"""SHA-256 of files already hashed, by (path, size, modification time in ns)."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path`` (cached while its size and modification time hold)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def fields_sha256(fields: Mapping[str, Any], skip: Collection[str] = ()) -> dict[str, str]:
    """Hex SHA-256 of each field's value as canonical JSON (sorted keys), by name; ``skip``: fields
    left out (those that may change legitimately, and the checksums themselves). One digest per
    field, so that an edit is named by :func:`edited_fields`."""
    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    return {name: digest(value) for name, value in fields.items() if name not in skip}


def edited_fields(fields: Mapping[str, Any], recorded: Mapping[str, str] | None,
                  skip: Collection[str] = ()) -> list[str]:
    """The names of the fields that were changed, added or removed since ``recorded`` (their
    :func:`fields_sha256` when they were written), sorted; none when nothing was recorded (metadata
    written before checksums were)."""
    if recorded is None:
        return []
    found = fields_sha256(fields, skip)
    return sorted(name for name in found.keys() | recorded.keys() if found.get(name) != recorded.get(name))
