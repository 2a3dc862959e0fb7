"""Trace records of any shape -> one timeline of :class:`Event` and one list of :class:`Span`.

Events are what happened at a point in time (a hook fired, a Koog event, a span
ended); spans are intervals with an agent, a name and maybe a parent:

* span records are spans as sent, one per (trace id, span id) however often it was
  sent; a span's agent is its nearest enclosing agent span's, resolved over the whole
  trace, so the order the spans arrived in changes nothing;
* AgenticGoKit hooks pair up per agent and event id: BeforeAgentRun ->
  AfterAgentRun/AgentError, or BeforeEventHandling -> AfterEventHandling when a
  session has no agent-run hooks;
* Koog ``XStartingEvent`` pairs with ``XCompletedEvent``/``XFailedEvent`` of the
  same family (agent, strategy, node, subgraph, LLM call, LLM streaming, tool call)
  and the same node, subgraph or tool call. Koog events other than the agent's own
  carry no ``agentId``: they take the run's agent.

What each record means (its error, tokens, hand-off, tool call, guardrail) comes from
:mod:`logd.traces.semantics`; what needs the whole trace is resolved here: agents,
which usage counts (:func:`calls`: a span's usage only if no descendant reports usage,
so a run's total is never added to its calls), and the session of a trace
(:func:`trace_sessions`).

AgenticGoKit state is shown as ``agentcli trace`` shows it: the ``data`` of its
``{data, meta}`` with ``agent_result.output_state`` folded in; ``meta`` is kept apart
(its ``route`` names the next agent).

A span still open when the records end is closed at the session's last event and
marked ``unfinished``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from logd.timestamps import epoch_seconds
from logd.traces import semantics
from logd.traces.semantics import Usage, error_text, model_name, text
from logd.traces.shapes import AGK, KOOG, SPAN, agk_hook, classify, koog_event_name

__all__ = ["Event", "Session", "Span", "build_session", "calls", "error_text", "trace_sessions"]


@dataclass
class Event:
    time: float
    session: str
    shape: str
    hook: str
    agent: str
    state: Any = None
    error: str | None = None
    event_id: str | None = None
    source: str | None = None
    target: str | None = None
    span_id: str | None = None
    parent_id: str | None = None
    duration: float | None = None
    record: dict = field(default_factory=dict, repr=False)
    meta: dict | None = None  # AgenticGoKit state meta (``route``), data and result folded
    trace_id: str | None = None


@dataclass
class Span:
    id: str
    session: str
    agent: str
    name: str
    kind: str
    start: float
    end: float
    parent: str | None = None
    error: str | None = None
    unfinished: bool = False
    tripped: bool = False  # a guardrail whose tripwire triggered
    trace: str | None = None
    record: dict | None = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Call:
    """Tokens one model call used (or a run's total where no call below it reported any)."""

    time: float
    agent: str
    usage: Usage


@dataclass
class Session:
    id: str
    events: list[Event]
    spans: list[Span]
    calls: list[Call] = field(default_factory=list)
    # AgenticGoKit writes its local time with its UTC offset and agentcli prints times in
    # that offset: seconds east of UTC, when the entries say
    utc_offset: float | None = None

    @property
    def start(self) -> float | None:
        times = [e.time for e in self.events] + [s.start for s in self.spans]
        return min(times) if times else None

    @property
    def end(self) -> float | None:
        times = [e.time for e in self.events] + [s.end for s in self.spans]
        return max(times) if times else None

    @property
    def agents(self) -> list[str]:
        """Agents the records name themselves (:func:`semantics.agent_name`), first seen first:
        the session index lists the same without building the session."""
        seen: dict[str, float] = {}
        for e in self.events:
            name = semantics.agent_name(e.record)
            if name and (name not in seen or e.time < seen[name]):
                seen[name] = e.time
        return sorted(seen, key=lambda n: (seen[n], n))

    @property
    def errors(self) -> list[Event]:
        return [e for e in self.events if e.error]

    @property
    def tool_calls(self) -> list[tuple[Event, semantics.ToolCall]]:
        found = ((e, semantics.tool_call(e.record)) for e in self.events)
        return [(e, t) for e, t in found if t is not None]

    @property
    def guardrails(self) -> list[Span]:
        return [s for s in self.spans if s.kind == "guardrail"]


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from a canonical time, any timestamp logd accepts, or None."""
    return epoch_seconds(value)


def agk_state(record: dict) -> tuple[Any, dict | None]:
    """``(data, meta)`` as agentcli shows them: ``state`` unwrapped, ``agent_result.output_state`` folded in."""
    state = record.get("state")
    result = record.get("agent_result")
    output = result.get("output_state") if isinstance(result, dict) else None
    if not _wrapped(state) and not _wrapped(output):
        return (state if state not in (None, "") else None), None
    data: dict = {}
    meta: dict = {}
    for part in (state, output):
        if _wrapped(part):
            data.update({k: v for k, v in (part.get("data") or {}).items() if v is not None})
            meta.update({k: v for k, v in (part.get("meta") or {}).items() if v not in (None, "")})
    return data, meta


def _wrapped(state: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(state, dict) and state.keys() <= {"data", "meta"} and bool(state) and all(
        isinstance(v, dict) or v is None for v in state.values())


_str = text


# --- records -> events ---

def to_event(record: dict, session: str | None = None) -> Event | None:
    shape = classify(record)
    if shape is None:
        return None
    kind, key = shape
    session = session or key
    time = epoch(record.get("time")) or 0.0
    error = semantics.error(record)
    if kind == AGK:
        state, meta = agk_state(record)
        return Event(time=time, session=session, shape=AGK, hook=agk_hook(record),
                     agent=_str(record.get("agent_id")) or _str(record.get("agent")) or "",
                     state=state, error=error, meta=meta,
                     event_id=_str(record.get("event_id")), source=_str(record.get("source_agent_id")),
                     target=_str(record.get("target_agent_id")), record=record)
    if kind == KOOG:
        return Event(time=time, session=session, shape=KOOG, hook=koog_event_name(record),
                     agent=(_str(record.get("agentId")) or _str(record.get("agent_id"))
                            or _str(record.get("agent")) or ""),
                     state=_koog_state(record), error=error,
                     event_id=_str(record.get("toolCallId")) or _str(record.get("nodeName"))
                     or _str(record.get("subgraphName")), record=record)
    if record.get("object") == "trace":
        return None  # a trace object names its workflow and group; its spans carry the timeline
    data = semantics.span_data(record)
    start, end = epoch(record.get("started_at")), epoch(record.get("ended_at"))
    handoff = semantics.handoff(record)
    return Event(time=start if start is not None else time, session=session, shape=SPAN,
                 hook=f"span:{semantics.kind(record)}", agent=semantics.agent_name(record) or "", state=data,
                 error=error, event_id=key, source=handoff.source if handoff else None,
                 target=handoff.target if handoff else None, span_id=semantics.span_id(record),
                 parent_id=_str(record.get("parent_id")),
                 duration=(end - start) if start is not None and end is not None else None, record=record,
                 trace_id=key)


_KOOG_STATE_KEYS = ("nodeName", "subgraphName", "toolName", "toolArgs", "model", "prompt", "responses", "result",
                    "toolResult", "input", "output", "strategyName", "frame", "tools")


def _koog_state(record: dict) -> dict:
    state = {k: record[k] for k in _KOOG_STATE_KEYS if k in record}
    if isinstance(state.get("model"), dict):
        state["model"] = model_name(state["model"]) or state["model"]
    return state


def trace_sessions(records: Iterable[dict]) -> dict[str, str]:
    """The session of each trace among ``records`` (trace id -> session): the one its
    outermost span that names one names (:func:`semantics.outermost`), else the trace id."""
    declared: dict[str, list[tuple[float, float, str]]] = {}
    for record in records:
        shape = classify(record)
        if shape is None or shape[0] != SPAN:
            continue
        named = semantics.declared_session(record)
        found = declared.setdefault(shape[1], [])
        if named:
            if record.get("object") == "trace":
                found.append((float("-inf"), 0.0, named))  # the trace itself: outermost of all
            else:
                when = semantics.interval(record) or (0.0, 0.0)
                found.append((when[0], when[1], named))
    return {trace: semantics.outermost(found) or trace for trace, found in declared.items()}


# --- events -> spans ---

_KOOG_PHASE = re.compile(r"^(.*?)(Starting|Started|ExecutionStarting|Completed|Finished|ExecutionCompleted|"
                         r"Failed|ExecutionFailed|ValidationFailed)Event$")


# ``logd trace --debug``: why each record was or was not paired into a span, by id(record):
# (sentence, the other record of the pair or None). Filled only when asked for.
Notes = dict[int, tuple[str, "dict | None"]]


def _note(notes: Notes | None, e: Event, text: str, other: Event | None = None) -> None:
    if notes is not None:
        notes[id(e.record)] = (text, other.record if other is not None else None)


SpanIndex = dict[tuple[str | None, str], Span]  # (trace id, span id) -> span


def build_session(session: str, records: Iterable[dict], notes: Notes | None = None) -> Session:
    """The session made of ``records`` (of any of its files, in any order).
    ``notes``, when given, is filled with why each record was or was not paired (``--debug``)."""
    events = [e for e in (to_event(r, session) for r in records) if e is not None]
    events.sort(key=lambda e: e.time)
    _koog_agents(events)
    spans = _record_spans(events, notes) + _agk_spans(events, notes) + _koog_spans(events, notes)
    last = max([e.time for e in events] + [s.end for s in spans], default=0.0)
    for s in spans:
        if s.unfinished:
            s.end = max(s.start, last)
    spans.sort(key=lambda s: (s.start, -s.end))
    by_key: SpanIndex = {(s.trace, s.id): s for s in spans if s.trace is not None}
    for s in spans:
        if s.trace is not None and s.kind != "agent":
            s.agent = _enclosing_agent(s, by_key) or s.agent
    for e in events:
        if e.shape == SPAN:
            found = by_key.get((e.trace_id, e.span_id or ""))
            if found is not None:
                e.agent = found.agent
                if e.source is None and e.target is not None:  # a tool that hands off: from its agent
                    e.source = found.agent or None
                    found.name = _span_name({}, found.kind, semantics.Handoff(e.source, e.target))
    if notes is not None:
        _note_parents(events, by_key, notes)
    offset = next((found for found in (utc_offset(e.record) for e in events if e.shape == AGK) if found is not None),
                  None)
    return Session(id=session, events=events, spans=spans, calls=calls(events, by_key), utc_offset=offset)


_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)$")


def utc_offset(record: dict) -> float | None:
    """The UTC offset an AgenticGoKit entry was written with: ``timestamp_offset`` (kept by
    :func:`logd.traces.formats.expand` from the entry's own ``timestamp``), else the offset of
    its ``agent_result`` times (Go writes them in the same zone)."""
    result = record.get("agent_result")
    for value in (record.get("timestamp_offset"),
                  *((result.get("start_time"), result.get("end_time")) if isinstance(result, dict) else ())):
        if isinstance(value, str):
            if value.endswith("Z"):
                return 0.0
            m = _OFFSET.search(value)
            if m:
                seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60
                return float(seconds if m.group(1) == "+" else -seconds)
    return None


def calls(events: list[Event], by_key: SpanIndex) -> list[Call]:
    """The token usage that counts, per call: each record's :func:`semantics.usage`, except
    a span's when a span below it reports usage (the SDK's task and turn spans, Strands'
    and Pydantic AI's agent spans, carry their run's total on top of each model call's)."""
    reported = [(e, semantics.usage(e.record)) for e in events]
    has_usage_below: set[tuple[str | None, str]] = set()
    for e, found in reported:
        if found is None or e.shape != SPAN:
            continue
        parent, seen = e.parent_id, set()
        while parent and (e.trace_id, parent) not in seen:
            key = (e.trace_id, parent)
            seen.add(key)
            has_usage_below.add(key)
            above = by_key.get(key)
            parent = above.parent if above is not None else None
    out = []
    for e, found in reported:
        if found is None or (e.shape == SPAN and (e.trace_id, e.span_id or "") in has_usage_below):
            continue
        out.append(Call(e.time, e.agent or "-", found))
    return out


def _note_parents(events: list[Event], by_key: SpanIndex, notes: Notes) -> None:
    """A span record whose parent_id names no span of the session hangs at the top level."""
    for e in events:
        if e.shape == SPAN and e.parent_id and (e.trace_id, e.parent_id) not in by_key and id(e.record) in notes:
            said, other = notes[id(e.record)]
            notes[id(e.record)] = (f"{said}; its parent {e.parent_id} is not in this session, so it is "
                                   "shown at the top level", other)


def _koog_agents(events: list[Event]) -> None:
    """Koog events without ``agentId`` take the agent of their run (its Agent*Event)."""
    agents = {e.session: e.agent for e in events if e.shape == KOOG and e.agent}
    for e in events:
        if e.shape == KOOG and not e.agent:
            e.agent = agents.get(e.session, "agent")


def _enclosing_agent(span: Span, by_key: SpanIndex) -> str | None:
    seen = set()
    parent = by_key.get((span.trace, span.parent)) if span.parent else None
    while parent is not None and parent.id not in seen:
        seen.add(parent.id)
        if parent.kind == "agent":
            return parent.agent or parent.name
        parent = by_key.get((parent.trace, parent.parent)) if parent.parent else None
    return None


def _span_name(data: dict, kind: str, handoff: semantics.Handoff | None) -> str:
    if handoff is not None:
        return f"handoff {handoff.source or '?'} -> {handoff.target}"
    if kind in ("generation", "response"):
        return str(data.get("name") or data.get("model") or kind)
    return str(data.get("name") or kind)


def _record_spans(events: list[Event], notes: Notes | None = None) -> list[Span]:
    out: list[Span] = []
    for e in events:
        if e.shape != SPAN:
            continue
        data = e.state if isinstance(e.state, dict) else {}
        kind = e.hook.split(":", 1)[1]
        end = e.time + e.duration if e.duration is not None else e.time
        if notes is not None:
            _note(notes, e, f"a span record: its own {kind} span {e.span_id}" + (
                " (started_at and ended_at)" if e.duration is not None else
                ": no started_at/ended_at pair, so it is unfinished and closed at the session's last event"))
        guard = semantics.guardrail(e.record)
        out.append(Span(id=e.span_id or f"span-{len(out)}", session=e.session, agent=e.agent,
                        name=_span_name(data, kind, semantics.handoff(e.record)), kind=kind,
                        start=e.time, end=end, parent=e.parent_id, error=e.error,
                        unfinished=e.duration is None, tripped=guard is not None and guard.tripped,
                        trace=e.trace_id, record=e.record))
    return out


def _agk_spans(events: list[Event], notes: Notes | None = None) -> list[Span]:
    agk = [e for e in events if e.shape == AGK]
    use_runs = any(e.hook in ("BeforeAgentRun", "AfterAgentRun") for e in agk)
    opening, closing = (("BeforeAgentRun",), ("AfterAgentRun", "AgentError")) if use_runs else (
        ("BeforeEventHandling",), ("AfterEventHandling", "AgentError"))
    open_: dict[tuple[str, str | None], Event] = {}
    out: list[Span] = []
    for e in agk:
        key = (e.agent, e.event_id)
        if e.hook in opening:
            if notes is not None and key in open_:
                _note(notes, open_[key], f"not paired: a later {e.hook} of agent {e.agent!r} with the same "
                      f"event id {e.event_id!r} replaced it", e)
            open_[key] = e
        elif e.hook in closing:
            begun = open_.pop(key, None)
            fallback = False
            if begun is None and e.hook == "AgentError":
                begun = open_.pop(next((k for k in open_ if k[0] == e.agent), key), None)
                fallback = begun is not None
            if notes is not None:
                if begun is None:
                    _note(notes, e, f"no open {' or '.join(opening)} of agent {e.agent!r} with event id "
                          f"{e.event_id!r}: a span that starts and ends here")
                else:
                    how = (f"the agent's open run (event id {begun.event_id!r}: none had {e.event_id!r})"
                           if fallback else f"agent {e.agent!r}, event id {e.event_id!r}")
                    _note(notes, e, f"closes the span opened by {begun.hook}: {how}", begun)
                    _note(notes, begun, f"opens a span closed by {e.hook} ({e.time - begun.time:.3f}s)", e)
            start = begun.time if begun is not None else e.time
            out.append(Span(id=f"{e.agent}/{e.event_id}/{len(out)}", session=e.session, agent=e.agent,
                            name=e.agent, kind="agent", start=start, end=e.time, error=e.error))
    for begun in open_.values():
        _note(notes, begun, f"never closed (no {' or '.join(closing)} of agent {begun.agent!r} with event id "
              f"{begun.event_id!r}): unfinished, closed at the session's last event")
        out.append(Span(id=f"{begun.agent}/{begun.event_id}/{len(out)}", session=begun.session, agent=begun.agent,
                        name=begun.agent, kind="agent", start=begun.time, end=begun.time, unfinished=True))
    if notes is not None:
        ignored = set(("BeforeEventHandling", "AfterEventHandling") if use_runs else ())
        for e in agk:
            if e.hook in ignored:
                _note(notes, e, "not paired: this session has agent-run hooks, so event-handling hooks are "
                      "shown as events only")
            elif e.hook not in opening and e.hook not in closing:
                _note(notes, e, f"not paired: {e.hook} is not used for spans in this session")
    return out


def _koog_key(e: Event, family: str) -> tuple:
    r = e.record
    return (family, e.agent, r.get("nodeName") if family.startswith("Node") else r.get("subgraphName"),
            r.get("toolCallId") or r.get("toolName") if family.startswith("Tool") else None)


def _koog_spans(events: list[Event], notes: Notes | None = None) -> list[Span]:
    open_: dict[tuple, list[Event]] = {}
    out: list[Span] = []
    for e in events:
        if e.shape != KOOG:
            continue
        m = _KOOG_PHASE.match(e.hook)
        if not m:
            _note(notes, e, f"not paired: {e.hook} has no Starting/Completed/Failed phase, so it is a point event")
            continue
        family, phase = m.group(1), m.group(2)
        family = "ToolCall" if family == "Tool" else family  # ToolValidationFailedEvent ends a tool call
        key = _koog_key(e, family)
        if "Start" in phase:
            open_.setdefault(key, []).append(e)
            continue
        stack = open_.get(key)
        begun = stack.pop() if stack else None
        if notes is not None:
            if begun is None:
                _note(notes, e, f"no open {family} Starting event with the same {_koog_key_text(family)}: "
                      "a span that starts and ends here")
            else:
                _note(notes, e, f"closes the {family} span opened by {begun.hook}", begun)
                _note(notes, begun, f"opens the {family} span closed by {e.hook} ({e.time - begun.time:.3f}s)", e)
        out.append(_koog_span(begun or e, e, family, len(out)))
    for stack in open_.values():
        for begun in stack:
            _note(notes, begun, f"never completed (no {family_of(begun)} Completed/Failed event with the same "
                  f"{_koog_key_text(family_of(begun))}): unfinished, closed at the session's last event")
            opened = _KOOG_PHASE.match(begun.hook)
            assert opened is not None  # only events with a phase were put on a stack
            span = _koog_span(begun, begun, opened.group(1), len(out))
            span.unfinished = True
            out.append(span)
    return out


def family_of(e: Event) -> str:
    m = _KOOG_PHASE.match(e.hook)
    family = m.group(1) if m else e.hook
    return "ToolCall" if family == "Tool" else family


def _koog_key_text(family: str) -> str:
    if family.startswith("Node"):
        return "agent and nodeName"
    if family.startswith("Tool"):
        return "agent and toolCallId (or toolName)"
    return "agent"


_KOOG_KINDS = {"Agent": "agent", "LLMCall": "generation", "LLMStreaming": "generation", "ToolCall": "function",
               "Tool": "function", "Node": "node", "Subgraph": "subgraph", "Strategy": "strategy",
               "GraphStrategy": "strategy", "FunctionalStrategy": "strategy"}


def _koog_span(begun: Event, ended: Event, family: str, n: int) -> Span:
    r = begun.record
    kind = _KOOG_KINDS.get(family, family.lower() or "event")
    name = {"agent": begun.agent,
            "generation": model_name(r.get("model")) or model_name(ended.record.get("model")) or "llm call",
            "function": r.get("toolName") or "tool", "node": r.get("nodeName") or "node",
            "subgraph": r.get("subgraphName") or "subgraph",
            "strategy": r.get("strategyName") or "strategy"}.get(kind, family)
    return Span(id=f"koog/{family}/{n}", session=begun.session, agent=begun.agent, name=str(name), kind=kind,
                start=begun.time, end=ended.time, error=ended.error)
