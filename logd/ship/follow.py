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

from logd.backups import compression_of
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


class Survey:
    """The files of the set, oldest first, as a listing of names; a file's head (its first
    bytes, to know it by) is read when asked for, one file open at a time.

    A folder may keep tens of thousands of backups, and the shipper surveys it at every
    rotation (and ``status`` at every poll): a survey that opened every file and kept every
    head held ~4 KB per backup and a decompressor at a time for each. Here only the heads
    looked at are kept, and finding a position looks from the newest file back, so a
    shipper that keeps up reads one or two heads."""

    def __init__(self, current: Path, entries: list[str]) -> None:
        self.current = current
        self.folder = current.parent if str(current.parent) else Path(".")
        self.entries = entries  # names, oldest first (the current file last, when it exists)
        self._newest_backup = len(entries) - (1 if entries and entries[-1] == current.name else 0)
        self._infos: dict[int, FileInfo] = {}

    def rank(self, index: int) -> int:
        """0 for the current file, 1 for the newest backup, and so on."""
        return self._newest_backup - index

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> FileInfo:
        info = self._infos.get(index)
        if info is None:
            info = self._infos[index] = self.read(index)
        return info

    def __iter__(self) -> Iterator[FileInfo]:
        """Every file's info in order, without keeping them."""
        for index in range(len(self.entries)):
            yield self._infos.get(index) or self.read(index)

    def read(self, index: int) -> FileInfo:
        name = self.entries[index]
        return _info(self.folder / name, self.rank(index), compression_of(name))

    def find(self, position: Position) -> int | None:
        """Index of the file ``position`` names (the oldest, should several start alike); None if gone.

        A full fingerprint (FP_BYTES) names one file: it is looked for from the newest back,
        where a shipper that keeps up finds it at once. A shorter one (taken while the file
        was young) may fit several (logrotate's copytruncate copies a file): oldest first."""
        if position.fp_len >= FP_BYTES:
            order = range(len(self.entries) - 1, -1, -1)
        else:
            order = range(len(self.entries))
        for index in order:
            info = self._infos.get(index) or self.read(index)  # kept only when it is the one
            if position.identifies(info.head):
                self._infos[index] = info
                return index
        return None

    def locate(self, position: Position | None) -> tuple[int, int]:
        """:func:`resume_index` over this survey: which file to read from, and from which offset."""
        if position is None:
            return 0, 0
        index = self.find(position)
        if index is not None:
            return index, position.offset
        if position.first_time is not None:  # gone: the oldest file that began no earlier (one at a time)
            for index, info in enumerate(self):
                if info.first_time is None or info.first_time >= position.first_time:
                    return index, 0
            return len(self.entries), 0
        return 0, 0


def take_survey(current: Path) -> Survey:
    """A :class:`Survey` of the set as listed now (no file opened yet)."""
    return Survey(current, reader.list_names(current))


def located(current: Path, position: Position | None, attempts: int = 20) -> tuple[Survey, int, int]:
    """A survey and where ``position`` is in it (see :meth:`Survey.locate`). The listing is
    taken again afterwards, and a search that a rotation crossed (numbered names move) is
    started over: heads were read from names that may have moved on."""
    found = take_survey(current)
    for _ in range(attempts):
        index, offset = found.locate(position)
        again = take_survey(current)
        if again.entries == found.entries:
            break
        found = again
    return found, index, offset


def survey(current: Path, attempts: int = 20) -> list[FileInfo]:
    """Every file of the set, oldest first, with its first bytes (one file open at a time)."""
    out: list[FileInfo] = []
    for _ in range(attempts):
        found = take_survey(current)
        out = list(found)
        if reader.list_names(current) == found.entries:  # no name came or went meanwhile
            break
    return out


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
        files, index, offset = located(self.current, self.position)
        if index < len(files) and self._finished is not None and self._finished.identifies(files[index].head):
            index, offset = index + 1, 0
        for i in range(index, len(files)):
            info = files[i] if i == index else files.read(i)  # not kept: thousands may be empty
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
