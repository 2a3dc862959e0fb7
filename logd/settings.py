"""The fields of a component's config table: type, default, check and doc in one place.

Each component declares its table as a frozen dataclass (see :mod:`logd.spec`); each field
is made with :func:`setting`, which puts its check and its doc in the field's metadata::

    @dataclass(frozen=True)
    class JournaldSettings:
        identifier: str = setting("logd", doc="SYSLOG_IDENTIFIER of each entry", check=string)

The config loader (:mod:`logd.config`), ``logd check`` and the generated reference
(:mod:`logd.config_doc`) read only that. A check takes the value as TOML gave it and
returns it converted, or raises :class:`Invalid` with what it expected: the words of the
error message and of the reference are the same. Stdlib only: the loader imports this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Any

Check = Callable[[Any], Any]
MB = 1024 * 1024


class Invalid(Exception):
    """A value a check refuses; ``expected`` completes "expected ..., found ..."."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def setting(default: Any = MISSING, *, doc: str, check: Check, factory: Callable[[], Any] | None = None,
            path: str | None = None, relative: bool = False, secret: bool = False,
            resolve: Callable[[Any, Path], Any] | None = None, shown: Callable[[Any], str] | None = None,
            default_doc: str | None = None, compare: bool = True) -> Any:
    """A field of a settings dataclass. ``path``: a path logd makes ("file", "folder", "socket"),
    which ``logd check`` checks it could create, resolved against the config's folder like
    ``relative`` ones; ``resolve(value, folder)`` for other values that name a place; ``secret``:
    never printed; ``shown``: how ``logd check`` prints the value (TOML); ``default_doc``: the
    default in words, when a check fills it in from other keys."""
    metadata = {"doc": doc, "check": check, "path": path, "relative": relative or path is not None,
                "secret": secret, "resolve": resolve, "shown": shown, "default_doc": default_doc}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, compare=compare)
    return field(default=default, metadata=metadata, compare=compare)


def keys(settings: type) -> list[Field[Any]]:
    """The fields of a settings class that are keys of its table (made with :func:`setting`)."""
    return [f for f in fields(settings) if "check" in f.metadata]


def resolved(f: Field[Any], value: Any, folder: Path) -> Any:
    """A checked value with a path made absolute against the config's ``folder``."""
    if f.metadata.get("resolve") is not None:
        return f.metadata["resolve"](value, folder)
    if f.metadata.get("relative") and isinstance(value, str):
        return relative_to(folder, value)
    return value


def relative_to(base: Path, value: str) -> Path:
    """A path from the config: ``~`` expanded, relative to the config's folder, ``..`` folded."""
    import os

    return Path(os.path.normpath(base / Path(value).expanduser()))


def found(value: Any) -> str:
    """The value as an error shows it: its TOML kind and its text."""
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (dict, list)) else ""
    if isinstance(value, str):
        shown = '"' + value + '"'
    elif isinstance(value, bool):
        shown = "true" if value else "false"
    return f"{kind} {shown}".strip()


def expected(check: Check) -> str:
    """What a check accepts, in the words of its error message (for the reference)."""
    try:
        check(_NOTHING)
    except Invalid as bad:
        return bad.expected
    return "any value"


_NOTHING = object()


# --- checks ---

def choice(options: dict[str, str] | Iterable[str], expected: str | None = None) -> Check:
    """One of ``options`` (any case); a dict maps spellings to the value kept."""
    table = options if isinstance(options, dict) else {o: o for o in options}
    words = expected or "one of " + ", ".join(f'"{o}"' for o in table)

    def check(value: Any) -> str:
        if isinstance(value, str) and value.lower() in table:
            return table[value.lower()]
        raise Invalid(words)
    return check


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise Invalid("true or false")


def number(minimum: float, what: str, *, positive: bool = False) -> Check:
    def check(value: Any) -> float:
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and (value > minimum or (not positive and value == minimum))):
            return value
        raise Invalid(what)
    return check


def seconds(value: Any) -> float:
    """A positive number of seconds."""
    return number(0, "a positive number of seconds", positive=True)(value)


def integer(minimum: int, what: str) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        raise Invalid(what)
    return check


def string(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise Invalid("a non-empty string")


def string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise Invalid("an array of non-empty strings")


def file_mode(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3,4}", value):
        value = int(value.removeprefix("0o"), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise Invalid('a file mode such as 0o660 or "0660"')


def shown_mode(value: int) -> str:
    return f"0o{value:o}"


def group_name(value: Any) -> str | int:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Invalid("a group name or numeric gid")


def tcp_listen(what: str) -> Check:
    """``host:port`` or ``[v6]:port``; ``""`` for no listener."""
    def check(value: Any) -> str:
        if isinstance(value, str):
            m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})", value)
            if value == "" or (m and int(m.group(2)) <= 65535):
                return value
        raise Invalid(what)
    return check


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


def _number_or_text(plain: Check, words: str, text: Callable[[str], float]) -> Check:
    """A number ``plain`` accepts, or a string ``text`` reads (both refused in ``words``)."""
    def check(value: Any) -> float:
        if isinstance(value, str):
            return text(value)
        try:
            return plain(value)
        except Invalid:
            raise Invalid(words) from None
    return check


def megabytes(what: str) -> Check:
    """A positive number of megabytes, or a size string such as "100MB", "1.5 GiB", "512KB"."""
    words = f'{what}, or a size such as "100MB", "1.5GB", "512KB"'

    def text(value: str) -> float:
        m = _SIZE.fullmatch(value)
        if m is not None and not m.group(2) and not m.group(4):
            raise Invalid(words + " (a size in a string needs its unit)")
        if m is None or (m.group(3) and not m.group(2)):
            raise Invalid(words)
        size = float(m.group(1)) * 1024 ** (_SIZE_POWERS[m.group(2).lower()] - 2)
        if size <= 0:
            raise Invalid(words)
        return size
    return _number_or_text(number(0, what, positive=True), words, text)


def days(what: str) -> Check:
    """A number of days >= 0, or a duration string such as "10 days", "2 weeks", "36h"."""
    words = f'{what}, or a duration such as "10 days", "2 weeks", "12h"'

    def text(value: str) -> float:
        total, end = 0.0, 0
        for part in _DURATION_PART.finditer(value):
            if part.start() != end:
                break
            unit = part.group(2).lower()
            if unit in _NO_FIXED_LENGTH:
                raise Invalid(f"{words} ({_NO_FIXED_LENGTH[unit]})")
            if unit not in _DAYS_PER:
                break
            total, end = total + float(part.group(1)) * _DAYS_PER[unit], part.end()
        if end == 0 or end != len(value):
            raise Invalid(words)
        return total
    return _number_or_text(number(0, what), words, text)


def world_writable(table: Any) -> None:
    """A socket ``mode`` that lets every local user write is refused unless asked for by name
    (``[logging.socket] allow_world_writable``): anyone could then send records as any agent,
    or talk to the control or metrics socket. ``table``: a :class:`logd.spec.TableCheck`."""
    mode = table.values.get("mode")
    if mode is not None and mode & 0o002 and not table.tables["socket"].get("allow_world_writable", False):
        table.problem(f"mode 0o{mode:o} lets every local user write to the socket; use 0o660 with a group, or set "
                      "allow_world_writable = true in [logging.socket] if that is really wanted", "mode")
