"""Without a file sink, shippers still read files: the spool is a JSON-lines file in the
state folder that only they read, in the file sink's format.

It rotates like the log file (``spool.log`` -> ``spool.log.1``, higher = older, by rename)
when it passes ``max_bytes``, and a backup is deleted only once every ship target has
moved past it (:func:`prune_spool`), so the spool never drops what a target still needs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from logd.events import Events
from logd.pipeline import Batch
from logd.sinks.file import FileSink

SPOOL_NAME = "spool.log"
# Rotation (the writer's thread) renames backups while pruning (a shipper's thread) deletes
# them: one lock, so a name is never deleted just after it moved on to another file.
_renames = threading.Lock()


def spool_path(state_dir: Path) -> Path:
    return state_dir / SPOOL_NAME


def spool_backups(current: Path) -> list[tuple[int, Path]]:
    """``(number, path)`` of the spool's backups, newest (1) first."""
    pattern = re.compile(re.escape(current.name) + r"\.([1-9][0-9]*)")
    try:
        names = os.listdir(current.parent)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), current.parent / name) for name in names if (m := pattern.fullmatch(name))]
    return sorted(found)


class SpoolSink(FileSink):
    name = "spool"

    def __init__(self, path: Path, max_bytes: int = 64 << 20, *, events: Events | None = None) -> None:
        super().__init__(path, events=events)
        self.max_bytes = max_bytes

    def write(self, batch: Batch) -> None:
        super().write(batch)
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        """spool.log.N -> N+1 (oldest first), spool.log -> spool.log.1; the next write reopens."""
        self.close()
        with _renames:
            for number, path in reversed(spool_backups(self.path)):
                os.replace(path, path.with_name(f"{self.path.name}.{number + 1}"))
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))


def prune_spool(current: Path, done_with: Callable[[Path], bool]) -> list[Path]:
    """Delete the spool backups every target is done with; returns what was deleted."""
    deleted = []
    with _renames:
        for _, path in reversed(spool_backups(current)):  # oldest first: stop at the first still needed
            if not done_with(path):
                break
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted
