"""One received line -> one canonical record.

A record is a plain dict whose first three keys are ``time`` (RFC 3339 UTC,
microseconds), ``level`` (see :mod:`logd.levels`) and ``message``; every other
field an agent sent is kept as sent. Nothing is dropped here: a line that is
not what it claims to be is kept as text and flagged.

Dialects recognised: zerolog, zap (production JSON), loguru ``serialize=True``,
python-json-logger, Go slog, pino/bunyan, structlog, and logd's own clients.
"""

from __future__ import annotations

from typing import Any

import orjson

from logd.levels import ALIASES as LEVEL_ALIASES
from logd.levels import canonical_level
from logd.timestamps import normalize_time

Record = dict[str, Any]

# Fields only logd may set: kernel-verified peer credentials and logd's flags.
TRUSTED_FIELDS = ("_pid", "_uid", "_gid", "_comm")
FLAG_FIELDS = ("_malformed", "_invalid_utf8", "_truncated", "_partial", "_level", "_time")
# Set by logd on records of acknowledged batches (see logd/ack.py): the record id and the resend mark.
ACK_FIELDS = ("_rid", "_resent")
RESERVED = frozenset(TRUSTED_FIELDS + FLAG_FIELDS + ACK_FIELDS)

# Alternative spellings, tried after the canonical key.
_TIME_KEYS = ("ts", "timestamp", "@timestamp", "asctime", "t")
_LEVEL_KEYS = ("levelname", "severity", "lvl")
_MESSAGE_KEYS = ("msg",)
_MISSING: Any = object()


def _pop_first(obj: Record, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj.pop(key)
    return _MISSING


def parse_line(
    line: bytes,
    received: str,
    trusted: Record | None = None,
    *,
    truncated: int | None = None,
    partial: bool = False,
) -> Record:
    """Turn one line (without its newline) into a canonical record.

    ``received`` is the canonical time the line arrived, used when the record
    carries none. ``truncated`` is the original length of a line cut to the
    size limit; ``partial`` marks a line whose client went away before its newline.
    """
    flags: Record = {}
    if line.endswith(b"\r"):
        line = line[:-1]
    if truncated is not None:
        flags["_truncated"] = truncated
        record = _text_record(_decode_cut(line, flags), received)
    else:
        if partial:
            flags["_partial"] = True
        record = _parse_complete(line, received, flags)
    if flags:
        record.update(flags)
    if trusted:
        record.update(trusted)
    return record


def _parse_complete(line: bytes, received: str, flags: Record) -> Record:
    looks_like_json = line[:1] == b"{" or line.lstrip()[:1] == b"{"
    if looks_like_json:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return normalize_object(obj, received)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        flags["_invalid_utf8"] = True
        if looks_like_json:
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                return normalize_object(obj, received)
    if looks_like_json:
        flags["_malformed"] = True
    return _text_record(text, received)


def _decode_cut(line: bytes, flags: Record) -> str:
    """Decode a line cut at an arbitrary byte: a split character at the cut is not 'invalid'."""
    for trim in range(4):
        try:
            return line[: len(line) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
    flags["_invalid_utf8"] = True
    return line.decode("utf-8", "replace")


def _text_record(text: str, received: str) -> Record:
    return {"time": received, "level": "info", "message": text}


def normalize_object(obj: Record, received: str) -> Record:
    """Canonical record from a decoded JSON object of any recognised dialect."""
    if "record" in obj and "text" in obj and isinstance(obj["record"], dict):
        obj = _from_loguru(obj)

    unrecognised: Record = {}
    # the common spellings are tried first with one lookup each: this is the hot path
    raw = obj.pop("time", _MISSING)
    if raw is _MISSING:
        raw = _pop_first(obj, _TIME_KEYS)
    time = None
    if raw is not _MISSING:
        time = normalize_time(raw)
        if time is None:
            unrecognised["_time"] = raw

    level = "info"
    raw = obj.pop("level", _MISSING)
    if raw is _MISSING:
        raw = _pop_first(obj, _LEVEL_KEYS)
    if raw is not _MISSING:
        found = LEVEL_ALIASES.get(raw) if isinstance(raw, str) else None
        if found is None:
            found = canonical_level(raw)
        if found is None:
            unrecognised["_level"] = raw
        else:
            level = found

    message = obj.pop("message", _MISSING)
    if message is _MISSING:
        message = _pop_first(obj, _MESSAGE_KEYS)
        if message is _MISSING:
            message = obj.pop("event") if isinstance(obj.get("event"), str) else ""  # structlog
    if not isinstance(message, str):
        message = "" if message is None else orjson.dumps(message).decode()

    if not RESERVED.isdisjoint(obj):
        _rename_reserved(obj)
    record = {"time": time or received, "level": level, "message": message}
    record.update(obj)
    if unrecognised:
        record.update(unrecognised)
    return record


def _rename_reserved(obj: Record) -> None:
    """A client cannot claim a trusted field or a flag: keep its value as ``client_<name>``."""
    for key in RESERVED.intersection(obj):
        obj["client" + key] = obj.pop(key)


def _from_loguru(obj: Record) -> Record:
    """Flatten loguru's ``serialize=True`` envelope into the generic shape."""
    rec: Record = obj["record"]
    out: Record = {}
    time = rec.get("time")
    if isinstance(time, dict):
        out["time"] = time.get("timestamp", time.get("repr"))
    level = rec.get("level")
    if isinstance(level, dict):
        out["level"] = level.get("name")
    out["message"] = rec.get("message", "")
    if rec.get("name") is not None:
        out["logger"] = rec["name"]
    file = rec.get("file")
    if isinstance(file, dict) and "line" in rec:
        out["caller"] = f"{file.get('path') or file.get('name')}:{rec['line']}"
    if rec.get("function"):
        out["function"] = rec["function"]
    process, thread = rec.get("process"), rec.get("thread")
    if isinstance(process, dict):
        out["process"] = process.get("id")
    if isinstance(thread, dict):
        out["thread"] = thread.get("name")
    exception = rec.get("exception")
    if isinstance(exception, dict):
        out["error"] = f"{exception.get('type')}: {exception.get('value')}"
        text = obj.get("text")
        if isinstance(text, str) and "Traceback" in text:
            out["stack"] = text[text.index("Traceback") :].rstrip("\n")
    extra = rec.get("extra")
    if isinstance(extra, dict):
        for key, value in extra.items():
            out[key if key not in out else f"extra_{key}"] = value
    return out
