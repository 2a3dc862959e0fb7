"""JSON-lines file sink: one object per line, appended in whole batches.

The sink never loses or splits a line it has taken: bytes it could not write
(disk full, permissions) stay in ``_unwritten`` and go out, in order, on the
next ``flush``; the error propagates so the pipeline pauses clients.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..pipeline import Batch

FILE_MODE = 0o640


class FileSink:
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._unwritten = b""

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        return self._fd

    def open(self) -> None:
        """Open (creating folders and the file) now, so a bad path fails at start or reload."""
        self._open()

    def write(self, batch: Batch) -> None:
        data = batch.json_lines()
        self._unwritten = self._unwritten + data if self._unwritten else data
        self.flush()

    def flush(self) -> None:
        while self._unwritten:
            fd = self._open()
            try:
                written = os.write(fd, self._unwritten)
            except InterruptedError:
                continue
            if written == 0:  # pragma: no cover - only on exotic filesystems
                raise OSError(errno.EIO, "write returned 0", str(self.path))
            self._unwritten = self._unwritten[written:]

    @property
    def pending_bytes(self) -> int:
        return len(self._unwritten)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
