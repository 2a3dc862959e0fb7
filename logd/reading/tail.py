"""``logd tail``: the last N records, and ``-f`` following the file across rotations.

The last records come from a :func:`~logd.logfiles.snapshot.snapshot`, plain files read
backwards. Following is the one follower of rotating files the shippers use too
(:class:`logd.logfiles.follow.Follower`): it keeps the file it reads open, reads it to its
end once the writer has left it, then every file rotated after it, in order, then the
new current file: at a burst of rotations no line is lost or read twice. watchdog wakes
it on file events; a slow poll backs that up.
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

from logd.logfiles.content import LogFile, Problem, ProblemHandler, file_lines
from logd.logfiles.follow import Follower
from logd.logfiles.snapshot import Snapshot, snapshot

Match = Callable[[bytes], "bool | None"]
Emit = Callable[[list[bytes]], None]
BACK_BLOCK = 1 << 16
POLL_LINES = 10_000  # lines taken from the follower at a time


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


class TailFollower:
    """``logd tail -f``: the one follower of rotating files (:class:`~logd.logfiles.follow.Follower`),
    its complete lines selected by ``match`` and handed to ``emit``; woken by watchdog."""

    def __init__(self, path: Path, emit: Emit, on_problem: ProblemHandler, match: Match | None = None) -> None:
        self.path = path
        self.emit = emit
        self.on_problem = on_problem
        self.match = match
        self.follower = Follower(path, on_problem=on_problem, on_gap=on_problem)
        self.follower.start_at(None)  # until told otherwise: the current file from its start, once it exists

    def start_at(self, file: LogFile | None, offset: int) -> None:
        """Follow ``file`` (the current file, open) from byte ``offset``; None waits for the file."""
        self.follower.start_at(file, offset)

    def poll(self) -> None:
        """Emit every complete line there is now."""
        while (chunk := self.follower.read(POLL_LINES)) is not None:
            lines = chunk.lines
            match = self.match
            lines = [line for line in lines if line and match(line)] if match is not None else [
                line for line in lines if line]
            if lines:
                self.emit(lines)

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
            self.follower.close()


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
        follower = TailFollower(path, emit, on_problem, match)
        if current is not None:
            files.remove(current)  # the follower owns it from here
            follower.start_at(current, start)
    follower.run(stop or threading.Event())


def _everything(line: bytes) -> bool:
    return True
