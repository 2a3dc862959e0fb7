"""Rotation of the log file: policies, background compression and retention, and recovery
after a crash. Backup names and finding them belong to :mod:`logd.logfiles.names`.

- Policies (:class:`SizeLimit`, :class:`Schedule`, :class:`Compression`, :class:`Retention`)
  are built once from the config (:meth:`RotationPolicy.from_config`); the write path only
  asks them "is it due?".
- A rotation renames ``agent.log`` to its backup name: with dated names (the default)
  ``agent-<rotation time>.log``, one rename whatever the number of backups; with numbered
  names every backup N -> N+1 first, oldest first, then ``agent.log`` -> ``.1`` (so at
  every instant each file has one number and higher is older). Either way ``tail -F``
  follows. The renamed file's mtime is set to the rotation time: that is the backup's age
  for ``max_age``, kept by later renames and by compression.
- One background thread per log path (:class:`FileSet`, shared by the sinks writing that
  path, as during a reload) compresses every plain backup but the newest, newest first,
  and applies retention. Compression writes ``<backup>.zst.tmp``, fsyncs it, renames it to
  ``<backup>.zst``, then removes the plain file. Renames and that last step hold one lock;
  compressing does not, so ingestion never waits for it.
- Memory: one compressor per path, reused, with its tables bounded at any level
  (:data:`ZSTD_MAX_LOG`); file data goes through one reused buffer; after each pass the
  thread gives freed heap back to the system (:func:`logd.malloc.release_free_memory`).
- After a crash (:meth:`FileSet.recover`, at start-up): a ``.tmp`` is always unfinished and
  is removed (its plain source is still there); a backup with both a plain and a
  compressed file lost the race between rename and unlink, and the compressed one is
  complete (fsynced before its rename), so the plain one goes; gaps a cut-short numbered
  cascade left are closed. No backup is lost and no line is kept twice.
- Time-based rotation survives restarts: the current file's period began when the newest
  backup was rotated (its mtime, set at rotation); without a backup, at the time of the
  current file's first record (but not after the file's last write).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
import zstandard

from logd.logfiles.names import COMPRESSED_SUFFIXES, DATED, NUMBERED, Backup, Names, stamp_text, stamp_time
from logd.malloc import release_free_memory

FILE_MODE = 0o640
MB = 1024 * 1024
CHUNK = 1 << 20  # bytes read from a backup at a time while compressing (into one reused buffer)
# zstd's window/chain/hash tables grow to ~130 MB at level 22: capped, the compressor stays
# under ~11 MB at any level (window 2 MB; ratio within ~1.5% of uncapped on agent logs)
ZSTD_MAX_LOG = {"window_log": 21, "chain_log": 20, "hash_log": 20}
STALLS_KEPT = 32  # recent writer stalls per rotation kept for status (``logd bench --soak`` polls often enough)
DAY = 86_400.0
RETENTION_INTERVAL = 3600.0  # seconds between retention passes without a rotation
BACKGROUND_NICE = 10  # of the compression thread (only that thread; see FileSet._run)

Clock = Callable[[], float]
Report = Callable[[str, str, dict[str, Any]], None]  # (level, message, fields)
OnDelete = Callable[[list[Path]], object]


# --- policies ---

@dataclass(frozen=True)
class SizeLimit:
    """Rotate before a write would make the file exceed ``max_bytes``."""

    max_bytes: int

    def due(self, current_size: int, incoming: int) -> bool:
        return current_size > 0 and current_size + incoming > self.max_bytes

    def fitting(self, current_size: int, data: bytes) -> int:
        """How many leading bytes of ``data`` (whole lines) still go into the file; 0: rotate
        first. An empty file takes at least its first line, however long (never split)."""
        if current_size + len(data) <= self.max_bytes:
            return len(data)
        room = self.max_bytes - current_size
        fits = data.rfind(b"\n", 0, room) + 1 if room > 0 else 0
        if fits == 0 and current_size == 0:
            fits = data.find(b"\n") + 1 or len(data)
        return fits


@dataclass(frozen=True)
class Schedule:
    """``rotate_every``: rotate at local-time boundaries every ``hours`` hours.

    Boundaries are wall-clock multiples of ``hours`` counted from local midnight
    1970-01-01, so "daily" is local midnight, "6h" is 00/06/12/18 and "hourly" each hour;
    daylight-saving changes move them with the wall clock. ``tz`` is for tests; None is
    the system's local time.
    """

    hours: int
    spelling: str = ""
    tz: tzinfo | None = None

    def next_boundary(self, after: float) -> float:
        """The first boundary strictly after the epoch time ``after``."""
        wall = datetime.fromtimestamp(after, self.tz).replace(tzinfo=None)
        base = datetime(1970, 1, 1)
        step = timedelta(hours=self.hours)
        boundary = base + step * (math.floor((wall - base) / step) + 1)
        epoch = self._epoch(boundary)
        while epoch <= after:  # a wall time repeated or skipped by a DST change
            boundary += step
            epoch = self._epoch(boundary)
        return epoch

    def _epoch(self, wall: datetime) -> float:
        return wall.timestamp() if self.tz is None else wall.replace(tzinfo=self.tz).timestamp()

    def __str__(self) -> str:
        return self.spelling or f"{self.hours}h"


def parse_rotate_every(text: str) -> Schedule:
    """``"hourly"``, ``"daily"`` or ``"<N>h"`` (N >= 1) -> :class:`Schedule`; ValueError otherwise."""
    spelling = text.strip().lower()
    if spelling == "hourly":
        return Schedule(1, "hourly")
    if spelling == "daily":
        return Schedule(24, "daily")
    m = re.fullmatch(r"([1-9][0-9]{0,3})\s*h", spelling)
    if m:
        return Schedule(int(m.group(1)), f"{int(m.group(1))}h")
    raise ValueError(f"cannot parse rotate_every from {text!r}")


# algorithm -> (file suffix, lowest level, highest level, default level)
COMPRESSIONS: dict[str, tuple[str, int, int, int]] = {"zstd": (".zst", 1, 22, 3), "gzip": (".gz", 1, 9, 6)}


def compression_level_error(algorithm: str, level: int) -> str | None:
    """What a valid level is, when ``level`` is not one for ``algorithm``."""
    _, low, high, _ = COMPRESSIONS[algorithm]
    if low <= level <= high:
        return None
    return f"a {algorithm} level from {low} to {high}"


@dataclass(frozen=True)
class Compression:
    algorithm: str = "zstd"
    level: int | None = None  # None: the algorithm's default

    @property
    def suffix(self) -> str:
        return COMPRESSIONS[self.algorithm][0]

    @property
    def effective_level(self) -> int:
        return self.level if self.level is not None else COMPRESSIONS[self.algorithm][3]

    def compressor(self) -> Any:
        """A zstd compression context to reuse for every file (None for gzip): one allocation
        of its tables per path, not one per rotation."""
        if self.algorithm != "zstd":
            return None
        level = zstandard.ZstdCompressionParameters.from_level(self.effective_level)
        capped = {key: min(getattr(level, key), cap) for key, cap in ZSTD_MAX_LOG.items()}
        params = zstandard.ZstdCompressionParameters.from_level(self.effective_level, write_checksum=1, **capped)
        return zstandard.ZstdCompressor(compression_params=params)

    def compress(self, src: int, dst: int, cancelled: Callable[[], bool], context: Any = None,
                 buffer: bytearray | None = None) -> bool:
        """Stream file descriptor ``src`` into ``dst`` compressed; False if cancelled midway.

        ``context`` (from :meth:`compressor`) and ``buffer`` are reused across calls."""
        view = memoryview(buffer if buffer is not None else bytearray(CHUNK))
        with open(dst, "wb", buffering=0, closefd=False) as out:
            if self.algorithm == "zstd":
                writer: Any = (context or self.compressor()).stream_writer(out, closefd=False, write_size=CHUNK // 4)
                write, finish = writer.write, lambda: writer.flush(zstandard.FLUSH_FRAME)
            else:
                gz = zlib.compressobj(self.effective_level, zlib.DEFLATED, 31)  # 31: gzip framing
                write = lambda data: _write_all(dst, gz.compress(data))  # noqa: E731
                finish = lambda: _write_all(dst, gz.flush())  # noqa: E731
            while True:
                if cancelled():
                    return False
                n = os.readv(src, [view])
                if not n:
                    break
                write(view[:n])
            finish()
        return True


@dataclass(frozen=True)
class Retention:
    """``max_backups`` (0: keep all) and ``max_age`` in days (0: no limit), by rotation time."""

    max_backups: int = 0
    max_age_days: float = 0

    @property
    def active(self) -> bool:
        return self.max_backups > 0 or self.max_age_days > 0

    def expired(self, backups: list[Backup], now: float) -> list[Backup]:
        """The backups to delete; ``backups`` newest first."""
        out = []
        for index, backup in enumerate(backups):
            too_many = self.max_backups > 0 and index >= self.max_backups
            too_old = self.max_age_days > 0 and now - backup.rotated_at > self.max_age_days * DAY
            if too_many or too_old:
                out.append(backup)
        return out


@dataclass(frozen=True)
class RotationPolicy:
    """Everything a rotating file sink needs to know, parsed once from the config."""

    size: SizeLimit | None = None
    schedule: Schedule | None = None
    compression: Compression | None = None
    retention: Retention = field(default_factory=Retention)
    names: str = DATED  # backup names: "dated" or "numbered" (see logd.logfiles.names)

    @classmethod
    def from_config(cls, config: Any) -> RotationPolicy:
        return cls(
            size=SizeLimit(config.max_size_bytes) if config.max_size > 0 else None,
            schedule=parse_rotate_every(config.rotate_every) if config.rotate_every else None,
            compression=Compression(config.compression, config.compression_level) if config.compress else None,
            retention=Retention(config.max_backups, config.max_age),
            names=getattr(config, "backup_names", DATED),
        )


# --- the files on disk ---

def backup_name(current: Path, number: int, suffix: str = "") -> Path:
    """The numbered layout's name of backup ``number``."""
    return Names(current).numbered(number, suffix)


def scan(current: Path) -> list[Backup]:
    """The backups of ``current``, newest first (both layouts; see :mod:`logd.logfiles.names`)."""
    return Names(current).scan()


def _renumbered(current: Path, path: Path, number: int) -> Path:
    """``path`` (a file of some numbered backup) under backup number ``number``, same suffixes."""
    rest = path.name[len(current.name) + 1:]
    suffixes = rest[rest.index("."):] if "." in rest else ""
    return backup_name(current, number, suffixes)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def first_record_time(path: Path) -> float | None:
    """Epoch seconds of the ``time`` of the file's first line, if it has a readable one."""
    try:
        with open(path, "rb") as f:
            line = f.readline(1 << 20)
        value = orjson.loads(line)["time"]
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        return None


def period_start(current: Path, now: float) -> float:
    """When the current file's time period began (see the module docstring)."""
    found = scan(current)
    if found and found[0].number in (None, 1):
        try:
            return os.stat(found[0].main).st_mtime
        except FileNotFoundError:
            pass
    try:
        st = os.stat(current)
    except FileNotFoundError:
        return now
    if st.st_size == 0:
        return now
    first = first_record_time(current)
    return min(first, st.st_mtime) if first is not None else st.st_mtime


# --- one log path: renames, the background worker, counters ---

class FileSet:
    """A log path's backups and the thread that compresses and prunes them.

    Shared (through :func:`acquire`/:func:`release`) by every sink writing the path: during
    a reload the new sink opens the file before the old one's last batch, so they share
    the lock, and a rotation by either bumps :attr:`generation` so the other reopens.
    Counters live here so they survive reloads.
    """

    def __init__(self, path: Path, policy: RotationPolicy, *, clock: Clock = time.time,
                 report: Report | None = None, on_delete: OnDelete | None = None) -> None:
        self.path = path
        self.policy = policy
        self.clock = clock
        self.report: Report = report or _stderr_report
        self.on_delete = on_delete
        self.lock = threading.Lock()
        self.generation = 0
        self.refs = 0
        # counters (read by metrics and status)
        self.rotations = 0
        self.compressed = 0
        self.compression_seconds = 0.0
        self.retention_deleted = 0  # backups deleted by max_backups / max_age
        self.errors = 0
        self.stall_count = 0  # rotations whose writer stall was measured (the sink's whole switch)
        self.stalls: deque[float] = deque(maxlen=STALLS_KEPT)  # the latest, in seconds
        self.rename: Callable[[Any, Any], None] = os.rename  # tests inject crashes here
        self.names = Names(path)
        self._last_stamp = 0.0  # dated names: the newest rotation time used (names stay unique)
        self._active: str | None = None  # plain name of the backup being compressed
        self._context: tuple[Compression, Any] | None = None  # the reused zstd context
        self._buffer: bytearray | None = None  # the reused read buffer
        self._cancel = False
        self._stop = False
        self._wanted = 0  # passes requested
        self._done = 0  # passes finished
        self._last_retention = clock()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- rotation (called on the writer's thread) ---

    def rotate(self) -> Path:
        """Rename the current file to its newest backup name (see the module docstring);
        returns that name.

        Raises OSError with nothing lost: a numbered cascade cut short leaves a gap that the
        next rotation or start-up closes. The caller switches to a new file only once this returns."""
        now = self.clock()
        with self.lock:
            if self.policy.names == NUMBERED:
                first = self._cascade()
            else:
                first = self._dated_name(now)
            self.rename(self.path, first)
            self.generation += 1
            self.rotations += 1
        try:
            os.utime(first, (now, now))  # the backup's rotation time, for max_age
        except OSError:
            pass
        self.kick()
        return first

    def _cascade(self) -> Path:
        """Numbered names: every backup N -> N+1, oldest first (each target name is free when
        used); returns the name for the current file. Strings, not Paths: once per backup."""
        folder, base = str(self.path.parent), self.path.name
        numbered = []
        for name in os.listdir(folder):
            parsed = self.names.parse(name)
            if parsed is not None and parsed[1] is not None:
                numbered.append((parsed[1], name[len(parsed[0]):], parsed[0]))
        numbered.sort(reverse=True)
        for number, suffix, plain in numbered:
            self.rename(os.path.join(folder, plain + suffix), os.path.join(folder, f"{base}.{number + 1}{suffix}"))
            if plain == self._active and suffix == "":
                self._active = f"{base}.{number + 1}"  # the compressor's source moved: it finishes there
        return self.names.numbered(1)

    def _dated_name(self, now: float) -> Path:
        """A name no backup has: the rotation time, moved on by a millisecond when taken
        (two rotations within one millisecond, or a clock that went back)."""
        when = max(now, self._last_stamp + 0.001)  # _last_stamp: from recover() at start-up
        while True:
            target = self.names.dated(when)
            if not any(os.path.lexists(f"{target}{suffix}") for suffix in ("", *COMPRESSED_SUFFIXES)):
                break
            when += 0.001
        self._last_stamp = stamp_time(stamp_text(when))
        return target

    def record_stall(self, seconds: float) -> None:
        """The writer's pause for one rotation (called by the sink that rotated)."""
        self.stalls.append(seconds)
        self.stall_count += 1

    # --- background work ---

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"logd-rotation {self.path.name}", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """Ask for a pass: retention, then compression of every plain backup numbered 2+."""
        with self._cond:
            self._wanted += 1
            self._cond.notify_all()

    def tick(self) -> None:
        """Hourly retention by the clock (the daemon calls this periodically)."""
        if self.clock() - self._last_retention >= RETENTION_INTERVAL:
            self.kick()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every pass asked for so far has finished (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            wanted = self._wanted
            while self._done < wanted:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        """Stop the thread; a compression in progress is abandoned (its ``.tmp`` removed) and
        redone at the next start, so shutdown never waits for it."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:  # Linux: a thread is a task with its own nice value; ingestion comes first on a busy CPU
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except (AttributeError, OSError):
            pass
        delay = 0.0  # after a failure: wait this long (or for the next kick), then retry
        while True:
            with self._cond:
                if delay and not self._stop:
                    self._cond.wait(delay)
                while not self._stop and self._done >= self._wanted:
                    self._cond.wait()
                if self._stop:
                    return
                wanted = self._wanted
            try:
                self._pass()
            except OSError as exc:
                self.errors += 1
                delay = min(60.0, delay * 2 or 1.0)
                self.report("error", "rotation: compression or retention failed; retrying",
                            {"file": str(self.path), "error": str(exc), "retry_in_s": delay})
                continue
            except Exception as exc:  # a bug: reported, and the thread goes on
                self.errors += 1
                delay = 60.0
                self.report("error", "rotation: unexpected error in the background worker",
                            {"file": str(self.path), "error": repr(exc)})
                continue
            delay = 0.0
            with self._cond:
                self._done = max(self._done, wanted)
                self._cond.notify_all()

    @contextmanager
    def _scanned(self, pick: Callable[[list[Backup]], list[Backup]]) -> Iterator[list[Backup]]:
        """Hold the lock with the backups ``pick`` chose from a scan that is still true.

        The scan and the choice (thousands of names) are made before taking the lock, so a
        rotation never waits for them. Only a numbered rotation moves names: one in between
        means scanning again; a dated one only adds the newest backup, the scan stays true."""
        for _ in range(5):
            generation = self.generation
            found = self.names.scan()
            chosen = pick(found)
            self.lock.acquire()
            if self.generation == generation or self.policy.names != NUMBERED:
                break
            self.lock.release()
        else:
            self.lock.acquire()
            chosen = pick(self.names.scan())
        try:
            yield chosen
        finally:
            self.lock.release()

    def _pass(self) -> None:
        self._retain()
        while not self._stop and self._compress_next():
            self._retain()
        release_free_memory()  # what compressing freed goes back now, not at some later trim

    def _retain(self) -> None:
        """Delete backups past ``max_backups`` or older than ``max_age``; ``on_delete`` hears first.

        While the hook runs, each doomed file stays under its numbered name (readers such as
        the shippers still see it) and also gets a second, stable name, a hard link
        ``agent.log.deleting.<backup name>`` (same compression suffix) that no rotation renames: the
        hook is given those, so it reads exactly what goes. Then the files are found again by
        inode (rotations may have moved them meanwhile) and removed with their links. A crash
        in between leaves only links, which :meth:`recover` removes."""
        self._last_retention = self.clock()
        retention = self.policy.retention
        if not retention.active:
            return
        doomed: list[Path] = []  # the file readers use, per deleted backup (as its stable link)
        links: list[Path] = []
        inodes: set[tuple[int, int]] = set()
        with self._scanned(lambda found: retention.expired(found, self.clock())) as expired:
            for backup in expired:
                for path in backup.files:
                    link = self.names.deleting(path)
                    link.unlink(missing_ok=True)  # from an earlier attempt
                    try:
                        os.link(path, link)
                    except OSError:  # no hard links here: move it out instead
                        self.rename(path, link)
                    links.append(link)
                    st = os.stat(link)
                    inodes.add((st.st_dev, st.st_ino))
                    if path == backup.main:
                        doomed.append(link)
        if not links:
            return
        if self.on_delete is not None:
            try:
                self.on_delete(doomed)
            except Exception as exc:  # the hook's problem must not stop retention
                self.report("error", "rotation: the retention hook failed", {"error": repr(exc)})
        with self._scanned(lambda found: found) as found:
            for backup in found:
                for path in backup.files:
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        continue
                    if (st.st_dev, st.st_ino) in inodes:
                        path.unlink()
                        if backup.base == self._active:
                            self._cancel = True
        for link in links:
            link.unlink(missing_ok=True)
        self.retention_deleted += len(doomed)
        self.report("info", f"retention deleted {len(doomed)} backup(s)",
                    {"file": str(self.path), "deleted": [self.names.undeleting(p).name for p in doomed],
                     "max_backups": retention.max_backups, "max_age_days": retention.max_age_days})

    def _compress_next(self) -> bool:
        """Compress the newest plain backup but the newest backup; False when there is none."""
        compression = self.policy.compression
        if compression is None:
            return False
        target: list[Backup] = []  # the backup to compress, set by pick()

        def pick(found: list[Backup]) -> list[Backup]:
            """Leftovers of failures to clean up; sets ``target``."""
            # the newest backup stays plain (numbered: .1), as it always has
            target[:] = [b for i, b in enumerate(found)
                         if (i >= 1 or (b.number or 0) >= 2) and b.plain and not b.compressed][:1]
            return [b for b in found if b.temp is not None or (b.plain and b.compressed)]

        with self._scanned(pick) as chosen:
            for backup in chosen:
                if backup.temp is not None:  # no compression runs now: any .tmp is left from a failure
                    backup.temp.unlink(missing_ok=True)
                    backup.temp = None
                if backup.plain is not None and backup.compressed is not None:
                    backup.plain.unlink(missing_ok=True)  # a finish cut short: the compressed file is complete
                    backup.plain = None
            if not target:
                return False
            backup = target[0]
            assert backup.plain is not None
            # O_NOFOLLOW: a symlink swapped in for a backup is refused, never its target copied
            src = os.open(backup.plain, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            temp = self.names.folder / (backup.base + compression.suffix + ".tmp")
            try:
                dst = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
            except OSError:
                os.close(src)
                raise
            self._active, self._cancel = backup.base, False
        if self._context is None or self._context[0] != compression:
            self._context = (compression, compression.compressor())
        if self._buffer is None:
            self._buffer = bytearray(CHUNK)
        started = time.perf_counter()
        finished = False
        try:
            if compression.compress(src, dst, lambda: self._cancel or self._stop, self._context[1], self._buffer):
                st = os.fstat(src)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # keeps the rotation time
                os.fsync(dst)
                finished = True
        finally:
            os.close(src)
            os.close(dst)
            with self.lock:  # a numbered cascade may have moved our backup up: self._active follows it
                active: str | None = self._active
                cancelled = self._cancel or not finished
                assert active is not None
                temp = self.names.folder / (active + compression.suffix + ".tmp")
                if not cancelled:
                    try:
                        self.rename(temp, self.names.folder / (active + compression.suffix))
                    except FileNotFoundError:  # a cascade cut short split our files: do it again later
                        cancelled = True
                if cancelled:
                    self._active = None
                    temp.unlink(missing_ok=True)
        if not cancelled:
            # the rename is made durable before the source goes; not under the lock, so a
            # rotation never waits for the disk (until the unlink both files are complete)
            _fsync_dir(self.path.parent)
            with self.lock:
                active, self._active = self._active, None
                assert active is not None
                (self.names.folder / active).unlink()
            self.compressed += 1
            self.compression_seconds += time.perf_counter() - started
        return not self._stop

    # --- start-up ---

    def recover(self) -> list[str]:
        """Finish or undo what a crash interrupted (see the module docstring); returns what was done."""
        done: list[str] = []
        with self.lock:
            prefix = self.names.deleting_prefix
            for name in os.listdir(self.path.parent):
                if name.startswith(prefix):  # retention's link (or file moved out); it runs again at start-up
                    (self.path.parent / name).unlink()
                    done.append(f"removed {name} (retention)")
            for backup in self.names.scan():
                if backup.temp is not None:
                    backup.temp.unlink()
                    done.append(f"removed unfinished {backup.temp.name}")
                if backup.plain is not None and backup.compressed is not None:
                    backup.plain.unlink()
                    done.append(f"removed {backup.plain.name}: {backup.compressed.name} is complete")
            found = self.names.scan()
            newest_dated = next((b for b in found if b.stamp_text is not None), None)  # found: newest first
            self._last_stamp = (newest_dated.stamp or 0.0) if newest_dated is not None else 0.0
            numbered = [b for b in found if b.number is not None]
            # close gaps in numbered names, lowest first; a compressed newest backup stays at 2 or above
            target = 2 if numbered and numbered[0].plain is None and (numbered[0].number or 0) >= 2 else 1
            for backup in numbered:
                if backup.number != target:
                    for path in backup.files:
                        self.rename(path, _renumbered(self.path, path, target))
                    done.append(f"renumbered backup {backup.number} -> {target}")
                target += 1
        return done


def _stderr_report(level: str, message: str, fields: dict[str, Any]) -> None:
    if level == "error":
        try:
            os.write(2, f"logd: error: {message}: {fields.get('error', '')}\n".encode())
        except OSError:
            pass


# --- one FileSet per path in this process ---

_registry: dict[str, FileSet] = {}
_registry_lock = threading.Lock()


def acquire(path: Path, policy: RotationPolicy, *, clock: Clock = time.time, report: Report | None = None,
            on_delete: OnDelete | None = None) -> FileSet:
    """The path's FileSet, created (recovering the folder and starting its thread) on first use.

    A later caller (a reload) brings the current policy, clock and hooks."""
    key = os.path.abspath(path)
    with _registry_lock:
        files = _registry.get(key)
        if files is None:
            files = FileSet(Path(key), policy, clock=clock, report=report, on_delete=on_delete)
            done = files.recover()
            if done:
                files.report("warn", "rotation: finished what an unclean stop interrupted",
                             {"file": key, "actions": done})
            _registry[key] = files
            files.start()
        else:
            files.policy, files.clock = policy, clock
            files.report = report or files.report
            files.on_delete = on_delete
        files.refs += 1
    files.kick()  # start-up (or new settings): retention and pending compression
    return files


def release(files: FileSet) -> None:
    with _registry_lock:
        files.refs -= 1
        if files.refs > 0:
            return
        _registry.pop(str(files.path), None)
    files.stop()
