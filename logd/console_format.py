"""The console's human format, in the style of zerolog's ConsoleWriter: one module for the
console sink and the readers (``logd tail``, ``logd query -o short``/``--human``).

``15:04:05.123 INF Agent execution completed agent=research-agent duration=2s``

Time is local, with the date in front when the record is not from today; levels are
three letters, fields are sorted; colour only on a TTY unless ``NO_COLOR`` /
``FORCE_COLOR`` say otherwise. Trace records (spans, AgenticGoKit hooks, Koog events)
print as one short line: kind, name, duration, error, session.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, BinaryIO

import orjson

from logd.levels import ERROR_LEVELS
from logd.record import TRUSTED_FIELDS, Record
from logd.timestamps import epoch_seconds
from logd.traces.shapes import AGK, SPAN, classify

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
    """Canonical UTC time -> local ``HH:MM:SS.mmm`` (``YYYY-MM-DD HH:MM:SS.mmm`` when not
    from today), converting each second only once; the cache is dropped at local midnight
    (``clock``: epoch seconds, injectable)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._cache: dict[str, str] = {}
        self._clock = clock
        self._today: date | None = None
        self._day_ends = -math.inf

    def __call__(self, canonical: str) -> str:
        if self._clock() >= self._day_ends:  # one float comparison per record
            now = datetime.fromtimestamp(self._clock()).astimezone()
            self._today = now.date()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            self._day_ends = (midnight + timedelta(days=1)).timestamp()
            self._cache.clear()
        second = canonical[:19]
        local = self._cache.get(second)
        if local is None:
            try:
                moment = datetime.fromisoformat(second + "+00:00").astimezone()
                local = moment.strftime("%H:%M:%S" if moment.date() == self._today else "%Y-%m-%d %H:%M:%S")
            except ValueError:
                local = second[11:19]
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[second] = local
        return f"{local}.{canonical[20:23]}"


def value_text(value: Any) -> str:
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


def _duration_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 10 else f"{seconds:.1f}s"


def _trace_line(record: Record, shape: str, session: str) -> tuple[str, list[tuple[str, str]]]:
    """A trace record as ``kind name`` and a few fields: duration, error, session."""
    fields: list[tuple[str, str]] = []
    error: Any = record.get("error")
    if shape == SPAN:
        span_data = record.get("span_data")
        data = span_data if isinstance(span_data, dict) else {}
        kind = f"span {data.get('type') or '?'}"
        name = data.get("name") or data.get("model") or (
            f"{data.get('from_agent')} → {data.get('to_agent')}" if data.get("to_agent") else "")
        start, end = epoch_seconds(record.get("started_at")), epoch_seconds(record.get("ended_at"))
        if start is not None and end is not None:
            fields.append(("duration", _duration_text(max(0.0, end - start))))
    elif shape == AGK:
        kind, name = str(record.get("hook")), record.get("agent_id") or ""
    else:
        kind, name = str(record.get("eventType")), record.get("agentId") or record.get("agent_id") or ""
        if isinstance(record.get("duration_ms"), (int, float)):
            fields.append(("duration", _duration_text(record["duration_ms"] / 1000)))
    if error:
        fields.append(("error", value_text(error.get("message", error) if isinstance(error, dict) else error)))
    if shape == SPAN:  # filed by trace: its session is the one it names, or settled when the trace is read
        named = record.get("session_id") or record.get("group_id")
        fields.append(("session", value_text(named)) if named else ("trace", value_text(session)))
    else:
        fields.append(("session", value_text(session)))
    return f"{kind} {value_text(name)}" if name else kind, fields


class ConsoleFormatter:
    def __init__(self, color: bool, clock: Callable[[], float] = time.time) -> None:
        self.color = color
        self._clock = _LocalClock(clock)

    def format(self, record: Record) -> str:
        level = record.get("level", "info")
        abbrev, level_color = LEVEL_STYLE.get(level, ("???", ""))
        stamp = self._clock(record.get("time", ""))
        traced = classify(record)
        if traced is not None:
            return self._format_trace(record, stamp, abbrev, level_color, *traced)
        message = record.get("message", "")
        parts: list[str] = []
        keys = sorted(k for k in record if k not in _HIDDEN)
        if self.color:
            head = f"{DIM}{stamp}{RESET} {level_color}{abbrev}{RESET}"
            if level in ERROR_LEVELS:
                message = f"{BOLD}{message}{RESET}"
            for key in keys:
                text = value_text(record[key])
                if key in _ERROR_FIELDS or key.startswith("_"):
                    parts.append(f"{RED}{key}={text}{RESET}")
                else:
                    parts.append(f"{CYAN}{key}={RESET}{text}")
        else:
            head = f"{stamp} {abbrev}"
            parts = [f"{key}={value_text(record[key])}" for key in keys]
        line = f"{head} {message}" if message else head
        if parts:
            line += " " + " ".join(parts)
        for key in _BLOCK_FIELDS:
            block = record.get(key)
            if block:
                text = block if isinstance(block, str) else value_text(block)
                line += "\n" + "\n".join("    " + row for row in text.rstrip("\n").splitlines())
        return line + "\n"

    def _format_trace(self, record: Record, stamp: str, abbrev: str, level_color: str, shape: str,
                      session: str) -> str:
        head, fields = _trace_line(record, shape, session)
        if self.color:
            parts = [f"{RED}{k}={v}{RESET}" if k == "error" else f"{CYAN}{k}={RESET}{v}" for k, v in fields]
            return f"{DIM}{stamp}{RESET} {level_color}{abbrev}{RESET} {BOLD}{head}{RESET} {' '.join(parts)}\n"
        return f"{stamp} {abbrev} {head} {' '.join(f'{k}={v}' for k, v in fields)}\n"
