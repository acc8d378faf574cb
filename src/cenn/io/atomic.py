"""Files written whole or not at all: every file cenn writes is staged under a temporary name in
the folder of its destination and renamed into place, so readers never see a half-written file
and only the destination's disk needs room. A failure removes the temporary file; those a killed
process left (``.NAME.tmpPID``) are removed by :func:`cenn.outputs.clear_stale`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_path(path: Path, what: str = "tmp") -> Path:
    """This process's temporary name beside ``path``: ``.NAME.tmpPID`` (``what``: tmp or old)."""
    return path.with_name(f".{path.name}.{what}{os.getpid()}")


def discard(path: Path) -> None:
    """Remove the file or folder ``path`` if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed to ``path`` when the block succeeds, and
    removed when it fails. With ``keep_suffix`` the temporary name ends like ``path``
    (``.tmpPID.NAME``), for writers that choose the format from it (numpy, astropy, matplotlib)."""
    tmp = path.with_name(f".tmp{os.getpid()}.{path.name}") if keep_suffix else temporary_path(path)
    discard(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        discard(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (:func:`staged`)."""
    with staged(path) as tmp:
        tmp.write_text(text)
