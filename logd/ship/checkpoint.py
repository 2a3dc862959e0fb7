"""Where a ship target has got to: a file fingerprint plus an offset, saved atomically.

A file is recognised by a hash of its first bytes (up to 4 KiB), not by its name or inode:
rotation renames ``agent.log`` to its backup name (``agent-<time>.log``, or ``agent.log.1``
then ``.2``: :mod:`logd.backups`) and later compresses it (``.zst``: the decompressed bytes
are the same), and a switch of naming leaves names as they were; a file replaced under the
same name starts differently. The log only grows, so a prefix never changes: a checkpoint
records how many leading bytes its fingerprint covers (``fp_len``: what the file had, up
to 4 KiB), and a file matches when its first ``fp_len`` bytes hash the same.
Covering 4 KiB rather than one line matters: a burst of identical records (same time,
same text) can start two files with the same line, but hardly with the same 4 KiB.
``offset`` counts uncompressed bytes of complete lines already delivered, so it means the
same in the plain and the compressed copy.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FP_BYTES = 4096  # leading bytes a fingerprint covers once the file has them


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()[:32]


@dataclass(frozen=True)
class Position:
    """Everything of the file with ``fingerprint`` before ``offset`` is delivered."""

    fingerprint: str
    offset: int
    first_time: str | None = None  # the file's first record time: orders files whose name moved on
    file: str = ""  # the name it had when saved; a hint for people, never trusted
    fp_len: int = 0  # leading bytes the fingerprint covers

    def identifies(self, head: bytes) -> bool:
        """Whether a file whose first bytes are ``head`` (up to FP_BYTES of them) is this position's file."""
        return len(head) >= self.fp_len and fingerprint(head[:self.fp_len]) == self.fingerprint


def position_in(head: bytes, offset: int, first_time: str | None, name: str) -> Position:
    """The position ``offset`` bytes into a file that starts with ``head`` (all it had, up to
    FP_BYTES: bytes once written never change, even those of a line still being written)."""
    fp_len = min(FP_BYTES, len(head))
    return Position(fingerprint(head[:fp_len]), offset, first_time, name, fp_len)


class CheckpointStore:
    """One JSON file per target in the state folder, replaced atomically (write, fsync, rename)."""

    def __init__(self, state_dir: Path, target: str) -> None:
        self.path = state_dir / f"{target}.checkpoint.json"

    def load(self) -> tuple[Position | None, int]:
        """The saved position (None: nothing delivered yet) and the count of records delivered."""
        try:
            data = orjson.loads(self.path.read_bytes())
            position = Position(data["fingerprint"], int(data["offset"]), data.get("first_time"), data.get("file", ""),
                                int(data["fp_len"]))
            return position, int(data.get("delivered", 0))
        except FileNotFoundError:
            return None, 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc}; move it away to start over") from None

    def save(self, position: Position, delivered: int, durable: bool = True) -> None:
        """Replace the checkpoint by rename (a crash leaves the old or the new one, never a mix).

        ``durable`` also fsyncs, so the new one survives a power cut. A checkpoint lost that
        way only makes the last batches go out again (never skips any), so the shipper asks
        for it about once a second rather than per batch: fsync was ~15% of shipping time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = orjson.dumps({**asdict(position), "delivered": delivered})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if durable:
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)  # the rename itself survives a power cut
            finally:
                os.close(dir_fd)


class CheckpointError(Exception):
    """A checkpoint file exists but cannot be used."""
