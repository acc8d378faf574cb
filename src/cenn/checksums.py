"""SHA-256 of files, for provenance (maps a dataset was cut from) and integrity (shipped weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
