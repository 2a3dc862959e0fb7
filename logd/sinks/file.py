"""JSON-lines file sink: one object per line, appended in whole batches, rotated by policy.

The sink never loses or splits a line it has taken: bytes it could not write
(disk full, permissions, a rename that failed while rotating) stay in ``_unwritten``
and go out, in order, on the next ``flush``; the error propagates so the pipeline
pauses clients and retries with backoff.

Rotation (see :mod:`logd.rotation`): before a write would make the file exceed
``max_size`` the sink writes the whole lines that fit, rotates, and goes on in the new
file; a single line longer than ``max_size`` goes whole into a fresh file. A line is
never split across files, even when a write was cut short. Time rotation happens
before the first write at or after the schedule's boundary (or on :meth:`tick`).
Compression and retention run on the path's background thread.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logd import rotation
from logd.components import Batch, SinkBase, SinkStats
from logd.events import Events
from logd.logfiles import bounds
from logd.rotation import FILE_MODE, FileSet, OnDelete, RotationPolicy, compression_level_error, parse_rotate_every
from logd.settings import MB, Invalid, boolean, choice, days, found, integer, megabytes, setting, string
from logd.spec import SINK, Context, Spec, TableCheck

__all__ = ["FILE_MODE", "FileSettings", "FileSink"]


def _rotate_every(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(parse_rotate_every(value))
        except ValueError:
            pass
    raise Invalid('"hourly", "daily" or a number of hours such as "6h"')


@dataclass(frozen=True)
class FileSettings:
    """The log file: AgenticGoKit's keys of ``[logging]`` (lumberjack's rotation), and where
    logd keeps its own state beside it."""

    file: Path | None = setting(None, doc="the JSON-lines file; unset: console only", check=string, path="file")
    file_only: bool = setting(False, doc="no console output", check=boolean)
    max_size: float = setting(100, doc="MB: rotate before the file would exceed this",
                              check=megabytes("a positive number of megabytes (integer or float)"))
    max_backups: int = setting(0, doc="rotated files kept; 0 keeps every one",
                               check=integer(0, "a whole number >= 0 (0 keeps every backup)"))
    max_age: float = setting(0, doc="days: rotated files older than this are removed; 0: no limit",
                             check=days("a number of days >= 0 (0 means no limit)"))
    compress: bool = setting(False, doc="compress rotated files (all but the newest backup)", check=boolean)
    compression: str = setting("zstd", doc='of rotated files, when compress is true: "zstd" (.zst) or "gzip" (.gz)',
                               check=choice(("zstd", "gzip")))
    compression_level: int | None = setting(None, doc="None: the algorithm's default (zstd 3, gzip 6)",
                                            check=integer(1, "a whole number >= 1 (zstd 1-22, gzip 1-9)"))
    rotate_every: str | None = setting(None, doc='"hourly", "daily" or "<N>h": also rotate at local-time boundaries',
                                       check=_rotate_every)
    backup_names: str = setting("dated", doc='"dated" (agent-<time>.log) or "numbered" (agent.log.1): see '
                                             "logd.logfiles.names", check=choice(("dated", "numbered")))
    state_dir: Path | None = setting(None, doc="ship checkpoints, dead letters, spool; default .logd-state beside "
                                               "`file`", check=string, path="folder")

    @property
    def max_size_bytes(self) -> int:
        return int(self.max_size * MB)

    @property
    def console_enabled(self) -> bool:
        return not self.file_only or self.file is None

    @property
    def ship_state_dir(self) -> Path:
        """Where shippers keep checkpoints, dead letters and (without a file) the spool."""
        if self.state_dir is not None:
            return self.state_dir
        if self.file is not None:
            return self.file.parent / ".logd-state"
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return Path(base) / "logd"


def _check(table: TableCheck) -> None:
    values = table.values
    if "compression_level" in values:  # its range depends on the algorithm
        expected = compression_level_error(values.get("compression", "zstd"), values["compression_level"])
        if expected is not None:
            table.problem(f"expected {expected}, found {found(values['compression_level'])}", "compression_level")
    if values.get("file_only") and values.get("file") is None:
        table.warn("file_only is set but no file is configured; logging to the console")


def _build(settings: FileSettings, ctx: Context) -> FileSink | None:
    if settings.file is None:
        return None
    return FileSink(settings.file, RotationPolicy.from_config(settings), clock=ctx.clock, events=ctx.events,
                    on_delete=ctx.unshipped)


def _open_log(path: Path) -> int:
    """The log file for appending; a symlink at its path is refused (O_NOFOLLOW), so a link
    swapped in by someone else never makes logd append to (or rotate) its target."""
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link; logd does not follow links for its log file "
                                       "(remove the link)", str(path)) from None
        raise


class FileSink(SinkBase):
    name = "file"
    path: Path

    def __init__(self, path: Path, policy: RotationPolicy | None = None, *,
                 clock: Callable[[], float] = time.time, events: Events | None = None,
                 on_delete: OnDelete | None = None) -> None:
        """``policy`` None: never rotates (a plain append-only file). ``events`` hears about
        background work (compression, retention), from the rotation thread; ``on_delete(paths)``
        is called by retention, from the background thread, before it deletes backups that
        still exist at ``paths`` (the shippers count what they had not read)."""
        self.path = path
        self.policy = policy
        self.clock = clock
        self.events = events if events is not None else Events(clock)
        self.on_delete = on_delete
        self.files: FileSet | None = None
        self._counted: FileSet | None = None  # the counters stay readable after close
        self.bytes_written = 0
        self._fd: int | None = None
        self._size = -1  # of the open file; -1: not known yet (fstat at the next write)
        self._generation = 0
        self._unwritten = b""
        # the start of a line a short write left unfinished at the end of the file (b"" normally):
        # it is finished there before any rotation, or taken back before a reopen
        self._line_head = b""
        self._rotate_asked = False
        self._reopen_asked = False
        self._next_boundary: float | None = None
        # time bounds of each file, filed at rotation so queries skip only what is outside
        # their window (logd.logfiles.bounds); _pending: bounds of the bytes not yet written
        self._bounds = bounds.tracker(path) if policy is not None else None
        self._pending: bounds.Bounds | None = None

    # --- files ---

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.policy is not None and self.files is None:
                self.files = self._counted = rotation.acquire(
                    self.path, self.policy, clock=self.clock, report=self._report, on_delete=self.on_delete)
                if self.policy.schedule is not None:
                    start = rotation.period_start(self.path, self.clock())
                    self._next_boundary = self.policy.schedule.next_boundary(start)
            self._fd = _open_log(self.path)
            self._size = -1
            if self._bounds is not None:
                self._bounds.opened(self._fd)
            if self.files is not None:
                self._generation = self.files.generation
            self._start_on_fresh_line(self._fd)
        elif self.files is not None and self._generation != self.files.generation:
            self._close_fd()  # the other sink of a reload rotated the file: follow it
            return self._open()
        if self._size < 0:
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _report(self, level: str, message: str, fields: dict[str, Any]) -> None:
        """The rotation thread's reports (its callback shape), as events."""
        self.events.emit(level, message, sink=self.name, **fields)

    def _start_on_fresh_line(self, fd: int) -> None:
        """A file whose last line is torn (a logd killed or out of space mid-write, or another
        writer) gets a newline first: our records never run on from a fragment."""
        size = os.fstat(fd).st_size
        if size > 0 and not self._line_head and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
            self._report("warn", "log file ended in a torn line; it is left as it is and logging goes on "
                                 "from a new line", {"file": str(self.path)})

    def _check_linked(self, fd: int) -> int:
        """The open file was deleted (or its whole folder): recreate it now, rather than write
        into a file nobody can see. Reported once per recreation."""
        if os.fstat(fd).st_nlink > 0:
            return fd
        self._line_head = b""  # what a deleted file held is gone with it
        self._close_fd()
        self._report("warn", "log file was deleted; recreated it", {"file": str(self.path)})
        return self._open()

    def open(self) -> None:
        """Open (creating folders and the file) now, so a bad path fails at start or reload."""
        self._open()
        self._size = -1  # another sink may still write before us (a reload): measure at our first write

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # --- writing ---

    def write(self, batch: Batch) -> None:
        data = batch.json_lines()
        if self._bounds is not None and batch.count:
            low, high = batch.time_bounds()
            pending = self._pending if self._unwritten else None
            self._pending = (min(low, pending[0]), max(high, pending[1])) if pending else (low, high)
        self._unwritten = self._unwritten + data if self._unwritten else data
        self.flush()

    def flush(self) -> None:
        fd = self._check_linked(self._open())
        if self.policy is None:
            while self._unwritten:
                if self._reopen_asked:
                    fd = self._reopen_now()
                self._write_some(fd, self._unwritten)
            return
        size_limit = self.policy.size
        while True:
            if self._reopen_asked:
                fd = self._reopen_now()
            if not self._mid_line and (self._rotate_asked or (
                    self._unwritten and self._next_boundary is not None and self.clock() >= self._next_boundary)):
                self._rotate()
                fd = self._open()
            if not self._unwritten:
                return
            chunk = self._unwritten
            if self._mid_line:  # finish the line a short write left, whatever its size
                chunk = chunk[:chunk.find(b"\n") + 1 or len(chunk)]
            elif size_limit is not None:
                fits = size_limit.fitting(self._size, chunk)
                if fits == 0:  # not even one more line fits (an oversize one gets a fresh file)
                    self._rotate()
                    fd = self._open()
                    continue
                if fits < len(chunk):
                    chunk = chunk[:fits]
            self._write_some(fd, chunk)

    def _write_some(self, fd: int, chunk: bytes) -> None:
        if self._pending is not None and self._bounds is not None:
            self._bounds.add(*self._pending)  # these bytes come from the pending batches
        try:
            written = os.write(fd, chunk)
        except InterruptedError:
            return
        if written == 0:  # pragma: no cover - only on exotic filesystems
            raise OSError(errno.EIO, "write returned 0", str(self.path))
        self._unwritten = self._unwritten[written:]
        self._size += written
        self.bytes_written += written
        if chunk[written - 1] == 0x0A:  # b"\n": the usual case
            if self._line_head:
                self._line_head = b""
        else:
            start = chunk.rfind(b"\n", 0, written) + 1
            self._line_head = (self._line_head if start == 0 else b"") + chunk[start:written]

    # --- rotation ---

    def _rotate(self) -> bool:
        """Rotate now unless the file is empty; raises OSError (the pipeline retries)."""
        self._open()
        assert self.files is not None and self.policy is not None
        self._rotate_asked = False
        if self._size == 0:
            return False
        started = time.perf_counter()
        self.files.rotate()
        if self._bounds is not None and self._fd is not None:
            self._bounds.rotated(self._fd)
        self._close_fd()  # renamed to its backup name; from here the next write opens a new file
        self._generation = self.files.generation
        now = self.clock()
        if self.policy.schedule is not None:
            self._next_boundary = self.policy.schedule.next_boundary(now)
        self._open()  # the new file exists at once, for tail -F and readers (a failure: next write retries)
        self.files.record_stall(time.perf_counter() - started)  # what this rotation held the writer up
        return True

    def rotate_now(self) -> bool | None:
        """Rotate at once (``logd rotate``, SIGUSR1); False if there was nothing to rotate.

        Raises OSError when the rotation fails; it is then retried before the next write,
        through the pipeline's failure path. A line cut short by a failed write is finished
        first, so the rotation waits for the pending bytes."""
        if self.policy is None:
            return False
        self._rotate_asked = True
        if self._unwritten or self._mid_line:
            self.flush()
            return True
        return self._rotate()

    @property
    def _mid_line(self) -> bool:
        return bool(self._line_head)

    def _reopen_now(self) -> int:
        """Switch to a new file at the path. A line cut short in the old file is taken back
        (truncated away, if the old file allows) and written whole to the new one."""
        self._reopen_asked = False
        if self._line_head and self._fd is not None:
            try:
                os.ftruncate(self._fd, self._size - len(self._line_head))
            except OSError:
                pass  # the old file keeps a fragment (readers report it); the line is not lost
            self._unwritten = self._line_head + self._unwritten
            self._line_head = b""
        self._close_fd()
        return self._open()

    def reopen(self) -> None:
        """Open the path again before the next write (SIGHUP: an external logrotate moved the
        file away, perhaps while it was full)."""
        if self._unwritten:
            self._reopen_asked = True  # at the next flush (the pipeline's retry)
        else:
            self._close_fd()  # the next write opens the path

    def tick(self) -> None:
        """Periodic housekeeping: a time rotation that came due without writes, hourly retention.

        Leaves a sink holding unwritten bytes to the pipeline's retry."""
        if self.files is None or self.policy is None:
            return
        self.files.tick()
        if (self._next_boundary is not None and not self._unwritten and not self._mid_line
                and self.clock() >= self._next_boundary):
            self._rotate()

    # --- state ---

    @property
    def pending_bytes(self) -> int:
        return len(self._unwritten)

    @property
    def rotations(self) -> int:
        return self._counted.rotations if self._counted is not None else 0

    @property
    def compression_seconds(self) -> float:
        return self._counted.compression_seconds if self._counted is not None else 0.0

    @property
    def retention_deleted(self) -> int:
        """Backups deleted by retention (max_backups / max_age) since this path was first opened."""
        return self._counted.retention_deleted if self._counted is not None else 0

    def stats(self) -> SinkStats:
        stalls, recent = self.rotation_stalls
        return SinkStats(sent_bytes=self.bytes_written, buffer_bytes=len(self._unwritten),
                         rotations=self.rotations, compression_seconds=self.compression_seconds,
                         retention_deleted=self.retention_deleted, rotation_stalls=stalls,
                         rotation_stall_ms=[round(s * 1000, 2) for s in recent])

    @property
    def rotation_stalls(self) -> tuple[int, list[float]]:
        """(rotations measured, the latest writer stalls in seconds) for this path."""
        files = self._counted
        return (files.stall_count, list(files.stalls)) if files is not None else (0, [])

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait for the background compression and retention asked for so far."""
        return self.files.settle(timeout) if self.files is not None else True

    def discard_unwritten(self) -> int:
        """Give up what could not be written (shutdown on a disk that stays full): takes back a
        torn last line so the file ends on a whole line, and returns how many records are lost."""
        lost = self._unwritten.count(b"\n")
        if self._line_head and self._fd is not None:
            try:
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - len(self._line_head))
            except OSError:
                pass  # the next start still begins on a fresh line (_start_on_fresh_line)
            self._line_head = b""
        self._unwritten = b""
        return lost

    def close(self) -> None:
        self._close_fd()
        if self.files is not None:
            files, self.files = self.files, None
            rotation.release(files)


SPEC = Spec(SINK, "file", _build, FileSettings, table="", check=_check,
            summary=lambda config: f"file {config.of(FileSettings).file}" if config.of(FileSettings).file else None)
