"""The ordered steps every batch of records goes through, and delivery to the sinks.

Data flows one way: the server hands parsed records to :meth:`Pipeline.put`;
once per event-loop turn they are run through the steps (each takes a list of
records and returns the ones to keep) and written to every sink. A sink that
fails keeps what it could not write; the pipeline then reports pressure, so
the server stops reading from clients, and retries with capped backoff until
the sink takes it. Nothing accepted is dropped on the way.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

import orjson

from logd.isolation import ERROR_FIELD, encodable, fallback_record, step_name
from logd.levels import RANK
from logd.record import RawNumber, Record
from logd.timestamps import format_epoch

Step = Callable[[list[Record]], list[Record]]
# Records are encoded in batches of about this many, soon after parsing, while they are
# still in CPU cache: measured, encoding a 3,000-record batch costs ~5x more per record.
BATCH_RECORDS = 256
SHUTDOWN_GRACE = 10.0  # seconds a failing sink is retried at shutdown before what it holds is given up
_dumps_option = orjson.OPT_APPEND_NEWLINE


def _default(value: object) -> object:
    """What orjson cannot encode itself: a kept number verbatim, anything else as its text."""
    if value.__class__ is RawNumber:
        return orjson.Fragment(value.text)  # type: ignore[attr-defined]
    return str(value)


def encode(record: Record) -> bytes:
    """One record as a JSON line (what the file sink writes and ``format = "json"`` prints)."""
    return orjson.dumps(record, default=_default, option=_dumps_option)


class Batch:
    """Records written together; the JSON encoding is made once and shared by every sink."""

    __slots__ = ("records", "_json", "on_error")

    def __init__(self, records: list[Record], on_error: Callable[[str, int], None] | None = None) -> None:
        self.records = records
        self._json: bytes | None = None
        self.on_error = on_error  # told ("encode", n) when records had to be encoded as flagged text

    def json_lines(self) -> bytes:
        if self._json is None:
            try:
                self._json = b"".join([encode(r) for r in self.records])
            except (orjson.JSONEncodeError, TypeError, ValueError):  # find the culprits, keep everyone
                self._json = b"".join([self._encode_one(r) for r in self.records])
        return self._json

    def _encode_one(self, record: Record) -> bytes:
        try:
            return encode(record)
        except (orjson.JSONEncodeError, TypeError, ValueError):
            fixed = encodable(record)
            if self.on_error is not None and str(fixed.get(ERROR_FIELD, "")).startswith("encode:"):
                self.on_error("encode", 1)
            return encode(fixed)

    def encoded(self) -> bytes | None:
        """The JSON lines if a sink already made them (one line per record, in order), else None."""
        return self._json


class Sink(Protocol):
    name: str

    def write(self, batch: Batch) -> None:
        """Take the batch. On OSError the sink keeps the unwritten rest; ``flush`` retries it."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


def level_filter(minimum: str) -> Step:
    """Keep records at ``minimum`` or above."""
    floor = RANK[minimum]
    if floor == 0:
        keep: Step = lambda records: records
    else:
        keep = lambda records: [r for r in records if RANK[r["level"]] >= floor]
    keep.drop_reason = "below_level"  # type: ignore[attr-defined]  # see Pipeline.drain
    return keep


@dataclass
class Backoff:
    """Capped exponential backoff for retrying a failing sink."""

    initial: float = 0.05
    cap: float = 5.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = self.initial if self._next == 0 else min(self.cap, self._next * self.factor)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


@dataclass
class Stats:
    received: int = 0
    filtered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # by the removing step's drop_reason
    delivered: dict[str, int] = field(default_factory=dict)
    sink_errors: dict[str, int] = field(default_factory=dict)
    step_errors: dict[str, int] = field(default_factory=dict)  # records flagged, by the step that failed


class _Delivery:
    """One sink plus its failure state."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.failing: OSError | None = None
        self.backoff = Backoff()
        self.retry: asyncio.TimerHandle | None = None


class Pipeline:
    def __init__(
        self,
        steps: list[Step],
        sinks: list[Sink],
        *,
        on_pressure: Callable[[bool], None] = lambda paused: None,
        high_water: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.steps = steps
        self.deliveries = [_Delivery(s) for s in sinks]
        self.stats = Stats(delivered={s.name: 0 for s in sinks}, sink_errors={s.name: 0 for s in sinks})
        self.on_pressure = on_pressure
        self.high_water = high_water
        self.clock = clock
        self._pending: list[Record] = []
        # acknowledged delivery: callbacks for records in _pending, then those whose
        # batch a failing sink still holds (called once every sink has written it)
        self._written_callbacks: list[Callable[[], None]] = []
        self._held_callbacks: list[Callable[[], None]] = []
        self._scheduled = False
        self._paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost_at_shutdown = 0  # records a sink still held when close() gave up

    # --- intake ---

    def put(self, records: list[Record], on_written: Callable[[], None] | None = None) -> None:
        """Accept parsed records: processed at once when a batch is full, else on the next loop turn.

        ``on_written`` is called once every sink has taken these records (after a failing
        sink recovers, if one fails); filtered-out records count as done.
        """
        self._pending.extend(records)
        self.stats.received += len(records)
        if on_written is not None:
            self._written_callbacks.append(on_written)
        if len(self._pending) >= BATCH_RECORDS:
            self.drain()
        elif not self._scheduled:
            self._scheduled = True
            self._get_loop().call_soon(self._run)
        if len(self._pending) >= self.high_water:
            self._set_paused(True)

    def emit(self, level: str, message: str, /, **fields: object) -> None:
        """A record about logd itself, through the same steps and sinks as everyone's."""
        record: Record = {"time": format_epoch(self.clock()), "level": level, "message": message,
                          "agent": "logd", **fields}
        record.update(SELF_TRUSTED)
        self.put([record])

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
        records, self._pending = self._pending, []
        if records:
            before = len(records)
            for step in self.steps:
                count = len(records)
                try:
                    records = step(records)
                except Exception:  # isolation: only the records the step cannot handle are flagged
                    records = self._step_per_record(step, records)
                if len(records) != count:  # counted per step and batch, not per record
                    reason = getattr(step, "drop_reason", "filtered")
                    self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count - len(records)
                # no early exit on an empty batch: a later step may still have work (TraceTap)
            self.stats.filtered += before - len(records)
        if records:
            batch = Batch(records, self._count_error)
            for delivery in self.deliveries:
                self._deliver(delivery, batch)
        if self._written_callbacks:
            callbacks, self._written_callbacks = self._written_callbacks, []
            self._held_callbacks.extend(callbacks)
            self._call_written()
        self._update_pressure()

    def _step_per_record(self, step: Step, records: list[Record]) -> list[Record]:
        """Run ``step`` on each record alone: a record it fails on is kept as flagged text."""
        name = step_name(step)
        kept: list[Record] = []
        for record in records:
            try:
                kept.extend(step([record]))
            except Exception as exc:
                safe = fallback_record(record, name, exc)
                try:  # the flagged text still goes through the step (redaction must see it)
                    kept.extend(step([safe]))
                except Exception:
                    safe["message"] = "[record dropped: the step failed on its text too]"
                    kept.append(safe)
                self._count_error(name, 1)
        return kept

    def _count_error(self, step: str, count: int) -> None:
        if count:
            self.stats.step_errors[step] = self.stats.step_errors.get(step, 0) + count

    def _call_written(self) -> None:
        """Tell the senders of held batches they are written, unless a sink still holds them."""
        if any(d.failing is not None for d in self.deliveries):
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
        self.stats.delivered[delivery.sink.name] += len(batch.records)

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
        self.stats.sink_errors[delivery.sink.name] += 1
        first = delivery.failing is None
        delivery.failing = exc
        if delivery.retry is None:
            delay = delivery.backoff.next_delay()
            delivery.retry = self._get_loop().call_later(delay, self._retry, delivery)
            if first:
                self.emit("error", f"sink {delivery.sink.name} failed; holding its records and retrying",
                          sink=delivery.sink.name, error=str(exc), retry_in_s=round(delay, 3))
                _stderr_line(f"logd: error: sink {delivery.sink.name} failed: {exc}; "
                             "holding its records, pausing clients and retrying")
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
        delivery.backoff.reset()
        if self._held_callbacks:
            self._call_written()
        self.emit("info", f"sink {delivery.sink.name} recovered; held records written",
                  sink=delivery.sink.name)
        _stderr_line(f"logd: sink {delivery.sink.name} recovered; held records written")
        self._update_pressure()

    def _update_pressure(self) -> None:
        failing = any(d.failing is not None for d in self.deliveries)
        self._set_paused(failing or len(self._pending) >= self.high_water)

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            self.on_pressure(paused)

    def reconfigure(self, steps: list[Step], sinks: list[Sink]) -> None:
        """Swap steps and sinks between two batches: nothing pending is lost or reordered.

        Everything accepted so far goes through the old steps to the old sinks first;
        the old sinks are then flushed and closed (a file is reopened by its new sink).
        Callers check :meth:`failing_sinks` first: closing a failing sink drops what it holds.
        """
        self.drain()
        for delivery in self.deliveries:
            delivery.sink.flush()
            delivery.sink.close()
        self.steps = steps
        self.deliveries = [_Delivery(s) for s in sinks]
        for sink in sinks:
            self.stats.delivered.setdefault(sink.name, 0)
            self.stats.sink_errors.setdefault(sink.name, 0)
        self._update_pressure()

    def failing_sinks(self) -> list[str]:
        return [d.sink.name for d in self.deliveries if d.failing is not None]

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def queue_depth(self) -> int:
        """Records accepted and not yet through the steps."""
        return len(self._pending)

    def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Drain, then flush and close every sink (shutdown path; errors are reported, not raised).

        A sink that cannot write (disk full) is retried for up to ``grace`` seconds; what it
        still holds then is counted as lost and reported, and a torn last line is taken back,
        so the file ends on a whole line (``lost_at_shutdown``)."""
        self.drain()
        deadline = time.monotonic() + grace
        for delivery in self.deliveries:
            if delivery.retry is not None:
                delivery.retry.cancel()
            sink, delay = delivery.sink, 0.05
            while True:
                try:
                    sink.flush()
                    break
                except OSError as exc:
                    self.stats.sink_errors[sink.name] += 1
                    if time.monotonic() + delay > deadline:
                        discard = getattr(sink, "discard_unwritten", None)
                        lost = discard() if discard is not None else 0
                        self.lost_at_shutdown += lost
                        _stderr_line(f"logd: error: sink {sink.name} could not write {lost} records before "
                                     f"exit: {exc}")
                        break
                    time.sleep(delay)  # shutting down: nothing else to serve
                    delay = min(delay * 2, 1.0)
            try:
                sink.close()
            except OSError as exc:
                self.stats.sink_errors[sink.name] += 1
                _stderr_line(f"logd: error: sink {sink.name} could not be closed cleanly: {exc}")

    @property
    def sinks(self) -> Iterable[Sink]:
        return (d.sink for d in self.deliveries)


SELF_TRUSTED: Record = {"_pid": os.getpid(), "_uid": os.getuid(), "_gid": os.getgid(), "_comm": "logd"}


def _stderr_line(text: str) -> None:
    try:
        os.write(2, (text + "\n").encode())
    except OSError:
        pass
