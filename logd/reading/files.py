"""Reading a logd JSON-lines file and its rotated backups, oldest record first.

Naming (:mod:`logd.backups`): ``agent.log`` is the current file; backups are dated
(``agent-2026-11-29T17-03-00.123.log.zst``) or numbered (``agent.log.1``, ``agent.log.2.zst``,
higher is older), or both after a switch; each file here gets its rank, 1 the newest backup.
``*.tmp`` files are a compressor's work in progress and are ignored.

Rotation renames files while we read, so :func:`snapshot` opens every file at one
consistent instant and everything after that reads through the open descriptors (with
``pread``, never the shared offset): a rename or unlink after the snapshot changes
nothing. Reading is streaming: raw chunks -> decompressor -> batches of complete lines,
in constant memory. A file that cannot be read, or is corrupt or truncated, is reported
once (file and line) through an ``on_problem`` callback and reading goes on with the next.

Used by ``logd query`` and ``logd tail``; other readers (shippers) can use it too::

    with snapshot(Path("logs/agent.log")) as files:
        for batch in read_lines(files, on_problem=print):
            for line in batch: ...
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard

from logd.backups import Names

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

    @property
    def is_current(self) -> bool:
        return self.number == 0

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def list_files(current: Path) -> list[tuple[Path, int, str]]:
    """``(path, number, compression)`` of the current file (number 0) and every backup
    (1 the newest), oldest first; names and their order come from :mod:`logd.backups`."""
    return Names(current).readable()


def list_names(current: Path) -> list[str]:
    """The names of :func:`list_files`, oldest first (lighter, for thousands of backups);
    ``Names(current).ranked()`` gives each its number and compression."""
    return Names(current).listing()


def _open(path: Path, number: int, compression: str) -> LogFile:
    file = LogFile(path, number, compression)
    try:
        file.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        file.error = exc
        return file
    st = os.fstat(file.fd)
    if not stat.S_ISREG(st.st_mode):
        file.close()
        file.error = OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL,
                             "a directory, not a file" if stat.S_ISDIR(st.st_mode) else "not a regular file",
                             str(path))
        return file
    file.inode = (st.st_dev, st.st_ino)
    return file


def _same_on_disk(files: list[LogFile]) -> bool:
    for file in files:
        if file.fd is None:
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


def snapshot(current: Path, attempts: int = 50) -> Snapshot:
    """Open the current file and every backup as they are at one instant.

    A rotation between listing and opening moves names under us; then we start over,
    so each open file is what its name said (a file vanishing is retried, not reported)."""
    for _ in range(attempts):
        listed = list_files(current)
        files = Snapshot(_open(*entry) for entry in listed)
        vanished = any(isinstance(f.error, FileNotFoundError) for f in files)
        if not vanished and _same_on_disk(files) and [
            (str(p), n) for p, n, _ in list_files(current)
        ] == [(str(f.path), f.number) for f in files]:
            return files
        files.close()
    return Snapshot(f for f in (_open(*entry) for entry in list_files(current))
                    if not isinstance(f.error, FileNotFoundError))


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
    if file.fd is None:
        return None
    try:
        for lines, _ in line_batches(decoded_chunks(file, raw_chunks(file.fd, size=1 << 16))):
            if lines:
                file._first_line = lines[0]
                return lines[0]
    except (CorruptData, OSError):
        return None
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
