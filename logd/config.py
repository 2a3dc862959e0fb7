"""The ``[logging]`` section of agentflow.toml -> a typed, validated :class:`Config`.

Keys follow AgenticGoKit's meaning; logd's own settings live in sub-tables of
``[logging]``. Every error names the file, the line where the key stands, the
key, what was expected and what was found, so a user can fix it without
reading logd's source.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from .levels import CONFIG_LEVELS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MB = 1024 * 1024
CONFIG_ENV = "LOGD_CONFIG"
SOCKET_ENV = "LOGD_SOCKET"
DEFAULT_CONFIG_NAME = "agentflow.toml"


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


@dataclass(frozen=True)
class SocketSettings:
    path: Path
    mode: int = 0o660
    group: str | int | None = None
    max_record_bytes: int = 256 * 1024
    max_connections: int = 1024


@dataclass(frozen=True)
class TraceSettings:
    """``[logging.traces]``: where per-session trace files go and how long they are kept."""

    dir: Path | None = None  # None: see traces_dir()
    max_age: float = 0  # days; 0 keeps every session


@dataclass(frozen=True)
class Config:
    socket: SocketSettings
    level: str = "info"
    format: str = "console"
    file: Path | None = None
    file_only: bool = False
    max_size: float = 100  # MB
    max_backups: int = 0
    max_age: float = 0  # days
    compress: bool = False
    traces: TraceSettings = field(default_factory=TraceSettings)
    source: Path | None = field(default=None, compare=False)

    @property
    def max_size_bytes(self) -> int:
        return int(self.max_size * MB)

    @property
    def console_enabled(self) -> bool:
        return not self.file_only or self.file is None


def default_socket_path(env: dict[str, str] | None = None) -> Path:
    """``$LOGD_SOCKET``, else ``$XDG_RUNTIME_DIR/logd/logd.sock``, else ``/tmp/logd-$UID/logd.sock``."""
    env = os.environ if env is None else env
    if env.get(SOCKET_ENV):
        return Path(env[SOCKET_ENV])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "logd" / "logd.sock"
    return Path(f"/tmp/logd-{os.getuid()}") / "logd.sock"


def socket_path_hint(path: Path) -> Path:
    """The socket a config names, read leniently: for commands that must reach the daemon
    even when the file now holds an error (``logd reload`` after a bad edit)."""
    try:
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("logging", {})
        raw = section.get("socket", {}).get("path")
        if isinstance(raw, str) and raw:
            return path.resolve().parent / Path(raw).expanduser()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return default_socket_path()


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Search order: ``--config``, ``$LOGD_CONFIG``, ``./agentflow.toml``; None means embedded defaults."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def traces_dir(config: Config, env: dict[str, str] | None = None) -> Path:
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value > minimum or (not positive and value == minimum):
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


_LOGGING_KEYS: dict[str, Validator] = {
    "level": _choice(CONFIG_LEVELS, 'one of "debug", "info", "warn", "error"'),
    "format": _choice({"console": "console", "text": "console", "json": "json"},
                      'one of "console", "text", "json"'),
    "file": _string,
    "file_only": _boolean,
    "max_size": _number(0, "a positive number of megabytes (integer or float)", positive=True),
    "max_backups": _integer(0, "a whole number >= 0 (0 keeps every backup)"),
    "max_age": _number(0, "a number of days >= 0 (0 means no limit)"),
    "compress": _boolean,
}
_SOCKET_KEYS: dict[str, Validator] = {
    "path": _string,
    "mode": _file_mode,
    "group": _group,
    "max_record_bytes": _integer(64, "a whole number of bytes >= 64"),
    "max_connections": _integer(1, "a whole number >= 1"),
}
# Sub-tables of [logging]: name -> (settings class, its keys). A sub-table's settings
# become the Config field of the same name; add new ones here.
_TRACES_KEYS: dict[str, Validator] = {
    "dir": _string,
    "max_age": _number(0, "a number of days >= 0 (0 keeps every session)"),
}
_SUBTABLES: dict[str, tuple[type, dict[str, Validator]]] = {"socket": (SocketSettings, _SOCKET_KEYS),
                                                             "traces": (TraceSettings, _TRACES_KEYS)}


def load_config(path: Path | None) -> Config:
    """Read and validate ``path`` (None: embedded defaults). Raises :class:`ConfigError`."""
    if path is None:
        return defaults()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read config file: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the TOML ``text`` that was read from ``path``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc) from None
    section = document.get("logging", {})
    locate = _Locator(text)
    if not isinstance(section, dict):
        raise ConfigError(path, f"expected a table [logging], found {_found(section)}",
                          line=locate("logging", None), key="logging")
    base = path.resolve().parent
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {name: {} for name in _SUBTABLES}
    for key, raw in section.items():
        if key in _SUBTABLES:
            if not isinstance(raw, dict):
                raise ConfigError(path, f"expected a table [logging.{key}], found {_found(raw)}",
                                  line=locate("logging", key), key=f"logging.{key}")
            tables[key] = _validate_table(path, locate, f"logging.{key}", raw, _SUBTABLES[key][1])
        else:
            values.update(_validate_table(path, locate, "logging", {key: raw}, _LOGGING_KEYS,
                                          extra_names=tuple(_SUBTABLES)))
    if "file" in values:
        values["file"] = base / Path(values["file"]).expanduser()
    if "path" in tables["socket"]:
        tables["socket"]["path"] = base / Path(tables["socket"]["path"]).expanduser()
    tables["socket"].setdefault("path", default_socket_path())
    if "dir" in tables["traces"]:
        tables["traces"]["dir"] = base / Path(tables["traces"]["dir"]).expanduser()
    for name, (settings_class, _) in _SUBTABLES.items():
        values[name] = settings_class(**tables[name])
    return Config(source=path.absolute(), **values)


def _validate_table(path: Path, locate: "_Locator", table: str, raw: dict[str, Any],
                    schema: dict[str, Validator], extra_names: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        check = schema.get(key)
        line = locate(table, key)
        if check is None:
            valid = list(schema) + list(extra_names)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else f" (valid keys: {', '.join(valid)})"
            raise ConfigError(path, f"unknown key{hint}", line=line, key=f"{table}.{key}")
        try:
            out[key] = check(value)
        except _Invalid as bad:
            raise ConfigError(path, f"expected {bad.expected}, found {_found(value)}",
                              line=line, key=f"{table}.{key}") from None
    return out


def _syntax_error(path: Path, exc: Exception) -> ConfigError:
    message = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if m:
        message = message[: m.start()].strip()
        return ConfigError(path, f"TOML syntax error: {message}", line=int(m.group(1)),
                           column=int(m.group(2)))
    return ConfigError(path, f"TOML syntax error: {message}")


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


def describe(config: Config) -> str:
    """The effective config as TOML, with derived values as comments."""
    lines = [f"# effective config from {config.source or '<embedded defaults>'}", "[logging]"]
    for f in fields(Config):
        if f.name in _SUBTABLES or f.name == "source":
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
    sinks = (["console (" + config.format + ")"] if config.console_enabled else []) + (
        [f"file {config.file}"] if config.file else [])
    lines.append("")
    lines.append(f"# sinks: {', '.join(sinks) or 'none'}")
    lines.append(f"# traces: {traces_dir(config)}")
    return "\n".join(lines) + "\n"


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
        if f.name == "source":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name in _SUBTABLES:
            out.extend(f"{f.name}.{g.name}: {_shown(getattr(a, g.name))} -> {_shown(getattr(b, g.name))}"
                       for g in fields(a) if getattr(a, g.name) != getattr(b, g.name))
        elif a != b:
            out.append(f"{f.name}: {_shown(a)} -> {_shown(b)}")
    return out


def _shown(value: Any) -> str:
    return "unset" if value is None else _toml_value(value)
