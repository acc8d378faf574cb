"""Room on disk: sizes for people, and whole files whose writer, on a full disk, names the file, the
room it needs and the room there is (:func:`write_bytes`)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from cenn.outputs import OutputWriteError, write_file

#: What fills a disk: no space left, or the user's quota exceeded.
FULL = (errno.ENOSPC, errno.EDQUOT)


def size_text(n_bytes: float) -> str:
    """``n_bytes`` for people, in decimal units: ``512 bytes``, ``75.2 MB``, ``1.84e+04 PB``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{n_bytes:.0f} bytes"
        n_bytes /= 1000
    raise AssertionError  # not reached


def write_bytes(path: Path, data: bytes | memoryview, what: str, then: str) -> None:
    """Write ``data`` to ``path`` whole (:func:`cenn.outputs.write_file`: a temporary name beside it,
    then a rename). Any ``OSError`` becomes one :class:`~cenn.outputs.OutputWriteError` naming
    ``path``; a full disk also says how much room the ``what`` needs, how much was free there, and
    ``then`` (what to do once there is room, e.g. rerun the same command)."""
    size = size_text(len(data))
    free = size_text(shutil.disk_usage(path.parent).free) if path.parent.is_dir() else None
    with write_file(path, what) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:
            if err.errno not in FULL:
                raise
            full = OutputWriteError(f"{path}: the disk is full ({err.strerror or err}) writing the {what}, "
                                    f"which needs {size} ({free} were free there): free at least that much "
                                    f"there, or move the folder to a disk with room, then {then}")
            full.errno = err.errno
            raise full from None
