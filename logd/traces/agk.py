"""``logd trace S --format agk``: a session as AgenticGoKit's ``<session>.trace.json``, so
``agentcli trace`` keeps working on sessions logd collected.

The layout is FileTraceLogger's after Close() (internal/core/trace.go): ``[``, then each
entry pretty-printed with two-space indents (Go's ``json.Encoder.SetIndent("", "  ")``),
separated by ``,`` lines, then ``]``; the fields in TraceEntry's order. AgenticGoKit
entries go out as they came in. Other sessions (Koog, spans) give one BeforeAgentRun and
one AfterAgentRun (AgentError when it failed) per agent run, the next run's agent as
``target_agent_id``.
"""

from __future__ import annotations

import json
from typing import Any

from logd.traces.model import Event, Session
from logd.traces.render import clock_time

_FIELDS = ("type", "event_id", "session_id", "agent_id", "state", "error", "hook", "target_agent_id",
           "source_agent_id", "agent_result")
_OMIT_EMPTY = frozenset({"agent_id", "state", "error", "hook", "target_agent_id", "source_agent_id", "agent_result"})


def to_trace_json(session: Session) -> str:
    entries = [_entry(e) for e in session.events if e.shape == "agk"] or _from_spans(session)
    body = "\n,\n".join(json.dumps(e, indent=2, ensure_ascii=False) for e in entries)
    return "[\n" + body + "\n]\n" if entries else "[]\n"


def _entry(event: Event) -> dict[str, Any]:
    record = event.record
    out: dict[str, Any] = {"timestamp": clock_time(event.time, True)}
    for key in _FIELDS:
        value = record.get(key, "" if key in ("type", "event_id", "session_id") else None)
        if key in _OMIT_EMPTY and value in (None, "", {}, []):
            continue
        out[key] = value
    return out


def _from_spans(session: Session) -> list[dict[str, Any]]:
    runs = sorted((s for s in session.spans if s.kind == "agent"), key=lambda s: s.start)
    entries: list[tuple[float, dict[str, Any]]] = []
    for i, span in enumerate(runs):
        base = {"type": "", "event_id": span.id, "session_id": session.id, "agent_id": span.agent or span.name}
        entries.append((span.start, {"timestamp": clock_time(span.start, True), **base, "hook": "BeforeAgentRun"}))
        end: dict[str, Any] = {"timestamp": clock_time(span.end, True), **base}
        if span.error:
            end.update(error=span.error, hook="AgentError")
        else:
            end["hook"] = "AfterAgentRun"
            following = next((r for r in runs[i + 1:] if (r.agent or r.name) != base["agent_id"]), None)
            if following is not None:
                end["target_agent_id"] = following.agent or following.name
                end["source_agent_id"] = base["agent_id"]
        entries.append((span.end, end))
    entries.sort(key=lambda pair: pair[0])
    return [e for _, e in entries]
