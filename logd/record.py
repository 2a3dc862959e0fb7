"""One received line -> one canonical record.

A record is a plain dict whose first three keys are ``time`` (RFC 3339 UTC,
microseconds), ``level`` (see :mod:`logd.levels`) and ``message``; every other
field an agent sent is kept as sent. Nothing is dropped here: a line that is
not what it claims to be is kept as text and flagged.

Dialects recognised: zerolog, zap (production JSON), loguru ``serialize=True``,
python-json-logger, Go slog, pino/bunyan, structlog, and logd's own clients.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

import orjson

from logd import tracebacks
from logd.levels import ALIASES as LEVEL_ALIASES
from logd.levels import canonical_level
from logd.timestamps import normalize_time

Record = dict[str, Any]

# Fields only logd may set: kernel-verified peer credentials (socket), the transport and the
# bearer token's name (HTTP ingest, logd/sources/http.py), and logd's flags.
TRUSTED_FIELDS = ("_pid", "_uid", "_gid", "_comm", "_transport", "_sender")
FLAG_FIELDS = ("_malformed", "_invalid_utf8", "_truncated", "_partial", "_level", "_time", "_error")
# Set by logd on records of acknowledged batches (see logd/ack.py): the record id and the resend mark.
ACK_FIELDS = ("_rid", "_resent")
RESERVED = frozenset(TRUSTED_FIELDS + FLAG_FIELDS + ACK_FIELDS)
# keys parse_line rewrites (reserved fields, a nested "record", exceptions): the compiled path
# leaves a line holding one to it (logd/hotpath.py)
PARSER_KEYS = RESERVED | {"record"} | tracebacks.KEYS

# Alternative spellings, tried after the canonical key.
_TIME_KEYS = ("ts", "timestamp", "@timestamp", "asctime", "t")
_LEVEL_KEYS = ("levelname", "severity", "lvl")
_MESSAGE_KEYS = ("msg",)
_MISSING: Any = object()


MAX_KEY_CHARS = 128  # of a client-chosen name (agent, session id) used as a key of an in-memory table


def bounded_key(text: str, limit: int = MAX_KEY_CHARS) -> str:
    """``text`` as a key of a table that must stay bounded: a longer one is cut and given a
    checksum of the whole, so two long names stay two keys, each at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    digest = zlib.crc32(text.encode("utf-8", "surrogatepass"))
    return f"{text[:limit - 9]}~{digest:08x}"


def _pop_first(obj: Record, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj.pop(key)
    return _MISSING


class RawNumber:
    """A JSON number no float or 64-bit integer holds exactly (``1e400``, ``2**70``): kept as the
    client's own digits and written back verbatim (see :func:`logd.pipeline.encode`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"RawNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


# orjson reads integers beyond 64 bits as floats (losing digits): lines with a run of 20+
# digits are read by the standard library instead, which keeps them exact. Found by mapping
# digits to "0" and the rest to "." (bytes.translate, then a substring search: measured 3-5x
# cheaper than the regex [0-9]{20} on a typical line)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_TWENTY_DIGITS = b"0" * 20
_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs valid ones: what is left is lone
_INT_RANGE = (-(2**63), 2**64 - 1)


def _exact_int(text: str) -> int | RawNumber | str:
    value = int(text)
    if _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        return value
    # beyond 64 bits: the digits as sent; beyond float range (orjson readers refuse it): as text
    return RawNumber(text) if len(text.lstrip("-")) <= 308 else _HugeFloat(text)


class _HugeFloat(str):
    """The text of a number beyond float range (``1e400``, 400 digits): JSON readers that
    use doubles (orjson, jq, most languages) refuse it as a number, so it is kept as text."""


def _exact_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else _HugeFloat(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_exact(data: bytes | str, flags: Record) -> Any:
    """Valid JSON orjson refuses or would round: integers beyond 64 bits are kept exactly
    (:class:`RawNumber`), a number beyond float range as its text (flagged ``_error``), a lone
    surrogate as U+FFFD (flagged ``_invalid_utf8``: no UTF-8 reader could take it)."""
    try:
        obj = json.loads(data, parse_int=_exact_int, parse_float=_exact_float, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
        return None
    notes: set[str] = set()
    obj = _storable(obj, notes)
    if "surrogate" in notes:
        flags["_invalid_utf8"] = True
    if "huge" in notes:
        flags["_error"] = "parse: a number beyond float range is kept as text"
    return obj


def _storable(value: Any, notes: set[str]) -> Any:
    if isinstance(value, str):
        if value.__class__ is _HugeFloat:
            notes.add("huge")
            return str(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            notes.add("surrogate")
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {_storable(k, notes): _storable(v, notes) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v, notes) for v in value]
    return value


def parse_line(
    line: bytes,
    received: str,
    trusted: Record | None = None,
    *,
    truncated: int | None = None,
    partial: bool = False,
) -> Record:
    """Turn one line (without its newline) into a canonical record; never raises.

    A line that trips any bug in parsing is kept as text with ``_error`` saying why,
    so it can never take the other records of its batch or connection with it.
    """
    if truncated is None and not partial:
        try:
            record = _parse_canonical(line, trusted)
        except Exception:  # whatever it is, the full path decides
            record = None
        if record is not None:
            return record
    try:
        return _parse_line(line, received, trusted, truncated=truncated, partial=partial)
    except Exception as exc:
        record = _text_record(line[:65536].decode("utf-8", "replace"), received)
        record["_error"] = f"parse: {type(exc).__name__}: {str(exc)[:200]}"
        if trusted:
            record.update(trusted)
        return record


_HEAD: Record = {"time": None, "level": None, "message": None}


def _parse_canonical(line: bytes, trusted: Record | None) -> Record | None:
    """The fast path, for what most agents send: one JSON object with ``time`` (UTC),
    ``level`` (a known spelling) and ``message`` (text) under those names, nothing reserved,
    no number orjson would round. None for anything else: :func:`_parse_line` then takes
    the line, and gives the same record for every line this accepts (tests/test_fast_path.py)."""
    if line[:1] != b"{" or line[-1:] != b"}" or _TWENTY_DIGITS in line.translate(_DIGITS_AS_ZERO):
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if (obj.__class__ is not dict or "record" in obj or not RESERVED.isdisjoint(obj)
            or not tracebacks.KEYS.isdisjoint(obj)):
        return None
    try:
        time, level, message = obj["time"], obj["level"], obj["message"]
    except KeyError:
        return None
    if message.__class__ is not str or level.__class__ is not str:
        return None
    level = LEVEL_ALIASES.get(level)
    time = normalize_time(time)
    if level is None or time is None:
        return None
    record = _HEAD.copy()  # time, level and message first; the other keys in the order sent
    record.update(obj)
    record["time"] = time
    record["level"] = level
    if trusted:
        record.update(trusted)
    return record


def _parse_line(
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
            if _TWENTY_DIGITS in line.translate(_DIGITS_AS_ZERO):
                obj = _loads_exact(line, flags)
            else:
                obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = _loads_exact(line, flags)
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
        # a structured message becomes JSON text; the redaction step redacts its
        # "key":"value" forms like any text record's (steps/redact.py)
        message = "" if message is None else _message_text(message)

    if not RESERVED.isdisjoint(obj):
        _rename_reserved(obj)
    if not tracebacks.KEYS.isdisjoint(obj):
        tracebacks.normalise(obj)
    record = {"time": time or received, "level": level, "message": message}
    record.update(obj)
    if unrecognised:
        record.update(unrecognised)
    return record


def _message_text(message: Any) -> str:
    try:
        return orjson.dumps(message, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        return str(message)[:65536]


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
