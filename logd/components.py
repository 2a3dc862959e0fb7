"""The contract every component keeps: the shapes the daemon, the pipeline, ``/metrics`` and
``logd status`` rely on, and nothing else. What exists is in :mod:`logd.registry`; how each
is declared, :mod:`logd.spec`.

- A **step** is a callable ``list[Record] -> list[Record]`` returning the records to keep
  (structlog's processors); one that drops says why with a ``drop_reason`` attribute.
- A **sink** (:class:`Sink`; :class:`SinkBase` gives the defaults) is handed :class:`Batch`es by
  the pipeline and reports :class:`SinkStats`, the one set of counters every sink has, under
  the same names in ``logd status`` and (declared on each field) in ``/metrics``.
- A **source** or **service** (:class:`Runnable`) is started and stopped by the daemon, in
  registry order, on one ``contextlib.AsyncExitStack``; a reload hands it the new config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson

from logd.isolation import ERROR_FIELD, encodable
from logd.record import RawNumber, Record

T = TypeVar("T")

# A step takes the records of a batch and returns the ones to keep (a plain callable, as
# structlog's processors). A step that drops may say why with a ``drop_reason`` attribute.
Step = Callable[[list[Record]], list[Record]]

_dumps_option = orjson.OPT_APPEND_NEWLINE


def _default(value: object) -> object:
    """What orjson cannot encode itself: a kept number verbatim, anything else as its text."""
    if value.__class__ is RawNumber:
        return orjson.Fragment(value.text)
    return str(value)


def encode(record: Record) -> bytes:
    """One record as a JSON line (what the file sink writes and ``format = "json"`` prints)."""
    return orjson.dumps(record, default=_default, option=_dumps_option)


class Batch:
    """Records written together; the JSON encoding is made once and shared by every sink.

    A batch from the compiled hot path (:mod:`logd.hotpath`) arrives already encoded: its
    records are decoded from those lines only if a sink asks for them (the console)."""

    __slots__ = ("_records", "_json", "on_error", "count", "_bounds", "_parts", "selected")

    def __init__(self, records: list[Record], on_error: Callable[[str, int], None] | None = None) -> None:
        self._records: list[Record] | None = records
        self._json: bytes | None = None
        self.on_error = on_error  # told ("encode", n) when records had to be encoded as flagged text
        self.count = len(records)
        self._bounds: tuple[str, str] | None = None
        self._parts: list[Batch] | None = None
        # a branch's batch: what its selector said of each record (pipeline.Branch), when no
        # branch step changed them since; None: not known
        self.selected: list[Any] | None = None

    @classmethod
    def encoded(cls, json_lines: bytes, count: int, bounds: tuple[str, str]) -> Batch:
        """``count`` records already encoded as ``json_lines``, their times within ``bounds``."""
        batch = cls([])
        batch._records, batch._json, batch.count, batch._bounds = None, json_lines, count, bounds
        return batch

    @classmethod
    def decoded(cls, records: list[Record], json_lines: bytes) -> Batch:
        """``records`` and their lines, as the compiled path made them (:mod:`logd.hotpath`)."""
        batch = cls(records)
        batch._json = json_lines
        return batch

    @classmethod
    def joined(cls, parts: list[Batch]) -> Batch:
        """One batch of ``parts``, in order (records of the Python path and of the hot path); a
        branch's parts: what its selector said of each, when it said so of every part."""
        batch = cls([])
        batch._records, batch._parts, batch.count = None, parts, sum(p.count for p in parts)
        if all(p.selected is not None for p in parts):
            batch.selected = [mark for p in parts for mark in p.selected]  # type: ignore[union-attr]
        return batch

    @property
    def records(self) -> list[Record]:
        if self._records is None:
            if self._parts is not None:
                self._records = [r for part in self._parts for r in part.records]
            else:
                assert self._json is not None
                self._records = [orjson.loads(line) for line in self._json.splitlines()]
        return self._records

    def json_lines(self) -> bytes:
        if self._json is None:
            if self._parts is not None:
                self._json = b"".join([part.json_lines() for part in self._parts])
                return self._json
            records = self.records
            try:
                self._json = b"".join([encode(r) for r in records])
            except (orjson.JSONEncodeError, TypeError, ValueError):  # find the culprits, keep everyone
                self._json = b"".join([self._encode_one(r) for r in records])
        return self._json

    def time_bounds(self) -> tuple[str, str]:
        """The earliest and latest ``time`` (canonical strings sort as times); a record without
        one makes bounds no window is outside of."""
        if self._bounds is None:
            if self._parts is not None:
                bounds = [part.time_bounds() for part in self._parts if part.count]
                self._bounds = (min(b[0] for b in bounds), max(b[1] for b in bounds)) if bounds else UNBOUNDED
            else:
                try:
                    times = [r["time"] for r in self.records]
                    self._bounds = (min(times), max(times)) if times else UNBOUNDED
                except (KeyError, TypeError):
                    self._bounds = UNBOUNDED
        return self._bounds

    def _encode_one(self, record: Record) -> bytes:
        try:
            return encode(record)
        except (orjson.JSONEncodeError, TypeError, ValueError):
            fixed = encodable(record)
            if self.on_error is not None and str(fixed.get(ERROR_FIELD, "")).startswith("encode:"):
                self.on_error("encode", 1)
            return encode(fixed)

    def encoded_lines(self) -> bytes | None:
        """The JSON lines if a sink already made them (one line per record, in order), or every
        part came with them, else None."""
        if self._json is None and self._parts is not None:
            lines = [part.encoded_lines() for part in self._parts]
            if all(line is not None for line in lines):
                self._json = b"".join(lines)  # type: ignore[arg-type]
        return self._json


UNBOUNDED = ("", "\U0010ffff")




def _metric(name: str, help: str, kind: str = "counter") -> Any:
    """A counter's Prometheus family (``logd_<...>{sink}``), declared on the field it reads."""
    return {"metric": name, "help": help, "type": kind}


@dataclass
class SinkStats:
    """The same counters for every sink (names after Vector's component metrics); ``logd status``
    shows them under these names, ``/metrics`` as the family each field declares.

    ``None`` marks a counter that does not apply to the sink (a console has no rotations).
    """

    received_events: int = 0   # records handed to the sink (written, held for retry, or discarded)
    sent_events: int = field(default=0, metadata=_metric("logd_records_written", "Records each sink wrote"))
    discarded_events: int = 0  # records it skipped on purpose and counted (a console whose reader is gone)
    sent_bytes: int | None = field(default=0, metadata=_metric("logd_written_bytes", "Bytes written per sink"))
    errors: int = field(default=0, metadata=_metric("logd_sink_errors", "Write failures per sink (each is retried)"))
    buffer_bytes: int = field(default=0, metadata=_metric("logd_sink_pending_bytes",
                                                          "Bytes a failing sink holds for retry", "gauge"))
    writable: bool = field(default=True, metadata=_metric("logd_sink_writable", "1 when the sink is taking records",
                                                          "gauge"))
    rotations: int | None = field(default=None, metadata=_metric("logd_rotations", "Log file rotations"))
    compression_seconds: float | None = field(default=None, metadata=_metric(
        "logd_compression_seconds", "Seconds spent compressing rotated files"))
    retention_deleted: int | None = field(default=None, metadata=_metric(
        "logd_retention_deleted_files", "Rotated files removed by retention"))
    rotation_stalls: int | None = None  # rotations whose writer pause was measured
    rotation_stall_ms: list[float] | None = None  # the latest few writer pauses, in ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats_fields() -> list[Any]:
    """The fields of :class:`SinkStats` that ``/metrics`` serves, with their families."""
    return [f for f in fields(SinkStats) if "metric" in f.metadata]


@runtime_checkable
class Sink(Protocol):
    """Where records leave logd. ``write`` may raise OSError: the sink then keeps the
    unwritten rest and the pipeline pauses clients and calls ``flush`` with back-off
    until it succeeds. ``stats`` is read on the event loop (numbers only)."""

    name: str
    path: Path | None  # the file it writes, if any

    def open(self) -> None:
        """Acquire what writing needs (files, threads); raises OSError so a bad path fails at start or reload."""

    def write(self, batch: Batch) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> SinkStats:
        """Its own counters; ``received_events``, ``sent_events`` and ``errors`` are filled in by the pipeline."""

    def tick(self) -> None:
        """Housekeeping on the daemon's clock (every 30 s): time rotation, retention."""

    def rotate_now(self) -> bool | None:
        """``logd rotate``, SIGUSR1: rotate now (False: nothing to rotate; None: the sink has no file)."""

    def reopen(self) -> None:
        """SIGHUP: an external logrotate moved the file; the next write opens the path again."""

    def discard_unwritten(self) -> int:
        """Shut-down on a sink that cannot write: give up what it holds; returns the records lost."""


class SinkBase:
    """What a sink does not need to write itself: every hook of :class:`Sink` but ``write`` and
    ``name``, doing nothing; ``stats`` reports the bytes a subclass adds to ``sent_bytes``."""

    name = "sink"
    path: Path | None = None
    sent_bytes = 0  # a subclass adds what it writes

    def open(self) -> None: ...

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> SinkStats:
        return SinkStats(sent_bytes=self.sent_bytes)

    def tick(self) -> None: ...

    def rotate_now(self) -> bool | None:
        return None

    def reopen(self) -> None: ...

    def discard_unwritten(self) -> int:
        return 0


class StartupError(Exception):
    """A part that cannot start (socket in use, a state folder it cannot use): the daemon
    prints this one line and exits 1, after unwinding what had started."""


class Tables(Protocol):
    """The config as components read it: their own table, or another's, by its settings class."""

    def of(self, settings: type[T]) -> T: ...

    def elements(self, settings: type[T]) -> tuple[T, ...]:
        """The elements of an array of tables (``[[logging.ship]]``)."""




class Runnable(Protocol):
    """A source or a service: built whole, started, stopped once (its clean-up on the daemon's
    stack); a reload hands it the new config, which it applies itself (restarting if it must)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reload(self, config: Tables) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Its figures for ``logd status`` (taken on the event loop: numbers only)."""


class Pressure:
    """Back-pressure from the pipeline to every source: a failing sink pauses them until it recovers.

    Made before both, handed to both: the pipeline calls it, each source subscribes."""

    def __init__(self) -> None:
        self.paused = False
        self._listeners: list[Callable[[bool], None]] = []

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)
        if self.paused:
            listener(True)

    def __call__(self, paused: bool) -> None:
        self.paused = paused
        for listener in self._listeners:
            listener(paused)
