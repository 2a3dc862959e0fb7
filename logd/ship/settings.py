"""One ``[[logging.ship]]`` target: its table (:class:`ShipSettings`) and what each target
type declares (:class:`TargetSpec`: formats, URL rule, the keys only it takes, extras).

The element's checks across keys walk the registered target types (``registry.specs(TARGET)``),
so a new type is its module and a registry line. Light: the config loader imports this.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logd import registry
from logd.extras import available, install_hint
from logd.levels import LEVELS
from logd.settings import Invalid, boolean, choice, integer, seconds, setting, string
from logd.spec import TARGET, Spec, TableCheck

_NATS_URL = r"(nats|tls)://([^\s/@,]+@)?[^\s/:@,]+(:\d+)?/?"
NATS_URLS = rf"{_NATS_URL}(\s*,\s*{_NATS_URL})*"
URL_PASSWORD = re.compile(r"://([^/@:,]*):[^/@,]*@")


def _url(value: Any) -> str:
    if isinstance(value, str) and (re.fullmatch(r"(https?|tcp|tls)://[^\s/]+(/\S*)?", value)
                                   or re.fullmatch(NATS_URLS, value)):
        return value
    raise Invalid('a URL such as "http://collector:4318/v1/logs" or "tcp://syslog:6514" '
                  '(nats: "nats://n1:4222,nats://n2:4222")')


def _target_name(value: Any) -> str:
    # names a checkpoint file, so it may not hold a path separator
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        return value
    raise Invalid("a name of letters, digits, '_', '.', '-' (up to 64 characters)")


def _type(value: Any) -> str:
    types = [s.name for s in registry.specs(TARGET)]
    return choice(types, "one of " + ", ".join(f'"{t}"' for t in types))(value)


def _string_table(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return tuple(value.items())
    raise Invalid('a table of strings, e.g. { Authorization = "env:SHIP_TOKEN" }')


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
    raise Invalid('a table of field = value or [values], e.g. { agent = ["planner", "writer"] }')


def _stream_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[^\s.*>/\\]{1,255}", value):
        return value
    raise Invalid("a JetStream stream name (no spaces, '.', '*', '>', '/' or '\\')")


def _inline_table(value: tuple[tuple[str, Any], ...]) -> str:
    from logd.config import toml_value

    return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value) + " }" if value else "{}"


def _hide_password(url: str) -> str:
    from logd.config import toml_value

    return toml_value(URL_PASSWORD.sub(r"://\1:***@", url))  # user:password@host is shown as user:***@host


_FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
               *(f"local{i}" for i in range(8)))
_LEVEL_NAMES = {name: name for name in LEVELS} | {"warning": "warn"}


@dataclass(frozen=True)
class ShipSettings:
    """One ``[[logging.ship]]`` target: where records are forwarded, and how."""

    type: str = setting(doc="syslog, otlp, http, loki, elasticsearch or nats", check=_type)
    url: str = setting(doc="tcp:// or tls:// for syslog; nats:// or tls:// servers (comma-separated) for nats; "
                           "else http(s)://", check=_url, shown=_hide_password)
    name: str = setting("", doc="names the checkpoint file", check=_target_name, default_doc='`"<type>-<index>"`')
    format: str = setting("", doc="syslog: message or json; otlp: protobuf or json", check=string)
    batch_size: int = setting(500, doc="records per request/connection",
                              check=integer(1, "a whole number of records >= 1"))
    flush_interval: float = setting(1.0, doc="seconds to wait for a full batch before sending a partial one",
                                    check=seconds)
    timeout: float = setting(10.0, doc="seconds, per connection/request", check=seconds)
    compression: str = setting("none", doc="of HTTP request bodies: none or gzip", check=choice(("none", "gzip")))
    headers: tuple[tuple[str, str], ...] = setting((), doc='values as written: "env:NAME" is resolved when sending',
                                                   check=_string_table, shown=_inline_table)
    level: str = setting("trace", doc="minimum level shipped to this target",
                         check=choice(_LEVEL_NAMES, "one of " + ", ".join(f'"{n}"' for n in LEVELS[:-1])))
    match: tuple[tuple[str, tuple[Any, ...]], ...] = setting((), doc="field -> accepted values", check=_match_table,
                                                             shown=_inline_table)
    tls_ca: Path | None = setting(None, doc="CA bundle to verify the collector with", check=string, relative=True)
    tls_cert: Path | None = setting(None, doc="client certificate (mutual TLS)", check=string, relative=True)
    tls_key: Path | None = setting(None, doc="its private key", check=string, relative=True)
    tls_verify: bool = setting(True, doc="verify the collector's certificate", check=boolean)
    hostname: str | None = setting(None, doc="syslog HOSTNAME, nats {host} and message ids; default: this "
                                             "machine's name", check=string)
    facility: str = setting("user", doc="syslog facility",
                            check=choice(_FACILITIES, 'a syslog facility name such as "user", "daemon" or "local0"'))
    index: str = setting("logd", doc="elasticsearch index", check=string)
    service_name: str = setting("logd", doc="otlp service.name for records without an agent", check=string)
    signal: str = setting("logs", doc='"logs": every record; "traces": the span records as OTLP spans (otlp), '
                                      "trace records (nats)", check=choice(("logs", "traces")))
    subject: str = setting("", doc='nats: template of {agent} {level} {host} ({session}: traces); default '
                                   '"logs.{agent}"', check=string)
    stream: str = setting("", doc="nats: the JetStream stream that must take the records (Nats-Expected-Stream); "
                                  "default any", check=_stream_name)
    user: str = setting("", doc="nats: user name (with password)", check=string)
    password: str = setting("", doc='nats: the user\'s password; "env:NAME" reads $NAME when logd starts',
                            check=string, secret=True)
    token: str = setting("", doc='nats: authentication token; "env:NAME" reads $NAME when logd starts',
                         check=string, secret=True)
    creds: Path | None = setting(None, doc="nats: a .creds file (user JWT and NKey seed)", check=string,
                                 relative=True)
    nkey: Path | None = setting(None, doc="nats: a file holding an NKey user seed", check=string, relative=True)
    backoff_initial: float = setting(0.2, doc="seconds before the first retry", check=seconds)
    backoff_max: float = setting(60.0, doc="cap of the exponential backoff, seconds", check=seconds)
    max_retries: int = setting(0, doc="0: retry for ever (a retryable failure never drops a batch)",
                               check=integer(0, "a whole number >= 0 (0 retries for ever)"))


@dataclass(frozen=True)
class TargetSpec(Spec):
    """A type of ship target: ``build(settings, hostname)`` makes its :class:`~logd.ship.targets.Target`."""

    formats: tuple[str, ...] = ()  # accepted ``format`` values, the first is the default
    needs: tuple[str, ...] = ()  # modules it imports beyond the core install
    url_problem: Callable[[str], str | None] = lambda url: None  # what is wrong with a URL for this type
    keys: frozenset[str] = frozenset()  # keys of ShipSettings only this type (and others naming them) takes


def http_url(kind: str) -> Callable[[str], str | None]:
    """The URL rule of the targets that POST to a collector."""
    def problem(url: str) -> str | None:
        if not url.startswith(("http://", "https://")):
            return f'expected an http:// or https:// URL for type "{kind}", found "{url}"'
        return None
    return problem


def check_target(table: TableCheck) -> None:
    """One element's checks across its keys, by its type's spec (then the type's own check)."""
    values, problem = table.values, table.problem
    kind, url = values.get("type"), values.get("url")
    target = registry.spec(TARGET, kind) if kind is not None else None
    if not isinstance(target, TargetSpec):
        return
    if url is not None and (wrong := target.url_problem(url)) is not None:
        problem(wrong, "url")
    for module in target.needs:
        if not available(module):
            problem(f'ship target type "{kind}" needs {module.split(".")[0]}, which is not installed: '
                    f"{install_hint(module)}", "type")
    values.setdefault("format", target.formats[0])
    if values["format"] not in target.formats:
        problem(f'expected one of {", ".join(map(repr, target.formats))} for type "{kind}", '
                f'found "{values["format"]}"', "format")
    for key in values:
        owners = [t.name for t in registry.specs(TARGET) if isinstance(t, TargetSpec) and key in t.keys]
        if owners and kind not in owners:
            named = " and ".join(f'"{owner}"' for owner in owners)
            problem(f"{key} is for type {named} targets", key)
    for header, value in values.get("headers", ()):
        if value.startswith("env:") and value[4:] not in os.environ:
            problem(f"environment variable {value[4:]} is not set (the header takes its value from it)",
                    f"headers.{header}", at="headers")
    for file_key in ("creds", "nkey"):
        if file_key in values and not os.access(values[file_key], os.R_OK):
            problem(f"cannot read {values[file_key]}", file_key)
    values.setdefault("name", f"{kind}-{table.index}")
    if any(e.get("name") == values["name"] for e in table.earlier):
        problem(f'duplicate target name "{values["name"]}"; give each target its own name', "name")
    if target.check is not None:
        target.check(table)
