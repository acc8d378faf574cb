"""Advisory locks on files (``flock``) that name their holder: a process holding one writes "PID
HOST" into it, and the system releases the lock when the process ends, however it ends, so a lock
file a killed process left behind is free again. Used for a store's shards (one writer each) and a
training run's folder (one training at a time)."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _owner_text(fd: int) -> str:
    """"pid N on HOST" from a lock file's text, as its holder wrote it."""
    pid, _, host = os.pread(fd, 256, 0).decode(errors="replace").strip().partition(" ")
    return f"pid {pid or '?'} on {host or '?'}"


def lock_holder(lock: Path) -> str | None:
    """Who holds the lock file ``lock`` ("pid N on HOST"), or None when no process does (or the
    file does not exist); creates nothing."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _owner_text(fd)
    finally:
        os.close(fd)
    return None


@contextmanager
def exclusive_lock(lock: Path, busy: Callable[[str], Exception], remove: bool = False) -> Iterator[None]:
    """Hold the lock file ``lock`` (created if missing) while the block runs, with this process's
    "PID HOST" in it; if another process holds it, raise ``busy(holder)`` at once (no waiting).
    ``remove``: delete the file when the block ends (never when the lock was not obtained).
    Processes started meanwhile do not inherit the lock."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(_owner_text(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            if remove:
                lock.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock
