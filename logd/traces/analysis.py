"""What a session means: the agent flow, per-agent timing, the critical path.

Pure functions over a :class:`~logd.traces.model.Session`; rendering lives in
:mod:`logd.traces.render`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from logd.traces.model import Event, Session, Span
from logd.traces.shapes import AGK

END = "(end)"
_EPS = 1e-6


@dataclass
class FlowStep:
    time: float
    agent: str
    next: str
    hook: str
    event_id: str | None


def flow(session: Session) -> list[FlowStep]:
    """Who handed off to whom, in order.

    AgenticGoKit sessions follow ``agentcli trace`` (cmd/agentcli/cmd/trace.go): one step
    per AfterEventHandling/AfterAgentRun entry, the next agent from ``state.meta.route``,
    then ``agent_result.output_state.meta.route``, then ``target_agent_id``, else (end).
    Other sessions: explicit hand-offs (handoff spans) win; otherwise each agent
    activation hands off to the next one; the last goes to (end).
    """
    agk = _agentcli_flow(session)
    if agk:
        return agk
    handoffs = [e for e in session.events if e.shape != AGK and e.target and (e.source or e.agent)]
    if handoffs:
        steps = [FlowStep(e.time, e.source or e.agent, e.target or END, e.hook, e.event_id) for e in handoffs]
        last = steps[-1]
        tail = [e for e in session.events if e.agent == last.next and e.time >= last.time]
        steps.append(FlowStep(tail[-1].time if tail else last.time, last.next, END,
                              tail[-1].hook if tail else last.hook, tail[-1].event_id if tail else None))
        return steps
    runs = _activations(session)
    return [FlowStep(t, agent, runs[i + 1][1] if i + 1 < len(runs) else END, hook, event_id)
            for i, (t, agent, hook, event_id) in enumerate(runs)]


def _agentcli_flow(session: Session) -> list[FlowStep]:
    """agentcli's flow; empty when no entry names a next agent (then activation order is shown)."""
    steps = []
    for e in session.events:
        if e.shape != AGK or e.record.get("hook") not in ("AfterEventHandling", "AfterAgentRun"):
            continue  # agentcli reads the hook field only (InMemoryTracer's typed entries have none)
        route = (e.meta or {}).get("route") if isinstance(e.meta, dict) else None
        steps.append(FlowStep(e.time, e.agent, str(route) if route else (e.target or END), e.hook, e.event_id))
    return steps if any(s.next != END for s in steps) else []


def _activations(session: Session) -> list[tuple[float, str, str, str | None]]:
    agk = [e for e in session.events if e.shape == AGK]
    runs: list[tuple[float, str, str, str | None]] = []
    if agk:
        closing = ({"AfterAgentRun", "AgentError"} if any(e.hook == "AfterAgentRun" for e in agk)
                   else {"AfterEventHandling", "AgentError"})
        runs += [(e.time, e.agent, e.hook, e.event_id) for e in agk if e.hook in closing]
    else:
        runs += [(s.start, s.agent, f"{s.kind} run", s.id) for s in session.spans if s.kind == "agent"]
    runs.sort(key=lambda r: r[0])
    return runs


def route(steps: list[FlowStep]) -> list[str]:
    """The condensed route as agentcli builds it (buildRouteChain): start at the first agent,
    follow each hop out of the current agent to an agent not yet on the route."""
    if not steps:
        return []
    chain = [steps[0].agent]
    seen = {steps[0].agent}
    for step in steps:
        if step.agent == chain[-1] and step.next != END and step.next not in seen:
            chain.append(step.next)
            seen.add(step.next)
    return chain


@dataclass
class AgentStats:
    agent: str
    count: int
    total: float
    mean: float
    p95: float
    max: float
    errors: int


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def agent_stats(session: Session) -> list[AgentStats]:
    """Per agent: its agent-level runs (all its spans when the session has no agent spans)."""
    spans = [s for s in session.spans if s.kind == "agent"] or session.spans
    by_agent: dict[str, list[Span]] = {}
    for s in spans:
        by_agent.setdefault(s.agent or s.name, []).append(s)
    errors: dict[str, int] = {}
    for e in session.errors:
        errors[e.agent] = errors.get(e.agent, 0) + 1
    out = []
    for agent, runs in by_agent.items():
        d = [s.duration for s in runs]
        out.append(AgentStats(agent, len(d), sum(d), sum(d) / len(d), percentile(d, 95), max(d), errors.get(agent, 0)))
    for agent, n in errors.items():
        if agent not in by_agent:
            out.append(AgentStats(agent, 0, 0.0, 0.0, 0.0, 0.0, n))
    out.sort(key=lambda a: -a.total)
    return out


def slowest(session: Session, n: int = 5) -> list[Span]:
    return sorted(session.spans, key=lambda s: -s.duration)[:n]


def critical_path(session: Session) -> list[tuple[int, Span]]:
    """The chain of spans that decided when the session ended, as (depth, span).

    Among siblings, walk back from the one that ended last to the latest sibling that
    ended before it began (what it waited for), and so on; then descend into each
    chosen span's children the same way.
    """
    ids = {s.id for s in session.spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    container = _Containers(session.spans)
    for s in session.spans:
        parent = s.parent if s.parent in ids and s.parent != s.id else container.of(s)
        if parent is not None:
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    out: list[tuple[int, Span]] = []
    seen: set[str] = set()

    def expand(span: Span, depth: int) -> None:
        if span.id in seen:
            return
        seen.add(span.id)
        out.append((depth, span))
        for child in _chain(children.get(span.id, [])):
            expand(child, depth + 1)

    for span in _chain(roots):
        expand(span, 0)
    return out


class _Containers:
    """For hooks and Koog events, which carry no parent: the shortest span enclosing one
    (the first such in ``spans`` on a tie).

    Spans sorted by start, with the running maximum of their ends, let each look-up scan
    back only while an earlier span could still enclose and be shorter than the best so
    far; a scan over every span for every span took seconds at 10,000 events.
    """

    def __init__(self, spans: list[Span]) -> None:
        self.order = sorted(range(len(spans)), key=lambda i: spans[i].start)
        self.spans = spans
        self.starts = [spans[i].start for i in self.order]
        self.max_end: list[float] = []
        for i in self.order:
            self.max_end.append(max(spans[i].end, self.max_end[-1] if self.max_end else spans[i].end))

    def of(self, span: Span) -> str | None:
        if span.parent:
            return None
        best, best_i = None, -1
        k = bisect.bisect_right(self.starts, span.start + _EPS) - 1
        while k >= 0 and self.max_end[k] >= span.end - _EPS:
            if best is not None and span.end - _EPS - self.starts[k] > best.duration:
                break  # an earlier start can only enclose with a longer span
            i = self.order[k]
            s = self.spans[i]
            if (s is not span and s.end >= span.end - _EPS and s.duration > span.duration
                    and (best is None or s.duration < best.duration or (s.duration == best.duration and i < best_i))):
                best, best_i = s, i
            k -= 1
        return best.id if best is not None else None


def _chain(group: list[Span]) -> list[Span]:
    if not group:
        return []
    # sorted by (end, duration), ties to the earliest in the group (what max() picked), so each
    # step back is one bisect instead of a scan: a 10,000-event session stays well under a second
    order = sorted(range(len(group)), key=lambda i: (group[i].end, group[i].duration, -i))
    ends = [group[i].end for i in order]
    current = group[order[-1]]
    path, taken = [current], {id(current)}
    while True:
        j = bisect.bisect_right(ends, current.start + _EPS) - 1
        while j >= 0 and id(group[order[j]]) in taken:
            j -= 1
        if j < 0:
            break
        current = group[order[j]]
        path.append(current)
        taken.add(id(current))
    return path[::-1]


def errors(session: Session) -> list[Event]:
    return session.errors


@dataclass
class TokenUsage:
    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int


def _tokens(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():  # OTLP JSON writes int64 as strings
        return int(value)
    return None


def token_usage(session: Session) -> list[TokenUsage]:
    """Tokens per agent and model, from spans whose data carries ``usage`` (OpenAI Agents SDK
    generation spans, logd.client spans, OTLP ``gen_ai.usage.*``); most tokens first."""
    agents = {s.id: s.agent for s in session.spans}
    totals: dict[tuple[str, str], TokenUsage] = {}
    for e in session.events:
        data = e.state if isinstance(e.state, dict) else {}
        usage = data.get("usage")
        if not isinstance(usage, dict):
            continue
        used_in = _tokens(usage.get("input_tokens", usage.get("prompt_tokens")))
        used_out = _tokens(usage.get("output_tokens", usage.get("completion_tokens")))
        if used_in is None and used_out is None:
            continue
        agent = agents.get(e.span_id or "") or e.agent or "-"
        model = str(data.get("model") or "-")
        row = totals.setdefault((agent, model), TokenUsage(agent, model, 0, 0, 0))
        row.calls += 1
        row.input_tokens += used_in or 0
        row.output_tokens += used_out or 0
    return sorted(totals.values(), key=lambda t: -(t.input_tokens + t.output_tokens))
