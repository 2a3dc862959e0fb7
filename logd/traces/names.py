"""Session id -> file name inside the trace folder, and opening it safely.

A session id comes from a record, so it is untrusted: it may hold ``/``, ``..``,
NUL or a thousand characters. The file name keeps only ``[A-Za-z0-9._-]`` (the
rest becomes ``_``), never starts with a dot, is capped in length, and always ends
with a short hash of the original id, so two ids that sanitise alike never share
a file. The final path is checked to be directly inside the folder, and files
are opened with ``O_NOFOLLOW`` so a planted symlink cannot redirect a write.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SUFFIX = ".trace.jsonl"
MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
FILE_MODE = 0o640


class UnsafeSessionId(ValueError):
    """A session id that names no file: empty, ``.`` or ``..``."""


def file_name(session_id: str) -> str:
    """The file name for ``session_id``: sanitised stem + ``.`` + 8 hex digits of its hash."""
    if not isinstance(session_id, str) or session_id in ("", ".", ".."):
        raise UnsafeSessionId(f"session id {session_id!r} cannot name a trace file")
    stem = _UNSAFE.sub("_", session_id)[:MAX_STEM]
    if stem.startswith("."):
        stem = "_" + stem[1:]
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{stem}.{digest}{SUFFIX}"


def session_path(folder: Path, session_id: str) -> Path:
    """Where ``session_id``'s trace lives; raises :class:`UnsafeSessionId` if it is not inside ``folder``."""
    path = folder / file_name(session_id)
    if path.parent != folder or os.path.basename(path) != path.name:
        raise UnsafeSessionId(f"session id {session_id!r} escapes the trace folder")
    return path


def plain_name(name: str) -> str:
    """``name`` if it names a file directly in a folder; else :class:`UnsafeSessionId`."""
    if "/" in name or name in ("", ".", ".."):
        raise UnsafeSessionId(f"{name!r} is not a plain file name")
    return name


def open_append(folder: Path, name: str) -> int:
    """An O_APPEND descriptor for ``folder/name``, refusing symlinks and anything outside ``folder``."""
    plain_name(name)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                       FILE_MODE, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
