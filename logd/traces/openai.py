"""The OpenAI Agents SDK's trace export -> logd records.

The SDK's BackendSpanExporter (src/agents/tracing/processors.py) POSTs batches
``{"data": [trace or span export, ...]}`` to ``/v1/traces/ingest``: traces
``{"object": "trace", "id", "workflow_name", "group_id", "metadata"}`` (traces.py) and
spans ``{"object": "trace.span", "id", "trace_id", "parent_id", "started_at",
"ended_at", "span_data": {"type", ...}, "error": {"message", "data"}}`` (spans.py).

:func:`ingest_records` turns one such body into canonical records for the pipeline,
a piece at a time (the HTTP listener gives the loop back between pieces: a large body
held it for the whole conversion); :func:`records_from_ingest` in one go. A trace is
exported when it starts, its spans as each ends, so a span
usually arrives in a later batch than its trace: the traces seen are remembered
(bounded) to give their spans the trace's ``group_id`` and ``workflow_name``, which
decide the spans' session.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from logd.record import Record, normalize_object
from logd.timestamps import format_epoch
from logd.traces.formats import TraceMeta, expand_each
from logd.turns import Work, finish

_SEEN = TraceMeta()


class IngestError(ValueError):
    """A body that is not the SDK's ``{"data": [...]}``; ``str()`` says what was expected."""


def records_from_ingest(payload: object, *, received: str | None = None, meta: TraceMeta | None = None,
                        admit: Callable[[int], None] = lambda count: None) -> list[Record]:
    """Canonical records from one ingest body (decoded JSON), in one go: see :func:`ingest_records`."""
    return finish(ingest_records(payload, received=received, meta=meta, admit=admit))


def ingest_records(payload: object, *, received: str | None = None, meta: TraceMeta | None = None,
                   admit: Callable[[int], None] = lambda count: None) -> Work[list[Record]]:
    """Canonical records from one ingest body (decoded JSON), yielding after each item and
    each record made (:mod:`logd.turns`). Raises :class:`IngestError` for a body that is not
    ``{"data": [objects]}``. ``admit`` is told how many records the body holds before they are
    made (the HTTP listener's bounds; it raises to refuse)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise IngestError('expected a JSON object {"data": [trace or span objects]} as the OpenAI Agents SDK '
                          f"exporter sends, got {type(payload).__name__}")
    bad = [i for i, item in enumerate(payload["data"]) if not isinstance(item, dict)]
    if bad:
        raise IngestError(f'"data"[{bad[0]}] is not an object: expected trace or span objects')
    when = received or format_epoch(time.time())
    objects = yield from expand_each(payload["data"], meta or _SEEN)
    admit(len(objects))
    records = []
    for obj in objects:
        records.append(normalize_object(obj, when))
        yield
    return records
