"""Human-readable console output in the style of zerolog's ConsoleWriter.

``15:04:05.123 INF Agent execution completed agent=research-agent duration=2s``

Time is local, levels are three letters, fields are sorted; colour only on a
TTY unless ``NO_COLOR`` / ``FORCE_COLOR`` say otherwise. ``format = "json"``
prints the JSON lines instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from logd.components import SinkStats
from logd.events import Events
from logd.pipeline import Batch
from logd.record import TRUSTED_FIELDS, Record

RESET = "\x1b[0m"
DIM = "\x1b[90m"
BOLD = "\x1b[1m"
CYAN = "\x1b[36m"
RED = "\x1b[31m"
LEVEL_STYLE = {
    "trace": ("TRC", "\x1b[35m"),
    "debug": ("DBG", "\x1b[33m"),
    "info": ("INF", "\x1b[32m"),
    "warn": ("WRN", "\x1b[31m"),
    "error": ("ERR", "\x1b[1;31m"),
    "fatal": ("FTL", "\x1b[1;31m"),
    "panic": ("PNC", "\x1b[1;31m"),
}
_ERROR_LEVELS = frozenset(("error", "fatal", "panic"))
_ERROR_FIELDS = frozenset(("error", "err", "exception"))
_BLOCK_FIELDS = ("stack", "stacktrace")  # printed below the line, as written
_HIDDEN = frozenset(TRUSTED_FIELDS) | {"time", "level", "message"} | set(_BLOCK_FIELDS)


def use_color(stream: BinaryIO, env: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR wins, then FORCE_COLOR, then whether the stream is a terminal."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    force = env.get("FORCE_COLOR")
    if force is not None and force not in ("", "0", "false"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _LocalClock:
    """Canonical UTC time -> local ``HH:MM:SS.mmm``, converting each second only once."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, canonical: str) -> str:
        second = canonical[:19]
        local = self._cache.get(second)
        if local is None:
            try:
                local = datetime.fromisoformat(second + "+00:00").astimezone().strftime("%H:%M:%S")
            except ValueError:
                local = second[11:19]
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[second] = local
        return f"{local}.{canonical[20:23]}"


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c in value for c in ' "=\n\t\\'):
            return value
        return orjson.dumps(value).decode()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value, default=str).decode()


class ConsoleFormatter:
    def __init__(self, color: bool) -> None:
        self.color = color
        self._clock = _LocalClock()

    def format(self, record: Record) -> str:
        level = record.get("level", "info")
        abbrev, level_color = LEVEL_STYLE.get(level, ("???", ""))
        stamp = self._clock(record.get("time", ""))
        message = record.get("message", "")
        parts: list[str] = []
        keys = sorted(k for k in record if k not in _HIDDEN)
        if self.color:
            head = f"{DIM}{stamp}{RESET} {level_color}{abbrev}{RESET}"
            if level in _ERROR_LEVELS:
                message = f"{BOLD}{message}{RESET}"
            for key in keys:
                text = _value_text(record[key])
                if key in _ERROR_FIELDS or key.startswith("_"):
                    parts.append(f"{RED}{key}={text}{RESET}")
                else:
                    parts.append(f"{CYAN}{key}={RESET}{text}")
        else:
            head = f"{stamp} {abbrev}"
            parts = [f"{key}={_value_text(record[key])}" for key in keys]
        line = f"{head} {message}" if message else head
        if parts:
            line += " " + " ".join(parts)
        for key in _BLOCK_FIELDS:
            block = record.get(key)
            if block:
                text = block if isinstance(block, str) else _value_text(block)
                line += "\n" + "\n".join("    " + row for row in text.rstrip("\n").splitlines())
        return line + "\n"


class ConsoleSink:
    """Writes to a binary stream (stdout by default). The smallest sink: copy it to add one.

    A stream that fails (closed pipe, hung-up terminal) disables the sink rather than hold
    every record back for a reader that is gone: the records it then skips are counted
    (``dropped``) and the failure is reported once through ``events``. The other sinks
    still get every record.
    """

    name = "console"

    def __init__(self, stream: BinaryIO, fmt: str = "console", color: bool | None = None, *,
                 events: Events | None = None) -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.formatter = ConsoleFormatter(use_color(stream) if color is None else color)
        self.events = events if events is not None else Events()
        self.broken = False
        self.dropped = 0
        self.bytes_written = 0

    def _broke(self, exc: OSError, lost: int) -> None:
        self.broken = True
        self.dropped += lost
        self.events.emit("error", f"console output failed ({exc.strerror or exc}); console disabled, "
                         "records still go to the other sinks", sink=self.name)

    def open(self) -> None:
        pass  # the stream is open already

    def write(self, batch: Batch) -> None:
        if self.broken:
            self.dropped += len(batch.records)
            return
        if self.json:
            data = batch.json_lines()
        else:
            fmt = self.formatter.format
            data = "".join([fmt(r) for r in batch.records]).encode("utf-8", "replace")
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as exc:
            self._broke(exc, len(batch.records))
        else:
            self.bytes_written += len(data)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except OSError as exc:
                self._broke(exc, 0)

    def close(self) -> None:
        self.flush()

    def stats(self) -> SinkStats:
        return SinkStats(discarded_events=self.dropped, sent_bytes=self.bytes_written, writable=not self.broken)
