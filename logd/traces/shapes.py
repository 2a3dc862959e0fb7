"""Recognising trace records among ordinary log records, and which session each belongs to.

Three shapes arrive on the same socket as logs (after :mod:`logd.record` has
renamed ``timestamp`` to the canonical ``time``):

* AgenticGoKit trace entries: ``session_id`` + ``hook`` (BeforeEventHandling,
  AfterEventHandling, BeforeAgentRun, AfterAgentRun, AgentError), with
  ``event_id``, ``agent_id``, ``state``, ``agent_result``, ``error``,
  ``source_agent_id``/``target_agent_id``. Session: ``session_id``.
* Koog agent events as kotlinx serialises them: ``"type":
  "ai.koog.agents.core.feature.model.events.AgentStartingEvent"`` (the fully qualified
  class name) + ``runId``; the older ``eventType`` spelling is accepted too. Session: ``runId``.
* Spans: :mod:`logd.client.tracing` sends ``trace_id`` + ``span_id``; the OpenAI Agents
  SDK exports ``{"object": "trace.span", "id", "trace_id", ...}``. Both carry ``parent_id``,
  ``started_at``, ``ended_at``, ``span_data.type``, ``error``. Session: ``session_id`` if
  present, else ``group_id``, else ``trace_id`` (so a ``group_id`` gathers several
  traces of one conversation into one session).
* OpenAI trace objects ``{"object": "trace", "id", "workflow_name", "group_id"}``:
  session ``group_id``, else ``id``.

:func:`classify` runs on the daemon's hot path for every record: a few dict lookups.
"""

from __future__ import annotations

from typing import Any

AGK_HOOKS = frozenset({"BeforeEventHandling", "AfterEventHandling", "BeforeAgentRun", "AfterAgentRun", "AgentError"})
# InMemoryTracer (internal/core/trace.go) logs entries with a ``type`` and no ``hook``
AGK_TYPES = {"event_start": "BeforeEventHandling", "event_end": "AfterEventHandling",
             "agent_start": "BeforeAgentRun", "agent_end": "AfterAgentRun"}
SPAN_TYPES = frozenset({"agent", "function", "generation", "response", "handoff", "custom", "guardrail"})

AGK, KOOG, SPAN = "agk", "koog", "span"
# a record with none of these keys is not a trace record (classify)
TRIGGER_KEYS = frozenset(("hook", "eventType", "span_id", "trace_id", "type", "object"))
KOOG_PREFIX = "ai.koog."


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def classify(record: dict[str, Any]) -> tuple[str, str] | None:
    """``(shape, session id)`` for a trace record, None for an ordinary log record."""
    hook = record.get("hook")
    if hook is not None:
        session = _text(record.get("session_id"))
        if session is not None and hook.__class__ is str and hook in AGK_HOOKS:  # a list is unhashable
            return AGK, session
    event_type = record.get("eventType")
    if event_type is not None:
        session = _text(record.get("runId"))
        if session is not None and isinstance(event_type, str):
            return KOOG, session
    # an OTLP log record (severity_number) carries the ids of the span it was written in: not a span
    if ("span_id" in record or "trace_id" in record) and "severity_number" not in record:
        trace_id = _text(record.get("trace_id"))
        if trace_id is not None and ("span_id" in record or record.get("object") == "trace.span"):
            session = _text(record.get("session_id")) or _text(record.get("group_id")) or trace_id
            return SPAN, session
    kind = record.get("type")
    if isinstance(kind, str) and kind:
        if kind.startswith(KOOG_PREFIX):
            session = _text(record.get("runId"))
            if session is not None:
                return KOOG, session
        elif kind in AGK_TYPES and hook is None:
            session = _text(record.get("session_id"))
            if session is not None:
                return AGK, session
    if record.get("object") == "trace":
        trace_id = _text(record.get("id"))
        if trace_id is not None:
            return SPAN, _text(record.get("group_id")) or trace_id
    return None


def agk_hook(record: dict[str, Any]) -> str:
    """The entry's hook; for InMemoryTracer's hook-less entries, the hook its ``type`` stands for."""
    hook = record.get("hook")
    if isinstance(hook, str) and hook:
        return hook
    mapped = AGK_TYPES.get(record.get("type"), "")  # type: ignore[arg-type]
    return "AgentError" if mapped == "AfterAgentRun" and record.get("error") else mapped


def koog_event_name(record: dict[str, Any]) -> str:
    """``ToolCallFailedEvent`` from ``type`` (fully qualified) or ``eventType``."""
    kind = record.get("type")
    if isinstance(kind, str) and kind.startswith(KOOG_PREFIX):
        return kind.rsplit(".", 1)[-1]
    return str(record.get("eventType") or "")
