"""The ordered steps every batch of records goes through, and delivery to the sinks.

Data flows one way: sources hand parsed records to :meth:`Pipeline.put`; once per
event-loop turn they are run through the steps (each takes a list of records and
returns the ones to keep) and written to every sink. A sink that fails keeps what it
could not write; the pipeline then reports pressure, so the sources stop reading from
clients, and retries with capped back-off until the sink takes it. Nothing accepted is
dropped on the way.

One explicit fork: a :class:`Branch` takes the records it selects at a given point of
the steps (trace records, after they are counted) through its own steps (redaction)
to its own sink (the trace store), whatever the later steps decide for the main line.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, Protocol

import orjson

from logd.backoff import Backoff
from logd.components import Batch, Sink, SinkStats, Step, encode
from logd.events import SELF_TRUSTED, Events
from logd.isolation import StepFailures, fallback_record, step_name
from logd.record import Record, parse_line

__all__ = ["BATCH_RECORDS", "SELF_TRUSTED", "Batch", "Branch", "Encoded", "HotIngest", "Peer", "Pipeline", "Rids",
           "Sink", "Step", "Thinned", "encode"]

# Records are encoded in batches of about this many, soon after parsing, while they are
# still in CPU cache: measured, encoding a 3,000-record batch costs ~5x more per record.
BATCH_RECORDS = 256
SHUTDOWN_GRACE = 10.0  # seconds a failing sink is retried at shutdown before what it holds is given up
class HotIngest(Protocol):
    """The compiled path for the pipeline's steps (:class:`logd.hotpath.HotPath`): asked by
    :meth:`Pipeline.take` for the lines of peers whose fields it can end lines with."""

    def suffix(self, trusted: Record) -> bytes | None:
        """The peer's trusted fields as each line's end; None: this peer's lines go to Python."""

    def feed(self, lines: list[bytes], received: str, trusted: Record, suffix: bytes, pipeline: Pipeline,
             rids: Rids | None = None) -> None:
        """Every line into ``pipeline``, in order."""


@dataclass(frozen=True)
class Rids:
    """The ack fields of consecutive lines of one ack batch (:mod:`logd.sources.ack`): the
    ``i``-th gets ``_rid`` = ``prefix`` + (``first`` + i), and ``_resent`` when the batch is sent again."""

    prefix: str
    first: int
    resent: bool

    def fields(self, i: int) -> Record:
        fields: Record = {"_rid": f"{self.prefix}{self.first + i}"}
        if self.resent:
            fields["_resent"] = True
        return fields


class Peer:
    """Who sent a connection's lines: its trusted fields (from the kernel, never the record),
    and their form as the hot path ends its lines (made once per hot path, so once per reload)."""

    __slots__ = ("trusted", "_hot", "_suffix")

    def __init__(self, trusted: Record) -> None:
        self.trusted = trusted
        self._hot: HotIngest | None = None
        self._suffix: bytes | None = None

    def suffix(self, hot: HotIngest) -> bytes | None:
        if self._hot is not hot:
            self._hot, self._suffix = hot, hot.suffix(self.trusted)
        return self._suffix


@dataclass
class Thinned:
    """What the steps that keep or drop records (sampling, rate limits) left of a hot-path batch:
    its kept lines, their count and time bounds, and how many were dropped, by drop reason."""

    json_lines: bytes
    kept: int
    bounds: tuple[str, str]
    dropped: dict[str, int]


@dataclass
class Encoded:
    """Records the hot path (:mod:`logd.hotpath`) took through the steps itself, in order:
    ``json_lines`` are the ``kept`` ones as the file gets them, ``below`` more were under the
    level floor, and ``count`` adds what the metric steps count of them to their counters
    (called when the batch is processed, in order with the records around it), and returns what
    sampling and rate limits left of them (None: all).

    Lines a step reads (:class:`~logd.spec.ReadsRecords`) come as such a batch with ``done``
    set: all of them, whatever their level; their records, decoded from these lines, go
    through every step but those in ``done`` (the compiled path found nothing for them to do)
    and the trace branch, and the lines are written as they are.

    Quiet trace entries (:class:`~logd.spec.QuietEntries`) come as such a batch with
    ``selected`` set too, each line's shape for the trace branch: ``count`` adds what the steps
    count of them and says True, or adds nothing and says False (a step needs their records
    now: they are decoded as above). ``json_lines`` are all of them, ``below`` of them under the
    level floor, starting at ``under`` (for their sessions, not the other sinks)."""

    json_lines: bytes
    kept: int
    below: int
    bounds: tuple[str, str]
    count: Callable[[], Thinned | bool | None]  # plain runs: Thinned | None; quiet entries: Thinned | bool
    done: tuple[Step, ...] | None = None
    selected: list[Any] | None = None
    under: list[int] | None = None


@dataclass
class Branch:
    """The fork: after the first ``at`` steps, the records ``select`` picks (it marks each
    record of a batch, truthy: taken) also go through
    ``steps`` to ``sink`` (delivered and counted like any sink's), whatever the later
    steps of the main line keep. Steps here change records in place (redaction), so the
    main line sees them changed too; its own redactor then finds nothing left to do."""

    name: str
    select: Callable[[list[Record]], Sequence[object]]
    sink: Sink
    at: int = 0
    steps: list[Step] = field(default_factory=list)


@dataclass
class Stats:
    received: int = 0
    filtered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # by the removing step's drop_reason
    delivered: dict[str, int] = field(default_factory=dict)
    sink_errors: dict[str, int] = field(default_factory=dict)
    branch_delivered: dict[str, int] = field(default_factory=dict)  # by branch name (traces)
    branch_errors: dict[str, int] = field(default_factory=dict)
    step_errors: dict[str, int] = field(default_factory=dict)  # records flagged, by the step that failed
    hot_path: int = 0  # records the compiled hot path took (logd/hotpath.py)
    hot_entries: int = 0  # ... of them, trace entries no step needed a record of (QuietEntries)


def _without(json_lines: bytes, starts: list[int]) -> bytes:
    """``json_lines`` but the lines starting at ``starts`` (ascending)."""
    kept, at = [], 0
    for start in starts:
        kept.append(json_lines[at:start])
        at = json_lines.index(b"\n", start) + 1
    kept.append(json_lines[at:])
    return b"".join(kept)


class _Lines:
    """A decoded batch's records and the JSON lines they were decoded from (one per record, in
    order), so a sink gets those lines instead of the records encoded again."""

    __slots__ = ("records", "json_lines", "_by_id")

    def __init__(self, records: list[Record], json_lines: bytes) -> None:
        self.records, self.json_lines = records, json_lines
        self._by_id: dict[int, bytes] | None = None  # made when some of the records are asked for

    def of(self, records: list[Record]) -> bytes | None:
        """The lines of ``records`` (the batch's, or some of them in order); None when one is not
        the batch's (a step replaced it: it is encoded again)."""
        if len(records) == len(self.records) and all(map(operator.is_, records, self.records)):
            return self.json_lines
        if self._by_id is None:  # self.records keeps every id here unique while this lives
            self._by_id = dict(zip(map(id, self.records), self.json_lines.splitlines(keepends=True), strict=True))
        try:
            return b"".join([self._by_id[id(r)] for r in records])
        except KeyError:
            return None


class _Delivery:
    """One sink plus its failure state."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.failing: OSError | None = None
        self.backoff = Backoff(0.05, 5.0)
        self.retry: asyncio.TimerHandle | None = None


class Pipeline:
    def __init__(
        self,
        steps: list[Step],
        sinks: list[Sink],
        *,
        events: Events | None = None,
        branch: Branch | None = None,
        on_pressure: Callable[[bool], None] = lambda paused: None,
        clock: Callable[[], float] = time.time,
        hot: HotIngest | None = None,
    ) -> None:
        """``events``: the daemon's reporter (connected to this pipeline by whoever built
        both); without one, the pipeline reports into itself (tests, benchmarks). ``hot``:
        the compiled path for these steps (:func:`logd.hotpath.build`), which sources use
        for lines in logd's shape."""
        self.steps = steps
        self.hot = hot
        self.deliveries = [_Delivery(s) for s in sinks]
        self.branch = branch
        self._branch_delivery = _Delivery(branch.sink) if branch is not None else None
        self._taken: list[Batch] = []  # what this drain's segments gave the branch: delivered as one
        self.stats = Stats(delivered={s.name: 0 for s in sinks}, sink_errors={s.name: 0 for s in sinks})
        if branch is not None:
            self.stats.branch_delivered[branch.name] = 0
            self.stats.branch_errors[branch.name] = 0
        self.on_pressure = on_pressure
        self.clock = clock
        if events is None:
            events = Events(clock)
            events.connect(self.put)
        self.events = events
        self._pending: list[Record] = []
        # earlier intake, in order, when the hot path's batches came between: lists of
        # records for the steps, and the hot path's batches (_queued records in all)
        self._queue: list[list[Record] | Encoded] = []
        self._queued = 0
        # acknowledged delivery: callbacks for records in _pending, then those whose
        # batch a failing sink still holds (called once every sink has written it)
        self._written_callbacks: list[Callable[[], None]] = []
        self._held_callbacks: list[Callable[[], None]] = []
        self._scheduled = False
        self._told_paused = False  # what on_pressure was last told (see _update_pressure)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost_at_shutdown = 0  # records a sink still held when close() gave up

    # --- intake ---

    def take(self, lines: list[bytes], received: str, peer: Peer, truncated: dict[int, int] | None = None,
             rids: Rids | None = None, on_written: Callable[[], None] | None = None) -> None:
        """The one intake of a source's lines: the compiled path takes what it can of them (when
        the steps allow one and no line was cut), Python parses the rest (:func:`parse_line`),
        in order. ``truncated``: line index -> its length before it was cut; ``rids``: the
        lines' ack fields (an ack batch's); ``on_written`` as for :meth:`put`, for all of them."""
        hot = self.hot
        suffix = peer.suffix(hot) if hot is not None and truncated is None else None
        if hot is not None and suffix is not None:
            hot.feed(lines, received, peer.trusted, suffix, self, rids)
        else:
            trusted, put = peer.trusted, self.put
            for start in range(0, len(lines), BATCH_RECORDS):  # handed over while still in CPU cache
                chunk = lines if len(lines) <= BATCH_RECORDS else lines[start : start + BATCH_RECORDS]
                if truncated is None and rids is None:
                    put([parse_line(line, received, trusted) for line in chunk])
                else:
                    cuts = truncated or {}
                    put([parse_line(line, received, trusted if rids is None else {**trusted, **rids.fields(start + i)},
                                    truncated=cuts.get(start + i)) for i, line in enumerate(chunk)])
        if on_written is not None:
            self.put([], on_written)

    def put(self, records: list[Record], on_written: Callable[[], None] | None = None) -> None:
        """Accept parsed records: processed at once when a batch is full, else on the next loop turn.

        ``on_written`` is called once every sink has taken these records (after a failing
        sink recovers, if one fails); filtered-out records count as done.
        """
        self._pending.extend(records)
        self.stats.received += len(records)
        if on_written is not None:
            self._written_callbacks.append(on_written)
        self._accepted()

    def put_encoded(self, encoded: Encoded) -> None:
        """Accept records the hot path already took through the steps (see :class:`Encoded`),
        in order after everything accepted before."""
        if self._pending:
            self._queue.append(self._pending)
            self._pending = []
        self._queue.append(encoded)
        count = encoded.kept + encoded.below
        self._queued += count
        self.stats.received += count
        self.stats.hot_path += count
        self._accepted()

    def _accepted(self) -> None:
        """A full batch goes through at once, a smaller one on the next loop turn. Intake
        never pauses the sources itself: only a failing sink does (see :attr:`paused`)."""
        if self.queue_depth >= BATCH_RECORDS:
            self.drain()
        elif not self._scheduled:
            self._scheduled = True
            self._get_loop().call_soon(self._run)

    # --- processing ---

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _run(self) -> None:
        self._scheduled = False
        self.drain()

    def drain(self) -> None:
        """Process everything pending now (also called at shutdown)."""
        segments, self._queue, self._queued = self._queue, [], 0
        if self._pending:
            segments.append(self._pending)
            self._pending = []
        parts: list[Batch] = []
        for segment in segments:
            if isinstance(segment, Encoded):
                part = (self._encoded(segment) if segment.done is None else
                        self._entries(segment) if segment.selected is not None else
                        self._decoded(segment, segment.done))
            else:
                part = self._through_steps(segment)
            if part is not None and part.count:
                parts.append(part)
        if self._taken:  # the branch first, as each segment forked it: one write per session
            taken, self._taken = self._taken, []
            assert self._branch_delivery is not None
            self._deliver(self._branch_delivery, taken[0] if len(taken) == 1 else Batch.joined(taken))
        if parts:
            batch = parts[0] if len(parts) == 1 else Batch.joined(parts)
            for delivery in self.deliveries:
                self._deliver(delivery, batch)
        if self._written_callbacks:
            callbacks, self._written_callbacks = self._written_callbacks, []
            self._held_callbacks.extend(callbacks)
            self._call_written()
        self._update_pressure()

    def _through_steps(self, records: list[Record], skip: tuple[Step, ...] = (),
                       lines: _Lines | None = None) -> Batch | None:
        """``skip``: steps not to run (see :class:`Encoded`); ``lines``: the records' JSON lines,
        written instead of encoding them again."""
        before = len(records)
        branch = self.branch
        fork = branch.at if branch is not None else -1
        for i, step in enumerate(self.steps):
            if i == fork:
                self._fork(records, lines)
            if step in skip:
                continue
            count = len(records)
            records = self._run_step(step, records)
            if len(records) != count:  # counted per step and batch, not per record
                reason = getattr(step, "drop_reason", "filtered")
                self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count - len(records)
        if fork >= len(self.steps):
            self._fork(records, lines)
        self.stats.filtered += before - len(records)
        return self._batch(records, lines) if records else None

    def _batch(self, records: list[Record], lines: _Lines | None) -> Batch:
        """The records, with their lines when each still has the one it was decoded from."""
        if lines is not None:
            joined = lines.of(records)
            if joined is not None:
                return Batch.decoded(records, joined)
        return Batch(records, self._count_error)

    def _decoded(self, encoded: Encoded, skip: tuple[Step, ...]) -> Batch | None:
        """Lines a step reads, from the hot path: their records through the steps but ``skip``.
        Only the trace branch's own steps change records (redaction there): with some, the
        lines are made again from the records."""
        json_lines = encoded.json_lines
        # one JSON array, one call: a line holds no raw newline (JSON escapes it in strings)
        records = orjson.loads(b"[" + json_lines[:-1].replace(b"\n", b",") + b"]")
        branch = self.branch
        lines = _Lines(records, json_lines) if branch is None or not branch.steps else None
        return self._through_steps(records, skip, lines)

    def _entries(self, encoded: Encoded) -> Batch | None:
        """Quiet trace entries from the hot path: counted, filed by the trace branch under the
        shapes the hot path gave, written as they are; their records through the steps after all
        when a step needs them now, or the branch has steps of its own (they change records)."""
        assert encoded.done is not None
        if self.branch is not None and self.branch.steps:
            return self._decoded(encoded, encoded.done)
        try:
            counted = encoded.count()
        except Exception:  # a bug: reported in step_errors; the entries are filed and written all the same
            self._count_error("hotpath", encoded.kept)
            counted = True
        if counted is False:
            return self._decoded(encoded, encoded.done)
        json_lines, below = encoded.json_lines, encoded.below
        self.stats.hot_entries += encoded.kept + below
        if self._branch_delivery is not None:
            taken = Batch.encoded(json_lines, encoded.kept + below, encoded.bounds)
            taken.selected = encoded.selected
            self._taken.append(taken)
        thinned = counted if isinstance(counted, Thinned) else None  # sampling and rate limits
        if below and thinned is None:  # under the level floor: in their sessions only
            json_lines = _without(json_lines, encoded.under or [])
        return self._written(encoded, thinned, json_lines)

    def _encoded(self, encoded: Encoded) -> Batch:
        """The hot path's records: counted by the metric steps, then handed to the sinks as they
        are, but those sampling and rate limits drop."""
        counted = None
        try:
            counted = encoded.count()
        except Exception:  # a bug: reported in step_errors; the records are written all the same
            self._count_error("hotpath", encoded.kept + encoded.below)
        return self._written(encoded, counted if isinstance(counted, Thinned) else None, encoded.json_lines)

    def _written(self, encoded: Encoded, thinned: Thinned | None, json_lines: bytes) -> Batch:
        """What the sinks get of a hot-path batch: ``json_lines`` (its lines but those under the
        level floor), or what sampling and rate limits kept of them (``thinned``); the drops counted."""
        dropped = {"below_level": encoded.below} if encoded.below else {}
        kept, bounds = encoded.kept, encoded.bounds
        if thinned is not None:
            dropped.update(thinned.dropped)
            json_lines, kept, bounds = thinned.json_lines, thinned.kept, thinned.bounds
        for reason, n in dropped.items():
            self.stats.filtered += n
            self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + n
        return Batch.encoded(json_lines, kept, bounds)

    def _fork(self, records: list[Record], lines: _Lines | None = None) -> None:
        """The branch's records, through its steps, now (before later steps drop any); its sink
        gets them when the drain has been through every segment, before the other sinks."""
        assert self.branch is not None and self._branch_delivery is not None
        marks = self.branch.select(records)
        taken = list(compress(records, marks))
        if not taken:
            return
        if not self.branch.steps:  # the sink gets what the selector said (the trace shapes): not asked twice
            batch = self._batch(taken, lines)
            batch.selected = list(filter(None, marks))
            self._taken.append(batch)
            return
        for step in self.branch.steps:
            if not taken:
                return
            taken = self._run_step(step, taken)
        if taken:
            self._taken.append(self._batch(taken, lines))

    def _run_step(self, step: Step, records: list[Record]) -> list[Record]:
        """``step`` on the batch; isolation: only the records it cannot handle are flagged."""
        try:
            return step(records)
        except StepFailures as partial:  # a step with state handled the rest itself, once
            failed = {id(record): exc for record, exc in partial.failed}
            name = step_name(step)
            kept: list[Record] = []
            for record in partial.kept:
                exc = failed.get(id(record))
                kept.extend([record] if exc is None else self._flagged(step, name, record, exc))
            return kept
        except Exception:  # a step without state: found by running it on each record alone
            return self._step_per_record(step, records)

    def _step_per_record(self, step: Step, records: list[Record]) -> list[Record]:
        """Run ``step`` on each record alone: a record it fails on is kept as flagged text."""
        name = step_name(step)
        kept: list[Record] = []
        for record in records:
            try:
                kept.extend(step([record]))
            except StepFailures as partial:
                kept.extend(self._flagged(step, name, record, partial.failed[0][1]))
            except Exception as exc:
                kept.extend(self._flagged(step, name, record, exc))
        return kept

    def _flagged(self, step: Step, name: str, record: Record, exc: Exception) -> list[Record]:
        """The record ``step`` failed on, as flagged text, through ``step`` again (redaction
        must see the text too); counted in ``step_errors``."""
        self._count_error(name, 1)
        safe = fallback_record(record, name, exc)
        try:
            return step([safe])
        except Exception:  # StepFailures included: it failed on the text too
            safe["message"] = "[record dropped: the step failed on its text too]"
            return [safe]

    def _count_error(self, step: str, count: int) -> None:
        if count:
            self.stats.step_errors[step] = self.stats.step_errors.get(step, 0) + count

    def _counts(self, delivery: _Delivery) -> tuple[dict[str, int], dict[str, int]]:
        if delivery is self._branch_delivery:
            return self.stats.branch_delivered, self.stats.branch_errors
        return self.stats.delivered, self.stats.sink_errors

    def _every(self) -> list[_Delivery]:
        return self.deliveries + ([self._branch_delivery] if self._branch_delivery is not None else [])

    def _call_written(self) -> None:
        """Tell the senders of held batches they are written, unless a sink still holds them."""
        if any(d.failing is not None for d in self._every()):
            return
        callbacks, self._held_callbacks = self._held_callbacks, []
        for callback in callbacks:
            callback()

    def _deliver(self, delivery: _Delivery, batch: Batch) -> None:
        try:
            delivery.sink.write(batch)
        except OSError as exc:
            self._failed(delivery, exc)
        except Exception:  # isolation: a record the sink cannot format is flagged, the rest written
            self._deliver_per_record(delivery, batch)
        else:
            if delivery.failing is not None:
                self._recovered(delivery)
        # a failing sink holds what it could not write, so the batch is handed over either way
        self._counts(delivery)[0][delivery.sink.name] += batch.count

    def _deliver_per_record(self, delivery: _Delivery, batch: Batch) -> None:
        """Write the batch to this sink one record at a time; a record it raises on is written
        as its flagged text form instead (a sink raises before writing: it formats first)."""
        sink, name = delivery.sink, f"sink_{delivery.sink.name}"
        for record in batch.records:
            try:
                sink.write(Batch([record], self._count_error))
                continue
            except OSError as exc:
                self._failed(delivery, exc)  # the sink holds it, like any failed write
                continue
            except Exception as exc:
                failure = exc
            self._count_error(name, 1)
            try:
                sink.write(Batch([fallback_record(record, name, failure)], self._count_error))
            except OSError as exc:
                self._failed(delivery, exc)
            except Exception:
                pass  # not even its text form: counted, and the other records go on

    def _failed(self, delivery: _Delivery, exc: OSError) -> None:
        self._counts(delivery)[1][delivery.sink.name] += 1
        first = delivery.failing is None
        delivery.failing = exc
        if delivery.retry is None:
            delay = delivery.backoff.failed()
            delivery.retry = self._get_loop().call_later(delay, self._retry, delivery)
            if first:
                self.events.emit("error", f"sink {delivery.sink.name} failed; holding its records and retrying",
                                 sink=delivery.sink.name, error=str(exc), retry_in_s=round(delay, 3))
        self._update_pressure()

    def _retry(self, delivery: _Delivery) -> None:
        delivery.retry = None
        try:
            delivery.sink.flush()
        except OSError as exc:
            self._failed(delivery, exc)
            return
        self._recovered(delivery)

    def _recovered(self, delivery: _Delivery) -> None:
        if delivery.retry is not None:
            delivery.retry.cancel()
            delivery.retry = None
        delivery.failing = None
        delivery.backoff.succeeded()
        if self._held_callbacks:
            self._call_written()
        self.events.emit("info", f"sink {delivery.sink.name} recovered; held records written",
                         stderr=True, sink=delivery.sink.name)
        self._update_pressure()

    def _update_pressure(self) -> None:
        """Tell the sources when :attr:`paused` changed; called after every change of a sink's
        state (failed, recovered, replaced) and after every drain."""
        paused = self.paused
        if paused != self._told_paused:
            self._told_paused = paused
            self.on_pressure(paused)

    def reconfigure(self, steps: list[Step], sinks: list[Sink], branch: Branch | None = None,
                    hot: HotIngest | None = None) -> None:
        """Swap steps, sinks and branch between two batches: nothing pending is lost or reordered.

        Everything accepted so far goes through the old steps to the old sinks first;
        the old sinks are then flushed and closed (a file is reopened by its new sink).
        A branch sink that stays the same object is kept open.
        Callers check :meth:`failing_sinks` first: closing a failing sink drops what it holds.
        """
        self.drain()
        for delivery in self.deliveries:
            delivery.sink.flush()
            delivery.sink.close()
        old = self._branch_delivery
        if old is not None and (branch is None or branch.sink is not old.sink):
            old.sink.flush()
            old.sink.close()  # after the last batch went through the old branch
        self.steps = steps
        self.hot = hot
        self.deliveries = [_Delivery(s) for s in sinks]
        for sink in sinks:
            self.stats.delivered.setdefault(sink.name, 0)
            self.stats.sink_errors.setdefault(sink.name, 0)
        self.branch = branch
        if branch is None:
            self._branch_delivery = None
        elif old is None or branch.sink is not old.sink:
            self._branch_delivery = _Delivery(branch.sink)
            self.stats.branch_delivered.setdefault(branch.name, 0)
            self.stats.branch_errors.setdefault(branch.name, 0)
        self._update_pressure()

    def failing_sinks(self) -> list[str]:
        return [d.sink.name for d in self._every() if d.failing is not None]

    def sink_stats(self) -> dict[str, SinkStats]:
        """Every current sink's counters, by name (the branch's sink under the branch's name)."""
        result = {}
        for delivery in self._every():
            delivered, errors = self._counts(delivery)
            name = delivery.sink.name
            stats = delivery.sink.stats()
            stats.received_events = delivered.get(name, 0)
            stats.sent_events = stats.received_events - stats.discarded_events
            stats.errors = errors.get(name, 0)
            stats.writable = stats.writable and delivery.failing is None
            result[name] = stats
        return result

    @property
    def paused(self) -> bool:
        """True while a sink holds records it could not write. Read from the sinks' state
        each time, never stored: a failing sink always has a retry timer, and its recovery
        ends the pause. (The queue cannot pause anyone: a full batch is drained in the call
        that filled it, so no count of waiting records can outlive that call.)"""
        return any(d.failing is not None for d in self._every())

    @property
    def queue_depth(self) -> int:
        """Records accepted and not yet through the steps."""
        return len(self._pending) + self._queued

    def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Drain, then flush and close every sink (shutdown path; errors are reported, not raised).

        A sink that cannot write (disk full) is retried for up to ``grace`` seconds; what it
        still holds then is counted as lost and reported, and a torn last line is taken back,
        so the file ends on a whole line (``lost_at_shutdown``)."""
        self.drain()
        self.events.disconnect()  # from here logd's own events only reach stderr
        deadline = time.monotonic() + grace
        for delivery in self._every():
            if delivery.retry is not None:
                delivery.retry.cancel()
            sink, delay = delivery.sink, 0.05
            while True:
                try:
                    sink.flush()
                    break
                except OSError as exc:
                    self._counts(delivery)[1][sink.name] += 1
                    if time.monotonic() + delay > deadline:
                        lost = sink.discard_unwritten()
                        self.lost_at_shutdown += lost
                        self.events.emit("error", f"sink {sink.name} could not write {lost} records before exit",
                                         sink=sink.name, error=str(exc))
                        break
                    time.sleep(delay)  # shutting down: nothing else to serve
                    delay = min(delay * 2, 1.0)
            try:
                delivery.sink.close()
            except OSError as exc:
                self._counts(delivery)[1][delivery.sink.name] += 1
                self.events.emit("error", f"sink {delivery.sink.name} could not be closed cleanly",
                                 sink=delivery.sink.name, error=str(exc))

    @property
    def sinks(self) -> Iterable[Sink]:
        return (d.sink for d in self.deliveries)
