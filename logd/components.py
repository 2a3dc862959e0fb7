"""The contract every component keeps: sources feed the pipeline, steps transform
batches of records, sinks write them. Each is built whole by its constructor from the
settings it needs plus the shared :class:`~logd.events.Events` reporter; nothing is
attached to it afterwards.

To add a sink, copy ``logd/sinks/console.py`` (the smallest) and add it to
``logd.daemon.build``; to add a step, see ``logd/steps/``; a source, ``logd/sources/unix.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from logd.record import Record

if TYPE_CHECKING:
    from logd.pipeline import Batch, Pipeline


# A step takes the records of a batch and returns the ones to keep (a plain callable, as
# structlog's processors). A step that drops may say why with a ``drop_reason`` attribute.
Step = Callable[[list[Record]], list[Record]]


@dataclass
class SinkStats:
    """The same counters for every sink (names after Vector's component metrics).

    ``None`` marks a counter that does not apply to the sink (a console has no rotations).
    """

    received_events: int = 0   # records handed to the sink (written, held for retry, or discarded)
    discarded_events: int = 0  # records it skipped on purpose and counted (a console whose reader is gone)
    sent_bytes: int = 0        # bytes it wrote
    errors: int = 0            # failed writes, each retried (counted by the pipeline, which retries)
    buffer_bytes: int = 0      # bytes held for the next retry
    writable: bool = True      # taking records now
    rotations: int | None = None
    compression_seconds: float | None = None
    retention_deleted: int | None = None
    rotation_stalls: int | None = None  # rotations whose writer pause was measured
    rotation_stall_ms: list[float] | None = None  # the latest few writer pauses, in ms

    @property
    def sent_events(self) -> int:
        return self.received_events - self.discarded_events

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sent_events": self.sent_events}


@runtime_checkable
class Sink(Protocol):
    """Where records leave logd. ``write`` may raise OSError: the sink then keeps the
    unwritten rest and the pipeline pauses clients and calls ``flush`` with back-off
    until it succeeds. ``stats`` is read on the event loop (numbers only)."""

    name: str

    def open(self) -> None:
        """Acquire what writing needs (files, threads); raises OSError so a bad path fails at start or reload."""

    def write(self, batch: Batch) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> SinkStats:
        """Its own counters; ``received_events`` and ``errors`` are filled in by the pipeline."""


class Source(Protocol):
    """Where records enter: feeds ``Pipeline.put`` and stops reading while ``pressure`` says so."""

    async def start(self) -> None: ...

    async def stop(self) -> int:
        """Stop accepting, read what was already sent; returns connections cut at the deadline."""

    def set_paused(self, paused: bool) -> None: ...


class HotIngest(Protocol):
    """A compiled path from a source's lines to the pipeline, for the steps it was built for
    (:class:`logd.hotpath.HotPath`): sources hand it their lines when the pipeline has one."""

    def suffix(self, trusted: Record) -> bytes | None:
        """The peer's trusted fields as each line's end; None: this peer's lines go to Python."""

    def feed(self, lines: list[bytes], received: str, trusted: Record, suffix: bytes, pipeline: Pipeline) -> None:
        """Every line into ``pipeline``, in order."""


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
