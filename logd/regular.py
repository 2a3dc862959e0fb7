"""Opening a file a reader expects to be a regular file: the log and its backups, the
bounds index, session files, trace files to import.

Whoever may write to a folder may put anything under a name a reader will open: a
symbolic link to a file of the reader's choosing, a FIFO (an open that waits for a
writer for ever), ``/dev/zero`` (a read that never ends). So readers open without
following a link (``O_NOFOLLOW``: logd never makes one among its files, and its writer
refuses them too), without waiting (``O_NONBLOCK``), and take only a regular file; what
they refuse comes back as an ``OSError`` whose text says what was found, for the one line
that says the file was skipped.
"""

from __future__ import annotations

import errno
import os
import stat

READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def _kind(mode: int) -> str:
    """What a file that is not a regular file (nor a directory) is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return f"{name}, not a regular file"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its ``fstat``, if it is a regular file and not
    a symbolic link; else OSError saying what it is (ELOOP: a link, EISDIR, EINVAL)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link; logd's readers do not follow links", str(path)) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, "a directory, not a file", str(path))
        raise OSError(errno.EINVAL, _kind(st.st_mode), str(path))
    return fd, st


def read_regular(path: str | os.PathLike[str], limit: int) -> tuple[bytes, os.stat_result]:
    """The whole of a regular file of at most ``limit`` bytes (else OSError EFBIG), and its stat."""
    fd, st = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1) if st.st_size <= limit else b""
    if st.st_size > limit or len(data) > limit:
        raise OSError(errno.EFBIG, f"over {limit:,} bytes, more than this reader takes", str(path))
    return data, st
