"""Where a ship target has got to, saved atomically: a :class:`~logd.logfiles.identity.Position`
(a file known by its head, and an offset into it) and the count of records delivered.

The position survives renames, compression and a switch of naming (the one identity rule,
:mod:`logd.logfiles.identity`); ``offset`` counts uncompressed bytes of complete lines
already delivered, so it means the same in the plain and the compressed copy. The file
holds the position's fields as they are (``fingerprint``, ``offset``, ``first_time``,
``file``, ``fp_len``) and ``delivered``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import orjson

from logd.logfiles.identity import Position

__all__ = ["CheckpointError", "CheckpointStore", "Position"]


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
        # O_NOFOLLOW: a link planted at the temporary name never makes logd truncate its target
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
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
