"""``logd tail``: the last N records, and ``-f`` following the file across rotations.

Following keeps the file it reads open. When the path names a new file (a rotation
renamed ours away), the follower takes a :func:`~logd.reading.files.snapshot`, finds our file in
it (by inode, or by its first line once it has been compressed under a new name), reads
our file to its end, then every file rotated after it, in order, then the new current
file from its start: at a burst of rotations no line is lost or read twice. It only
leaves a file once a newer one has data, so a writer's last lines in the old file are seen.
watchdog wakes it on file events; a slow poll backs that up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from logd.reading.files import LogFile, Problem, ProblemHandler, Snapshot, file_lines, first_line, raw_chunks, snapshot

Match = Callable[[bytes], "bool | None"]
Emit = Callable[[list[bytes]], None]
BACK_BLOCK = 1 << 16


def complete_end(fd: int, end: int) -> int:
    """Where the complete lines before byte ``end`` stop: just after the last newline."""
    pos = end
    while pos > 0:
        size = min(BACK_BLOCK, pos)
        cut = os.pread(fd, size, pos - size).rfind(b"\n")
        if cut >= 0:
            return pos - size + cut + 1
        pos -= size
    return 0


def _plain_tail(fd: int, end: int, n: int, match: Match) -> list[bytes]:
    """The last ``n`` matching lines of a plain file whose complete lines end at ``end``,
    read backwards from there in blocks."""
    found: list[bytes] = []
    pos = end
    rest = b""
    while pos > 0 and len(found) < n:
        size = min(BACK_BLOCK, pos)
        pos -= size
        lines = (os.pread(fd, size, pos) + rest).split(b"\n")
        rest = lines.pop(0) if pos > 0 else b""  # may be the end of a line that starts earlier
        for line in reversed(lines):
            if line and match(line):
                found.append(line)
                if len(found) == n:
                    break
    found.reverse()
    return found


def last_lines(files: list[LogFile], n: int, match: Match, on_problem: ProblemHandler,
               current_end: int | None = None) -> list[bytes]:
    """The last ``n`` matching lines across the files (oldest first in ``files``), newest last.
    Plain files are read backwards; a compressed backup is streamed with a bounded window."""
    if n <= 0:
        return []
    chunks: list[list[bytes]] = []
    wanted = n
    for file in reversed(files):
        if wanted <= 0:
            break
        if file.fd is None:
            reason = file.error.strerror if file.error else "not open"
            on_problem(Problem(file.path, None, f"cannot read: {reason}; skipped"))
            continue
        if not file.compression:
            if file.is_current and current_end is not None:
                end = current_end
            else:
                end = complete_end(file.fd, os.fstat(file.fd).st_size)
            got = _plain_tail(file.fd, end, wanted, match)
            file.release()  # a backup opened on demand: one open at a time
        else:
            window: deque[bytes] = deque(maxlen=wanted)
            for batch in file_lines(file, on_problem):
                window.extend(line for line in batch if line and match(line))
            got = list(window)
        chunks.append(got)
        wanted -= len(got)
    return [line for got in reversed(chunks) for line in got]


class _Wake(FileSystemEventHandler):
    """Runs on watchdog's thread: only wakes the follower, which does the reading."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


class Follower:
    """Reads what is appended to ``path``, across rotations, and hands complete lines to ``emit``."""

    def __init__(self, path: Path, emit: Emit, on_problem: ProblemHandler, match: Match | None = None) -> None:
        self.path = path
        self.emit = emit
        self.on_problem = on_problem
        self.match = match
        self.file: LogFile | None = None
        self.offset = 0
        self._rest = b""
        self._told_unreadable = False

    def start_at(self, file: LogFile | None, offset: int) -> None:
        """Follow ``file`` (the current file, open) from byte ``offset``; None waits for the file."""
        self.file, self.offset, self._rest = file, offset, b""

    # --- one step ---

    def _send(self, lines: list[bytes]) -> None:
        if self.match is not None:
            lines = [line for line in lines if line and self.match(line)]
        else:
            lines = [line for line in lines if line]
        if lines:
            self.emit(lines)

    def _drain(self) -> None:
        """Emit the complete lines appended to our file since the last read."""
        assert self.file is not None and self.file.fd is not None
        for chunk in raw_chunks(self.file.fd, self.offset):
            self.offset += len(chunk)
            data = self._rest + chunk if self._rest else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                self._rest = data
                continue
            self._rest = data[cut + 1:]
            self._send(data[:cut].split(b"\n"))

    def _finish(self) -> None:
        """Our file was rotated away: read it to its end; an unfinished last line is reported."""
        self._drain()
        if self._rest and self.file is not None:
            self.on_problem(Problem(self.file.path, None, "rotated with an unfinished last line; it is skipped"))
        self._rest = b""

    def poll(self) -> None:
        if self.file is None:
            files = snapshot(self.path)
            current = next((f for f in files if f.is_current), None)
            for f in files:
                if f is not current:
                    f.close()
            if current is None:
                return
            if current.fd is None:  # there but unreadable: say so once, keep trying
                if not self._told_unreadable:
                    reason = current.error.strerror if current.error and current.error.strerror else current.error
                    self.on_problem(Problem(self.path, None, f"cannot read: {reason}; waiting for it"))
                    self._told_unreadable = True
                return
            self.start_at(current, 0)
        self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:  # between a rename and the new file: ours may be far back
            self._follow_rotation()
            return
        assert self.file is not None
        if (st.st_dev, st.st_ino) == self.file.inode:
            if st.st_size < self.offset:  # truncated in place (copytruncate): start over
                self.on_problem(Problem(self.path, None, "file truncated; following from its start"))
                self.offset, self._rest = 0, b""
                self._drain()
            return
        self._follow_rotation()

    def _follow_rotation(self) -> None:
        assert self.file is not None
        files = snapshot(self.path)
        ours = self._find_ours(files)
        newer = files[ours + 1:] if ours is not None else [f for f in files if f.is_current]
        current = next((f for f in newer if f.is_current), None)
        backups = [f for f in newer if not f.is_current]
        # What to follow next: the new current file once it has data (then the writer has
        # left every older file); else the newest backup if plain, as the writer may still
        # be finishing it; compressed backups are complete.
        if current is not None and current.fd is not None and os.fstat(current.fd).st_size > 0:
            target: LogFile | None = current
        elif backups and not backups[-1].compression and backups[-1].fd is not None:
            target = backups[-1]
        elif backups:
            target = None  # read them all, then pick up the current file when it appears
        else:
            files.close()
            return  # only an empty new file: the writer may not have left ours yet
        if ours is None:
            self.on_problem(Problem(self.file.path, None,
                                    "rotated files were removed before they could be read; records may be missing"))
        self._finish()
        self.file.close()
        keep = {id(f) for f in backups} | {id(target)}
        for f in files:
            if id(f) not in keep:
                f.close()
        for f in backups:
            if f is not target:
                for batch in file_lines(f, self.on_problem):
                    self._send(batch)
                f.close()
        self.start_at(target, 0)
        if target is not None:
            self._drain()

    def _find_ours(self, files: Snapshot) -> int | None:
        """Index of the file we were reading in the snapshot: same inode, or same first line
        (a compressed copy of it)."""
        assert self.file is not None
        for i, f in enumerate(files):
            if f.inode == self.file.inode and not f.compression:
                return i
        head = first_line(self.file)
        if head is None:
            return None
        for i, f in enumerate(files):
            if not f.is_current and first_line(f) == head:
                return i
        return None

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Follow until ``stop`` is set; watchdog events on the folder wake us at once."""
        # watchdog logs a harmless race when its observer stops mid-read; keep it off stderr
        logging.getLogger("watchdog").addHandler(logging.NullHandler())
        wake = threading.Event()
        observer = Observer()
        folder = os.fspath(self.path.parent)
        observer.schedule(_Wake(wake), folder, recursive=False)
        observer.start()
        try:
            told = ""
            while not stop.is_set():
                try:
                    self.poll()
                except OSError as exc:  # an I/O error on the disk: say so once, keep trying
                    if str(exc) != told:
                        told = str(exc)
                        self.on_problem(Problem(self.path, None, f"read error: {exc.strerror or exc}; retrying"))
                wake.wait(poll_interval)
                wake.clear()
            self.poll()
        finally:
            observer.stop()
            observer.join(5)
            if self.file is not None:
                self.file.close()


def open_current(path: Path) -> tuple[Snapshot, LogFile | None, int]:
    """A snapshot for ``tail``, its current file (if any) and where following starts: the
    start of the unfinished line at the end (or the end). ``last_lines`` reads up to there,
    so nothing is shown twice or skipped between the two."""
    files = snapshot(path)
    current = next((f for f in files if f.is_current and f.fd is not None), None)
    if current is None or current.fd is None:
        return files, current, 0
    return files, current, complete_end(current.fd, os.fstat(current.fd).st_size)


def run_tail(path: Path, n: int, follow: bool, match: Match | None, emit: Emit,
             on_problem: ProblemHandler, stop: threading.Event | None = None) -> None:
    """Emit the last ``n`` selected lines of the file set, then (``follow``) what is appended."""
    files, current, start = open_current(path)
    with files:
        lines = last_lines(list(files), n, match or _everything, on_problem, current_end=start)
        if lines:
            emit(lines)
        if not follow:
            return
        follower = Follower(path, emit, on_problem, match)
        if current is not None:
            files.remove(current)  # the follower owns it from here
            follower.start_at(current, start)
    follower.run(stop or threading.Event())


def _everything(line: bytes) -> bool:
    return True
