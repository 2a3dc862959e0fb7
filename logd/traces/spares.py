"""New session files made ahead, off the event loop.

Creating a file is the one slow step of appending to a session (the trace store keeps the
files it writes open): the kernel allocates an inode, which took 0.05 to 0.9 ms per file on
this project's 2-core build machine, depending on what else had just deleted files on its
ext4 (``ext4_create`` -> ``find_inode_bit``). With a new session every 200 records, up to a
third of a trace record's cost on the event loop went there.

:class:`Spares` keeps a few unnamed files (``O_TMPFILE``) ready in the trace folder, made by a
thread of its own; a new session's file is one of them given its name with ``linkat`` (a
directory entry, ~20 us). The loop never waits for the thread and nothing waits for a file:
with no spare ready (a burst of new sessions, or a file system without ``O_TMPFILE``) the
store creates the file itself, as before. A spare that was never named leaves nothing behind,
even after a crash. ``spare_files`` in ``logd status`` says how many sessions got one.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import deque
from pathlib import Path

from logd.traces.names import FILE_MODE, plain_name

KEEP = 32  # spares ready at most; the thread is woken when a quarter are left (fewer wake-ups, each a GIL hand-over)
UNSUPPORTED = frozenset((errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL))  # O_TMPFILE answers where it has no support


class Spares:
    """Unnamed files in ``folder`` for :meth:`named` (the thread starts at the first call)."""

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder, self.keep = folder, keep
        self._ready: deque[int] = deque()  # descriptors; appended by the thread, taken on the loop
        self._wanted = threading.Event()  # the thread makes more when set
        self._thread: threading.Thread | None = None
        self._closing = False
        self.used = 0  # files named from a spare
        self.missed = 0  # files the store opened itself (created, or there already): no spare was ready
        self.unavailable: OSError | None = None  # why spares cannot be made or named here: none are tried again
        self.failed: OSError | None = None  # the thread's last error making one (tried again when wanted)
        self.made = 0  # spares the thread made
        self.seconds = 0.0  # the thread's CPU making them: what creating a file costs on this file system

    @property
    def ready(self) -> int:
        return len(self._ready)

    def named(self, name: str) -> int | None:
        """A spare's descriptor, now the file ``name`` in the folder; None when no spare is
        ready or ``name`` exists already (then the store opens it as before)."""
        plain_name(name)
        if self.unavailable is not None:
            self.missed += 1
            return None
        try:
            fd = self._ready.popleft()
        except IndexError:
            fd = None
        if len(self._ready) <= self.keep // 4 and not self._wanted.is_set():
            self._start()
        if fd is None:
            self.missed += 1
            return None
        try:
            folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:  # the folder's own trouble: the store's open says what it is
            self._ready.appendleft(fd)
            return None
        try:  # never follows a planted link: an existing name, a link too, is EEXIST
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)
        except FileExistsError:
            self._ready.appendleft(fd)  # still a spare
            return None
        except OSError as exc:  # no /proc, or a file system that does not link them: as before
            os.close(fd)
            if exc.errno != errno.EXDEV:  # EXDEV: made in the folder's old file system (drop() raced the thread)
                self.unavailable = exc
            self.missed += 1
            return None
        finally:
            os.close(folder)
        self.used += 1
        return fd

    def _start(self) -> None:
        if self.unavailable is not None or self._closing:
            return
        self._wanted.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="logd-trace-spares", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            while not self._closing and len(self._ready) < self.keep:
                started = time.thread_time()
                try:
                    fd = os.open(self.folder, os.O_TMPFILE | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
                except OSError as exc:  # the store creates its files meanwhile (and reports what fails)
                    if exc.errno in UNSUPPORTED:
                        self.unavailable = exc
                    self.failed = exc
                    break
                self.seconds += time.thread_time() - started  # counted before the spare can be seen
                self.made += 1
                self.failed = None
                self._ready.append(fd)
            if self._closing or self.unavailable is not None:
                return

    def drop(self) -> None:
        """Close the spares ready (the folder was replaced: they are in the old one); the thread
        makes new ones in the folder when next wanted."""
        while self._ready:
            try:
                os.close(self._ready.popleft())
            except IndexError:  # taken meanwhile
                break

    def close(self) -> None:
        """Stop the thread; the spares left vanish with their descriptors."""
        self._closing = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        while self._ready:
            os.close(self._ready.popleft())
