"""The ``[logging]`` section of agentflow.toml -> a typed, validated :class:`Config`.

Keys follow AgenticGoKit's meaning; logd's own settings live in sub-tables of
``[logging]``. Every error names the file, the line where the key stands, the
key, what was expected and what was found, so a user can fix it without
reading logd's source.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pwd
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from logd.extras import available, install_hint
from logd.levels import CONFIG_LEVELS, LEVELS
from logd.paths import config_search_text, default_socket_path, find_config  # noqa: F401  (re-exported)
from logd.rotation import compression_level_error, parse_rotate_every
from logd.steps.redact import DEFAULT_KEYS, DEFAULT_PATTERNS, REPLACEMENT, combine_patterns

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MB = 1024 * 1024


class ConfigError(Exception):
    """A config that cannot be used; ``str()`` is the one line to show a user."""

    def __init__(self, file: Path | None, message: str, *, line: int | None = None,
                 column: int | None = None, key: str | None = None) -> None:
        self.file, self.line, self.column, self.key = file, line, column, key
        where = str(file) if file else "<embedded defaults>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        self.message = message
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


class ConfigErrors(ConfigError):
    """Every error found in one file, in file order; ``str()`` is one line per error."""

    def __init__(self, errors: list[ConfigError], warnings: list[str] | None = None) -> None:
        first = errors[0]
        self.warnings = warnings or []
        self.errors = sorted(errors, key=lambda e: (e.line or 0, e.column or 0))
        super().__init__(first.file, first.message, line=first.line, column=first.column, key=first.key)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]


def _made(kind: str) -> Any:
    """An optional path logd makes (a "file" or "folder"): ``logd check`` checks that it can."""
    return field(default=None, metadata={"path": kind})


@dataclass(frozen=True)
class SocketSettings:
    path: Path = field(metadata={"path": "socket"})  # the socket agents send to
    mode: int = 0o660  # socket permissions: owner and group may send
    group: str | int | None = None  # group owning the socket (agents' users join it); default: the daemon's
    max_record_bytes: int = 256 * 1024  # longer lines are cut to this and flagged _truncated
    max_connections: int = 1024  # more concurrent clients are refused, counted and reported
    allow_world_writable: bool = False  # a mode with o+w is refused unless this is set
    control_group: str | int | None = None  # members may run the read-only control commands (logd status)
    # issue 18 (security/bounds): see docs/security.md
    shared_folder: bool = False  # the socket's folder may be group-writable (agents' shared group)
    idle_timeout: float = 300.0  # seconds a connection may send nothing before it is closed (0: never)
    ack_timeout: float = 60.0  # seconds an ack client may leave its acks unread before it is dropped


@dataclass(frozen=True)
class TraceSettings:
    """``[logging.traces]``: where per-session trace files go and how long they are kept."""

    dir: Path | None = _made("folder")  # default: traces/ beside `file`, else $XDG_STATE_HOME/logd/traces
    max_age: float = 0  # days; 0 keeps every session


SHIP_TYPES = ("syslog", "otlp", "http", "loki", "elasticsearch", "nats")
# per target type: accepted ``format`` values, the first is the default
SHIP_FORMATS: dict[str, tuple[str, ...]] = {
    "syslog": ("message", "json"), "otlp": ("protobuf", "json"), "http": ("ndjson",),
    "loki": ("json",), "elasticsearch": ("json",), "nats": ("json",),
}
# keys only one type of target takes (a key of another type is a mistake worth naming)
SHIP_TYPE_KEYS: dict[str, str] = {"subject": "nats", "stream": "nats", "user": "nats", "password": "nats",
                                  "token": "nats", "creds": "nats", "nkey": "nats"}


@dataclass(frozen=True)
class ShipSettings:
    """One ``[[logging.ship]]`` target: where records are forwarded, and how."""
    type: str  # syslog, otlp, http, loki, elasticsearch or nats
    url: str  # tcp:// or tls:// for syslog; nats:// or tls:// servers (comma-separated) for nats; else http(s)://
    name: str  # names the checkpoint file; default "<type>-<index>"
    format: str = ""  # syslog: message or json; otlp: protobuf or json
    batch_size: int = 500  # records per request/connection
    flush_interval: float = 1.0  # seconds to wait for a full batch before sending a partial one
    timeout: float = 10.0  # seconds, per connection/request
    compression: str = "none"  # of HTTP request bodies: none or gzip
    headers: tuple[tuple[str, str], ...] = ()  # values as written: "env:NAME" is resolved when sending
    level: str = "trace"  # minimum level shipped to this target
    match: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # field -> accepted values
    tls_ca: Path | None = None  # CA bundle to verify the collector with
    tls_cert: Path | None = None  # client certificate (mutual TLS)
    tls_key: Path | None = None  # its private key
    tls_verify: bool = True  # verify the collector's certificate
    hostname: str | None = None  # syslog HOSTNAME, nats {host} and message ids; default: this machine's name
    facility: str = "user"  # syslog facility
    index: str = "logd"  # elasticsearch index
    service_name: str = "logd"  # otlp service.name for records without an agent
    signal: str = "logs"  # "logs": every record; "traces": the span records as OTLP spans (otlp), trace records (nats)
    subject: str = ""  # nats: template of {agent} {level} {host} ({session}: traces); default "logs.{agent}"
    stream: str = ""  # nats: the JetStream stream that must take the records (Nats-Expected-Stream); default any
    user: str = ""  # nats: user name (with password)
    password: str = ""  # nats: the user's password; "env:NAME" reads $NAME when logd starts
    token: str = ""  # nats: authentication token; "env:NAME" reads $NAME when logd starts
    creds: Path | None = None  # nats: a .creds file (user JWT and NKey seed)
    nkey: Path | None = None  # nats: a file holding an NKey user seed
    backoff_initial: float = 0.2  # seconds before the first retry
    backoff_max: float = 60.0  # cap of the exponential backoff, seconds
    max_retries: int = 0  # 0: retry for ever (a retryable failure never drops a batch)


@dataclass(frozen=True)
class RedactSettings:
    """``[logging.redact]``: secret keys (any depth, case-insensitive) and value patterns."""

    enabled: bool = True  # redaction runs before every sink
    keys: tuple[str, ...] = DEFAULT_KEYS  # field names whose whole value is replaced (any depth, any case/style)
    patterns: tuple[str, ...] = DEFAULT_PATTERNS  # regexes replaced in every string; yours replace the defaults
    replacement: str = REPLACEMENT  # what a secret becomes


@dataclass(frozen=True)
class SamplingSettings:
    """``[logging.sampling]``: zap-style sampling (off unless ``enabled``) and a per-agent
    rate limit (off while ``burst`` is 0)."""

    enabled: bool = False  # zap-style sampling
    tick: float = 1.0  # seconds
    initial: int = 100  # per agent, level and message in a tick: keep the first N ...
    thereafter: int = 100  # 0: nothing after the first ``initial`` in a tick
    max_level: str = "info"  # sampled: this level and below
    burst: int = 0  # records per agent per interval; 0: no rate limit
    interval: float = 30.0  # seconds


@dataclass(frozen=True)
class MetricsSettings:
    """``[logging.metrics]``: the /metrics, /health, /ready server (off while ``listen`` is empty)."""

    listen: str = ""  # "host:port", "[::1]:port", or "unix:/path"
    mode: int = 0o660  # of a Unix socket
    max_agents: int = 500  # distinct agent label values; further agents count as "_other"


OTLP_LISTEN_ENV = "LOGD_OTLP_LISTEN"


def default_otlp_listen(env: Mapping[str, str] | None = None) -> str:
    """``$LOGD_OTLP_LISTEN``, else ``""``: the listener is off unless configured."""
    env = os.environ if env is None else env
    return env.get(OTLP_LISTEN_ENV, "")


@dataclass(frozen=True)
class OtlpSettings:
    """``[logging.otlp]``: the HTTP ingest listener (OTLP/HTTP ``/v1/logs``, ``/v1/traces``,
    the OpenAI Agents SDK's ``/v1/traces/ingest``). Off unless ``listen`` is set; every bound
    is in docs/security.md."""

    listen: str = field(default_factory=default_otlp_listen)  # "host:port" such as "127.0.0.1:4318"; "" for none
    token_file: Path | None = None  # "name:token" lines; set: every request needs "Authorization: Bearer <token>"
    max_body_bytes: int = 4 * 1024 * 1024  # per request, after gzip decompression: larger gets 413
    max_items: int = 10_000  # log records or spans per request (and resource or scope entries): more gets 413
    max_inflight_bytes: int = 64 * 1024 * 1024  # bodies and decoded items of all requests in flight: beyond, 503
    request_timeout: float = 30.0  # seconds from a request's first byte to its last: a slower sender is closed
    retry_after: int = 1  # seconds, the Retry-After of a 503 (backpressure, max_inflight_bytes)
    max_connections: int = 1024  # further connections are closed at once (exporters retry)


@dataclass(frozen=True)
class Config:
    socket: SocketSettings
    level: str = "info"  # minimum level for every sink ("warning" is accepted for "warn")
    format: str = "console"  # what the console prints: human lines, or the JSON lines of the file
    file: Path | None = _made("file")  # the JSON-lines file; unset: console only
    file_only: bool = False  # no console output
    max_size: float = 100  # MB: rotate before the file would exceed this
    max_backups: int = 0  # rotated files kept; 0 keeps every one
    max_age: float = 0  # days: rotated files older than this are removed; 0: no limit
    compress: bool = False  # compress rotated files (all but the newest backup)
    compression: str = "zstd"  # of rotated files, when compress is true: "zstd" (.zst) or "gzip" (.gz)
    compression_level: int | None = None  # None: the algorithm's default (zstd 3, gzip 6)
    rotate_every: str | None = None  # "hourly", "daily" or "<N>h": also rotate at local-time boundaries
    backup_names: str = "dated"  # "dated" (agent-<time>.log) or "numbered" (agent.log.1): see logd.logfiles.names
    traces: TraceSettings = field(default_factory=TraceSettings)
    redact: RedactSettings = field(default_factory=RedactSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    otlp: OtlpSettings = field(default_factory=OtlpSettings)
    ship: tuple[ShipSettings, ...] = ()
    state_dir: Path | None = _made("folder")  # ship checkpoints, dead letters, spool; default .logd-state beside `file`
    source: Path | None = field(default=None, compare=False)
    digest: str | None = field(default=None, compare=False)  # sha256 of the bytes loaded
    warnings: tuple[str, ...] = field(default=(), compare=False)  # things accepted but probably unintended

    @property
    def max_size_bytes(self) -> int:
        return int(self.max_size * MB)

    @property
    def console_enabled(self) -> bool:
        return not self.file_only or self.file is None

    @property
    def ship_state_dir(self) -> Path:
        """Where shippers keep checkpoints, dead letters and (without a file) the spool."""
        if self.state_dir is not None:
            return self.state_dir
        if self.file is not None:
            return self.file.parent / ".logd-state"
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return Path(base) / "logd"


def _relative_to(base: Path, value: str) -> Path:
    """A path from the config: ``~`` expanded, relative to the config's folder, ``..`` folded."""
    return Path(os.path.normpath(base / Path(value).expanduser()))


def traces_dir(config: Config, env: Mapping[str, str] | None = None) -> Path:
    """The trace folder: ``[logging.traces] dir``, else ``traces/`` beside the log file,
    else ``$XDG_STATE_HOME/logd/traces`` (``~/.local/state/logd/traces``)."""
    if config.traces.dir is not None:
        return config.traces.dir
    if config.file is not None:
        return config.file.parent / "traces"
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state) / "logd" / "traces"


def defaults() -> Config:
    return Config(socket=SocketSettings(path=default_socket_path()))


# --- validators: each returns the converted value or raises _Invalid(expected) ---

class _Invalid(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


Validator = Callable[[Any], Any]


def _found(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) else ""
    if isinstance(value, str):
        shown = '"' + value + '"'
    elif isinstance(value, bool):
        shown = "true" if value else "false"
    return f"{kind} {shown}".strip()


def _choice(options: dict[str, str], expected: str) -> Validator:
    def check(value: Any) -> str:
        if isinstance(value, str) and value.lower() in options:
            return options[value.lower()]
        raise _Invalid(expected)
    return check


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("true or false")


def _number(minimum: float, what: str, *, positive: bool = False) -> Validator:
    def check(value: Any) -> float:
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and (value > minimum or (not positive and value == minimum))):
            return value
        raise _Invalid(what)
    return check


def _integer(minimum: int, what: str) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        raise _Invalid(what)
    return check


def _string(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise _Invalid("a non-empty string")


# Sizes and retentions as lumberjack and loguru users write them ("100MB", "10 days"), read once
# here into the key's own unit, so `logd run`, a reload and `logd check` accept the same strings.
# Only unambiguous forms: a unit is required; MB is the key's megabyte (1024 * 1024 bytes, as
# lumberjack's and the plain number's); months and years, which have no fixed number of days,
# and a bare "m" (minutes or months?) are refused with the reason.
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*(?:,|and\b)?", re.IGNORECASE)
_DAYS_PER = {**dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1 / 86400),
             **dict.fromkeys(("min", "mins", "minute", "minutes"), 1 / 1440),
             **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 1 / 24),
             **dict.fromkeys(("d", "day", "days"), 1.0),
             **dict.fromkeys(("w", "week", "weeks"), 7.0)}
_NO_FIXED_LENGTH = {"m": '"m" could be minutes or months: write "min", or days',
                    **dict.fromkeys(("mo", "month", "months"), "a month has no fixed number of days: write days"),
                    **dict.fromkeys(("y", "year", "years"), "a year has no fixed number of days: write days")}


def _megabytes(what: str) -> Validator:
    """A positive number of megabytes, or a size string such as "100MB", "1.5 GiB", "512KB"."""
    number = _number(0, what, positive=True)
    expected = f'{what}, or a size such as "100MB", "1.5GB", "512KB"'

    def check(value: Any) -> float:
        if not isinstance(value, str):
            try:
                return number(value)
            except _Invalid:
                raise _Invalid(expected) from None
        m = _SIZE.fullmatch(value)
        if m is not None and not m.group(2) and not m.group(4):
            raise _Invalid(expected + " (a size in a string needs its unit)")
        if m is None or (m.group(3) and not m.group(2)):
            raise _Invalid(expected)
        megabytes = float(m.group(1)) * 1024 ** (_SIZE_POWERS[m.group(2).lower()] - 2)
        if megabytes <= 0:
            raise _Invalid(expected)
        return megabytes
    return check


def _days(what: str) -> Validator:
    """A number of days >= 0, or a duration string such as "10 days", "2 weeks", "36h"."""
    number = _number(0, what)
    expected = f'{what}, or a duration such as "10 days", "2 weeks", "12h"'

    def check(value: Any) -> float:
        if not isinstance(value, str):
            try:
                return number(value)
            except _Invalid:
                raise _Invalid(expected) from None
        days, end = 0.0, 0
        for part in _DURATION_PART.finditer(value):
            if part.start() != end:
                break
            unit = part.group(2).lower()
            if unit in _NO_FIXED_LENGTH:
                raise _Invalid(f"{expected} ({_NO_FIXED_LENGTH[unit]})")
            if unit not in _DAYS_PER:
                break
            days, end = days + float(part.group(1)) * _DAYS_PER[unit], part.end()
        if end == 0 or end != len(value):
            raise _Invalid(expected)
        return days
    return check


def _file_mode(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3,4}", value):
        value = int(value.removeprefix("0o"), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise _Invalid('a file mode such as 0o660 or "0660"')


def _group(value: Any) -> str | int:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _Invalid("a group name or numeric gid")


def _rotate_every(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(parse_rotate_every(value))
        except ValueError:
            pass
    raise _Invalid('"hourly", "daily" or a number of hours such as "6h"')


_LOGGING_KEYS: dict[str, Validator] = {
    "level": _choice(CONFIG_LEVELS, 'one of "debug", "info", "warn", "error"'),
    "format": _choice({"console": "console", "text": "console", "json": "json"},
                      'one of "console", "text", "json"'),
    "file": _string,
    "file_only": _boolean,
    "max_size": _megabytes("a positive number of megabytes (integer or float)"),
    "max_backups": _integer(0, "a whole number >= 0 (0 keeps every backup)"),
    "max_age": _days("a number of days >= 0 (0 means no limit)"),
    "compress": _boolean,
    "compression": _choice({"zstd": "zstd", "gzip": "gzip"}, 'one of "zstd", "gzip"'),
    "compression_level": _integer(1, "a whole number >= 1 (zstd 1-22, gzip 1-9)"),
    "rotate_every": _rotate_every,
    "backup_names": _choice({"dated": "dated", "numbered": "numbered"}, 'one of "dated", "numbered"'),
    "state_dir": _string,
}
_SOCKET_KEYS: dict[str, Validator] = {
    "path": _string,
    "mode": _file_mode,
    "group": _group,
    "max_record_bytes": _integer(64, "a whole number of bytes >= 64"),
    "max_connections": _integer(1, "a whole number >= 1"),
    "allow_world_writable": _boolean,
    "control_group": _group,
    "shared_folder": _boolean,
    "idle_timeout": _number(0, "a number of seconds >= 0 (0: never)"),
    "ack_timeout": _number(0, "a positive number of seconds", positive=True),
}


def _url(value: Any) -> str:
    if isinstance(value, str) and (re.fullmatch(r"(https?|tcp|tls)://[^\s/]+(/\S*)?", value)
                                   or re.fullmatch(_NATS_URLS, value)):
        return value
    raise _Invalid('a URL such as "http://collector:4318/v1/logs" or "tcp://syslog:6514" '
                   '(nats: "nats://n1:4222,nats://n2:4222")')


_NATS_URL = r"(nats|tls)://([^\s/@,]+@)?[^\s/:@,]+(:\d+)?/?"
_NATS_URLS = rf"{_NATS_URL}(\s*,\s*{_NATS_URL})*"


def _stream_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[^\s.*>/\\]{1,255}", value):
        return value
    raise _Invalid("a JetStream stream name (no spaces, '.', '*', '>', '/' or '\\')")


def _string_table(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return tuple(value.items())
    raise _Invalid('a table of strings, e.g. { Authorization = "env:SHIP_TOKEN" }')


def _match_table(value: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    scalar = (str, int, float, bool)
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            values = tuple(v) if isinstance(v, list) else (v,)
            if not values or not all(isinstance(x, scalar) for x in values):
                break
            out.append((k, values))
        else:
            return tuple(out)
    raise _Invalid('a table of field = value or [values], e.g. { agent = ["planner", "writer"] }')


def _target_name(value: Any) -> str:
    # names a checkpoint file, so it may not hold a path separator
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        return value
    raise _Invalid("a name of letters, digits, '_', '.', '-' (up to 64 characters)")


_SHIP_KEYS: dict[str, Validator] = {
    "type": _choice({t: t for t in SHIP_TYPES}, "one of " + ", ".join(f'"{t}"' for t in SHIP_TYPES)),
    "url": _url,
    "name": _target_name,
    "format": _string,
    "batch_size": _integer(1, "a whole number of records >= 1"),
    "flush_interval": _number(0, "a positive number of seconds", positive=True),
    "timeout": _number(0, "a positive number of seconds", positive=True),
    "compression": _choice({"none": "none", "gzip": "gzip"}, 'one of "none", "gzip"'),
    "headers": _string_table,
    "level": _choice({name: name for name in ("trace", "debug", "info", "warn", "error", "fatal", "panic")}
                     | {"warning": "warn"}, 'one of "trace", "debug", "info", "warn", "error", "fatal"'),
    "match": _match_table,
    "tls_ca": _string,
    "tls_cert": _string,
    "tls_key": _string,
    "tls_verify": _boolean,
    "hostname": _string,
    "facility": _choice({f: f for f in ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
                                        "uucp", "cron", "authpriv", "ftp")}
                        | {f"local{i}": f"local{i}" for i in range(8)},
                        'a syslog facility name such as "user", "daemon" or "local0"'),
    "index": _string,
    "service_name": _string,
    "signal": _choice({"logs": "logs", "traces": "traces"}, 'one of "logs", "traces"'),
    "subject": _string,
    "stream": _stream_name,
    "user": _string,
    "password": _string,
    "token": _string,
    "creds": _string,
    "nkey": _string,
    "backoff_initial": _number(0, "a positive number of seconds", positive=True),
    "backoff_max": _number(0, "a positive number of seconds", positive=True),
    "max_retries": _integer(0, "a whole number >= 0 (0 retries for ever)"),
}
# what each ship target type imports beyond the core install (the `ship` extra)
_SHIP_NEEDS: dict[str, tuple[str, ...]] = {"otlp": ("httpx", "opentelemetry.proto"), "http": ("httpx",),
                                           "loki": ("httpx",), "elasticsearch": ("httpx",), "nats": ("nats",)}
# Arrays of tables under [logging]: name -> (its keys, builder from validated values).
# Each element's errors name it by index: logging.ship[0].url.
_ARRAYS: dict[str, dict[str, Validator]] = {"ship": _SHIP_KEYS}

# Sub-tables of [logging]: name -> (settings class, its keys). A sub-table's settings
# become the Config field of the same name; add new ones here.
def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _Invalid("an array of non-empty strings")


def _regex_list(value: Any) -> tuple[str, ...]:
    patterns = _string_list(value)
    for index, pattern in enumerate(patterns):
        try:
            combine_patterns([pattern])
        except re.error as exc:
            raise _Invalid(f"an array of regular expressions; pattern {index + 1} ({pattern!r}) "
                           f"does not compile: {exc}") from None
    return patterns


def _listen(value: Any) -> str:
    """``host:port`` (port 0-65535; ``[v6]:port``) or ``unix:PATH`` / a path with a slash."""
    if isinstance(value, str):
        if value == "":
            return value
        if value.startswith("unix:") and len(value) > 5:
            return value
        if "/" in value:
            return "unix:" + value
        m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]*):(\d{1,5})", value)
        if m and int(m.group(2)) <= 65535:
            return value
    raise _Invalid('"host:port" (e.g. "127.0.0.1:9464"), "unix:/path/metrics.sock", or "" for no server')


_REDACT_KEYS: dict[str, Validator] = {
    "enabled": _boolean,
    "keys": _string_list,
    "patterns": _regex_list,
    "replacement": _string,
}
_SAMPLING_KEYS: dict[str, Validator] = {
    "enabled": _boolean,
    "tick": _number(0, "a positive number of seconds", positive=True),
    "initial": _integer(0, "a whole number >= 0"),
    "thereafter": _integer(0, "a whole number >= 0 (0 keeps none after the first `initial`)"),
    "max_level": _choice({name: name for name in LEVELS} | {"warning": "warn"},
                         "a level: " + ", ".join(f'"{name}"' for name in LEVELS)),
    "burst": _integer(0, "a whole number of records >= 0 (0 means no rate limit)"),
    "interval": _number(0, "a positive number of seconds", positive=True),
}
_METRICS_KEYS: dict[str, Validator] = {
    "listen": _listen,
    "mode": _file_mode,
    "max_agents": _integer(1, "a whole number >= 1"),
}


def _tcp_listen(value: Any) -> str:
    """``host:port`` or ``[v6]:port``; ``""`` for no listener."""
    if isinstance(value, str):
        m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})", value)
        if value == "" or (m and int(m.group(2)) <= 65535):
            return value
    raise _Invalid('"host:port" (e.g. "127.0.0.1:4318"), or "" for no OTLP receiver')


_OTLP_KEYS: dict[str, Validator] = {
    "listen": _tcp_listen,
    "token_file": _string,
    "max_body_bytes": _integer(1024, "a whole number of bytes >= 1024"),
    "max_items": _integer(1, "a whole number >= 1"),
    "max_inflight_bytes": _integer(1024, "a whole number of bytes >= 1024"),
    "request_timeout": _number(0, "a positive number of seconds", positive=True),
    "retry_after": _integer(1, "a whole number of seconds >= 1"),
    "max_connections": _integer(1, "a whole number >= 1"),
}
_TRACES_KEYS: dict[str, Validator] = {
    "dir": _string,
    "max_age": _days("a number of days >= 0 (0 keeps every session)"),
}
_SUBTABLES: dict[str, tuple[type, dict[str, Validator]]] = {"socket": (SocketSettings, _SOCKET_KEYS),
                                                             "traces": (TraceSettings, _TRACES_KEYS),
                                                             "redact": (RedactSettings, _REDACT_KEYS),
                                                             "sampling": (SamplingSettings, _SAMPLING_KEYS),
                                                             "metrics": (MetricsSettings, _METRICS_KEYS),
                                                             "otlp": (OtlpSettings, _OTLP_KEYS)}


def load_config(path: Path | None) -> Config:
    """Read and validate ``path`` (None: embedded defaults). Raises :class:`ConfigError`."""
    if path is None:
        return defaults()
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read config file: {exc}") from None
    return replace(parse_config(text, path), digest=hashlib.sha256(raw).hexdigest())


def parse_config(text: str, path: Path) -> Config:
    """Validate the TOML ``text`` that was read from ``path``; every error in the file is
    reported at once (:class:`ConfigErrors`), like a compiler, not only the first."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc, text) from None
    locate = _Locator(text)
    errors = _stray_tables(path, locate, document)
    warnings: list[str] = []
    section = document.get("logging", {})
    if not isinstance(section, dict):
        raise ConfigError(path, f"expected a table [logging], found {_found(section)}",
                          line=locate("logging", None), key="logging")
    base = path.resolve().parent
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {name: {} for name in _SUBTABLES}
    for key, raw in section.items():
        if key in _ARRAYS:
            values[key] = _validate_array(path, locate, key, raw, base, errors)
        elif key in _SUBTABLES:
            if not isinstance(raw, dict):
                errors.append(ConfigError(path, f"expected a table [logging.{key}], found {_found(raw)}",
                                          line=locate("logging", key), key=f"logging.{key}"))
                continue
            tables[key] = _validate_table(path, locate, f"logging.{key}", raw, _SUBTABLES[key][1], errors)
        else:
            values.update(_validate_table(path, locate, "logging", {key: raw}, _LOGGING_KEYS, errors,
                                          extra_names=tuple(_SUBTABLES) + tuple(_ARRAYS)))
    if "file" in values:
        values["file"] = _relative_to(base, values["file"])
    if "compression_level" in values:  # its range depends on the algorithm
        expected = compression_level_error(values.get("compression", "zstd"), values["compression_level"])
        if expected is not None:
            errors.append(ConfigError(path, f"expected {expected}, found {_found(values['compression_level'])}",
                                      line=locate("logging", "compression_level"), key="logging.compression_level"))
    if "state_dir" in values:
        values["state_dir"] = _relative_to(base, values["state_dir"])
    if "path" in tables["socket"]:
        tables["socket"]["path"] = _relative_to(base, tables["socket"]["path"])
    tables["socket"].setdefault("path", default_socket_path())
    errors.extend(_world_writable(path, locate, tables))
    if tables["otlp"].get("listen") and not (available("h11") and available("opentelemetry.proto")):
        errors.append(ConfigError(path, "the OTLP receiver needs h11 and opentelemetry-proto, which are not "
                                  f"installed: {install_hint('h11')} (or listen = \"\" for none)",
                                  line=locate("logging.otlp", "listen"), key="logging.otlp.listen"))
    if "token_file" in tables["otlp"]:
        tables["otlp"]["token_file"] = _relative_to(base, tables["otlp"]["token_file"])
        errors.extend(_token_file_error(path, locate, tables["otlp"]["token_file"]))
    if "dir" in tables["traces"]:
        tables["traces"]["dir"] = _relative_to(base, tables["traces"]["dir"])
    listen = tables["metrics"].get("listen", "")
    if listen.startswith("unix:"):
        tables["metrics"]["listen"] = "unix:" + str(_relative_to(base, listen[5:]))
    if errors:
        raise ConfigErrors([_with_column(e, text) for e in errors], warnings)
    for name, (settings_class, _) in _SUBTABLES.items():
        values[name] = settings_class(**tables[name])
    return Config(source=path.absolute(), warnings=tuple(warnings), **values)


def path_problems(config: Config) -> list[ConfigError]:
    """The paths of a config that logd could not create here, as this user (``logd check``;
    ``logd run`` would fail on them later). Walks every field marked with the ``path`` logd
    makes there: a "file", a "folder" or a "socket"."""
    text = ""
    if config.source is not None:
        try:
            text = config.source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
    locate = _Locator(text)
    tables: list[tuple[str, Any, _LineOf]] = [("logging", config, locate)]
    tables += [(f"logging.{name}", getattr(config, name), locate) for name in _SUBTABLES]
    tables += [(f"logging.{name}[{i}]", item, _ArrayLocator(locate, f"logging.{name}", i))
               for name in _ARRAYS for i, item in enumerate(getattr(config, name))]
    out = []
    for table, settings, line_of in tables:
        for f in fields(settings):
            kind, value = f.metadata.get("path"), getattr(settings, f.name)
            why = None if kind is None or value is None else _uncreatable(value, folder=kind == "folder")
            if why:
                error = ConfigError(config.source, why, line=line_of(table, f.name), key=f"{table}.{f.name}")
                out.append(_with_column(error, text))
    return out


def _user() -> str:
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"


def _uncreatable(path: Path, *, folder: bool) -> str | None:
    """Why logd could not make ``path`` (a file, or with ``folder`` a folder), or None."""
    if path.exists():
        if folder != path.is_dir():
            return f"{path} exists and is {'not ' if folder else ''}a folder"
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            return f"{path} is not writable by {_user()}"
        return None
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create {path}: {existing} is not writable by {_user()}"
    return None


def _with_column(error: ConfigError, text: str) -> ConfigError:
    """The error pointed at the column where its key starts on its line (editors jump there)."""
    if error.line is None or error.column is not None or not error.key:
        return error
    lines = text.splitlines()
    name = error.key.rsplit(".", 1)[-1].split("[")[0]
    column = lines[error.line - 1].find(name) if error.line <= len(lines) else -1
    if column < 0:
        return error
    return ConfigError(error.file, error.message, line=error.line, column=column + 1, key=error.key)


def _stray_tables(path: Path, locate: _Locator, document: dict[str, Any]) -> list[ConfigError]:
    """Top-level tables that look like a misspelt ``[logging]`` (``[loging]``): logd reads only
    ``[logging]``, so their settings would be ignored without a word. AgenticGoKit's own tables
    (``[agent_flow]``, ``[runtime]``, ...) are nothing like it and stay the application's."""
    return [ConfigError(path, f"[{name}] is not read by logd (did you mean [logging]?); its settings would be "
                        "ignored", line=locate(name, None))
            for name, value in document.items()
            if (name != "logging" and isinstance(value, dict)
                and difflib.get_close_matches(name, ["logging"], n=1, cutoff=0.7))]


def _world_writable(path: Path, locate: _Locator, tables: dict[str, dict[str, Any]]) -> list[ConfigError]:
    """A socket mode that lets every local user write is refused unless asked for by name:
    anyone could then send records as any agent (or talk to the control socket)."""
    out = []
    for table in ("socket", "metrics"):
        mode = tables[table].get("mode")
        if mode is not None and mode & 0o002 and not tables["socket"].get("allow_world_writable", False):
            out.append(ConfigError(path, f"mode 0o{mode:o} lets every local user write to the socket; use 0o660 "
                                   "with a group, or set allow_world_writable = true in [logging.socket] "
                                   "if that is really wanted", line=locate(f"logging.{table}", "mode"),
                                   key=f"logging.{table}.mode"))
    return out


def _token_file_error(path: Path, locate: _Locator, token_file: Path) -> list[ConfigError]:
    """The OTLP token file must be readable, private enough, and hold tokens (logd.sources.tokens)."""
    from logd.sources.tokens import TokenFileError, read_tokens  # stdlib only

    try:
        read_tokens(token_file)
    except TokenFileError as exc:
        return [ConfigError(path, str(exc), line=locate("logging.otlp", "token_file"), key="logging.otlp.token_file")]
    return []


# (table, key) -> the line it stands on: a _Locator, or an _ArrayLocator inside one [[table]]
_LineOf = Callable[[str, str | None], int | None]


def _validate_table(path: Path, locate: _LineOf, table: str, raw: dict[str, Any],
                    schema: dict[str, Validator], errors: list[ConfigError],
                    extra_names: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        check = schema.get(key)
        line = locate(table, key)
        if check is None:
            errors.append(ConfigError(path, _unknown(key, value, table, list(schema) + list(extra_names)),
                                      line=line, key=f"{table}.{key}"))
            continue
        try:
            out[key] = check(value)
        except _Invalid as bad:
            errors.append(ConfigError(path, f"expected {bad.expected}, found {_found(value)}",
                                      line=line, key=f"{table}.{key}"))
    return out


def _tables() -> dict[str, list[str]]:
    """Every table logd reads and its names (keys, and the sub-tables of [logging]), walked from
    the schemas: the near-name hints below know every level without naming a key."""
    return {"logging": [*_LOGGING_KEYS, *_SUBTABLES, *_ARRAYS],
            **{f"logging.{name}": list(keys) for name, (_, keys) in _SUBTABLES.items()},
            **{f"[logging.{name}]": list(keys) for name, keys in _ARRAYS.items()}}


def _nearest(key: str, names: list[str], cutoff: float = 0.6) -> str | None:
    """The name ``key`` most likely meant: one it starts (``batch`` -> ``batch_size``), else the
    closest spelling."""
    for name in names:
        if name.startswith(key + "_") or key.startswith(name + "_"):
            return name
    close = difflib.get_close_matches(key, names, n=1, cutoff=cutoff)
    return close[0] if close else None


def _unknown(key: str, value: Any, table: str, valid: list[str]) -> str:
    """Why ``key`` is refused in ``table``, with the nearest name logd knows: in this table, else
    the table where the key belongs, else (for a table) where its keys belong, else the valid names."""
    close = _nearest(key, valid)
    if close:
        return f'unknown key (did you mean "{close}"?)'
    here = re.sub(r"\[\d+\]$", "", table)
    elsewhere = {name: names for name, names in _tables().items() if name.strip("[]") != here}
    homes = [name for name, names in elsewhere.items() if key in names]
    if homes:
        return f"unknown key here; {key} is a key of [{homes[0]}]"
    if isinstance(value, dict):
        belongs = {name: [k for k in value if k in names] for name, names in _tables().items()}
        moved = [f"{', '.join(keys)} {'is a key' if len(keys) == 1 else 'are keys'} of [{name}]"
                 for name, keys in belongs.items() if keys]
        if moved:
            return f"unknown table ({'; '.join(moved)})"
    near = [(name, match) for name, names in elsewhere.items() if (match := _nearest(key, names, cutoff=0.75))]
    if near:
        return f'unknown key (did you mean "{near[0][1]}" of [{near[0][0]}]?)'
    return f"unknown key (valid keys: {', '.join(valid)})"


def _validate_array(path: Path, locate: _Locator, key: str, raw: Any, base: Path,
                    errors: list[ConfigError]) -> tuple[ShipSettings, ...]:
    """``[[logging.ship]]`` elements -> settings; errors name the element: ``logging.ship[1].url``."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        errors.append(ConfigError(path, f"expected an array of tables [[logging.{key}]], found {_found(raw)}",
                                  line=locate("logging", key), key=f"logging.{key}"))
        return ()
    out: list[ShipSettings] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        name = f"logging.{key}[{index}]"
        where = _ArrayLocator(locate, f"logging.{key}", index)
        found: list[ConfigError] = []
        table = _validate_table(path, where, name, item, _ARRAYS[key], found)

        # called only within this iteration: the defaults bind this element's names
        def bad(message: str, at: str | None, error_key: str, *, found: list[ConfigError] = found,
                where: _ArrayLocator = where, name: str = name) -> None:
            found.append(ConfigError(path, message, line=where(name, at), key=error_key))

        for required in ("type", "url"):
            if required not in table and required not in item:
                bad(f'missing required key "{required}"', None, f"{name}.{required}")
        kind, url = table.get("type"), table.get("url")
        if kind == "nats" and url is not None:
            if not re.fullmatch(_NATS_URLS, url):
                bad(f'expected nats://host:port or tls://host:port servers, comma-separated, for type "nats", '
                    f'found "{url}"', "url", f"{name}.url")
        elif kind is not None and url is not None:
            wants_stream = kind == "syslog"
            if url.startswith(("tcp://", "tls://")) != wants_stream:
                expected = "tcp://host:port or tls://host:port" if wants_stream else "an http:// or https:// URL"
                bad(f'expected {expected} for type "{kind}", found "{url}"', "url", f"{name}.url")
            elif wants_stream and not re.fullmatch(r"(tcp|tls)://[^\s:/]+:\d+", url):
                bad(f'expected tcp://host:port or tls://host:port (the port is required), found "{url}"',
                    "url", f"{name}.url")
        if kind is not None:
            for module in _SHIP_NEEDS.get(kind, ()):
                if not available(module):
                    bad(f'ship target type "{kind}" needs {module.split(".")[0]}, which is not installed: '
                        f"{install_hint(module)}", "type", f"{name}.type")
            formats = SHIP_FORMATS[kind]
            table.setdefault("format", formats[0])
            if table["format"] not in formats:
                bad(f'expected one of {", ".join(map(repr, formats))} for type "{kind}", '
                    f'found "{table["format"]}"', "format", f"{name}.format")
        if "signal" in table and kind is not None and kind not in ("otlp", "nats"):
            bad(f'signal is for type "otlp" and "nats" targets; a "{kind}" target ships log records', "signal",
                f"{name}.signal")
        for key_name, owner in SHIP_TYPE_KEYS.items():
            if key_name in table and kind is not None and kind != owner:
                bad(f'{key_name} is for type "{owner}" targets', key_name, f"{name}.{key_name}")
        signal = table.get("signal", "logs")
        if kind == "nats":
            _check_nats(table, signal, bad, name)
        other = {"logs": "/v1/traces", "traces": "/v1/logs"}.get(signal) if kind == "otlp" else None
        if other is not None and url is not None and urlsplit(url).path.rstrip("/").endswith(other):
            bad(f'signal = "{signal}" posts to /v1/{signal}, but the url ends in {other}', "url", f"{name}.url")
        for header, value in table.get("headers", ()):
            if value.startswith("env:") and value[4:] not in os.environ:
                bad(f"environment variable {value[4:]} is not set (the header takes its value from it)",
                    "headers", f"{name}.headers.{header}")
        for path_key in ("tls_ca", "tls_cert", "tls_key", "creds", "nkey"):
            if path_key in table:
                table[path_key] = _relative_to(base, table[path_key])
        for file_key in ("creds", "nkey"):
            if file_key in table and not os.access(table[file_key], os.R_OK):
                bad(f"cannot read {table[file_key]}", file_key, f"{name}.{file_key}")
        table.setdefault("name", f"{kind}-{index}")
        if table["name"] in names:
            bad(f'duplicate target name "{table["name"]}"; give each target its own name', "name", f"{name}.name")
        names.add(table["name"])
        errors.extend(found)
        if not found:
            out.append(ShipSettings(**table))
    return tuple(out)


def _check_nats(table: dict[str, Any], signal: str, bad: Callable[[str, str | None, str], None],
                name: str) -> None:
    """A nats target's subject template, and its secrets: set in the environment, one way to log in."""
    from logd.ship.subjects import default_subject, template_problem

    table.setdefault("subject", default_subject(signal))
    problem = template_problem(table["subject"], signal)
    if problem is not None:
        bad(f'expected {problem}, found "{table["subject"]}"', "subject", f"{name}.subject")
    for secret in ("password", "token"):
        value = table.get(secret, "")
        if value.startswith("env:") and value[4:] not in os.environ:
            bad(f"environment variable {value[4:]} is not set (the {secret} is read from it)", secret,
                f"{name}.{secret}")
    if ("user" in table) != ("password" in table):
        missing = "password" if "user" in table else "user"
        bad(f"user and password go together; {missing} is missing", None, f"{name}.{missing}")
    ways = [key for key in ("user", "token", "creds", "nkey") if key in table]
    if len(ways) > 1:
        bad(f"one way to log in: {' or '.join(ways)}, not both", ways[1], f"{name}.{ways[1]}")


class _ArrayLocator:
    """Finds lines inside the N-th ``[[table]]`` element (keys there are named ``table[N].key``)."""

    def __init__(self, locate: _Locator, table: str, index: int) -> None:
        self.locate, self.table, self.index = locate, table, index

    def __call__(self, _name: str, key: str | None) -> int | None:
        return self.locate.in_array(self.table, self.index, key)


_BARE_WORD = re.compile(r"\s*([A-Za-z0-9_.\-\"']+)\s*=\s*([A-Za-z][^\"'\[\]{}#=]*?)\s*(#.*)?")


def _syntax_error(path: Path, exc: Exception, text: str) -> ConfigError:
    message = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if not m:
        return ConfigError(path, f"TOML syntax error: {message}")
    message, line = message[: m.start()].strip(), int(m.group(1))
    lines = text.splitlines()
    bare = _BARE_WORD.fullmatch(lines[line - 1]) if line <= len(lines) else None
    if bare and bare.group(2) not in ("true", "false", "inf", "nan"):  # `level = info`: a word TOML must quote
        message += f'; text is quoted in TOML: {bare.group(1)} = "{bare.group(2)}"'
    return ConfigError(path, f"TOML syntax error: {message}", line=line, column=int(m.group(2)))


class _Locator:
    """Finds the line a key stands on, so errors can point at it (tomllib gives no positions)."""

    _HEADER = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"\s*([A-Za-z0-9_\-\.\"']+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def __call__(self, table: str, key: str | None) -> int | None:
        current = ""
        for number, line in enumerate(self._lines, start=1):
            header = self._HEADER.match(line)
            if header:
                current = header.group(1).replace('"', "").replace(" ", "")
                if current == (table if key is None else f"{table}.{key}"):
                    return number
                continue
            m = self._KEY.match(line)
            if m and key is not None:
                dotted = m.group(1).replace('"', "").replace("'", "")
                full = f"{current}.{dotted}" if current else dotted
                if full == f"{table}.{key}" or full.startswith(f"{table}.{key}."):
                    return number
        return None

    def in_array(self, table: str, index: int, key: str | None) -> int | None:
        """The line of ``key`` in the ``index``-th ``[[table]]`` (its header when key is None)."""
        seen, inside = -1, False
        for number, line in enumerate(self._lines, start=1):
            header = self._HEADER.match(line)
            if header:
                current = header.group(1).replace('"', "").replace(" ", "")
                if line.lstrip().startswith("[[") and current == table:
                    seen += 1
                    inside = seen == index
                    if inside and key is None:
                        return number
                elif inside and key is not None and current == f"{table}.{key}":
                    return number
                elif not current.startswith(table + "."):
                    inside = False
                continue
            m = self._KEY.match(line)
            if inside and m and key is not None:
                dotted = m.group(1).replace('"', "").replace("'", "")
                if dotted == key or dotted.startswith(key + "."):
                    return number
        return None


def describe(config: Config) -> str:
    """The effective config as TOML, with derived values as comments."""
    lines = [f"# effective config from {config.source or '<embedded defaults>'}", "[logging]"]
    for f in fields(Config):
        if f.name in _SUBTABLES or f.name in _ARRAYS or not f.compare:
            continue
        value = getattr(config, f.name)
        if value is None:
            lines.append(f"# {f.name} is not set")
            continue
        lines.append(f"{f.name} = {_toml_value(value)}")
    for table in _SUBTABLES:
        settings = getattr(config, table)
        lines.append("")
        lines.append(f"[logging.{table}]")
        for f in fields(settings):
            value = getattr(settings, f.name)
            if value is None:
                lines.append(f"# {f.name} is not set")
            elif f.name == "mode":
                lines.append(f"mode = 0o{value:o}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
    for target in config.ship:
        lines.append("")
        lines.append("[[logging.ship]]")
        for f in fields(target):
            value = getattr(target, f.name)
            if value is None:
                lines.append(f"# {f.name} is not set")
            elif f.name in ("password", "token") and value and not value.startswith("env:"):
                lines.append(f'{f.name} = "(set; not shown)"')
            elif f.name == "url":  # a password in a URL (user:password@host) is not shown either
                lines.append("url = " + _toml_value(_URL_PASSWORD.sub(r"://\1:***@", value)))
            elif f.name in ("headers", "match"):  # header values as written: "env:NAME", never the secret
                inner = ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value)
                lines.append(f"{f.name} = {{ {inner} }}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
    if config.ship:
        lines.append(f"# ship state (checkpoints, dead letters): {config.ship_state_dir}")
    sinks = (["console (" + config.format + ")"] if config.console_enabled else []) + (
        [f"file {config.file}"] if config.file else [])
    lines.append("")
    lines.append(f"# sinks: {', '.join(sinks) or 'none'}")
    lines.append(f"# traces: {traces_dir(config)}")
    return "\n".join(lines) + "\n"


_URL_PASSWORD = re.compile(r"://([^/@:,]*):[^/@,]*@")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def changes(old: Config, new: Config) -> list[str]:
    """What differs between two configs, as ``key: old -> new`` (sub-table keys dotted)."""
    out: list[str] = []
    for f in fields(Config):
        if not f.compare:  # where it was loaded from, not a setting
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name in _ARRAYS:
            out.extend(_array_changes(f.name, a, b))
        elif f.name in _SUBTABLES:
            out.extend(f"{f.name}.{g.name}: {_shown(getattr(a, g.name))} -> {_shown(getattr(b, g.name))}"
                       for g in fields(a) if getattr(a, g.name) != getattr(b, g.name))
        elif a != b:
            out.append(f"{f.name}: {_shown(a)} -> {_shown(b)}")
    return out


def _array_changes(name: str, old: tuple[ShipSettings, ...], new: tuple[ShipSettings, ...]) -> list[str]:
    out: list[str] = []
    for i in range(max(len(old), len(new))):
        if i >= len(old):
            out.append(f"{name}[{i}]: added {new[i].name}")
        elif i >= len(new):
            out.append(f"{name}[{i}]: removed {old[i].name}")
        else:
            a, b = old[i], new[i]
            out.extend(f"{name}[{i}].{g.name}: {_shown(getattr(a, g.name))} -> {_shown(getattr(b, g.name))}"
                       for g in fields(a) if getattr(a, g.name) != getattr(b, g.name))
    return out


def _shown(value: Any) -> str:
    return "unset" if value is None else _toml_value(value)
