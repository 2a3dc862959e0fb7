"""A log file's bytes: the one way to open a file of the set, decompress it (zstd, gzip)
and cut it into lines, in constant memory.

Every reader of logd's files opens them through :func:`open_log` (``logd query``,
``--sql``, ``tail``, the shippers, the bounds index), so what is refused is refused the
same way everywhere (:mod:`logd.regular`): a symbolic link named like the log or a backup
is not followed, a FIFO does not hang the open, and anything but a regular file is
reported, not read. Reads go through the descriptor with ``pread``, never the shared offset. A file that
cannot be read, or is corrupt or truncated, is reported once (file and line) through an
``on_problem`` callback and reading goes on with the next.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import zstandard

from logd.logfiles.names import compression_of
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
    disk_size: int = -1  # bytes on disk when listed (-1: not known; fstat the open file)

    @property
    def is_current(self) -> bool:
        return self.number == 0

    @property
    def is_open(self) -> bool:
        """Open now (never opens it: see :class:`logd.logfiles.snapshot.LazyFile`)."""
        return self.fd is not None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        """Done reading for now: a file opened on demand closes (and opens again if read
        again); one opened by its owner stays open."""


def open_log(path: Path, number: int = 0, compression: str | None = None) -> LogFile:
    """Open one file of the set for reading (``compression`` None: from its suffix), only if
    it is a regular file and not a symbolic link (:func:`logd.regular.open_regular`). One
    that cannot be opened comes back with ``fd`` None and ``error`` saying why."""
    file = LogFile(path, number, compression_of(path) if compression is None else compression)
    try:
        file.fd, st = open_regular(path)
    except OSError as exc:
        file.error = exc
        return file
    file.inode = (st.st_dev, st.st_ino)
    return file


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


def read_lines(files: list[LogFile], on_problem: ProblemHandler) -> Iterator[list[bytes]]:
    """Batches of complete lines of every file in order (pass a snapshot, oldest first)."""
    for file in files:
        yield from file_lines(file, on_problem)
