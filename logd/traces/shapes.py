"""Recognising trace records among ordinary log records, and the file each is kept in.

Three shapes arrive on the same socket as logs (after :mod:`logd.record` has
renamed ``timestamp`` to the canonical ``time``):

* AgenticGoKit trace entries: ``session_id`` + ``hook`` (BeforeEventHandling,
  AfterEventHandling, BeforeAgentRun, AfterAgentRun, AgentError), with
  ``event_id``, ``agent_id``, ``state``, ``agent_result``, ``error``,
  ``source_agent_id``/``target_agent_id``. Kept under ``session_id``.
* Koog agent events as kotlinx serialises them: ``"type":
  "ai.koog.agents.core.feature.model.events.AgentStartingEvent"`` (the fully qualified
  class name) + ``runId``; the older ``eventType`` spelling is accepted too. Kept under ``runId``.
* Spans (:func:`logd.traces.semantics.is_span`) and OpenAI trace objects
  ``{"object": "trace", "id", "workflow_name", "group_id"}``: kept under their **trace
  id**. Which session a trace belongs to (``session_id``, ``group_id``, a GenAI
  conversation id, named by any of its spans, maybe one that arrives last) is decided
  when the trace is read, from the whole trace (:mod:`logd.traces.index`): filing by
  trace never needs a span that has not arrived yet, so arrival order cannot split a
  session.

:func:`classify` runs on the daemon's hot path for every record: a few dict lookups.
"""

from __future__ import annotations

from typing import Any

from logd.traces.semantics import AGK_HOOKS, KOOG_PREFIX, is_span, koog_event, text

__all__ = ["AGK", "AGK_HOOKS", "KOOG", "SPAN", "TRIGGER_KEYS", "Shapes", "agk_hook", "classify", "koog_event_name"]

# InMemoryTracer (internal/core/trace.go) logs entries with a ``type`` and no ``hook``
AGK_TYPES = {"event_start": "BeforeEventHandling", "event_end": "AfterEventHandling",
             "agent_start": "BeforeAgentRun", "agent_end": "AfterAgentRun"}

AGK, KOOG, SPAN = "agk", "koog", "span"
# a record with none of these keys is not a trace record (classify)
TRIGGER_KEYS = frozenset(("hook", "eventType", "span_id", "trace_id", "type", "object"))
koog_event_name = koog_event


def classify(record: dict[str, Any]) -> tuple[str, str] | None:
    """``(shape, file key)`` for a trace record, None for an ordinary log record. The key
    is the AgenticGoKit session, the Koog run, or a span's trace id."""
    hook = record.get("hook")
    if hook is not None:
        session = record.get("session_id")
        if session.__class__ is not str:
            session = text(session)
        if session and hook.__class__ is str and hook in AGK_HOOKS:  # a list is unhashable
            return AGK, session
    event_type = record.get("eventType")
    if event_type is not None:
        session = text(record.get("runId"))
        if session is not None and isinstance(event_type, str):
            return KOOG, session
    if "trace_id" in record and is_span(record):
        return SPAN, text(record["trace_id"])  # type: ignore[return-value]
    kind = record.get("type")
    if isinstance(kind, str) and kind:
        if kind.startswith(KOOG_PREFIX):
            session = text(record.get("runId"))
            if session is not None:
                return KOOG, session
        elif kind in AGK_TYPES and hook is None:
            session = text(record.get("session_id"))
            if session is not None:
                return AGK, session
    if record.get("object") == "trace":
        trace_id = text(record.get("id"))
        if trace_id is not None:
            return SPAN, trace_id
    return None


class Shapes:
    """:func:`classify` once per record of a batch: the usage counters classify the batch they
    count (:meth:`start`, :meth:`classify`), and the trace branch's selector, right after them,
    gets those answers for the same batch (:meth:`__call__`) without classifying again (no
    step between them changes a record). Any other batch is classified."""

    __slots__ = ("_records", "_shapes")

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] | None = None
        self._shapes: list[tuple[str, str] | None] = []

    def start(self, records: list[dict[str, Any]]) -> list[tuple[str, str] | None]:
        """A new batch: the list its shapes go in, one per record, in order."""
        self._records, self._shapes = records, []
        return self._shapes

    def __call__(self, records: list[dict[str, Any]]) -> list[tuple[str, str] | None]:
        """Each record's shape (None: no trace record)."""
        if records is self._records and len(self._shapes) == len(records):
            return self._shapes
        return [classify(record) for record in records]


def agk_hook(record: dict[str, Any]) -> str:
    """The entry's hook; for InMemoryTracer's hook-less entries, the hook its ``type`` stands for."""
    hook = record.get("hook")
    if isinstance(hook, str) and hook:
        return hook
    mapped = AGK_TYPES.get(record.get("type"), "")  # type: ignore[arg-type]
    return "AgentError" if mapped == "AfterAgentRun" and record.get("error") else mapped
