"""The ``[logging]`` section of agentflow.toml -> a typed, validated :class:`Config`.

Keys follow AgenticGoKit's meaning; logd's own settings live in sub-tables of
``[logging]``. Which tables and keys exist is not written here: every component declares
its table (:mod:`logd.spec`, :mod:`logd.settings`) and this module walks the registry
(:mod:`logd.registry`). Every error names the file, the line where the key stands, the
key, what was expected and what was found, so a user can fix it without reading logd's
source.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pwd
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from logd import paths, registry
from logd.paths import config_search_text, default_socket_path, find_config  # noqa: F401  (re-exported)
from logd.registry import Table
from logd.settings import Invalid, found, keys, resolved
from logd.spec import SINK, TableCheck

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")


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


@dataclass(frozen=True)
class Config:
    """Every table's settings, by settings class (arrays of tables: a tuple of them).

    Components read their own with :meth:`of` (typed); ``config.socket``, ``config.ship`` and
    ``config.level`` read a table, an array or a key of ``[logging]`` by its TOML name."""

    values: Mapping[type, Any]
    source: Path | None = field(default=None, compare=False)
    digest: str | None = field(default=None, compare=False)  # sha256 of the bytes loaded
    warnings: tuple[str, ...] = field(default=(), compare=False)  # things accepted but probably unintended

    def of(self, settings: type[T]) -> T:
        return self.values[settings]

    def elements(self, settings: type[T]) -> tuple[T, ...]:
        return self.values[settings]

    def with_settings(self, *settings: Any) -> Config:
        """This config with some tables replaced (by their settings' class)."""
        return replace(self, values={**self.values, **{type(s): s for s in settings}})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "values":
            raise AttributeError(name)
        for table in registry.tables():
            if table.name == name and table.classes:
                return self.values[table.classes[0]]
        for cls in _flat_classes():
            if hasattr(cls, name) or name in _field_names(cls):
                return getattr(self.values[cls], name)
        raise AttributeError(f"the config has no table or [logging] key {name!r}")


def _flat_classes() -> tuple[type, ...]:
    return registry.tables()[0].classes


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def defaults() -> Config:
    """Every table at its defaults (no config file)."""
    return Config({cls: (() if table.array else cls()) for table in registry.tables() for cls in table.classes})


# --- loading ---

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
    section = document.get("logging", {})
    if not isinstance(section, dict):
        raise ConfigError(path, f"expected a table [logging], found {found(section)}",
                          line=locate("logging", None), key="logging")
    warnings: list[str] = []
    loader = _Loader(path, locate, path.resolve().parent, errors, warnings)
    tables = registry.tables()
    named = {t.name: t for t in tables[1:]}
    checked: dict[str, Any] = {t.name: ([] if t.array else {}) for t in tables}
    flat: dict[str, Any] = {}
    raw: Any
    for key, raw in section.items():
        table = named.get(key)
        if table is None:
            flat[key] = raw
        elif not isinstance(raw, list if table.array else dict) or (
                table.array and not all(isinstance(item, dict) for item in raw)):
            what = f"an array of tables [[logging.{key}]]" if table.array else f"a table [logging.{key}]"
            errors.append(ConfigError(path, f"expected {what}, found {found(raw)}",
                                      line=locate("logging", key), key=f"logging.{key}"))
        elif table.array:
            for i, item in enumerate(raw):  # each element sees those before it (duplicate names)
                element = loader.table(table, f"logging.{key}[{i}]", _ArrayLocator(locate, f"logging.{key}", i),
                                       item, checked, index=i)
                checked[key].append(element)
        else:
            checked[key] = loader.table(table, f"logging.{key}", locate, dict(raw), checked)
    checked[""] = loader.table(tables[0], "logging", locate, flat, checked, extra_names=tuple(named))
    for table in tables:  # checks across keys and tables, once every table is read
        if not table.array:
            loader.check(table, "logging" + (f".{table.name}" if table.name else ""), locate, checked[table.name],
                         checked)
    if errors:
        raise ConfigErrors([_with_column(e, text) for e in errors], warnings)
    values: dict[type, Any] = {}
    for table in tables:
        for cls in table.classes:
            if table.array:
                values[cls] = tuple(_made(cls, element) for element in checked[table.name] if element is not None)
            else:
                values[cls] = _made(cls, checked[table.name])
    return Config(values, source=path.absolute(), warnings=tuple(warnings))


def _made(cls: type, values: Mapping[str, Any]) -> Any:
    names = _field_names(cls)
    return cls(**{k: v for k, v in values.items() if k in names})


# (table, key) -> the line it stands on: a _Locator, or an _ArrayLocator inside one [[table]]
_LineOf = Callable[[str, "str | None"], "int | None"]


class _Loader:
    """Checks tables of one file, collecting every error."""

    def __init__(self, path: Path, locate: _Locator, folder: Path, errors: list[ConfigError],
                 warnings: list[str]) -> None:
        self.path, self.locate, self.folder, self.errors, self.warnings = path, locate, folder, errors, warnings

    def table(self, table: Table, name: str, line_of: _LineOf, raw: dict[str, Any], checked: dict[str, Any],
              *, index: int | None = None, extra_names: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """One table's keys, each checked and converted; for an element of an array, also its
        required keys and the checks across its keys (None when it has errors)."""
        schema = {f.name: f for cls in table.classes for f in keys(cls)}
        out: dict[str, Any] = {}
        before = len(self.errors)
        for key, value in raw.items():
            f = schema.get(key)
            line = line_of(name, key)
            if f is None:
                message = _unknown(key, value, name, list(schema) + list(extra_names))
                self.errors.append(ConfigError(self.path, message, line=line, key=f"{name}.{key}"))
                continue
            try:
                out[key] = resolved(f, f.metadata["check"](value), self.folder)
            except Invalid as bad:
                self.errors.append(ConfigError(self.path, f"expected {bad.expected}, found {found(value)}",
                                               line=line, key=f"{name}.{key}"))
        if index is None:
            return out
        for cls in table.classes:
            for f in fields(cls):
                if f.default is MISSING and f.default_factory is MISSING and f.name not in raw:
                    self.errors.append(ConfigError(self.path, f'missing required key "{f.name}"',
                                                   line=line_of(name, None), key=f"{name}.{f.name}"))
        self.check(table, name, line_of, out, checked, index=index)
        return out if len(self.errors) == before else None

    def check(self, table: Table, name: str, line_of: _LineOf, values: dict[str, Any], checked: dict[str, Any],
              *, index: int | None = None) -> None:
        def problem(message: str, key: str | None, *, at: str | None = "") -> None:
            where = key if at == "" else at
            self.errors.append(ConfigError(self.path, message, line=line_of(name, where),
                                           key=f"{name}.{key}" if key else name))

        earlier = [e for e in checked[table.name] if e is not None] if index is not None else []
        seen: set[Any] = set()
        for spec in table.specs:
            if spec.check is not None and spec.check not in seen:
                seen.add(spec.check)
                spec.check(TableCheck(values, checked, problem, self.warnings.append, index, earlier, self.folder))


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
    service = config.source is not None and config.source == paths.system_config()
    out = []
    for name, settings, line_of in _walk(config, locate):
        for f in keys(type(settings)):
            kind, value = f.metadata.get("path"), getattr(settings, f.name)
            if kind is None or value is None:
                continue
            folder = kind == "folder"
            why = (service and _outside_the_service(value, folder=folder)) or _uncreatable(value, folder=folder)
            if why:
                error = ConfigError(config.source, why, line=line_of(name, f.name), key=f"{name}.{f.name}")
                out.append(_with_column(error, text))
    return out


def _walk(config: Config, locate: _Locator) -> Iterator[tuple[str, Any, _LineOf]]:
    """Every table's settings with its dotted name and its line finder, in registry order."""
    for table in registry.tables():
        name = "logging" + (f".{table.name}" if table.name else "")
        for cls in table.classes:
            if table.array:
                elements: tuple[Any, ...] = config.elements(cls)
                for i, element in enumerate(elements):
                    yield f"{name}[{i}]", element, _ArrayLocator(locate, name, i)
            else:
                yield name, config.of(cls), locate


def _user() -> str:
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"


def _outside_the_service(path: Path, *, folder: bool) -> str | None:
    """Why logd.service could not write ``path`` though this user can (ProtectSystem=strict:
    the system is read-only to it but for its own folders), or None."""
    writable = paths.service_writable()
    if any(path.absolute().is_relative_to(folder) for folder in writable):
        return None
    return (f"logd.service may write only below {', '.join(map(str, writable))} (ProtectSystem=strict), "
            f"not {path}: put it there, or allow it with `systemctl edit logd` "
            f"([Service] ReadWritePaths={path if folder else path.parent})")


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
    known = _names()
    elsewhere = {name: names for name, names in known.items() if name.strip("[]") != here}
    homes = [name for name, names in elsewhere.items() if key in names]
    if homes:
        return f"unknown key here; {key} is a key of [{homes[0]}]"
    if isinstance(value, dict):
        belongs = {name: [k for k in value if k in names] for name, names in known.items()}
        moved = [f"{', '.join(keys)} {'is a key' if len(keys) == 1 else 'are keys'} of [{name}]"
                 for name, keys in belongs.items() if keys]
        if moved:
            return f"unknown table ({'; '.join(moved)})"
    near = [(name, match) for name, names in elsewhere.items() if (match := _nearest(key, names, cutoff=0.75))]
    if near:
        return f'unknown key (did you mean "{near[0][1]}" of [{near[0][0]}]?)'
    return f"unknown key (valid keys: {', '.join(valid)})"




def _names() -> dict[str, list[str]]:
    """Every table logd reads and its names (keys, and the sub-tables of [logging]), walked from
    the registry: the near-name hints below know every level without naming a key."""
    tables = registry.tables()
    out = {"logging": [f.name for cls in tables[0].classes for f in keys(cls)] + [t.name for t in tables[1:]]}
    for table in tables[1:]:
        label = f"[logging.{table.name}]" if table.array else f"logging.{table.name}"
        out[label] = [f.name for cls in table.classes for f in keys(cls)]
    return out


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
    """The effective config as TOML, with what it makes as comments (each spec's summary)."""
    lines = [f"# effective config from {config.source or '<embedded defaults>'}"]
    for table in registry.tables():
        if table.array:
            elements: tuple[Any, ...] = config.elements(table.classes[0])
            for element in elements:
                lines += ["", table.title, *(_shown_key(f, getattr(element, f.name)) for f in keys(type(element)))]
            continue
        lines += ([""] if table.name else []) + [table.title]
        lines += [_shown_key(f, getattr(config.of(cls), f.name)) for cls in table.classes for f in keys(cls)]
    sinks, notes = [], []
    for spec in registry.specs():
        note = spec.summary(config) if spec.summary is not None else None
        if spec.kind == SINK and note is not None:
            sinks.append(note)
        elif note is not None:
            notes.append(note)
    lines += ["", f"# sinks: {', '.join(sinks) or 'none'}", *(f"# {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _shown_key(f: Field[Any], value: Any) -> str:
    if value is None:
        return f"# {f.name} is not set"
    if f.metadata.get("secret") and value and not str(value).startswith("env:"):
        return f'{f.name} = "(set; not shown)"'
    shown = f.metadata.get("shown")
    return f"{f.name} = {shown(value) if shown is not None else toml_value(value)}"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def changes(old: Config, new: Config) -> list[str]:
    """What differs between two configs, as ``key: old -> new`` (sub-table keys dotted)."""
    out: list[str] = []
    for table in registry.tables():
        prefix = f"{table.name}." if table.name else ""
        for cls in table.classes:
            a: Any = old.of(cls)
            b: Any = new.of(cls)
            if table.array:
                out.extend(_array_changes(table.name, a, b))
            else:
                out.extend(f"{prefix}{f.name}: {_shown(getattr(a, f.name))} -> {_shown(getattr(b, f.name))}"
                           for f in fields(a) if f.compare and getattr(a, f.name) != getattr(b, f.name))
    return out


def _array_changes(name: str, old: tuple[Any, ...], new: tuple[Any, ...]) -> list[str]:
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
    return "unset" if value is None else toml_value(value)
