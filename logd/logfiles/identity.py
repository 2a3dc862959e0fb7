"""Which file is which, whatever its name: the one rule every reader of the log files uses.

Rotation renames a file (``agent.log`` -> ``agent-<time>.log``, or ``agent.log.1`` ->
``.2``), the compressor replaces a backup by a copy under another name and inode
(``.zst``, ``.gz``), retention deletes it, and the next file created may get its inode
number. So a file is known by two things:

- **Its head**: a hash of its first :data:`HEAD_BYTES` *decompressed* bytes. Bytes once
  written never change and the compressed copy holds the same ones, so the head survives
  renames, compression and a switch of naming, and it can be saved: a shipper's
  checkpoint is a head and an offset (:class:`Position`), the query's bounds index is
  keyed by head and size. A young file has fewer bytes: a head says how many it covers
  and names a file whose first that many bytes hash the same, so it still names the file
  once it has grown. 4 KiB rather than one line: a burst of identical records (same time,
  same text) can start two files with the same line, hardly with the same 4 KiB.
- **Its device and inode**, while it exists: one ``stat``, no read, so it is asked first;
  a follower holding the file open knows at once whether the path still names it. But
  an inode number is reused once its file is gone, so where the head is known it must
  agree too.

A reader that noted a backup by ``stat`` alone (a snapshot of 10,000 backups opens none
of them until it reads it) has no head yet; its compressed copy, a new inode, is known by
the rotation time: the mtime rotation sets and compression keeps (:mod:`.names`).

:meth:`Identity.recognises` is that rule for a file on disk (the snapshot's lazy opening,
the follower's damaged and doomed files); :meth:`Head.names` for content, where a copy
counts as the file (a checkpoint found again after compression or logrotate's
``copytruncate``, the bounds index). Where a descriptor or a hard link keeps the inode
alive, device and inode alone are exact: the follower asking whether the path still
names its open file, the writer's bounds tracker, retention finding its doomed files
again through their links.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from logd.logfiles.content import CorruptData, LogFile, decoded_chunks, raw_chunks

HEAD_BYTES = 4096  # leading decompressed bytes a head covers once the file has them


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def read_head(file: LogFile) -> bytes:
    """The first HEAD_BYTES bytes of an open file, decompressed; what there is when it is
    shorter, damaged or unreadable (b"" when it cannot be read at all)."""
    if file.fd is None:
        return b""
    head = b""
    try:
        if not file.compression:
            return os.pread(file.fd, HEAD_BYTES, 0)
        for chunk in decoded_chunks(file, raw_chunks(file.fd, size=1 << 12)):
            head += chunk
            if len(head) >= HEAD_BYTES:
                break
    except (CorruptData, OSError):
        pass
    return head[:HEAD_BYTES]


@dataclass(frozen=True, slots=True)
class Head:
    """A file's first ``length`` decompressed bytes, hashed (``length`` < HEAD_BYTES only
    while the file was shorter)."""

    fingerprint: str
    length: int

    @classmethod
    def of(cls, head: bytes) -> Head:
        data = head[:HEAD_BYTES]
        return cls(fingerprint(data), len(data))

    def names(self, head: bytes) -> bool:
        """Whether a file whose first bytes are ``head`` is this one (or a copy of it)."""
        return len(head) >= self.length and fingerprint(head[:self.length]) == self.fingerprint


@dataclass(frozen=True, slots=True)
class Identity:
    """A file on disk as a reader noted it: device and inode; its head once read (else
    None); its mtime (a backup's rotation time) and compression when noted."""

    device: int
    inode: int
    head: Head | None = None
    rotated_ns: int | None = None
    compression: str = ""

    @classmethod
    def of(cls, st: os.stat_result, head: bytes | None = None, compression: str = "") -> Identity:
        """``head`` None or b"": not known (an empty head would name every file)."""
        return cls(st.st_dev, st.st_ino, Head.of(head) if head else None, st.st_mtime_ns, compression)

    def recognises(self, st: os.stat_result, compression: str, head: Callable[[], bytes]) -> bool:
        """Whether the file ``st`` describes is this one, or the compressed copy of it.
        ``head`` gives that file's head; it is read only when the rule needs it."""
        if (st.st_dev, st.st_ino) == (self.device, self.inode):
            return self.head is None or self.head.names(head())  # not a reused inode number
        if not compression or self.compression:
            return False  # only compression makes a copy of a file under a new inode
        if self.head is not None:
            return self.head.names(head())
        return st.st_mtime_ns == self.rotated_ns


@dataclass(frozen=True)
class Position:
    """A place in a file known by its head: everything before ``offset`` (uncompressed bytes
    of complete lines, the same in the plain and the compressed copy) is behind it. What a
    shipper saves as its checkpoint and what names a record in the file (its position's
    head and offset): stable across renames, compression and restarts."""

    fingerprint: str  # of the head (see Head); the field names are the checkpoint file's keys
    offset: int
    first_time: str | None = None  # the file's first record time: orders files whose name moved on
    file: str = ""  # the name it had when taken; a hint for people, never trusted
    fp_len: int = 0  # leading bytes the fingerprint covers

    @property
    def head(self) -> Head:
        return Head(self.fingerprint, self.fp_len)

    def identifies(self, head: bytes) -> bool:
        """Whether a file whose first bytes are ``head`` is this position's file."""
        return self.head.names(head)


def position_in(head: bytes, offset: int, first_time: str | None, name: str) -> Position:
    """The position ``offset`` bytes into a file that starts with ``head`` (all it had, up
    to HEAD_BYTES: bytes once written never change, even those of a line still being written)."""
    known = Head.of(head)
    return Position(known.fingerprint, offset, first_time, name, known.length)
