"""Isolation: what the pipeline does with a record that a step, the encoder or a sink cannot
handle (issue 18). The record is kept, as a text form of itself every step can handle, and
flagged ``"_error": "<step>: <exception>: <reason>"``; nothing else in its batch is touched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from logd.levels import RANK
from logd.record import Record
from logd.timestamps import format_epoch

ERROR_FIELD = "_error"
MAX_ERROR_TEXT = 64 * 1024  # characters of a failed record's text that are kept
_TEXT_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


class StepFailures(Exception):
    """Raised by a step that keeps counts or windows, after it went through its whole batch,
    when it could not handle some records: ``kept`` is its result (with those records in it,
    as they were) and ``failed`` pairs each with its exception. The pipeline then flags just
    those records: running the step again record by record, as it does for a step without
    state, would count every record before the culprit twice."""

    def __init__(self, kept: list[Record], failed: list[tuple[Record, Exception]]) -> None:
        super().__init__(f"{len(failed)} record(s) failed: {failed[0][1]!r}")
        self.kept = kept
        self.failed = failed


def step_name(step: Callable[..., Any]) -> str:
    """A short name for a step in ``_error`` and the step_errors counter."""
    name = getattr(step, "__qualname__", None) or type(step).__qualname__
    return str(name).replace("<lambda>", "filter").split(".<locals>")[0]


def flag(record: Record, step: str, exc: BaseException) -> None:
    record[ERROR_FIELD] = f"{step}: {type(exc).__name__}: {str(exc)[:200]}"


def record_text(value: object, depth: int = 0) -> str:
    """JSON-like text of any value: deep nesting cut, surrogates escaped, big numbers exact."""
    parts: list[str] = []
    _text_into(value, depth, parts)
    text = "".join(parts)
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def _text_into(value: object, depth: int, out: list[str]) -> None:
    if sum(map(len, out[-64:])) > MAX_ERROR_TEXT and len(out) > 64:
        return
    if isinstance(value, str):
        out.append('"' + value.encode("utf-8", "backslashreplace").decode("utf-8").replace('"', '\\"') + '"')
    elif isinstance(value, dict):
        if depth >= _TEXT_DEPTH:
            out.append("{…}")
            return
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            _text_into(str(k), depth + 1, out)
            out.append(":")
            _text_into(v, depth + 1, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if depth >= _TEXT_DEPTH:
            out.append("[…]")
            return
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _text_into(v, depth + 1, out)
        out.append("]")
    elif value is None or isinstance(value, (bool, int, float)):
        out.append("null" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    else:
        try:
            text = str(value)
        except Exception:  # the text form must exist whatever the value: its type stands in
            text = f"<{type(value).__name__}>"
        out.append('"' + text.encode("utf-8", "backslashreplace").decode("utf-8") + '"')


def fallback_record(record: Record, step: str, exc: BaseException) -> Record:
    """A record a step could not handle, as plain text fields every step can: the time and
    level if they are canonical strings, the whole record as text in ``message``, the
    trusted fields and flags kept, and ``_error`` saying which step failed and why."""
    stamp = record.get("time")  # not "time": the module gives the fallback
    level = record.get("level")
    safe: Record = {
        "time": stamp if isinstance(stamp, str) and len(stamp) == 27 else format_epoch(time.time()),
        "level": level if isinstance(level, str) and level in RANK else "info",
        "message": record_text(record),
    }
    for key in _KEEP_ON_FALLBACK:
        value = record.get(key)
        if isinstance(value, (str, int, bool)) and not (isinstance(value, str) and len(value) > 256):
            safe[key] = value
    flag(safe, step, exc)
    return safe


_KEEP_ON_FALLBACK = ("_pid", "_uid", "_gid", "_comm", "_rid", "_resent", "_partial", "_truncated",
                     "_malformed", "_invalid_utf8", "agent")


def _exact(value: object, depth: int = 0) -> object:
    """``value`` with what orjson refuses made writable the way the parser keeps it (record.py):
    lone surrogates as U+FFFD (no UTF-8 reader takes them), integers beyond 64 bits as their
    digits (as text beyond double range)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        digits = str(value)
        return orjson.Fragment(digits) if len(digits.lstrip("-")) <= 308 else digits
    if depth > 250:
        return value  # too deep for orjson whatever we do: the caller keeps it as text
    if isinstance(value, dict):
        return {_exact(k, depth + 1) if isinstance(k, str) else k: _exact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v, depth + 1) for v in value]
    return value


def encodable(record: Record) -> Record:
    """A record orjson refused (nesting deeper than 254, integers beyond 64 bits, lone
    surrogates) made encodable: valid JSON kept exactly where it can be, else each refused
    value kept as text and the record flagged. Never lost, never taking its batch along."""
    exact = _exact(record)
    try:
        orjson.dumps(exact, default=str)
        return exact  # type: ignore[return-value]
    except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
        flag(record, "encode", exc)
        for key, value in list(record.items()):
            try:
                orjson.dumps(value, default=str)
            except (orjson.JSONEncodeError, TypeError, ValueError):
                record[key] = record_text(value)
        try:
            orjson.dumps(record, default=str)
            return record
        except (orjson.JSONEncodeError, TypeError, ValueError):  # a refused key: keep the text of it all
            return fallback_record(record, "encode", exc)
