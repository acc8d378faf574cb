"""Folders cenn owns: its run, report and experiment folders, and the temporary files it stages.

A folder cenn creates as a run or a report holds a small marker file (``.cenn-output``, JSON with
the kind). Only such a folder, or one written before markers existed (recognised by its files),
is ever removed (``--overwrite``), and only when everything in it is cenn's own: the files of
that kind of folder, cenn's temporary files and other cenn output folders. A folder that holds
an input of the command, lies inside one, or holds the working folder is never removed.

Files are staged under a temporary name in the folder of their destination (``.NAME.tmpPID``,
:mod:`cenn.io.atomic`) and renamed, so only the destination's disk needs room; a folder being
replaced is first renamed to ``.NAME.oldPID``. Those a killed process left behind are removed by the
next run (:func:`clear_stale`).

Single output files (weights, predicted maps, images, masks) go through one guard: before any work,
:func:`check_file_outputs` refuses a file that is, or lies inside, an input of the command, a folder,
a file in a missing, non-folder or unwritable folder, two outputs that are one file, and an
existing file unless ``overwrite``; :func:`write_file` stages the file and turns any ``OSError``
while writing it (a full disk, a read-only file system, no permission) into one line that names the
file and the fix (:class:`OutputWriteError`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cenn._version import __version__
from cenn.io.atomic import atomic_write_text, discard, staged, temporary_path

MARKER = ".cenn-output"
#: What a folder of each kind holds, besides its marker and temporary files.
KNOWN = {
    "run": frozenset({"config.toml", "stream-simulation.toml", "checkpoints", "logs", "weights.safetensors",
                      "metrics.json"}),
    "report": frozenset({"metrics.json", "report.md", "report.html", "evaluation.toml", "tables", "figures"}),
    "experiment": frozenset({"experiment.toml", "data", "run", "report"}),
    "demo": frozenset({"demo.toml", "data", "report"}),
}
#: The entries that identify a folder of each kind written before markers existed.
_SIGNATURE = {
    "run": ("config.toml", "checkpoints"),
    "report": ("evaluation.toml", "metrics.json", "report.md"),
    "experiment": ("experiment.toml",),
    "demo": ("demo.toml", "data", "report"),
}
#: cenn's temporary names: ``.NAME.tmpPID``, ``.NAME.oldPID`` and ``.NAME.XXXXXXXX.tmp`` (weights
#: files as earlier versions staged them).
_TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?:(?:tmp|old)(?P<pid>\d+)|[0-9a-f]{8}\.tmp)$")

Inputs = Iterable[tuple[str, str | Path | None]]


class OutputError(ValueError):
    """An output cannot be written, or writing or replacing it would lose data."""


class OutputExistsError(OutputError, FileExistsError):
    """An output file exists and ``--overwrite`` was not given."""


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, a read-only file system, no permission): the message
    is one line naming the output and the fix; ``errno`` is the original error's."""


def mark(folder: Path, kind: str) -> None:
    """Mark ``folder`` as a cenn output of ``kind`` (run, report, experiment)."""
    atomic_write_text(folder / MARKER, json.dumps({"kind": kind, "cenn_version": __version__}) + "\n")


def kind_of(folder: Path) -> str | None:
    """The kind of cenn output ``folder`` is, from its marker or (written before markers existed)
    from its files; None for any other folder."""
    try:
        kind = json.loads((folder / MARKER).read_text()).get("kind")
        if kind in KNOWN:
            return kind
    except (OSError, ValueError, AttributeError):
        pass
    for kind, names in _SIGNATURE.items():
        if all((folder / name).exists() for name in names):
            return kind
    return None


def foreign_entries(folder: Path, kind: str) -> list[str]:
    """The entries of ``folder`` that cenn did not write as a ``kind`` folder: neither its known
    files, cenn's temporary files, nor cenn output folders that hold only their own."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name == MARKER or entry.name in KNOWN[kind] or _TEMPORARY.match(entry.name):
            continue
        sub = kind_of(entry) if entry.is_dir() and not entry.is_symlink() else None
        if sub is None or foreign_entries(entry, sub):
            foreign.append(entry.name)
    return foreign


def check_apart(folder: Path, inputs: Inputs, what: str) -> None:
    """Refuse an output ``folder`` that is, holds or lies inside one of ``inputs`` ((role, path);
    None paths are skipped)."""
    target = folder.resolve()
    for role, path in inputs:
        if path is None:
            continue
        source = Path(path).resolve()
        if source == target or target in source.parents:
            relation = "is" if source == target else "holds"
            raise OutputError(f"{folder} {relation} {path} ({role}), an input of this command: write the "
                              f"{what} to another folder")
        if source in target.parents:
            raise OutputError(f"{folder} lies inside {path} ({role}), an input of this command: write the "
                              f"{what} to another folder")


def check_removable(folder: Path, kind: str, inputs: Inputs = ()) -> None:
    """Refuse to remove ``folder`` unless it is a cenn ``kind`` folder holding only cenn's files,
    and holds no input (nor the working folder)."""
    if folder.is_symlink():
        raise OutputError(f"{folder} is a symbolic link: cenn does not replace it; remove the link yourself "
                          "or choose another folder")
    check_apart(folder, inputs, kind)
    cwd, target = Path.cwd(), folder.resolve()
    if cwd == target or target in cwd.parents:
        raise OutputError(f"{folder} holds the working folder {cwd}: cenn does not remove it; run the "
                          f"command from another folder, or choose another {kind} folder")
    if not any(folder.iterdir()):
        return
    found = kind_of(folder)
    if found != kind:
        what = f"a cenn {found} folder" if found else f"not a cenn {kind} folder"
        raise OutputError(f"{folder} is {what}: cenn only replaces the {kind} folders it wrote; choose "
                          "another folder, or move its contents away yourself")
    foreign = foreign_entries(folder, kind)
    if foreign:
        listed = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        them = "it" if len(foreign) == 1 else "them"
        raise OutputError(f"{folder} holds {listed}, which cenn did not write: move {them} out of the "
                          "folder, or choose another folder")


def check_writable(folder: Path) -> None:
    """Refuse a folder this process cannot create files in."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder} is not writable (no permission to create files there): choose a folder "
                          "you can write to, or get write permission for it")


def check_output(folder: Path, kind: str, inputs: Inputs = (), overwrite: bool = False) -> None:
    """Refuse, before any work, an output ``folder`` of ``kind`` that could not be written or
    whose replacement (``overwrite``) would lose data.

    A new folder needs an existing, writable parent; an existing one must be a folder, writable,
    and (resumed) empty or a cenn ``kind`` folder, or (replaced) removable (:func:`check_removable`).
    No output is, holds or lies inside an input.
    """
    inputs = list(inputs)
    check_apart(folder, inputs, kind)
    if not folder.exists():
        if folder.parent.exists() and not folder.parent.is_dir():
            raise OutputError(f"{folder.parent} is a file, not a folder: correct the path of the {kind} "
                              f"folder {folder}")
        if not folder.parent.is_dir():
            raise FileNotFoundError(f"{folder.parent} does not exist: create it first (mkdir -p "
                                    f"{folder.parent}) or correct the path of the {kind} folder {folder}")
        check_writable(folder.parent)
        return
    if not folder.is_dir():
        article = "an" if kind[0] in "aeiou" else "a"
        raise FileExistsError(f"{folder} is a file, not {article} {kind} folder: choose another path")
    if overwrite:
        check_removable(folder, kind, inputs)
        check_writable(folder.parent)
        return
    if any(folder.iterdir()) and kind_of(folder) != kind:
        raise FileExistsError(f"{folder} exists and is not a cenn {kind} folder: choose a new or empty "
                              "folder")
    check_writable(folder)


def remove_output(folder: Path, kind: str, inputs: Inputs = ()) -> None:
    """Remove the cenn ``kind`` folder ``folder`` (``--overwrite``), refused as
    :func:`check_removable` says; renamed first, so a kill leaves no half-removed folder."""
    check_removable(folder, kind, inputs)
    trash = temporary_path(folder, "old")
    os.replace(folder, trash)
    shutil.rmtree(trash)


def publish(staging: Path, folder: Path, kind: str, inputs: Inputs = ()) -> None:
    """Rename the finished folder ``staging`` to ``folder``, replacing the ``kind`` folder there
    (refused as :func:`check_removable` says)."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    check_removable(folder, kind, inputs)
    trash = temporary_path(folder, "old")
    os.replace(folder, trash)
    os.replace(staging, folder)
    shutil.rmtree(trash)


def _running(pid: int) -> bool:
    """Whether another process with this id runs on this machine."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files and folders that killed cenn processes left in ``folder`` while
    writing ``names`` (those of processes still running are kept); returns what was removed."""
    names = set(names)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        found = _TEMPORARY.match(entry.name)
        if found and found["name"] in names and not (found["pid"] and _running(int(found["pid"]))):
            discard(entry)
            removed.append(entry)
    return removed


# --- single output files --------------------------------------------------------------------------

def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file or folder: the same resolved path (symbolic links
    followed), or, when both exist, the same file (hard links included)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_file_output(path: str | Path, inputs: Inputs = (), overwrite: bool = False,
                      what: str = "output", role: str | None = None) -> Path:
    """``path`` as a ``Path``, refused (:class:`OutputError`), before any work, when it is or lies
    inside one of ``inputs`` ((role, path); None paths skipped; even with ``overwrite``), is a folder,
    its folder is missing, a file or not writable, or it exists and ``overwrite`` is not given.
    ``what`` names the kind of output in the messages (``output``, ``weights file``), ``role`` the
    option or argument that gave it (``--mask``, ``OUTPUT``)."""
    path = Path(path)
    file = what if what.endswith("file") else f"{what} file"
    named = f"{role} {path}" if role else f"{path}"
    for source_role, source in inputs:
        if source is None:
            continue
        if same_path(path, source):
            raise OutputError(f"{named} is also {source_role} {source}, an input of this command: cenn never "
                              f"writes over its inputs; choose another path for the {what}")
        if Path(source).is_dir() and Path(source).resolve() in path.resolve().parents:
            raise OutputError(f"{named} lies inside {source_role} {source}, an input of this command: "
                              f"write the {what} elsewhere")
    if path.is_dir():
        raise OutputError(f"{path} is a folder: name the {file} in it (e.g. {path / 'NAME'})")
    folder = path.parent
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        fix = (f"create it (mkdir -p {folder}) or write elsewhere" if not folder.exists()
               else "correct the path or write elsewhere")
        raise OutputError(f"the folder {folder} of the {what} {path.name} {state}: {fix}")
    check_writable(folder)
    if not overwrite:
        check_absent(path)
    return path


def check_absent(path: Path) -> None:
    """Refuse an output file ``path`` that exists (``--overwrite`` not given)."""
    if path.exists() or path.is_symlink():
        raise OutputExistsError(f"{path} exists: choose another output or pass --overwrite")


def check_file_outputs(outputs: Sequence[tuple[str, str | Path | None]], inputs: Inputs = (),
                       overwrite: bool = False, what: str = "output") -> list[Path | None]:
    """Check each output file ``(role, path)`` of one command (:func:`check_file_output`; None paths
    skipped) and that no two are one file; returns them as paths, in order."""
    inputs = list(inputs)
    checked: list[Path | None] = []
    for index, (role, path) in enumerate(outputs):
        if path is None:
            checked.append(None)
            continue
        for other_role, other in outputs[:index]:
            if other is not None and same_path(path, other):
                raise OutputError(f"{role} {path} is also {other_role} {other}: give each output its own "
                                  "file")
        checked.append(check_file_output(path, inputs, overwrite, what, role))
    return checked


def write_error(path: str | Path, err: OSError, what: str = "output") -> OutputWriteError:
    """One line for an ``OSError`` ``err`` while writing the ``what`` file ``path``: the file, the
    cause and the fix."""
    path = Path(path)
    cause = err.strerror or str(err)
    code = err.errno
    again = "then rerun the same command (nothing was left half-written)"
    if code in (errno.ENOSPC, errno.EDQUOT):
        text = (f"{path}: the disk is full ({cause}) writing the {what}: free space there or write it "
                f"elsewhere, {again}")
    elif code == errno.EROFS:
        text = f"{path}: the file system there is read-only ({cause}): write the {what} elsewhere"
    elif code in (errno.EACCES, errno.EPERM):
        text = (f"{path}: no permission to write the {what} there ({cause}): choose a folder you can "
                "write to, or get write permission for it")
    elif code == errno.EISDIR:
        text = f"{path} is a folder: name the {what} file in it"
    elif code in (errno.ENOENT, errno.ENOTDIR):
        text = (f"{path}: its folder {path.parent} no longer exists or is not a folder ({cause}): create "
                f"it (mkdir -p {path.parent}) or write elsewhere")
    else:
        text = f"{path}: writing the {what} failed ({cause}): fix that or write elsewhere, {again}"
    failed = OutputWriteError(text)
    failed.errno = code
    return failed


@contextmanager
def write_file(path: str | Path, what: str = "output", keep_suffix: bool = False,
               overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write, renamed to ``path`` when the block succeeds
    (:func:`cenn.io.atomic.staged`); any ``OSError`` inside becomes a :class:`OutputWriteError` naming
    ``path`` (never the temporary name) and the fix. Without ``overwrite`` an existing ``path`` (one
    that appeared during the work, after :func:`check_file_output`) is refused."""
    path = Path(path)
    if not overwrite:
        check_absent(path)
    try:
        with staged(path, keep_suffix=keep_suffix) as tmp:
            yield tmp
    except OutputWriteError:
        raise
    except OSError as err:
        raise write_error(path, err, what) from None
