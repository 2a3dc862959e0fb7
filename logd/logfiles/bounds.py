"""Time bounds of rotated files: the earliest and latest record ``time`` in each, so that
``logd query --since/--until`` skips a backup only when *every* record in it is outside
the window. Records keep the time their client gave (skewed clocks, backfills, slow
batches), so a file is not in time order and its first line says nothing about the rest.

The bounds live in a small JSON-lines index beside the log file, ``.agent.log.bounds``,
one line per file: ``{"fp": ..., "bytes": ..., "min": ..., "max": ...}``. An entry is
keyed by the file's *content*, its head and decompressed size (:mod:`.identity`), never by
its name: backups are renamed at every rotation and compressed later, and their naming
may change, but their decompressed bytes do not. (Entries filed before the one identity
rule hashed up to 64 KiB: those of backups over 4 KiB match nothing now, so such a backup
is read once more and filed again; no entry can name the wrong file.)

The file sink writes the index and the readers read it: both depend on this module,
not on each other.

- The writer (:class:`BoundsTracker`, driven by the file sink) folds each batch's min and
  max ``time`` into the bounds of the open file, and appends an entry when it rotates the
  file away. A file it did not see from its first byte (a restart appending to an
  existing file) gets no entry.
- The reader (:func:`files_in_window`) looks each backup up by fingerprint; a backup
  without an entry is read, and its bounds are then added to the index
  (:func:`record_bounds`) so the next query can skip it. The current file is always read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import orjson
import zstandard

from logd.logfiles.content import LogFile
from logd.logfiles.identity import HEAD_BYTES, Head, read_head
from logd.regular import read_regular
from logd.timestamps import normalize_time

MAX_INDEX_BYTES = 1 << 20  # then the oldest half of the entries goes (a lost entry only means "read it")
Bounds = tuple[str, str]


def index_path(current: Path) -> Path:
    """``logs/agent.log`` -> ``logs/.agent.log.bounds`` (hidden: no backup scan matches it)."""
    return current.with_name(f".{current.name}.bounds")


@dataclass(frozen=True)
class Entry:
    fp: str
    size: int  # decompressed bytes
    low: str
    high: str


def load(current: Path) -> dict[str, Entry]:
    """The index's entries by fingerprint; an unreadable index or line is simply not there."""
    try:  # only a regular file: a FIFO named like the index must not hang a reader
        data, _ = read_regular(index_path(current), 4 * MAX_INDEX_BYTES)
    except OSError:
        return {}
    found: dict[str, Entry] = {}
    for line in data.splitlines():
        try:
            item = orjson.loads(line)
            found[item["fp"]] = Entry(item["fp"], int(item["bytes"]), str(item["min"]), str(item["max"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return found


def append(current: Path, entry: Entry) -> None:
    """Add one entry (one small O_APPEND write); trims the index when it grows past 1 MiB.
    A link planted at the index's name is refused (``O_NOFOLLOW``): the daemon, or root
    running ``logd query``, never appends to a file someone else chose; a FIFO there fails
    the open at once (``O_NONBLOCK``) instead of waiting for a reader."""
    path = index_path(current)
    line = orjson.dumps({"fp": entry.fp, "bytes": entry.size, "min": entry.low, "max": entry.high}) + b"\n"
    flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        _owned_like_folder(fd, path.parent)
        os.write(fd, line)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > MAX_INDEX_BYTES:
        rows = read_regular(path, 4 * MAX_INDEX_BYTES)[0].splitlines(keepends=True)
        temp = path.with_name(path.name + ".tmp")
        fd = os.open(temp, flags | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            _owned_like_folder(fd, path.parent)
            os.write(fd, b"".join(rows[len(rows) // 2:]))
        finally:
            os.close(fd)
        os.replace(temp, path)


def _owned_like_folder(fd: int, folder: Path) -> None:
    """An index root makes (``sudo logd query``) belongs to the log folder's owner, as the
    files logd writes do: else the daemon, running as its own user, could never add to it."""
    if os.geteuid() != 0:
        return  # others can only make files of their own, in a folder they may write to
    folder_stat, file_stat = os.stat(folder), os.fstat(fd)
    if (file_stat.st_uid, file_stat.st_gid) != (folder_stat.st_uid, folder_stat.st_gid):
        os.fchown(fd, folder_stat.st_uid, folder_stat.st_gid)


# --- the writer's side ---

class BoundsTracker:
    """Bounds of the file open at one path, shared by the sinks writing it (a reload has two).

    ``add`` is called with the bounds of the bytes about to be written (a superset is fine:
    a batch split by a rotation counts in both files); ``rotated`` files an entry."""

    def __init__(self, current: Path) -> None:
        self.current = current
        self.inode: tuple[int, int] | None = None
        self.complete = False  # seen from its first byte
        self.low: str | None = None
        self.high: str | None = None

    def opened(self, fd: int) -> None:
        st = os.fstat(fd)
        inode = (st.st_dev, st.st_ino)
        if inode != self.inode:
            self.inode, self.complete, self.low, self.high = inode, st.st_size == 0, None, None

    def add(self, low: str, high: str) -> None:
        if self.low is None or low < self.low:
            self.low = low
        if self.high is None or high > self.high:
            self.high = high

    def rotated(self, fd: int) -> None:
        """The file open at ``fd`` was just rotated away: file its bounds. Never raises (no
        entry means readers read the file)."""
        try:
            st = os.fstat(fd)
            if (not self.complete or self.low is None or self.high is None
                    or (st.st_dev, st.st_ino) != self.inode):
                return
            head = os.pread(fd, HEAD_BYTES, 0)  # the sink opens its file for reading and appending
            append(self.current, Entry(Head.of(head).fingerprint, st.st_size, self.low, self.high))
        except OSError:
            pass
        finally:
            self.inode = None


_trackers: dict[str, BoundsTracker] = {}


def tracker(current: Path) -> BoundsTracker:
    """The path's tracker in this process (the file sinks run on one thread)."""
    key = os.path.abspath(current)
    found = _trackers.get(key)
    if found is None:
        found = _trackers[key] = BoundsTracker(Path(key))
    return found


# --- the reader's side ---

def _size_matches(file: LogFile, size: int) -> bool:
    """Check the decompressed size where it is cheap to know: plain (st_size), gzip (ISIZE,
    mod 2**32), zstd (frame header, when written); otherwise trust the fingerprint."""
    assert file.fd is not None
    try:
        st = os.fstat(file.fd)
        if file.compression == "":
            return st.st_size == size
        if file.compression == "gz":
            return st.st_size >= 4 and struct.unpack("<I", os.pread(file.fd, 4, st.st_size - 4))[0] == size % 2**32
        if file.compression == "zst":
            declared = zstandard.frame_content_size(os.pread(file.fd, 18, 0))
            return declared < 0 or declared == size
    except (OSError, zstandard.ZstdError, struct.error):
        return False
    return True


@dataclass
class Known:
    """What the index says about one open file: its bounds, or None (read it) and its fingerprint."""

    file: LogFile
    fp: str | None
    bounds: Bounds | None


def lookup(current: Path, files: list[LogFile]) -> list[Known]:
    entries = load(current)
    out = []
    for file in files:
        opened_here = not file.is_open
        if file.is_current or file.fd is None:
            out.append(Known(file, None, None))
            continue
        try:
            head = read_head(file)
            fp = Head.of(head).fingerprint if head else None
            entry = entries.get(fp) if fp is not None else None
            bounds = (entry.low, entry.high) if entry is not None and _size_matches(file, entry.size) else None
        finally:
            if opened_here:
                file.release()  # one backup open at a time (it opens again when read)
        out.append(Known(file, fp, bounds))
    return out


def outside(bounds: Bounds | None, since: str | None, until: str | None) -> bool:
    """Whether every record in a file with these bounds is outside [since, until]."""
    if bounds is None:
        return False
    low, high = bounds
    return (since is not None and high < since) or (until is not None and low > until)


def files_in_window(current: Path, files: list[LogFile], since: str | None,
                    until: str | None) -> list[Known]:
    """The files that may hold records in [since, until] (canonical times, inclusive)."""
    if since is None and until is None:
        return [Known(f, None, None) for f in files]
    return [k for k in lookup(current, files) if not outside(k.bounds, since, until)]


_HEAD = b'{"time":"'


def lines_bounds(lines: list[bytes], bounds: Bounds | None) -> Bounds | None:
    """``bounds`` widened by the times of ``lines`` (logd's layout is read from the bytes;
    other lines are parsed; lines without a readable time can match no window and are left out)."""
    low, high = bounds if bounds is not None else (None, None)
    for line in lines:
        if line.startswith(_HEAD) and line[36:38] == b'",':
            t: str | None = line[9:36].decode("ascii", "replace")
        else:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            t = normalize_time(record.get("time")) if isinstance(record, dict) else None
        if t is None:
            continue
        if low is None or t < low:
            low = t
        if high is None or t > high:
            high = t
    return (low, high) if low is not None and high is not None else None


def record_bounds(current: Path, known: Known, size: int, bounds: Bounds | None) -> None:
    """File the bounds a reader measured over a whole backup (best effort: the index may
    not be writable by this user)."""
    if known.fp is None or bounds is None or known.file.is_current:
        return
    try:
        append(current, Entry(known.fp, size, bounds[0], bounds[1]))
    except OSError:
        pass
