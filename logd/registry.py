"""Every component of logd, once: adding one is a module with a ``SPEC`` and a line here.

The order is meaningful: steps run in this order, tables appear in ``logd check`` and the
reference in this order, and the daemon starts services, then sources, in this order (and
stops them in reverse). Entries are ``module:attribute``, imported when first asked for,
so the config loader and the client stay light.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from logd.spec import Spec

ENTRIES: list[str] = [
    "logd.sources.unix:SPEC",  # [logging.socket]
    "logd.steps.redact:SPEC",  # [logging.redact]: first, before any sink and any counter
    "logd.steps.agents:SPEC",  # counts every record by agent and level
    "logd.usage:SPEC",  # tokens, tool calls, model latency
    "logd.steps.level:SPEC",  # level filter (the trace branch forks before it)
    "logd.steps.sampling:SAMPLER",  # [logging.sampling]
    "logd.steps.sampling:RATE_LIMIT",
    "logd.sinks.console:SPEC",
    "logd.sinks.file:SPEC",
    "logd.ship.spool:SPEC",
    "logd.sinks.journald:SPEC",  # [logging.journald]
    "logd.traces.sink:SPEC",  # [logging.traces]
    "logd.loop_lag:SPEC",  # the event loop's lag, for /metrics and logd status
    "logd.metrics:SPEC",  # [logging.metrics]
    "logd.sources.ingest:SPEC",  # [logging.otlp]
    "logd.ship.manager:SPEC",  # [[logging.ship]]
    "logd.ship.targets:SYSLOG",
    "logd.ship.targets:OTLP",
    "logd.ship.targets:HTTP",
    "logd.ship.targets:LOKI",
    "logd.ship.targets:ELASTICSEARCH",
    "logd.ship.jetstream:SPEC",
]

_loaded: list[Spec] | None = None


def specs(kind: str | None = None) -> list[Spec]:
    """The registered specs (of ``kind``), in registry order."""
    global _loaded
    if _loaded is None:
        _loaded = [_load(entry) for entry in ENTRIES]
    return [s for s in _loaded if kind is None or s.kind == kind]


def spec(kind: str, name: str) -> Spec | None:
    return next((s for s in specs(kind) if s.name == name), None)


def add(entry: str, *, after: str | None = None) -> None:
    """Register one more component (a plugin, a test's step): after the entry whose spec is
    named ``after``, else at the end. Call it before the first config is loaded."""
    global _loaded
    names = [s.name for s in specs()]
    at = names.index(after) + 1 if after is not None else len(ENTRIES)
    ENTRIES.insert(at, entry)
    _loaded = None


def _load(entry: str) -> Spec:
    module, _, attribute = entry.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if not isinstance(found, Spec):
        raise TypeError(f"registry entry {entry} is not a Spec")
    return found


@dataclass(frozen=True)
class Table:
    """One config table as the loader sees it: its name (``""`` for ``[logging]`` itself),
    the settings classes whose fields are its keys, and the specs that check it."""

    name: str
    classes: tuple[type, ...]
    specs: tuple[Spec, ...]
    array: bool = False

    @property
    def title(self) -> str:
        """``[logging]``, ``[logging.socket]``, ``[[logging.ship]]``."""
        inner = "logging" + (f".{self.name}" if self.name else "")
        return f"[[{inner}]]" if self.array else f"[{inner}]"


def tables() -> list[Table]:
    """Every table of ``[logging]``, in registry order (``[logging]`` first)."""
    found: dict[str, Table] = {"": Table("", (), ())}
    for s in specs():
        if s.table is None or s.settings is None:
            continue
        table = found.get(s.table) or Table(s.table, (), (), s.array)
        classes = table.classes if s.settings in table.classes else (*table.classes, s.settings)
        found[s.table] = Table(s.table, classes, (*table.specs, s), s.array)
    return list(found.values())


def settings_classes() -> Iterator[type]:
    for table in tables():
        yield from table.classes
