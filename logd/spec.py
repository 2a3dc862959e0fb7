"""A component as one unit: its :class:`Spec`, listed once in :mod:`logd.registry`.

After the OpenTelemetry Collector's factories: a spec names the component's kind and name,
its config table (a dataclass whose fields carry type, default, check and doc: see
:mod:`logd.settings`) and how to build it; a step also says which record keys it reads and
its role on the compiled path (:mod:`logd.hotpath`). The config loader, ``logd check``, the
generated reference, the daemon's wiring, ``/metrics`` and ``logd status`` walk the
registry; nothing else names a component.

What a component of each kind is (the shapes are in :mod:`logd.components`):

- ``source``: where records enter (the socket, the HTTP intake); started and stopped by the
  daemon, it feeds the pipeline's one intake (:meth:`Pipeline.take`).
- ``step``: a callable ``list[Record] -> list[Record]``, in registry order.
- ``sink``: where records leave, written by the pipeline.
- ``store``: the trace store, the sink at the end of the pipeline's trace branch.
- ``service``: runs beside the pipeline (the metrics server, the shippers).
- ``target``: one type of ``[[logging.ship]]`` target, built by the shippers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from logd.components import Tables

if TYPE_CHECKING:
    from logd.events import Events
    from logd.record import Record

T = TypeVar("T")

SOURCE, STEP, SINK, STORE, SERVICE, TARGET = "source", "step", "sink", "store", "service", "target"
KINDS = (SOURCE, STEP, SINK, STORE, SERVICE, TARGET)


class Problem(Protocol):
    """Reports one error of a table: ``key`` names it (None: the table itself); the error points
    at the line of ``key``, or of ``at`` when given (None: the table's header line)."""

    def __call__(self, message: str, key: str | None, *, at: str | None = "") -> None: ...


@dataclass
class TableCheck:
    """What a spec's ``check`` sees of its table once every key is checked on its own.

    ``values`` are the table's checked values (a check may fill in defaults that depend on
    other keys); ``tables`` every table's, by name (``""``: [logging]; an array: a list);
    for an element of an array, its ``index`` and the ``earlier`` elements."""

    values: dict[str, Any]
    tables: Mapping[str, Any]
    problem: Problem
    warn: Callable[[str], None] = lambda message: None  # accepted, but probably not meant (Config.warnings)
    index: int | None = None
    earlier: list[dict[str, Any]] = field(default_factory=list)
    folder: Path = Path(".")


@dataclass(frozen=True)
class Spec:
    """One component: what ``logd check``, the reference, the daemon and the metrics know of it."""

    kind: str
    name: str
    build: Callable[[Any, Any], Any]  # (its settings, a Context) -> the component; None: not configured
    settings: type | None = None  # the dataclass of its config table
    table: str | None = None  # None: no keys; "": keys of [logging] itself; "x": [logging.x]
    array: bool = False  # [[logging.<table>]]: a list of such tables
    doc: str = ""  # the table's paragraph in the reference (else the settings class's docstring)
    check: Callable[[TableCheck], None] | None = None  # what one key's check cannot see
    summary: Callable[[Tables], str | None] | None = None  # what it makes of a config, for `logd check`
    # what it reports: its part of the daemon's snapshot (top-level keys, taken on the event
    # loop), its Prometheus families made from the snapshot, and how `logd status` shows its part
    figures: Callable[[Any], dict[str, Any]] | None = None
    families: Callable[[dict[str, Any]], Iterable[Any]] | None = None
    view: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    figures_in_thread: bool = False  # its figures read files (ship lag): taken off the event loop
    # steps: the record keys whose lines it must see in Python (None: every line), and its
    # role on the compiled path, made from the built step
    reads: frozenset[str] | None = None
    hot: Callable[[Any], tuple[Any, ...]] | None = None
    tick: Callable[[Any, bool], list[Record]] | None = None  # records a step emits on the clock (final: at the end)
    branch: Callable[[Any, list[tuple[str, Any]]], Any] | None = None  # a store: the pipeline's fork to it
    stderr: Callable[[Any], Any] | None = None  # a step that also filters logd's stderr lines: one made for them


OnDelete = Callable[[list[Path]], int]


@dataclass
class Context:
    """What a spec's ``build`` is given besides its settings.

    ``kept`` holds the parts that outlive reloads (counters), made once by :meth:`keep`;
    ``previous`` the component each spec built last time (a reload may keep it);
    ``retention`` who must be asked before backups are deleted (:meth:`unshipped`).
    Sources and services are built once the pipeline exists (``pipeline``, ``pressure``).
    The daemon keeps one context and replaces its ``config`` on a reload.
    """

    config: Tables
    events: Events
    clock: Callable[[], float] = time.time
    kept: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)
    retention: list[OnDelete] = field(default_factory=list)
    pipeline: Any = None
    pressure: Any = None
    listener: Any = None  # the daemon's listening socket (systemd's, or made from [logging.socket])
    figures: Callable[[], dict[str, Any]] | None = None  # the daemon's snapshot, on the loop (/metrics)
    slow_figures: Callable[[], dict[str, Any]] | None = None  # the figures that read files, off the loop

    def unshipped(self, paths: list[Path]) -> int:
        """Records in ``paths`` (backups retention is about to delete) that someone still needs."""
        return sum(guard(paths) for guard in self.retention)

    def keep(self, name: str, make: Callable[[], T]) -> T:
        """The long-lived part ``name``, made by ``make`` the first time it is asked for."""
        if name not in self.kept:
            self.kept[name] = make()
        return self.kept[name]


# --- what a step asks of the compiled path (logd/hotpath.py, logd/_hotpath.c) ---

@dataclass(frozen=True)
class LevelFloor:
    """Records below ``floor`` (a rank) are dropped, counted as ``below_level``."""

    floor: int


@dataclass(frozen=True)
class Redact:
    """A line redaction would change goes to Python; ``redactor`` answers which keys and strings
    (:class:`logd.steps.redact.Redactor`)."""

    redactor: Any


@dataclass(frozen=True)
class CountByLevel:
    """Records counted by (the label of ``label_key``, level), and, per label, a histogram of
    ``histogram_key`` / ``scale`` (seconds) in ``buckets``; ``add`` takes the compiled path's
    tally (:meth:`logd.steps.agents.AgentMetrics.add_tally`)."""

    label_key: str
    add: Callable[[list[list[Any]]], None]
    histogram_key: str | None = None
    scale: float = 1000.0
    buckets: tuple[float, ...] = ()


@dataclass(frozen=True)
class SumFields:
    """Whole numbers under ``key`` (an object of ``fields``, or one number: the total) summed by
    the labels ``labels``; ``fields`` maps a field name to its column (0 input, 1 output, 2 total).
    ``add(label, second label, input, output, total)`` takes one pair's sums (None: nothing added)."""

    key: str
    labels: tuple[str, str]
    fields: Mapping[str, int]
    add: Callable[[Any, Any, int | None, int | None, int | None], None]


@dataclass(frozen=True)
class CountNames:
    """Records whose ``key`` holds text (not empty) counted by (the text of ``label_key``, that text,
    failed): failed when the record's level is one of ``failed_levels`` or its ``failed_key`` holds
    a true value (as Python's ``bool``). ``add(label, name, failed, n)`` takes one key's count."""

    key: str
    label_key: str
    failed_key: str
    failed_levels: frozenset[str]
    add: Callable[[Any, str, bool, int], None]


@dataclass(frozen=True)
class ObserveNumber:
    """A number >= 0 under ``key``, divided by ``scale``, observed in ``buckets`` per the text of
    ``label_key`` (a record without one, or null: not observed). ``add(label, counts per bucket,
    values)`` takes one label's observations, the values in the order the records came."""

    key: str
    label_key: str
    scale: float
    buckets: tuple[float, ...]
    add: Callable[[Any, list[int], list[float]], None]


@dataclass(frozen=True)
class RecordsAtLevels:
    """Lines at these levels stay on the compiled path, and each one's record (decoded from the
    line written) is given to ``take``, in order, when the counts of its run are added: the step
    keeps something of each (usage: its agent's last error). Under the level floor: Python's."""

    levels: frozenset[str]
    take: Callable[[Record], None]


@dataclass(frozen=True)
class Thins:
    """The step keeps or drops each record by the text of ``key``, its level and its message only
    (sampling, rate limits), after the level floor: ``decide`` takes those of the lines the compiled
    path writes, in order, and says which it keeps (counting what it drops itself); the others
    are left out of the batch, counted in the pipeline's drops under ``reason``."""

    key: str
    decide: Callable[[list[tuple[Any, str, str]]], list[bool]]
    reason: str


@dataclass(frozen=True)
class ReadsRecords:
    """The step only reads the records holding its ``reads`` keys (counts them, changes nothing):
    the compiled path still checks and writes their lines, and hands the steps their records
    (decoded from those lines) instead of leaving the lines to Python's parser and redactor."""


@dataclass(frozen=True)
class QuietEntries:
    """The step does nothing with a trace entry that reports nothing: an AgenticGoKit hook entry
    (``hook`` one of ``hooks``, ``session`` text, not empty) with no key of ``full_keys``, none of
    ``nested_names`` in its ``nested`` object, no ``result`` object whose ``result_error`` is not
    empty and no ``type`` text starting with ``type_prefix`` (the usage step: no usage, tool call
    or error in it, :mod:`logd.traces.semantics`). The compiled path
    gives no step the record of such a line while ``ready()``: the agents step counts it and
    pairs its run hooks (:class:`PairsRuns`), the trace branch files it under ``(shape,
    session)``, its line is written as it is (under the level floor, or dropped by sampling or
    a rate limit: in its session only). Not ready (spans wait for their agent): its record goes
    through the steps."""

    shape: str
    hook: str
    hooks: tuple[str, ...]
    session: str
    full_keys: frozenset[str]
    nested: str
    nested_names: tuple[str, ...]
    type_key: str
    type_prefix: str
    result: str
    result_error: str
    ready: Callable[[], bool]


@dataclass(frozen=True)
class PairsRuns:
    """The step pairs run hooks (``hooks``: the start's and the end's) of the records it reads by
    session and agent (the first text of ``agent_keys``); ``add`` takes those of quiet entries
    (:class:`QuietEntries`) as ``(hook, session, agent_id, agent, time)``, in order, and
    ``fits(agents)`` says whether labelling these agents in any order gives each the label it
    would get in order (the label cap is not reached)."""

    hooks: tuple[str, str]
    agent_keys: tuple[str, str]
    add: Callable[[list[tuple[str, str, Any, Any, str]]], None]
    fits: Callable[[Iterable[object]], bool]


EVERY_RECORD = None  # Spec.reads of a step that must see every record
