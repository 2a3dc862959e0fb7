"""Recognising trace records among ordinary log records, and which session each belongs to.

Three shapes arrive on the same socket as logs (after :mod:`logd.record` has
renamed ``timestamp`` to the canonical ``time``):

* AgenticGoKit trace entries: ``session_id`` + ``hook`` (BeforeEventHandling,
  AfterEventHandling, BeforeAgentRun, AfterAgentRun, AgentError), with
  ``event_id``, ``agent_id``, ``state``, ``agent_result``, ``error``,
  ``source_agent_id``/``target_agent_id``. Session: ``session_id``.
* Koog agent events: ``eventType`` (AgentStartingEvent, LLMCallCompletedEvent, ...)
  + ``runId``. Session: ``runId``.
* Spans (OpenAI Agents SDK and :mod:`logd.client.tracing`): ``trace_id`` + ``span_id``,
  ``parent_id``, ``started_at``, ``ended_at``, ``span_data.type``, ``error``.
  Session: ``session_id`` if present, else ``group_id``, else ``trace_id`` (so a
  ``group_id`` gathers several traces of one conversation into one session).

:func:`classify` runs on the daemon's hot path for every record: a few dict lookups.
"""

from __future__ import annotations

from typing import Any

AGK_HOOKS = frozenset({"BeforeEventHandling", "AfterEventHandling", "BeforeAgentRun", "AfterAgentRun", "AgentError"})
SPAN_TYPES = frozenset({"agent", "function", "generation", "response", "handoff", "custom", "guardrail"})

AGK, KOOG, SPAN = "agk", "koog", "span"


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
        if session is not None and hook in AGK_HOOKS:
            return AGK, session
    event_type = record.get("eventType")
    if event_type is not None:
        session = _text(record.get("runId"))
        if session is not None and isinstance(event_type, str):
            return KOOG, session
    # an OTLP log record (severity_number) carries the ids of the span it was written in: not a span
    if "span_id" in record and "severity_number" not in record:
        trace_id = _text(record.get("trace_id"))
        if trace_id is not None:
            session = _text(record.get("session_id")) or _text(record.get("group_id")) or trace_id
            return SPAN, session
    return None
