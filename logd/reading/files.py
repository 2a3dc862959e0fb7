"""Reading a logd JSON-lines file and its rotated backups, oldest record first.

Naming (:mod:`logd.backups`): ``agent.log`` is the current file; backups are dated
(``agent-2026-11-29T17-03-00.123.log.zst``) or numbered (``agent.log.1``, ``agent.log.2.zst``,
higher is older), or both after a switch; each file here gets its rank, 1 the newest backup.
``*.tmp`` files are a compressor's work in progress and are ignored.

Rotation renames files while we read, so :func:`snapshot` takes the set at one
consistent instant: it opens the current file and notes each backup's identity (device,
inode, rotation time); a backup is opened when it is first read, one at a time (a folder
may keep more backups than a process may open files), and found again by that identity
if a numbered rotation moved it or compression replaced it meanwhile. Reads go through
the descriptors (with ``pread``, never the shared offset). Reading is streaming: raw
chunks -> decompressor -> batches of complete lines, in constant memory. A file that
cannot be read, or is corrupt or truncated, is reported once (file and line) through an
``on_problem`` callback and reading goes on with the next.

Used by ``logd query`` and ``logd tail``; other readers (shippers) can use it too::

    with snapshot(Path("logs/agent.log")) as files:
        for batch in read_lines(files, on_problem=print):
            for line in batch: ...
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard

from logd.backups import Names, compression_of
from logd.regular import open_regular

RAW_CHUNK = 1 << 20  # bytes read from disk at a time
COMPRESSED_CHUNK = 1 << 18  # compressed bytes read at a time
MAX_OUT = 1 << 22  # decompressed bytes wanted at a time, at most


@dataclass(frozen=True)
class Problem:
    """A file (or part of one) that could not be read; ``line`` is 1-based, None for the whole file."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


ProblemHandler = Callable[[Problem], None]


class CorruptData(Exception):
    """The compressed stream is damaged or ends early."""


@dataclass
class LogFile:
    """One file of the set, opened: ``number`` 0 is the current file, N the N-th backup."""

    path: Path
    number: int
    compression: str  # "", "gz" or "zst"
    fd: int | None = None
    error: OSError | None = None  # why it could not be opened
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
    _first_line: bytes | None = field(default=None, repr=False)
    disk_size: int = -1  # bytes on disk when listed (-1: not known; fstat the open file)

    @property
    def is_current(self) -> bool:
        return self.number == 0

    @property
    def is_open(self) -> bool:
        """Open now (never opens it: see :class:`LazyFile`)."""
        return self.fd is not None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        """Done reading for now: a file opened on demand closes (and opens again if read
        again); one opened by its owner stays open."""


class LazyFile(LogFile):
    """A backup of a :func:`snapshot`: opened when ``fd`` is first asked for.

    It is the file the name had at the snapshot, found by (device, inode): a numbered
    rotation since then moved it to a higher number, and compression may have replaced a
    plain backup by its compressed copy (same rotation time, kept as the copy's mtime). A
    backup deleted since (retention) cannot be read: ``fd`` stays None, ``error`` says why."""

    def __init__(self, path: Path, number: int, compression: str, inode: tuple[int, int], mtime_ns: int,
                 disk_size: int) -> None:
        self._fd: int | None = None
        self._tried = False
        super().__init__(path, number, compression, inode=inode, disk_size=disk_size)
        self.mtime_ns = mtime_ns

    @property
    def fd(self) -> int | None:
        if self._fd is None and not self._tried:
            self._tried = True
            self._open_now()
        return self._fd

    @fd.setter
    def fd(self, value: int | None) -> None:
        self._fd = value

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        self.close()
        self._tried = self.error is not None  # a file that could not be found is not looked for again

    def _open_now(self) -> None:
        if self._open_if_ours(self.path, self.compression):
            return
        for name, compression in self._candidates():
            if self._open_if_ours(self.path.parent / name, compression):
                return
        if self.error is None:
            self.error = FileNotFoundError(errno.ENOENT, "removed before it could be read", str(self.path))

    def _candidates(self) -> Iterator[tuple[str, str]]:
        """Names the file may have now: compressed (or not) under the same name; then, for a
        numbered backup, under a higher number (the nearest first)."""
        name = self.path.name
        base = name[:-len(self.compression) - 1] if self.compression else name
        for suffix, compression in (("", ""), (".zst", "zst"), (".gz", "gz")):
            if base + suffix != name:
                yield base + suffix, compression
        stem, dot, number = base.rpartition(".")
        if not (dot and number.isdigit()):
            return
        prefix, higher = stem + ".", []
        try:
            with os.scandir(self.path.parent) as entries:
                for entry in entries:
                    if entry.name.startswith(prefix):
                        moved, _, suffix = entry.name[len(prefix):].partition(".")
                        if moved.isdigit() and int(moved) > int(number) and suffix in ("", "zst", "gz"):
                            higher.append((int(moved), entry.name))
        except OSError:
            return
        for _, moved_name in sorted(higher):
            yield moved_name, compression_of(moved_name)

    def _open_if_ours(self, path: Path, compression: str) -> bool:
        try:
            st = os.lstat(path)  # a link is noted as itself; _open then refuses it
        except OSError:
            return False
        same = (st.st_dev, st.st_ino) == self.inode
        copy = compression != "" and self.compression == "" and st.st_mtime_ns == self.mtime_ns
        if not (same or copy):
            return False
        opened = _open(path, self.number, compression)
        if opened.fd is None:
            self.error = opened.error
            self._tried = True
            return True  # there, but cannot be read: said by error
        if opened.inode != (st.st_dev, st.st_ino):  # replaced between the look and the open
            opened.close()
            return False
        self._fd, self.path, self.compression, self.inode = opened.fd, path, compression, opened.inode
        return True


def list_files(current: Path) -> list[tuple[Path, int, str]]:
    """``(path, number, compression)`` of the current file (number 0) and every backup
    (1 the newest), oldest first; names and their order come from :mod:`logd.backups`."""
    return Names(current).readable()


def list_names(current: Path) -> list[str]:
    """The names of :func:`list_files`, oldest first (lighter, for thousands of backups);
    ``Names(current).ranked()`` gives each its number and compression."""
    return Names(current).listing()


def _open(path: Path, number: int, compression: str) -> LogFile:
    """One file of the set, opened only if it is a regular file and not a symbolic link (a
    FIFO does not hang the open): else ``error`` says what it is (:mod:`logd.regular`)."""
    file = LogFile(path, number, compression)
    try:
        file.fd, st = open_regular(path)
    except OSError as exc:
        file.error = exc
        return file
    file.inode = (st.st_dev, st.st_ino)
    return file


def _same_on_disk(files: list[LogFile]) -> bool:
    for file in files:
        if file.inode is None:  # not open (a backup not read yet has its inode noted)
            continue
        try:
            st = os.stat(file.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != file.inode:
            return False
    return True


class Snapshot(list[LogFile]):
    """The files open at one instant, oldest first; closes them on exit."""

    def close(self) -> None:
        for file in self:
            file.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listed(current: Path, eager: bool) -> Snapshot:
    """The set as listed now: the current file open, each backup noted (or open: ``eager``)."""
    names = Names(current)
    files = Snapshot()
    for name, number, compression in names.ranked(names.listing()):
        path = names.folder / name
        if number == 0 or eager:
            files.append(_open(path, number, compression))
            continue
        try:
            st = os.lstat(path)
        except OSError as exc:
            files.append(LogFile(path, number, compression, error=exc))
            continue
        files.append(LazyFile(path, number, compression, (st.st_dev, st.st_ino), st.st_mtime_ns, st.st_size))
    return files


def snapshot(current: Path, attempts: int = 50, eager: bool = False) -> Snapshot:
    """The current file and every backup as they are at one instant, oldest first.

    The current file is opened now; each backup when it is first read (:class:`LazyFile`),
    so a reader that closes each backup after reading it (``release``) holds one open at a
    time, however many there are. ``eager`` opens them all now (a reader that needs them
    all open at once: ``logd query --sql``).

    A rotation between listing and noting moves names under us; then we start over, so
    each file is what its name said (a file vanishing is retried, not reported)."""
    for _ in range(attempts):
        files = _listed(current, eager)
        vanished = any(isinstance(f.error, FileNotFoundError) for f in files)
        if not vanished and _same_on_disk(files) and Names(current).readable() == [
            (f.path, f.number, f.compression) for f in files
        ]:
            return files
        files.close()
    files = _listed(current, eager)
    return Snapshot(f for f in files if not isinstance(f.error, FileNotFoundError))


# --- bytes: raw chunks -> decompressed chunks -> lines ---

def raw_chunks(fd: int, start: int = 0, size: int = RAW_CHUNK) -> Iterator[bytes]:
    """The file's bytes from ``start`` to its current end, via pread (the fd offset is untouched)."""
    offset = start
    while True:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _zstd_chunks(raw: Iterator[bytes]) -> Iterator[bytes]:
    # decompressobj (the zstandard API that tells a complete frame from a truncated one)
    # has no output limit, so compressed input goes in in small slices, smaller still when
    # the data turns out very compressible: output per step is ~slice x ratio.
    dctx = zstandard.ZstdDecompressor()
    decoder = dctx.decompressobj()
    in_frame = False
    step = 1 << 14
    for chunk in raw:
        view = memoryview(chunk)
        while view:
            piece, view = view[:step], view[step:]
            while piece:
                try:
                    out = decoder.decompress(piece)
                except zstandard.ZstdError as exc:
                    raise CorruptData(f"corrupt zstd data ({exc})") from None
                in_frame = True
                if out:
                    if len(out) > MAX_OUT and step > 256:
                        step //= 4
                    yield out
                if not decoder.eof:
                    break
                # a frame ended: the rest of this piece belongs to the next frame
                piece = memoryview(decoder.unused_data)
                decoder = dctx.decompressobj()
                in_frame = False
    if in_frame:
        raise CorruptData("truncated zstd data (the file ends inside a frame)")


def _gzip_chunks(raw: Iterator[bytes]) -> Iterator[bytes]:
    decoder = zlib.decompressobj(wbits=31)
    in_member = False
    for chunk in raw:
        while chunk:
            try:
                out = decoder.decompress(chunk, MAX_OUT)
            except zlib.error as exc:
                raise CorruptData(f"corrupt gzip data ({exc})") from None
            in_member = True
            if out:
                yield out
            if decoder.unconsumed_tail:
                chunk = decoder.unconsumed_tail
                continue
            if not decoder.eof:
                break
            chunk = decoder.unused_data
            decoder = zlib.decompressobj(wbits=31)
            in_member = False
    if in_member:
        raise CorruptData("truncated gzip data (the file ends inside a member)")


def decoded_chunks(file: LogFile, raw: Iterator[bytes] | None = None) -> Iterator[bytes]:
    """The file's text as chunks, decompressed. Raises :class:`CorruptData` on damage."""
    assert file.fd is not None
    if raw is None:
        raw = raw_chunks(file.fd, size=COMPRESSED_CHUNK if file.compression else RAW_CHUNK)
    if file.compression == "zst":
        return _zstd_chunks(raw)
    if file.compression == "gz":
        return _gzip_chunks(raw)
    return raw


def line_blocks(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Each chunk's complete lines as one block of bytes (no final newline), with the
    unfinished rest so far."""
    rest = b""
    for chunk in chunks:
        if rest:
            chunk = rest + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            rest = chunk
            continue
        rest = chunk[cut + 1:]
        yield chunk[:cut], rest
    if rest:
        yield b"", rest


def line_batches(chunks: Iterator[bytes]) -> Iterator[tuple[list[bytes], bytes]]:
    """Complete lines of each chunk (without newlines), with the unfinished rest so far."""
    for block, rest in line_blocks(chunks):
        yield (block.split(b"\n") if block else []), rest


def file_blocks(file: LogFile, on_problem: ProblemHandler) -> Iterator[tuple[bytes, list[bytes]]]:
    """Like :func:`file_lines`, with the block of bytes each batch was split from (a
    reader can test the whole block once before looking at each line)."""
    if file.fd is None:
        on_problem(Problem(file.path, None, f"cannot read: {_os_reason(file.error)}; skipped"))
        return
    count = 0
    rest = b""
    try:
        for block, rest in line_blocks(decoded_chunks(file)):  # noqa: B007 - rest is read after the loop
            if block:
                lines = block.split(b"\n")
                count += len(lines)
                yield block, lines
    except CorruptData as exc:
        on_problem(Problem(file.path, count + 1, f"{exc}; the rest of this file is skipped"))
        return
    except OSError as exc:
        on_problem(Problem(file.path, count + 1, f"read error: {_os_reason(exc)}; the rest of this file is skipped"))
        return
    finally:
        file.release()  # a backup opened on demand closes once read: one open at a time
    if rest and not file.is_current:
        on_problem(Problem(file.path, count + 1, "truncated: the last line has no end; it is skipped"))


def file_lines(file: LogFile, on_problem: ProblemHandler) -> Iterator[list[bytes]]:
    """Batches of one file's complete lines, in write order.

    An unfinished last line is left alone in the current file (logd is writing it) and
    reported in a backup (the file was cut short); damage stops the file, reported once."""
    for _, lines in file_blocks(file, on_problem):
        yield lines


def _os_reason(exc: OSError | None) -> str:
    if exc is None:
        return "not open"
    return exc.strerror or str(exc)


def first_line(file: LogFile) -> bytes | None:
    """The file's first complete line, decompressing only the first chunk; None if unreadable or empty."""
    if file._first_line is not None:
        return file._first_line
    opened_here = not file.is_open
    if file.fd is None:
        return None
    try:
        for lines, _ in line_batches(decoded_chunks(file, raw_chunks(file.fd, size=1 << 16))):
            if lines:
                file._first_line = lines[0]
                return lines[0]
    except (CorruptData, OSError):
        return None
    finally:
        if opened_here:
            file.release()
    return None


# --- records ---

_TIME_HEAD = b'{"time":"'


def line_time(line: bytes) -> str | None:
    """The canonical time of a logd JSON line; read from its head without parsing when
    the line has logd's own layout (``{"time":"<27 chars>",...``)."""
    if line.startswith(_TIME_HEAD) and line[36:38] == b'",':
        return line[9:36].decode("ascii", "replace")
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = record.get("time") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def first_time(file: LogFile) -> str | None:
    line = first_line(file)
    return line_time(line) if line is not None else None


def in_window(files: list[LogFile], since: str | None, until: str | None) -> list[LogFile]:
    """The files that can hold records in [since, until] (canonical times, inclusive).

    A file's records start at its first record's time, and end by the first time of the
    next newer file (which was started when this one was rotated away), so a whole
    backup outside the range is skipped after reading one line of it, not decompressed.
    A file whose bounds cannot be read is kept: reading it reports why."""
    if since is None and until is None:
        return list(files)
    starts = [first_time(f) for f in files]
    kept = []
    for i, file in enumerate(files):
        start = starts[i]
        end = starts[i + 1] if i + 1 < len(files) else None
        if until is not None and start is not None and start > until:
            continue
        if since is not None and end is not None and end < since and not file.is_current:
            continue
        kept.append(file)
    return kept


def read_lines(files: list[LogFile], on_problem: ProblemHandler) -> Iterator[list[bytes]]:
    """Batches of complete lines of every file in order (pass a snapshot, oldest first)."""
    for file in files:
        yield from file_lines(file, on_problem)
