"""Generated record lines for the tests that compare two paths through logd (test_fast_path,
test_hotpath): agents' lines in every shape they come in, most of them valid."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
from hypothesis import strategies as st
from loguru._logger import Core, Logger
from pythonjsonlogger.json import JsonFormatter
from structlog.processors import JSONRenderer

from logd.client.sender import encode_batch
from logd.timestamps import NAIVE_YEARS, local_zone_is_utc

good_times = st.sampled_from(["2026-11-29T10:11:12.123456Z", "2026-11-29T10:11:12.123Z",  # canonical, zerolog ms
                              "2026-11-29T10:11:12.123456789Z", "2026-11-29T10:11:12Z"])  # Go RFC3339Nano, seconds
other_times = st.one_of(st.sampled_from(["2026-11-29T10:11:12+02:00", "2026-13-29T10:11:12.123456Z", "yesterday",
                                         "2026-11-29T10:11:12.12345\u0661Z"]),
                        st.integers(min_value=0, max_value=2**62), st.floats(allow_nan=False, allow_infinity=False),
                        st.none(), st.booleans())
good_levels = st.sampled_from(["info", "warning", "warn", "err", "debug", "trace", "fatal", "panic", "dpanic"])
other_levels = st.one_of(st.sampled_from(["INFO", "Warn", "nope", ""]), st.integers(min_value=-2, max_value=70),
                         st.none())
other_messages = st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
times = st.one_of(good_times, other_times)
levels = st.one_of(good_levels, other_levels)
messages = st.one_of(st.text(max_size=40), other_messages)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
extra_keys = st.one_of(st.text(max_size=12), st.sampled_from(["_pid", "_uid", "_comm", "_level", "_rid", "ts", "msg",
                                                              "lvl", "record", "text", "event", "client_pid"]))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    obj: dict = {}
    fields = {"time": times, "level": levels, "message": messages}
    good = {"time": good_times, "level": good_levels, "message": st.text(max_size=40)}
    common = draw(st.booleans())  # half the records as agents send them: all three fields, most often valid
    order = draw(st.permutations(["time", "level", "message", "extra"]))
    for name in order:
        if name == "extra":
            obj.update(draw(st.dictionaries(extra_keys, values, max_size=5)))
        elif common or draw(st.booleans()):
            valid = draw(st.sampled_from([True, True, True, False]))  # most often valid
            obj[name] = draw(good[name] if valid else fields[name])
    style = draw(st.sampled_from(["orjson", "spaced", "ascii"]))
    if style == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # an integer orjson cannot write: the standard library can
            style = "ascii"
    text = json.dumps(obj, ensure_ascii=style == "ascii", separators=(", ", ": ") if style == "spaced" else (",", ":"))
    return text.encode()


# --- the dialects agents send, each as its producer writes it (issue 31): (line, plain) pairs,
# plain: a record the compiled path must take (logd.hotpath); the others are for Python ---

_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def go_string(text: str) -> str:
    """A string as zap's and zerolog's JSON encoders write it (zapcore/json_encoder.go
    safeAddString, zerolog/internal/json/string.go): \\", \\\\, \\n, \\r, \\t, other control
    characters as \\u00xx, everything else as UTF-8."""
    return '"' + "".join(_GO_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in text) + '"'


def go_float(value: float) -> str:
    """strconv.AppendFloat(f, 'f', -1, 64), as zap and zerolog write floats: the shortest digits,
    never an exponent, no ".0" on a whole number."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# text agents log: mostly plain, some non-ASCII, quotes, control characters, emoji
log_text = st.one_of(st.sampled_from(["tool call finished", "planning step 3", "", "naïve café ☕", "emoji 😀 done",
                                      'quoted "x" and back\\slash', "tab\tnew\nline", "bell\x07", "<b>&amp;</b>",
                                      "line sep \u2028 here", "日本語のログ"]),
                     st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
# fields of any type (the names logd's metric steps read, agent, model and tokens, are added as
# text and counts: any other type of theirs is Python's by design)
_FIELD_NAMES = st.sampled_from(["seq", "step", "session_id", "tool", "elapsed", "attempt", "user", "cache_hit",
                                "naïve", "reason"])
go_values = st.one_of(log_text.map(go_string), st.integers(-10**6, 10**12).map(str), st.booleans().map(str).map(
    str.lower), st.floats(1e-4, 1e6).map(go_float), st.just("null"), st.just("[1,2]"), st.just('{"k":"v"}'))
_quiet_levels = ["debug", "info", "warn"]  # error levels are the Python path's (issue 31 leaves them to `tallies`)
nanos = st.integers(946684800 * 10**9, 4102444800 * 10**9)  # 2000-2100
offsets = st.sampled_from([0, 0, 60, 120, -300, -240, 330, 345, 540, -570, -720, 840])


def _rfc3339(ns: int, minutes: int, digits: int | None) -> str:
    """Go's time.Format with RFC3339 (digits None), RFC3339Nano (trailing zeros cut, digits -1)
    or a fixed number of fraction digits, in a zone `minutes` east of UTC."""
    local = datetime.fromtimestamp(ns // 10**9, timezone.utc) + timedelta(minutes=minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % 10**9:09d}"
    if digits == -1:
        fraction = fraction.rstrip("0")
        text += "." + fraction if fraction else ""
    elif digits:
        text += "." + fraction[:digits]
    if minutes == 0:
        return text + "Z"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _fields(draw: st.DrawFn, values: st.SearchStrategy[str]) -> list[str]:
    names = draw(st.lists(_FIELD_NAMES, max_size=4, unique=True))
    metric = draw(st.sampled_from([[], ['"agent":"planner"'], ['"agent":"writer"', '"model":"gpt-4o"',
                                                            '"tokens":{"input":1200,"output":80}']]))
    return metric + [f"{go_string(name)}:{draw(values)}" for name in names]


@st.composite
def zerolog_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """zerolog (log.Info().Str(...).Msg(...)): level first, the fields, the time (its default
    RFC 3339 in the machine's zone, or another TimeFieldFormat), the message last."""
    level = draw(st.sampled_from(_quiet_levels + ["trace", "error"]))
    ns, form = draw(nanos), draw(st.sampled_from(["rfc3339", "rfc3339", "nano", "unix", "ms", "micro"]))
    time = {"rfc3339": lambda: go_string(_rfc3339(ns, draw(offsets), None)),
            "nano": lambda: go_string(_rfc3339(ns, draw(offsets), -1)),
            "unix": lambda: str(ns // 10**9), "ms": lambda: str(ns // 10**6), "micro": lambda: str(ns // 1000)}[form]()
    parts = [f'"level":"{level}"', *_fields(draw, go_values), f'"time":{time}']
    if draw(st.booleans()):
        parts.append(f'"message":{go_string(draw(log_text))}')
    return ("{" + ",".join(parts) + "}").encode(), level != "error"


@st.composite
def zap_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """zap's production JSON (zap.NewProduction): level, ts (epoch seconds as a float), logger,
    caller, msg, the fields; durations in seconds."""
    level = draw(st.sampled_from(_quiet_levels + ["error", "dpanic"]))
    parts = [f'"level":"{level}"', f'"ts":{go_float(draw(nanos) / 1e9)}']
    if draw(st.booleans()):
        parts.append('"logger":"planner"')
    parts += ['"caller":"agent/main.go:42"', f'"msg":{go_string(draw(log_text))}', *_fields(draw, go_values)]
    seconds = draw(st.integers(1, 10**10)) / 1e9  # zap.Duration: SecondsDurationEncoder
    parts.append(f'"duration":{go_float(seconds)}')
    return ("{" + ",".join(parts) + "}").encode(), level not in ("error", "dpanic") and seconds >= 1e-5


@st.composite
def slog_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Go's log/slog JSONHandler: time (RFC 3339 with milliseconds, the machine's zone), level
    in capitals (INFO, WARN, ERROR, DEBUG, or INFO+2), msg, the attributes."""
    level = draw(st.sampled_from(["INFO", "WARN", "DEBUG", "ERROR", "INFO+2"]))
    parts = [f'"time":{go_string(_rfc3339(draw(nanos), draw(offsets), 3))}', f'"level":"{level}"',
             f'"msg":{go_string(draw(log_text))}', *_fields(draw, go_values)]
    return ("{" + ",".join(parts) + "}").encode(), level in ("INFO", "WARN", "DEBUG")


NAIVE_UTC = local_zone_is_utc()  # the compiled path reads naive times as UTC (python-json-logger's asctime)
_PY_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
py_values = st.one_of(log_text, st.integers(-10**6, 10**12), st.booleans(), st.none(),
                      st.floats(1e-4, 1e6), st.lists(st.integers(0, 9), max_size=2))


@st.composite
def python_json_logger_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """python-json-logger's JsonFormatter (the real one): asctime (local, naive: the compiled path
    reads it only where the local zone is UTC) and levelname as the format names them, the
    message, extra fields, with timestamp=True an aware UTC timestamp; json.dumps' ensure_ascii
    escapes."""
    level = draw(st.sampled_from(list(_PY_LEVELS)))
    fmt = draw(st.sampled_from(["%(asctime)s %(levelname)s %(name)s %(message)s", "%(levelname)s %(message)s"]))
    timestamp = draw(st.booleans())
    record = logging.LogRecord("agent", _PY_LEVELS[level], "agent.py", 7, draw(log_text), None, None)
    record.created = draw(st.integers(946684800, 4102444800)) + draw(st.integers(0, 999999)) / 1e6
    for name in draw(st.lists(st.sampled_from(["seq", "step", "tool", "duration_s", "agent_id"]), max_size=3,
                              unique=True)):
        setattr(record, name, draw(py_values))
    naive_taken = "asctime" in fmt and NAIVE_UTC and time.localtime(record.created).tm_year <= NAIVE_YEARS[1]
    return (JsonFormatter(fmt, timestamp=timestamp).format(record).encode(),
            level != "ERROR" and (timestamp or naive_taken))


@st.composite
def stdlib_json_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A hand-made record written with the standard library's json.dumps: ", " and ": ", \\uXXXX
    for everything beyond ASCII (surrogate pairs for emoji), in any key order."""
    level = draw(st.sampled_from(["info", "warning", "debug", "INFO", "error"]))
    ns = draw(nanos)
    time = draw(st.sampled_from([_rfc3339(ns, 0, 6), _rfc3339(ns, draw(offsets), 3), _rfc3339(ns, 0, None)]))
    obj = {"time": time, "level": level, "message": draw(log_text)}
    obj.update(draw(st.dictionaries(_FIELD_NAMES, py_values, max_size=3)))
    keys = draw(st.permutations(list(obj)))
    return json.dumps({k: obj[k] for k in keys}).encode(), level != "error"


@st.composite
def structlog_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """structlog's JSONRenderer (the real one) after add_log_level and TimeStamper(fmt="iso"):
    the message under "event"."""
    level = draw(st.sampled_from(["info", "debug", "warning", "error"]))
    seconds = draw(st.integers(946684800, 4102444800)) + draw(st.integers(0, 999999)) / 1e6
    event = {"event": draw(log_text), **draw(st.dictionaries(_FIELD_NAMES, py_values, max_size=3)), "level": level,
             "timestamp": datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")}
    return JSONRenderer()(None, "", event).encode(), level != "error"  # type: ignore[arg-type]


@st.composite
def logd_client_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """logd's own client (logd.client.sender.encode_batch): a float time made canonical, orjson."""
    level = draw(st.sampled_from(["info", "debug", "warn", "error"]))
    record = {"time": draw(st.integers(946684800, 4102444800)) + draw(st.integers(0, 999999)) / 1e6, "level": level,
              "message": draw(log_text), **draw(st.dictionaries(_FIELD_NAMES, py_values, max_size=3))}
    data, _ = encode_batch([record])
    return data.rstrip(b"\n"), level != "error"


# a logger of its own, built as loguru/__init__.py builds `logger` (without its stderr sink)
_LOGURU = Logger(core=Core(), exception=None, depth=0, record=False, lazy=False, colors=False, raw=False,
                 capture=True, patchers=[], extra={})


@st.composite
def loguru_lines(draw: st.DrawFn) -> tuple[bytes, bool]:
    """loguru's serialize=True (the real one, loguru/_handler.py): {"text": ..., "record": {...}},
    which record._from_loguru flattens; the time in any zone, extra fields bound."""
    level = draw(st.sampled_from(["INFO", "DEBUG", "WARNING", "SUCCESS", "TRACE", "ERROR"]))
    zone = timezone(timedelta(minutes=draw(offsets)))
    when = datetime.fromtimestamp(draw(st.integers(946684800, 4102444800)) + draw(st.integers(0, 999999)) / 1e6, zone)
    extras = draw(st.dictionaries(_FIELD_NAMES, py_values, max_size=3))
    lines: list[str] = []
    sink = _LOGURU.add(lines.append, serialize=True, level=0, format="{message}")
    try:
        _LOGURU.patch(lambda record: record.update(time=when)).bind(**extras).log(level, draw(log_text))
    finally:
        _LOGURU.remove(sink)
    return lines[0].rstrip("\n").encode(), level != "ERROR"


DIALECTS = {"zerolog": zerolog_lines(), "zap": zap_lines(), "slog": slog_lines(),
            "python-json-logger": python_json_logger_lines(), "json.dumps": stdlib_json_lines(),
            "structlog": structlog_lines(), "logd client": logd_client_lines(), "loguru": loguru_lines()}
dialect_lines = st.one_of(*DIALECTS.values()).map(lambda pair: pair[0])


# --- what the compiled path decides itself, in every combination: the keys normalize_object
# reads the time, level and message from, times in and around the forms it converts, escapes ---

_digit2 = st.integers(0, 99).map(lambda n: f"{n:02d}")
time_texts = st.builds(
    lambda year, month, day, sep, hms, fraction, zone: f"{year}-{month}-{day}{sep}{hms}{fraction}{zone}",
    st.sampled_from(["2026", "0001", "9999", "2024", "1969", "0000", "1970", "1971", "2099", "2100"]),
    st.sampled_from(["11", "02", "12", "13", "00"]),
    st.sampled_from(["29", "30", "31", "01", "00"]), st.sampled_from(["T", "T", " ", "t", "_"]),
    st.builds(lambda h, m, s: f"{h}:{m}:{s}", st.sampled_from(["10", "00", "23", "24"]),
              st.sampled_from(["11", "59", "60"]), st.sampled_from(["12", "59", "60"])),
    st.one_of(st.just(""), st.builds(lambda sep, digits: sep + digits, st.sampled_from([".", ",", ". "]),
                                     st.text("0123456789", max_size=12))),
    st.one_of(st.sampled_from(["Z", "z", "UTC", "", " Z", "utc", "+00:00", "-00:00"]),
              st.builds(lambda sign, h, m, colon: f"{sign}{h}{colon}{m}", st.sampled_from(["+", "-"]), _digit2,
                        st.one_of(st.just(""), _digit2), st.sampled_from([":", ""]))))
epochs = st.one_of(st.integers(-10**19, 10**19), st.floats(allow_nan=False, allow_infinity=False),
                   st.floats(-1e19, 1e19), st.integers(946684800, 4102444800).map(lambda s: s + 0.5))
_hex4 = st.integers(0, 0xFFFF).map(lambda n: f"{n:04x}")
escapes = st.one_of(
    st.builds(lambda h: "\\u" + h, st.one_of(_hex4, _hex4.map(str.upper), st.sampled_from(
        ["d83d", "de00", "DBFF", "dc00", "0000", "001f", "0022", "005c", "002f", "007f", "2028", "00e9", "0031"]))),
    st.sampled_from(["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\ude00\\ud83d", "\\ud83d", "\\ud83dx", "\\/", "\\x",
                     "\\u12", '\\"', "\\\\", "\\n", "\\b", "\\f"]))
escaped_texts = st.lists(st.one_of(escapes, st.text("ab=: 9é", max_size=3)), max_size=6).map(
    lambda parts: '"' + "".join(parts) + '"')
_ROLE_KEYS = ["time", "ts", "timestamp", "@timestamp", "asctime", "t", "level", "levelname", "severity", "lvl",
              "message", "msg", "event"]
time_values = st.one_of(time_texts.map(json.dumps), epochs.map(json.dumps))
level_values = st.one_of(st.sampled_from(['"info"', '"INFO"', '"Warning"', '"ERROR"', '"dpanic"', '"İnfo"', '"nope"',
                                          '"in\\u0066o"', "2", "-1", "30", "55", "2.0", "true", "null", "{}"]),
                         st.integers(-3, 70).map(str))
_ROLE_VALUES = {"time": time_values, "level": level_values, "message": escaped_texts}


@st.composite
def role_lines(draw: st.DrawFn) -> bytes:
    """A record whose time, level and message come from any of the keys normalize_object reads
    them from, holding anything from their forms and what is near them, plus escaped text."""
    keys = draw(st.lists(st.sampled_from(_ROLE_KEYS), min_size=1, max_size=6, unique=True))
    role = {k: "time" for k in _ROLE_KEYS[:6]} | {k: "level" for k in _ROLE_KEYS[6:10]}
    fields = [(json.dumps(k), draw(_ROLE_VALUES[role.get(k, "message")] if draw(st.integers(0, 4)) else
                               st.one_of(*_ROLE_VALUES.values()))) for k in keys]
    fields += [(draw(st.sampled_from(['"note"', '"caf\\u00e9"', '"\\u0074ime"', '"lvl"'])), draw(escaped_texts))
               for _ in range(draw(st.integers(0, 2)))]
    return ("{" + ",".join(f"{k}:{v}" for k, v in fields) + "}").encode()
