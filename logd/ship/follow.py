"""Follow a JSON-lines log file and its rotated backups from a checkpoint, line by line.

Rotation (``agent.log`` -> ``agent-<time>.log`` -> ``agent-<time>.log.zst``, or numbered
``agent.log.1`` -> ``agent.log.2.zst``; names from :mod:`logd.backups`) renames files while
we read; the tailer keeps its file open, so a rename or a later unlink changes nothing
for the lines it has yet to read. It moves on to the next file once the one it reads
is finished: a backup at its end, or the current file after it was rotated away and
drained. Files are found again by fingerprint (:mod:`.checkpoint`), which survives
renames and compression. Listing, opening and decompressing come from :mod:`logd.reading.files`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from logd.reading import files as reader
from logd.ship.checkpoint import FP_BYTES, Position, fingerprint, position_in

READ_CHUNK = 1 << 20


@dataclass
class Chunk:
    """Complete lines of one file, and the positions before and after them."""

    lines: list[bytes]
    start: Position
    end: Position
    nbytes: int
    id_prefix: str  # names the file in ids (a hash of its first line: stable as the file grows)


@dataclass(slots=True)  # thousands at a time in a survey
class FileInfo:
    path: Path
    number: int
    compression: str
    head: bytes  # the first FP_BYTES decoded bytes (fewer in a shorter file)
    first_time: str | None
    size: int = -1  # on disk, when surveyed

    @property
    def first_line(self) -> bytes | None:
        cut = self.head.find(b"\n")
        return self.head[:cut] if cut >= 0 else None


def read_head(file: reader.LogFile) -> bytes:
    """The first FP_BYTES bytes of a log file, decompressed; what it has when shorter or damaged."""
    assert file.fd is not None
    head = b""
    try:
        for chunk in reader.decoded_chunks(file, reader.raw_chunks(file.fd, size=1 << 12)):
            head += chunk
            if len(head) >= FP_BYTES:
                break
    except (reader.CorruptData, OSError):
        pass
    return head[:FP_BYTES]


def _first_time(head: bytes) -> str | None:
    cut = head.find(b"\n")
    return reader.line_time(head[:cut]) if cut >= 0 else None


def survey(current: Path, attempts: int = 20) -> list[FileInfo]:
    """Every file of the set, oldest first, with its first bytes.

    One file open at a time (a set keeps thousands of backups; holding them all open ran
    out of descriptors): the listing is taken again afterwards, and a survey that a rotation
    crossed is started over. Whoever opens a file later checks its head again."""
    out: list[FileInfo] = []
    for _ in range(attempts):
        before = _names(current.parent)
        out = [_info(path, number, compression) for path, number, compression in reader.list_files(current)]
        if _names(current.parent) == before:  # no name came or went meanwhile
            break
    return out


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder if str(folder) else "."))
    except FileNotFoundError:
        return []


def _info(path: Path, number: int, compression: str) -> FileInfo:
    file = reader.LogFile(path, number, compression)
    try:
        file.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return FileInfo(path, number, compression, b"", None, -1)
    try:
        size = os.fstat(file.fd).st_size
        head = read_head(file) if size > 0 else b""  # an empty file needs no decompressor
    finally:
        file.close()
    return FileInfo(path, number, compression, head, _first_time(head), size)


def resume_index(files: list[FileInfo], position: Position | None) -> tuple[int, int]:
    """Which file (index into ``files``) to read from, and from which offset.

    The checkpoint's file when it still exists; otherwise it is gone (retention, or
    replaced) and reading starts at the oldest file that began no earlier than it did
    (one batch's records share a time, so a tie counts as newer: better twice than never)."""
    if position is None:
        return 0, 0
    for i, f in enumerate(files):
        if position.identifies(f.head):
            return i, position.offset
    if position.first_time is not None:
        for i, f in enumerate(files):
            if f.first_time is None or f.first_time >= position.first_time:
                return i, 0
        return len(files), 0
    return 0, 0


class Tailer:
    """Reads complete lines from ``position`` on, across rotations. One owner thread reads;
    retention's hook looks at what is open through :meth:`open_position` under :attr:`lock`."""

    def __init__(self, current: Path, position: Position | None,
                 on_problem: reader.ProblemHandler = lambda problem: None) -> None:
        self.current = current
        self.on_problem = on_problem
        self.position = position  # where the next read starts; None before the first line is seen
        self._file: reader.LogFile | None = None
        self._offset = 0  # uncompressed bytes of complete lines consumed from the open file
        self._head = b""  # the open file's first bytes (refreshed while it is young and growing)
        self._first_time: str | None = None
        self._pending = b""  # bytes read past the last complete line
        self._decoded: Iterator[bytes] | None = None  # for compressed files
        self._raw_pos = 0  # for plain files: where the next pread starts
        self._finished: Position | None = None  # a file read to its end after rotation
        self._damage: Exception | None = None  # why the open file cannot be read further
        self._damaged: set[tuple[int, int] | None] = set()  # files given up on, by (device, inode)
        # retention's hook (another thread) counts a file as lost and marks it here, under this
        # lock, so the tailer never also opens it in the instant before it is deleted
        self.lock = threading.Lock()
        self.doomed: set[tuple[int, int, str]] = set()  # (device, inode, fingerprint of the head):
        # the inode number alone is reused by the next file created once the doomed one is gone

    # --- opening ---

    def _open(self) -> bool:
        files = survey(self.current)
        index, offset = resume_index(files, self.position)
        if index < len(files) and self._finished is not None and self._finished.identifies(files[index].head):
            index, offset = index + 1, 0
        for i in range(index, len(files)):
            info = files[i]
            if info.size == 0 and i < len(files) - 1:
                offset = 0
                continue  # an empty backup: nothing to read
            try:
                fd = os.open(info.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False  # renamed between survey and open: try again on the next read
            st = os.fstat(fd)
            file = reader.LogFile(info.path, info.number, info.compression, fd=fd, inode=(st.st_dev, st.st_ino))
            head = read_head(file)
            if not head.startswith(info.head):
                file.close()  # the name moved on to another file in between
                return False
            with self.lock:
                assert file.inode is not None
                if file.inode in self._damaged or (*file.inode, fingerprint(head)) in self.doomed:
                    file.close()  # reported already (damaged), or counted lost and about to go
                    offset = 0
                    continue
                self._head, self._first_time = head, _first_time(head)
                self._file = file
            self._finished = None
            self._pending, self._offset, self._raw_pos = b"", 0, 0
            self._decoded, self._damage = None, None
            if info.compression:
                self._decoded = reader.decoded_chunks(file)
                self._skip_decoded(offset)
            else:
                self._raw_pos = offset
            self._offset = offset
            return True
        return False

    def _skip_decoded(self, count: int) -> None:
        while count > 0:
            chunk = self._read_more()
            if not chunk:
                return
            if len(chunk) > count:
                self._pending = chunk[count:]
                return
            count -= len(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # --- reading ---

    def _read_more(self) -> bytes:
        """The next bytes of the open file; b"" at its end, or once it proved damaged."""
        assert self._file is not None and self._file.fd is not None
        if self._damage is not None:
            return b""
        try:
            if self._decoded is not None:
                return next(self._decoded, b"")
            data = os.pread(self._file.fd, READ_CHUNK, self._raw_pos)
        except (reader.CorruptData, OSError) as exc:
            self._damage = exc  # lines before the damage still go out; the file ends here
            return b""
        self._raw_pos += len(data)
        return data

    def _truncated(self) -> bool:
        """The open file was cut shorter than what we read (``logrotate copytruncate``)."""
        assert self._file is not None and self._file.fd is not None
        if self._file.compression:
            return False
        return os.fstat(self._file.fd).st_size < self._raw_pos

    def _rotated_away(self) -> bool:
        """The open file is the current one no longer (renamed or replaced), so it will not grow."""
        assert self._file is not None
        if self._file.compression:
            return True
        try:
            st = os.stat(self.current)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._file.inode

    def read(self, max_lines: int) -> Chunk | None:
        """Up to ``max_lines`` complete lines from one file, or None when nothing new is there yet."""
        for _ in range(3):  # at most: finish a file, open the next, read it
            if self._file is None and not self._open():
                return None
            chunk = self._take(max_lines)
            if chunk is not None:
                return chunk
            # nothing complete left in this file; is it finished?
            finished = self._damage is not None or self._rotated_away()
            data = self._read_more()  # a last look: lines written just before the rotation
            if data:
                self._pending += data
                chunk = self._take(max_lines)
                if chunk is not None:
                    return chunk
            if not finished:
                if self._truncated():  # copytruncate: our lines are in the copy, found again by its head
                    self.close()
                    self._pending = b""
                    continue
                return None
            if self._damage is not None:
                self._report_damage()
                assert self._file is not None
                self._damaged.add(self._file.inode)
            self._finish_file()
        return None

    def _report_damage(self) -> None:
        assert self._file is not None and self._damage is not None
        exc = self._damage
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.on_problem(reader.Problem(self._file.path, None,
                                       f"{reason} after byte {self._offset}; the rest of this file is not shipped"))

    def _take(self, max_lines: int) -> Chunk | None:
        while self._pending.count(b"\n", 0) < max_lines:
            data = self._read_more()
            if not data:
                break
            self._pending += data
        if b"\n" not in self._pending:
            return None
        lines: list[bytes] = []
        cut = 0
        while len(lines) < max_lines:
            nl = self._pending.find(b"\n", cut)
            if nl < 0:
                break
            lines.append(self._pending[cut:nl])
            cut = nl + 1
        self._pending = self._pending[cut:]
        assert self._file is not None
        if len(self._head) < FP_BYTES and not self._file.compression:  # a young file grew: read its head again
            self._head = os.pread(self._file.fd, FP_BYTES, 0)  # type: ignore[arg-type]
            self._first_time = _first_time(self._head)
        name = self._file.path.name
        start = position_in(self._head, self._offset, self._first_time, name)
        self._offset += cut
        end = position_in(self._head, self._offset, self._first_time, name)
        self.position = end
        return Chunk(lines, start, end, cut, self.id_prefix())

    def id_prefix(self) -> str:
        cut = self._head.find(b"\n")
        return fingerprint(self._head[:cut] if cut >= 0 else self._head)[:16]

    def open_position(self) -> Position | None:
        """Names the file open now (for retention: a file being read loses nothing when unlinked).
        Called from another thread under :attr:`lock`; reads the head afresh while the file is
        young, since a head taken when the file was empty would name every file."""
        file = self._file
        if file is None or file.fd is None:
            return None
        head = self._head
        if len(head) < FP_BYTES and not file.compression:
            try:
                head = os.pread(file.fd, FP_BYTES, 0)
            except OSError:
                return None
        if not head:
            return None
        return position_in(head, len(head), self._first_time, file.path.name)

    def _finish_file(self) -> None:
        """Done with the open file: the next open takes the file after it (found by fingerprint)."""
        if self._file is not None and self._offset > 0:
            self._finished = position_in(self._head, self._offset, self._first_time, self._file.path.name)
        self.close()
        self._pending = b""
