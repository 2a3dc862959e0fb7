"""The per-session trace files: appending in batches through a small LRU of open files,
retention by age, and reading them back.

One file per session (``names.file_name``), JSON lines of the records as the
pipeline delivered them. Only the daemon's trace writer appends; readers
(``logd list``/``logd trace``) take complete lines only, so a line being written
is read on the next pass.
"""

from __future__ import annotations

import errno
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from logd.regular import open_regular
from logd.traces.names import SUFFIX, open_append
from logd.traces.spares import Spares

DIR_MODE = 0o750
DAY = 86_400.0
# the names of files written, for the session index (index.py): "<second> <name>" lines,
# each file at most once per second; replaced by an empty one past JOURNAL_MAX bytes
JOURNAL = ".journal"
JOURNAL_MAX = 4 << 20


class TraceStore:
    """Appends encoded records to per-session files; at most ``max_open`` stay open at once."""

    def __init__(self, folder: Path, *, max_age_days: float = 0, max_open: int = 32,
                 clock: Callable[[], float] = time.time, spares: bool = False) -> None:
        """``spares``: new files are made ahead by a thread (:mod:`.spares`; the daemon's store)."""
        self.folder = folder
        self.spares = Spares(folder) if spares else None
        self.max_age_days = max_age_days
        self.max_open = max_open
        self.clock = clock
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._folder_ready = False
        self._journal: int | None = None
        self._journal_size = 0
        self._journal_id: tuple[int, int] | None = None
        self._folder_id: tuple[int, int] | None = None  # the folder the open files are in
        self._second = -1
        self._noted: set[str] = set()

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is not None:
            self._fds.move_to_end(name)
            return fd
        if not self._folder_ready:
            self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            self._folder_ready = True
            self._folder_id = _identity(self.folder)
        fd = self.spares.named(name) if self.spares is not None else None
        if fd is None:
            fd = open_append(self.folder, name)
        self._fds[name] = fd
        while len(self._fds) > self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def append(self, name: str, data: bytes) -> None:
        """Append whole lines to one session's file; raises OSError with nothing half-written
        left behind unless the disk itself fails mid-write."""
        second = int(self.clock())
        if second != self._second:
            self._second, self._noted = second, set()
            self._check_folder()
        fd = self._fd(name)
        if name not in self._noted:
            self._noted.add(name)
            self._note(f"{second} {name}\n".encode())
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except InterruptedError:
                continue
            except OSError:
                self._forget(name)
                raise
            if written == 0:  # pragma: no cover - exotic filesystems only
                raise OSError(errno.EIO, "write returned 0", str(self.folder / name))
            view = view[written:]

    def _note(self, line: bytes) -> None:
        """One journal line for the session index; a journal that cannot be written only
        makes the next ``logd list`` look at every file."""
        try:
            if self._journal is None or self._journal_size > JOURNAL_MAX:
                if self._journal is not None:
                    os.close(self._journal)
                    self._journal = None
                    fresh = open_append(self.folder, JOURNAL + ".new")
                    os.close(fresh)
                    os.replace(self.folder / (JOURNAL + ".new"), self.folder / JOURNAL)
                self._journal = open_append(self.folder, JOURNAL)
                st = os.fstat(self._journal)
                self._journal_size, self._journal_id = st.st_size, (st.st_dev, st.st_ino)
            self._journal_size += os.write(self._journal, line)
        except OSError:
            pass

    def _check_folder(self) -> None:
        """Once a second: a trace folder removed or replaced under the daemon (an operator's
        clean-up, a tmpfs remounted) closes what is open in the old one, so that sessions and
        the journal go on in the new one, not to deleted files; so does a journal removed alone.
        Two ``stat`` calls a second, none per record."""
        if not self._folder_ready:
            return
        folder = _identity(self.folder)
        if folder != self._folder_id:
            self._folder_id = folder
            self._close_files()
            if self.spares is not None:
                self.spares.drop()  # made in the old folder (another file system, if remounted)
        elif self._journal is not None and _identity(self.folder / JOURNAL) != self._journal_id:
            os.close(self._journal)
            self._journal = None

    def _close_files(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None

    def _forget(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def prune(self, now: float | None = None) -> list[Path]:
        """Delete session files last written more than ``max_age_days`` ago; returns them."""
        if self.max_age_days <= 0:
            return []
        cutoff = (self.clock() if now is None else now) - self.max_age_days * DAY
        removed: list[Path] = []
        for path in session_files(self.folder):
            try:
                if path.lstat().st_mtime < cutoff:
                    self._forget(path.name)
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
        return removed

    @property
    def open_files(self) -> int:
        return len(self._fds)

    def spare_figures(self) -> dict:
        """New files named from a spare (``used``) or created on the loop (``missed``), spares ``ready``;
        how many the thread ``made`` in how many ``seconds`` of its CPU (what a file costs here)."""
        spares = self.spares
        if spares is None:
            return {}
        out: dict = {"used": spares.used, "missed": spares.missed, "ready": spares.ready, "made": spares.made,
                     "seconds": round(spares.seconds, 6)}
        if spares.unavailable is not None or spares.failed is not None:
            out["error"] = str(spares.unavailable or spares.failed)
        return out

    def close(self) -> None:
        if self.spares is not None:
            self.spares.close()
        self._close_files()


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``; None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def session_files(folder: Path) -> list[Path]:
    """Every session file in ``folder`` (regular files only), oldest first by name order."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries
                  if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False))


def read_lines(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete records from ``offset`` on, and the offset after the last complete line.

    A line that is not a JSON object is skipped (it cannot come from logd's writer)."""
    fd, _ = open_regular(path)  # not a link, not a FIFO (logd.regular)
    with os.fdopen(fd, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    return list(_decode(data[:end].splitlines())), offset + end


def _decode(lines: Iterable[bytes]) -> Iterator[dict]:
    for line in lines:
        if not line:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj
