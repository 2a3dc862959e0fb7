"""The one follower of rotating log files: ``logd tail -f`` and the shippers read through it.

It reads complete lines from a place on, across rotations, and says where each batch
starts and ends (:class:`~logd.logfiles.identity.Position`: a file's head and an offset),
which is what a shipper saves as its checkpoint and what names a record in the file.

Rotation (``agent.log`` -> ``agent-<time>.log`` -> ``agent-<time>.log.zst``, or numbered
``agent.log.1`` -> ``agent.log.2.zst``; names from :mod:`.names`) renames files while we
read; the follower keeps its file open, so a rename or a later unlink changes nothing
for the lines it has yet to read. It leaves a file only once the writer has: a
compressed backup at its end; a plain file once the path names another file *and*
something newer has data (the new current file, or a backup rotated after it), so the
writer's last lines in the old file are still read. The next file is found by its head
(:mod:`.identity`), which survives renames and compression; a :class:`Survey` lists the
set and reads heads only where needed, one file open at a time, however many backups
there are.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from logd.logfiles.content import (
    CorruptData,
    LogFile,
    Problem,
    ProblemHandler,
    decoded_chunks,
    line_time,
    open_log,
)
from logd.logfiles.identity import HEAD_BYTES, Identity, Position, fingerprint, position_in, read_head
from logd.logfiles.names import Names, compression_of

READ_CHUNK = 1 << 20
Anchor = tuple[Path, "tuple[int, int] | None"]  # a file by the name it was listed under and its inode
REFUSED = (errno.ELOOP, errno.EISDIR, errno.EINVAL)  # open_log's "not a regular file": skipped, never retried
OPEN_ATTEMPTS = 5  # looks at the set before a read gives up for now (each one a rotation crossed)


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
    head: bytes  # the first HEAD_BYTES decoded bytes (fewer in a shorter file)
    first_time: str | None
    size: int = -1  # on disk, when surveyed
    inode: tuple[int, int] | None = None  # (device, inode) of the file the name held then

    @property
    def first_line(self) -> bytes | None:
        cut = self.head.find(b"\n")
        return self.head[:cut] if cut >= 0 else None


def first_time_of(head: bytes) -> str | None:
    cut = head.find(b"\n")
    return line_time(head[:cut]) if cut >= 0 else None


def file_info(path: Path, number: int, compression: str | None = None) -> FileInfo:
    """One file's head and size (head b"" and size -1 when it cannot be opened)."""
    file = open_log(path, number, compression)
    if file.fd is None:
        return FileInfo(path, number, file.compression, b"", None, -1)
    try:
        size = os.fstat(file.fd).st_size
        head = read_head(file) if size > 0 else b""  # an empty file needs no decompressor
    finally:
        file.close()
    return FileInfo(path, number, file.compression, head, first_time_of(head), size, file.inode)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a position is in a survey: the file's index and the offset in it; ``found``
    False when its file is gone and reading goes on at the next that began no earlier;
    ``settled`` False when rotations kept moving names while it was looked for."""

    index: int
    offset: int
    found: bool
    settled: bool = True


class Survey:
    """The files of the set, oldest first, as a listing of names; a file's head (its first
    bytes, to know it by) is read when asked for, one file open at a time.

    A folder may keep tens of thousands of backups, and the shipper surveys it at every
    rotation (and ``status`` at every poll): a survey that opened every file and kept every
    head held ~4 KB per backup and a decompressor at a time for each. Here only the heads
    looked at are kept, and finding a position looks from the newest file back, so a
    follower that keeps up reads one or two heads."""

    def __init__(self, current: Path, entries: list[str], current_inode: tuple[int, int] | None = None) -> None:
        self.current = current
        self.folder = current.parent if str(current.parent) else Path(".")
        self.entries = entries  # names, oldest first (the current file last, when it exists)
        self.current_inode = current_inode  # the current file's, noted before the listing
        self._newest_backup = len(entries) - (1 if entries and entries[-1] == current.name else 0)
        self._infos: dict[int, FileInfo] = {}

    def rotated_since(self) -> bool:
        """Whether the path names another current file than before the listing: a rotation
        came since, and the names (the current one always, numbered ones too) may mean other
        files now. Every rotation makes a new current file, so nothing else can move them."""
        return _inode(self.current) != self.current_inode

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
        return file_info(self.folder / name, self.rank(index), compression_of(name))

    def find(self, position: Position) -> int | None:
        """Index of the file ``position`` names (the oldest, should several start alike); None if gone.

        A full head (HEAD_BYTES) names one file: it is looked for from the newest back,
        where a follower that keeps up finds it at once. A shorter one (taken while the file
        was young) may fit several (logrotate's copytruncate copies a file): oldest first."""
        if position.fp_len >= HEAD_BYTES:
            order = range(len(self.entries) - 1, -1, -1)
        else:
            order = range(len(self.entries))
        for index in order:
            info = self._infos.get(index) or self.read(index)  # kept only when it is the one
            if position.identifies(info.head):
                self._infos[index] = info
                return index
        return None

    def locate(self, position: Position | None) -> Place:
        """Which file to read from, and from which offset: the position's file when it still
        exists; else it is gone (retention, or replaced) and reading starts at the oldest
        file that began no earlier than it did (one batch's records share a time, so a tie
        counts as newer: better twice than never). None: the oldest file, from its start."""
        if position is None:
            return Place(0, 0, True)
        index = self.find(position)
        if index is not None:
            return Place(index, position.offset, True)
        if position.first_time is not None:  # gone: the oldest file that began no earlier (one at a time)
            for index, info in enumerate(self):
                if info.size < 0:
                    continue  # gone as well (or unreadable): says nothing
                if info.first_time is None or info.first_time >= position.first_time:
                    return Place(index, 0, False)
            return Place(len(self.entries), 0, False)
        return Place(0, 0, False)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def take_survey(current: Path) -> Survey:
    """A :class:`Survey` of the set as listed now (no file opened yet)."""
    inode = _inode(current)
    return Survey(current, Names(current).listing(), inode)


def located(current: Path, position: Position | None, attempts: int = 20) -> tuple[Survey, Place]:
    """A survey and where ``position`` is in it (see :meth:`Survey.locate`). A search that a
    rotation crossed is started over: heads were read from names that may have moved on."""
    found = take_survey(current)
    for _ in range(attempts):
        place = found.locate(position)
        again = take_survey(current)
        if again.entries == found.entries and again.current_inode == found.current_inode:
            return found, place
        found = again
    return found, Place(place.index, place.offset, place.found, settled=False)


class Follower:
    """Reads complete lines from ``position`` on, across rotations (None: from the oldest
    file; :meth:`start_at` starts elsewhere). One owner thread reads; retention's hook looks
    at what is open through :meth:`open_position` under :attr:`lock`.

    ``on_problem`` hears of files that cannot be read to their end (damaged, or not a
    regular file: the lines before the damage are read, the rest is not); ``on_gap``, when
    given, of lines the follower could not reach (files removed before it got to them, a
    file truncated in place)."""

    def __init__(self, current: Path, position: Position | None = None,
                 on_problem: ProblemHandler = lambda problem: None, *,
                 on_gap: ProblemHandler | None = None) -> None:
        self.current = current
        self.folder = current.parent if str(current.parent) else Path(".")
        self.on_problem = on_problem
        self.on_gap = on_gap
        self.position = position  # where the next read starts; None before the first line is seen
        self._from_current = False  # with no position yet: the current file from its start, once it exists
        self._told_unreadable = False
        self._file: LogFile | None = None
        self._offset = 0  # uncompressed bytes of complete lines consumed from the open file
        self._head = b""  # the open file's first bytes (refreshed while it is young and growing)
        self._first_time: str | None = None
        self._pending = b""  # bytes read past the last complete line
        self._decoded: Iterator[bytes] | None = None  # for compressed files
        self._raw_pos = 0  # for plain files: where the next pread starts
        self._finished: Position | None = None  # a file read to its end after rotation
        self._truncated_here = False  # the open file was cut shorter than what was read
        self._damage: Exception | None = None  # why the open file cannot be read further
        self._damaged: set[Identity] = set()  # files given up on
        self._newer: tuple[int, tuple[int, int] | None, bool] | None = None  # see _newer_backup
        # retention's hook (another thread) counts a file as lost and marks it here, under this
        # lock, so the follower never also opens it in the instant before it is deleted
        self.lock = threading.Lock()
        self.doomed: set[Identity] = set()

    # --- starting ---

    def start_at(self, file: LogFile | None, offset: int = 0) -> None:
        """Follow ``file`` (the current file, open; the follower owns it from here) from byte
        ``offset``, the end of the complete lines already seen. None: the current file from
        its start, once it exists (``logd tail -f`` before there is a file)."""
        self.close()
        self._from_current = True
        if file is not None:
            head = read_head(file)
            with self.lock:
                self._adopt(file, head)
            self._seek(offset)

    def _adopt(self, file: LogFile, head: bytes) -> None:
        """Make ``file`` the open file (under :attr:`lock`: retention's hook looks at it)."""
        self._file, self._head, self._first_time = file, head, first_time_of(head)

    def _seek(self, offset: int) -> None:
        """Read the open file from ``offset`` (uncompressed bytes of complete lines) on."""
        assert self._file is not None
        self._finished, self._truncated_here = None, False
        self._pending, self._raw_pos = b"", 0
        self._decoded, self._damage = None, None
        if self._file.compression:
            self._decoded = decoded_chunks(self._file)
            self._skip_decoded(offset)
        else:
            self._raw_pos = offset
        self._offset = offset
        if self.position is None and self._head:
            self.position = position_in(self._head, offset, self._first_time, self._file.path.name)

    def _open(self) -> bool:
        if self.position is None and self._from_current:
            return self._open_current()
        for _ in range(OPEN_ATTEMPTS):
            opened = self._open_next()
            if opened is not None:
                return opened
        return False  # rotations kept crossing the look: the next read tries again

    def _open_next(self) -> bool | None:
        """Open the file to read next (the position's, or the one after a finished file);
        None when rotation moved names between the look and the open."""
        files, place = located(self.current, self.position)
        if not place.settled:
            return None
        index, offset = place.index, place.offset
        after: Anchor | None = None  # the file the one to open must directly follow
        if not place.found and self.position is not None:
            self._gap()
        elif index < len(files) and self._finished is not None and self._finished.identifies(files[index].head):
            after, index, offset = (files[index].path, files[index].inode), index + 1, 0
        for i in range(index, len(files)):
            info = files[i] if i == index else files.read(i)  # not kept: thousands may be empty
            if info.size == 0 and i < len(files) - 1:
                after, offset = (info.path, info.inode), 0
                continue  # an empty backup: nothing to read
            file = open_log(info.path, info.number, info.compression)
            if file.fd is None:
                if isinstance(file.error, FileNotFoundError):
                    return None  # renamed between the look and the open
                if file.error is None or file.error.errno not in REFUSED:
                    raise file.error or OSError(errno.EIO, "cannot open", str(info.path))  # retried by the owner
                if self._refuse(info.path, file):
                    after, offset = (info.path, _inode(info.path)), 0
                    continue
                return None
            head = read_head(file)
            if not self._still_meant(files, info, file, head, after):
                file.close()
                return None
            st = os.fstat(file.fd)
            with self.lock:
                passed_over = self._passed_over(st, file.compression, head)
                if not passed_over:
                    self._adopt(file, head)
            if passed_over:
                file.close()  # reported already (damaged), or counted lost and about to go
                after, offset = (info.path, file.inode), 0
                continue
            self._seek(offset)
            return True
        return False

    def _still_meant(self, files: Survey, info: FileInfo, file: LogFile, head: bytes,
                     after: Anchor | None) -> bool:
        """Whether ``file``, just opened by the name ``info`` was listed under, is the file the
        listing meant there. The position's own file says so by its head; the file after
        another (``after``) by the names: no rotation since the listing (the current file
        is the one listed), and, with numbered names, which every rotation moves up one, the
        two files still where they were with no file between them (files only move up, to
        older numbers, so a name holding the same file before and after a look held it
        throughout)."""
        if not head.startswith(info.head) or files.rotated_since():
            return False
        if after is None:
            return self.position is None or not self.position.identifies(info.head) or self.position.identifies(head)
        names = Names(self.current)
        after_path, after_inode = after
        older, newer = names.number_of(after_path.name), names.number_of(info.path.name)
        if older is None or newer is None:
            return True  # dated names never move
        if _inode(after_path) != after_inode:
            return False
        if any(os.path.lexists(path) for number in range(newer + 1, older) for path in names.numbered_files(number)):
            return False  # from the newer side up: a file moving up is met again
        return _inode(info.path) == file.inode

    def _passed_over(self, st: os.stat_result, compression: str, head: bytes) -> bool:
        """A file given up on (damaged), or counted lost and about to go (doomed)."""
        return any(known.recognises(st, compression, lambda: head) for known in self._damaged | self.doomed)

    def _open_current(self) -> bool:
        file = open_log(self.current, 0)
        if file.fd is None:
            if not isinstance(file.error, FileNotFoundError) and not self._told_unreadable:
                reason = file.error.strerror if file.error is not None and file.error.strerror else file.error
                self.on_problem(Problem(self.current, None, f"cannot read: {reason}; waiting for it"))
                self._told_unreadable = True
            return False
        head = read_head(file)
        with self.lock:
            self._adopt(file, head)
        self._seek(0)
        return True

    def _refuse(self, path: Path, file: LogFile) -> bool:
        """A file of the set that is not a regular file (a link, a FIFO): reported once, then
        passed over. False when it changed meanwhile (look again on the next read)."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        refused = Identity.of(st)
        if refused not in self._damaged:
            self._damaged.add(refused)
            assert file.error is not None
            self.on_problem(Problem(path, None, f"cannot read: {file.error.strerror or file.error}; skipped"))
        return True

    def _gap(self) -> None:
        """The position's file is gone: say so (once), when someone listens."""
        if self.on_gap is not None and self._truncated_here:
            self.on_gap(Problem(self.current, None, "file truncated; following from its start"))
        elif self.on_gap is not None and self._finished is not None:
            self.on_gap(Problem(self.current, None,
                                "rotated files were removed before they could be read; records may be missing"))
        self._truncated_here, self._finished = False, None

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
        except (CorruptData, OSError) as exc:
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

    def _left_behind(self) -> bool:
        """Whether the writer has left the open file for good: a compressed file is complete;
        a plain one is left once the path names another file and something newer has data
        (until then the writer may still be finishing it)."""
        assert self._file is not None
        if self._file.compression:
            return True
        try:
            st = os.stat(self.current)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self._file.inode:
            return False  # still the current file
        if st is not None and st.st_size > 0:
            return True  # the writer writes the new current file
        return self._newer_backup()

    def _newer_backup(self) -> bool:
        """Whether a backup newer than the open file exists (then the writer has moved past
        it). The open file is the newest backup when that name holds its inode. Asked again
        only when the folder changed (its mtime), as the follower may ask at every read."""
        assert self._file is not None
        try:
            changed = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return True
        if self._newer is not None and self._newer[:2] == (changed, self._file.inode):
            return self._newer[2]
        names = Names(self.current)
        listing = names.listing()
        backups = listing[:-1] if listing and listing[-1] == self.current.name else listing
        try:
            st = os.lstat(self.folder / backups[-1]) if backups else None
        except FileNotFoundError:
            st = None
        newer = st is None or (st.st_dev, st.st_ino) != self._file.inode  # gone from the listing: nothing to wait for
        self._newer = (changed, self._file.inode, newer)
        return newer

    def read(self, max_lines: int) -> Chunk | None:
        """Up to ``max_lines`` complete lines from one file, or None when nothing new is there yet."""
        for _ in range(3):  # at most: finish a file, open the next, read it
            if self._file is None and not self._open():
                return None
            chunk = self._take(max_lines)
            if chunk is not None:
                return chunk
            # nothing complete left in this file; is it finished?
            finished = self._damage is not None or self._left_behind()
            data = self._read_more()  # a last look: lines written just before the rotation
            if data:
                self._pending += data
                chunk = self._take(max_lines)
                if chunk is not None:
                    return chunk
            if not finished:
                if self._truncated():  # copytruncate: our lines are in the copy, found again by its head
                    self.close()
                    self._pending, self._truncated_here = b"", True
                    continue
                return None
            if self._damage is not None:
                self._report_damage()
                assert self._file is not None and self._file.fd is not None
                self._damaged.add(Identity.of(os.fstat(self._file.fd), self._head, self._file.compression))
            self._finish_file()
        return None

    def _report_damage(self) -> None:
        assert self._file is not None and self._damage is not None
        exc = self._damage
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.on_problem(Problem(self._file.path, None,
                                f"{reason} after byte {self._offset}; the rest of this file is not read"))

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
        if len(self._head) < HEAD_BYTES and not self._file.compression:  # a young file grew: read its head again
            self._head = read_head(self._file)
            self._first_time = first_time_of(self._head)
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
        if len(head) < HEAD_BYTES and not file.compression:
            try:
                head = os.pread(file.fd, HEAD_BYTES, 0)
            except OSError:
                return None
        if not head:
            return None
        return position_in(head, len(head), self._first_time, file.path.name)

    def _finish_file(self) -> None:
        """Done with the open file: the next open takes the file after it (found by its head)."""
        if self._file is not None and self._offset > 0:
            self._finished = position_in(self._head, self._offset, self._first_time, self._file.path.name)
        self.close()
        self._pending = b""
