"""The daemon's trace sink, at the end of the pipeline's trace branch
(:func:`trace_branch`): it hands trace records to a writer thread that appends them to
the per-session files.

Trace records also reach every other sink (the session files are an index for
``logd list``/``logd trace``, the log file stays the full record). The sink never
blocks or pauses ingestion: ``write`` only classifies and queues; a trace folder
that fails (disk full, permissions) costs trace-file records, which are counted,
reported once per failure spell, and still present in the normal sinks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from logd.components import SinkStats, Step
from logd.events import Events
from logd.pipeline import Batch, Branch, encode
from logd.traces.names import UnsafeSessionId, file_name
from logd.traces.shapes import classify
from logd.traces.store import TraceStore

PRUNE_EVERY_S = 3600.0
# The writer lets records gather this long before writing: fewer, larger writes, and far
# less GIL hand-over between it and the event loop (measured: 0.18x -> see logd bench --traces).
COALESCE_S = 0.02


class TraceSink:
    name = "traces"

    def __init__(self, folder: Path, *, max_age_days: float = 0, clock: Callable[[], float] = time.time,
                 max_pending_bytes: int = 64 << 20, events: Events | None = None) -> None:
        self.store = TraceStore(folder, max_age_days=max_age_days, clock=clock)
        self.clock = clock
        self.max_pending_bytes = max_pending_bytes
        self.events = events if events is not None else Events(clock)
        self.stored = 0        # trace records written to session files
        self.refused = 0       # session ids that name no file ("", ".", "..")
        self.dropped = 0       # not written to the session files (queue full or write error)
        self.pruned = 0
        self.bytes_written = 0
        self._names: OrderedDict[str, str] = OrderedDict()
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self._busy = False
        self._failing = False
        self._behind = False
        self._stop = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- called on the event loop (hot path) ---

    def open(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="logd-traces", daemon=True)
            self._thread.start()

    def write(self, batch: Batch) -> None:
        hits: list[tuple[int, str]] = []
        for i, record in enumerate(batch.records):
            shape = classify(record)
            if shape is not None:
                name = self._file_name(shape[1])
                if name is not None:
                    hits.append((i, name))
        if not hits:
            return
        encoded = batch.encoded()  # the file sink's encoding, when it ran: reuse, do not encode twice
        if encoded is not None:
            lines = encoded.split(b"\n")
            found = [(name, lines[i] + b"\n") for i, name in hits]
        else:
            found = [(name, encode(batch.records[i])) for i, name in hits]
        self._queue(found)

    def _file_name(self, session: str) -> str | None:
        name = self._names.get(session)
        if name is None:
            try:
                name = file_name(session)
            except UnsafeSessionId:
                self.refused += 1
                return None
            self._names[session] = name
            if len(self._names) > 4096:
                self._names.popitem(last=False)
        return name

    def _queue(self, found: list[tuple[str, bytes]]) -> None:
        size = sum(len(data) for _, data in found)
        with self._cond:
            if self._pending_bytes + size > self.max_pending_bytes:
                self.dropped += len(found)
                report, self._behind = not self._behind, True
            else:
                self._pending.extend(found)
                self._pending_bytes += size
                report = False
                if not self._pending_bytes - size:
                    self._behind = False  # the writer caught up since the last drop
                    self._cond.notify()  # it was idle: wake it (otherwise it is about to look)
        if report:
            self.events.emit("error", "trace writer is behind; trace records not written to session files "
                             "(they are in the other sinks)", sink=self.name, dropped=self.dropped)
        if self._thread is None:
            self.open()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until everything queued is written; never raises."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while (self._pending or self._busy) and self._thread is not None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.store.close()

    def stats(self) -> SinkStats:
        return SinkStats(discarded_events=self.dropped + self.refused, sent_bytes=self.bytes_written)

    def store_stats(self) -> dict:
        """The session files' own figures, for ``logd status``."""
        return {"dir": str(self.store.folder), "stored": self.stored, "refused": self.refused,
                "dropped": self.dropped, "pruned": self.pruned, "open_files": self.store.open_files}

    # --- the writer thread ---

    def _run(self) -> None:
        next_prune = self.clock()  # prune once at start, then hourly
        while True:
            with self._cond:
                if not self._pending and not self._stop:
                    self._cond.notify_all()  # wake flush() waiters: nothing is left
                    self._cond.wait(timeout=max(0.01, min(PRUNE_EVERY_S, next_prune - self.clock())))
                    if self._pending and not self._stop:
                        self._cond.wait(COALESCE_S)  # let more gather (flush/close cut this short)
                work, self._pending, self._pending_bytes = self._pending, [], 0
                stop = self._stop
                self._busy = bool(work)
            if work:
                self._write(work)
            if self.clock() >= next_prune:
                self._prune()
                next_prune = self.clock() + PRUNE_EVERY_S
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            if stop:
                return

    def _write(self, work: list[tuple[str, bytes]]) -> None:
        groups: dict[str, list[bytes]] = {}
        for name, data in work:
            groups.setdefault(name, []).append(data)
        for name, lines in groups.items():
            try:
                data = b"".join(lines)
                self.store.append(name, data)
            except (OSError, UnsafeSessionId) as exc:
                self.dropped += len(lines)
                if not self._failing:
                    self._failing = True
                    self.events.emit("error", f"cannot write trace file {self.store.folder / name}: {exc}; trace "
                                     "records are still in the other sinks", sink=self.name, dropped=self.dropped)
                continue
            self.stored += len(lines)
            self.bytes_written += len(data)
            if self._failing:
                self._failing = False

    def _prune(self) -> None:
        try:
            self.pruned += len(self.store.prune())
        except OSError as exc:
            self.events.emit("error", f"cannot prune old trace files in {self.store.folder}: {exc}", sink=self.name)


def trace_branch(sink: TraceSink, redact: Step | None, at: int) -> Branch:
    """Trace records go to the session files whatever the level filter, sampling and rate
    limits keep of them: a session's hooks and spans (mostly info) must all reach its file
    even with ``level = "warn"``. They are redacted first, so no secret reaches a session file."""
    # classify returns the shape (truthy) or None: used as the selector as it is, no wrapper per record
    return Branch("traces", classify, sink, at=at, steps=[redact] if redact is not None else [])
