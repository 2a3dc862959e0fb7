"""logd's one way to report what happens to it: ``events.emit(level, message, **fields)``.

Every component is handed the same :class:`Events` at construction. An event becomes
a record about logd itself (``agent = "logd"``, logd's own trusted fields), which goes
through the same steps and sinks as everyone's; a warning or an error is also written
to stderr at once as one structured line (``logd: error: <message> key=value ...``),
so it is seen even when no sink works; that line passes through a redactor made from
the same ``[logging.redact]`` as the pipeline's (an event may quote what a client sent).
Thread-safe: a component's background thread (rotation, trace writer, shippers) may
emit; its record is handed to the event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from logd.components import Step
from logd.record import Record
from logd.timestamps import format_epoch

SELF_TRUSTED: Record = {"_pid": os.getpid(), "_uid": os.getuid(), "_gid": os.getgid(), "_comm": "logd"}
STDERR_LEVELS = frozenset(("warn", "error", "fatal", "panic"))
MAX_EARLY = 1000  # events kept before the pipeline is connected (start-up); more are counted, not kept

Put = Callable[[list[Record]], None]


def stderr_line(level: str, message: str, fields: dict[str, Any]) -> str:
    """``logd: <level>: <message> key=value ...`` (values quoted as JSON when they need it)."""
    parts = [f"logd: {level}: {message}"]
    for key, value in fields.items():
        if isinstance(value, str) and value and not any(c in value for c in ' "=\n\t\\'):
            text = value
        else:
            text = orjson.dumps(value, default=str).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)


def write_stderr(text: str) -> None:
    try:
        os.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass  # stderr is gone: the records still have it


class Events:
    """The reporter every component is given; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time, stderr: Callable[[str], None] = write_stderr) -> None:
        self.clock = clock
        self._stderr = stderr
        self._lock = threading.Lock()
        self._put: Put | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._early: list[Record] = []
        self._closed = False
        self.counts: dict[str, int] = {}  # level -> events emitted
        # consoles that print logd's records where stderr goes (ConsoleSink): while one does and
        # the pipeline takes records, the stderr line would print the same warning twice
        self.echoes = 0
        self._redactor: Step | None = None
        self.lost = 0  # records about logd that had nowhere to go (before start-up, after shutdown)

    def redact_with(self, redactor: Step | None) -> None:
        """The redactor of stderr lines (the daemon's, from ``[logging.redact]``; None: none).
        Its own instance: lines are redacted under this object's lock, from any thread."""
        with self._lock:
            self._redactor = redactor

    def connect(self, put: Put, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """From now on records go to ``put`` (the pipeline's intake), on ``loop``'s thread
        (the running loop by default; without one, ``put`` is called directly).

        Called once the pipeline exists (it needs ``events`` itself); what was emitted
        before is delivered now, in order."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        with self._lock:
            self._put, self._loop, self._loop_thread = put, loop, threading.get_ident()
            early, self._early = self._early, []
        if early:
            put(early)

    def disconnect(self) -> None:
        """After the pipeline's last batch: later events only reach stderr (and are counted as lost)."""
        with self._lock:
            self._put = None
            self._loop = None
            self._closed = True

    def emit(self, level: str, message: str, /, *, stderr: bool | None = None, **fields: Any) -> None:
        """Report ``message`` at ``level``; ``stderr`` overrides the default (warnings and worse)."""
        with self._lock:
            self.counts[level] = self.counts.get(level, 0) + 1
        if (stderr if stderr is not None else level in STDERR_LEVELS) and not (self.echoes and self._put):
            self._stderr(self._line(level, message, fields))
        record: Record = {"time": format_epoch(self.clock()), "level": level, "message": message,
                          "agent": "logd", **fields}
        record.update(SELF_TRUSTED)
        put, loop = self._put, self._loop
        if put is None:
            with self._lock:
                if self._put is None:
                    if not self._closed and len(self._early) < MAX_EARLY:
                        self._early.append(record)
                    else:
                        self.lost += 1
                    return
                put, loop = self._put, self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            put([record])  # on the loop: in order with what the caller does next
            return
        try:
            loop.call_soon_threadsafe(self._put_later, record)
        except RuntimeError:  # the loop has closed: shutting down, stderr has the errors
            self.lost += 1

    def _line(self, level: str, message: str, fields: dict[str, Any]) -> str:
        """The stderr line, redacted as the record will be."""
        if self._redactor is None:
            return stderr_line(level, message, fields)
        shown: Record = {"message": message, **fields}
        try:
            with self._lock:
                self._redactor([shown])
        except Exception:  # never let a redaction failure print a secret: the message alone
            return stderr_line(level, "[fields not shown: redaction failed]", {})
        return stderr_line(level, shown.pop("message"), shown)

    def _put_later(self, record: Record) -> None:
        put = self._put
        if put is not None:
            put([record])
        else:
            self.lost += 1
