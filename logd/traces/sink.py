"""The daemon's trace sink, at the end of the pipeline's trace branch
(:func:`trace_branch`): it appends trace records to the per-session files.

Trace records also reach every other sink (the session files are an index for
``logd list``/``logd trace``, the log file stays the full record). A trace folder that
fails (disk full, permissions) costs trace-file records, which are counted, reported once
per failure spell, and still present in the normal sinks.

It writes on the event loop, as the file sink does: each batch's lines grouped per session,
one append each. It used to hand them to a writer thread; at full speed that thread fell
behind the loop and the daemon's heap grew around its backlog (100,000 trace records sent
as fast as possible: RSS 500-600 MB, kept afterwards) while writing here stays at ~40 MB
and is faster (61,000 against 48,000-52,000 trace records/s on the 2-core machine). Only
the slow part of a new session's file, the kernel's creating it, is done ahead by a thread
(:mod:`.spares`); nothing waits for it.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from logd.components import Batch, SinkBase, SinkStats, Tables, encode
from logd.events import Events
from logd.pipeline import Branch
from logd.settings import days, setting, string
from logd.sinks.file import FileSettings
from logd.spec import STORE, Context, Spec
from logd.traces.names import UnsafeSessionId, file_name
from logd.traces.shapes import TRIGGER_KEYS, Shapes, classify
from logd.traces.store import TraceStore

PRUNE_EVERY_S = 3600.0
_session_of = itemgetter(1)  # of a trace shape: (shape, session)


def _session_or_none(shape: tuple[str, str] | None) -> str | None:
    return None if shape is None else shape[1]


@dataclass(frozen=True)
class TraceSettings:
    """``[logging.traces]``: where per-session trace files go and how long they are kept."""

    dir: Path | None = setting(None, doc="default: traces/ beside `file`, else $XDG_STATE_HOME/logd/traces",
                               check=string, path="folder")
    max_age: float = setting(0, doc="days; 0 keeps every session",
                             check=days("a number of days >= 0 (0 keeps every session)"))


def traces_dir(config: Tables, env: Mapping[str, str] | None = None) -> Path:
    """The trace folder: ``[logging.traces] dir``, else ``traces/`` beside the log file,
    else ``$XDG_STATE_HOME/logd/traces`` (``~/.local/state/logd/traces``)."""
    settings, file = config.of(TraceSettings), config.of(FileSettings).file
    if settings.dir is not None:
        return settings.dir
    if file is not None:
        return file.parent / "traces"
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state) / "logd" / "traces"


class TraceSink(SinkBase):
    name = "traces"

    def __init__(self, folder: Path, *, max_age_days: float = 0, clock: Callable[[], float] = time.time,
                 events: Events | None = None, shapes: Shapes | None = None) -> None:
        # the branch's selector: the usage counters' shapes of the batch, else classify
        self.shapes = shapes if shapes is not None else Shapes()
        self.store = TraceStore(folder, max_age_days=max_age_days, clock=clock, spares=True)
        self.clock = clock
        self.events = events if events is not None else Events(clock)
        self.stored = 0        # trace records written to session files
        self.refused = 0       # session ids that name no file ("", ".", "..")
        self.dropped = 0       # not written to the session files (write error)
        self.pruned = 0
        self.bytes_written = 0
        self._names: OrderedDict[str, str] = OrderedDict()
        self._failing = False
        self._next_prune: float | None = None  # pruned at open, then hourly (tick)

    def open(self) -> None:
        self.tick()  # retention at start; session files are opened as their records come (store.py)

    def tick(self) -> None:
        """Retention (``max_age``), hourly: the daemon calls this with its other housekeeping."""
        now = self.clock()
        if self._next_prune is None or now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self._prune()

    def write(self, batch: Batch) -> None:
        shapes = batch.selected  # the branch's selector classified them (trace_branch): each truthy
        key: Callable[[Any], str | None] = _session_of
        if shapes is None:
            shapes, key = [classify(record) for record in batch.records], _session_or_none
        # runs of records of one session (a client's session comes in runs), grouped by file
        # name once per batch, in order: (first record, records) each
        runs: dict[str, list[tuple[int, int]]] = {}
        start = 0
        for session, run in groupby(shapes, key):
            count = len(list(run))
            if session is not None:
                name = self._file_name(session)
                if name is None:
                    self.refused += count
                else:
                    runs.setdefault(name, []).append((start, count))
            start += count
        if not runs:
            return
        encoded = batch.encoded_lines()  # the file sink's encoding, when it ran: reuse, do not encode twice
        if encoded is not None:
            if len(runs) == 1 and start == batch.count:
                (name, spans), = runs.items()
                if len(spans) == 1:  # the whole batch is one session's: as it is
                    self._append(name, encoded, start)
                    return
            lines = encoded.split(b"\n")
            for name, spans in runs.items():
                self._append(name, b"".join([b"\n".join(lines[i:i + n]) + b"\n" for i, n in spans]),
                             sum(n for _, n in spans))
        else:
            records = batch.records
            for name, spans in runs.items():
                self._append(name, b"".join([encode(r) for i, n in spans for r in records[i:i + n]]),
                             sum(n for _, n in spans))

    def _file_name(self, session: str) -> str | None:
        """The session's file name; None: the id names no file."""
        name = self._names.get(session)
        if name is None:
            try:
                name = file_name(session)
            except UnsafeSessionId:
                return None
            self._names[session] = name
            if len(self._names) > 4096:
                self._names.popitem(last=False)
        return name

    def flush(self) -> None:
        pass  # every batch is written when it arrives

    def close(self) -> None:
        self.store.close()

    def stats(self) -> SinkStats:
        return SinkStats(discarded_events=self.dropped + self.refused, sent_bytes=self.bytes_written)

    def store_stats(self) -> dict:
        """The session files' own figures, for ``logd status``."""
        return {"dir": str(self.store.folder), "stored": self.stored, "refused": self.refused,
                "dropped": self.dropped, "pruned": self.pruned, "open_files": self.store.open_files,
                "spare_files": self.store.spare_figures()}

    def _append(self, name: str, data: bytes, count: int) -> None:
        """``count`` records' lines to one session file."""
        try:
            self.store.append(name, data)
        except (OSError, UnsafeSessionId) as exc:
            self.dropped += count
            if not self._failing:
                self._failing = True
                self.events.emit("error", f"cannot write trace file {self.store.folder / name}: {exc}; trace "
                                 "records are still in the other sinks", sink=self.name, dropped=self.dropped)
            return
        self.stored += count
        self.bytes_written += len(data)
        self._failing = False

    def _prune(self) -> None:
        try:
            self.pruned += len(self.store.prune())
        except OSError as exc:
            self.events.emit("error", f"cannot prune old trace files in {self.store.folder}: {exc}", sink=self.name)


def trace_branch(sink: TraceSink, at: int) -> Branch:
    """Trace records go to the session files whatever the level filter, sampling and rate
    limits keep of them: a session's hooks and spans (mostly info) must all reach its file
    even with ``level = "warn"``. ``at`` stands after the redactor (the first step), so no
    secret reaches a session file."""
    # each record's shape (truthy) or None, as the usage counters found them
    return Branch("traces", sink.shapes, sink, at=at)


def _build(settings: TraceSettings, ctx: Context) -> TraceSink:
    """The running store is kept over a reload that leaves its folder and retention alone."""
    folder, running = traces_dir(ctx.config), ctx.previous.get("traces")
    if running is not None and running.store.folder == folder and running.store.max_age_days == settings.max_age:
        return running
    return TraceSink(folder, max_age_days=settings.max_age, clock=ctx.clock, events=ctx.events,
                     shapes=ctx.keep("shapes", Shapes))


def _branch(sink: TraceSink, steps: list[tuple[str, Any]]) -> Branch:
    """The fork stands after redaction and the counters, before the level filter."""
    return trace_branch(sink, at=next(i for i, (name, _) in enumerate(steps) if name == "level"))


# its records are those the branch selects by these keys (classify): they go to Python
SPEC = Spec(STORE, "traces", _build, TraceSettings, table="traces", reads=TRIGGER_KEYS, branch=_branch,
            summary=lambda config: f"traces: {traces_dir(config)}", figures=lambda sink: {"traces": sink.store_stats()})
