"""Without a file sink, shippers still read files: the spool is a JSON-lines file in the
state folder that only they read, in the file sink's format.

It rotates like the log file, with dated names (``spool.log`` ->
``spool-2026-11-29T17-03-00.123.log``, one rename; :mod:`logd.logfiles.names`; numbered
``spool.log.N`` left by an older logd are still read, in order) when it passes
``max_bytes``, and a backup is deleted only once every ship target has moved past it
(:func:`prune_spool`), so the spool never drops what a target still needs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from logd.components import Batch
from logd.events import Events
from logd.logfiles.names import Names
from logd.ship.settings import ShipSettings
from logd.sinks.file import FileSettings, FileSink
from logd.spec import SINK, Context, Spec

SPOOL_NAME = "spool.log"
# Rotation (the writer's thread) renames backups while pruning (a shipper's thread) deletes
# them: one lock, so a name is never deleted just after it moved on to another file.
_renames = threading.Lock()


def spool_path(state_dir: Path) -> Path:
    return state_dir / SPOOL_NAME


def spool_backups(current: Path) -> list[tuple[int, Path]]:
    """``(rank, path)`` of the spool's backups, newest (1) first."""
    return [(rank, path) for path, rank, _ in reversed(Names(current).readable()) if rank > 0]


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

    def rotate_now(self) -> bool | None:
        return None  # not the log file: it rotates by its own rule, and `logd rotate` leaves it

    def rotate(self) -> None:
        """spool.log -> spool-<time>.log (a name no backup has); the next write reopens."""
        self.close()
        names = Names(self.path)
        with _renames:
            when = time.time()
            while os.path.lexists(names.dated(when)):
                when += 0.001
            os.rename(self.path, names.dated(when))


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


def _build(settings: None, ctx: Context) -> SpoolSink | None:
    """Shippers read files: without a log file they read the spool."""
    file = ctx.config.of(FileSettings)
    if file.file is not None or not ctx.config.elements(ShipSettings):
        return None
    return SpoolSink(spool_path(file.ship_state_dir), max_bytes=file.max_size_bytes, events=ctx.events)


SPEC = Spec(SINK, "spool", _build)
