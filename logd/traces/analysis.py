"""What a session means: the agent flow, per-agent timing, the critical path.

Pure functions over a :class:`~logd.traces.model.Session`; rendering lives in
:mod:`logd.traces.render`.
"""

from __future__ import annotations

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

    Explicit hand-offs (``target_agent_id``, handoff spans) win; otherwise each agent
    activation hands off to the next one, as agentcli shows it; the last goes to (end).
    """
    handoffs = [e for e in session.events if e.target and (e.source or e.agent)]
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
    """The agents in hand-off order with repeats in a row collapsed: planner -> writer -> critic."""
    out: list[str] = []
    for step in steps:
        for agent in (step.agent, step.next):
            if agent != END and (not out or out[-1] != agent):
                out.append(agent)
    return out


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
    for s in session.spans:
        parent = s.parent if s.parent in ids and s.parent != s.id else _container(s, session.spans)
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


def _container(span: Span, spans: list[Span]) -> str | None:
    """For hooks and Koog events, which carry no parent: the shortest span enclosing this one."""
    if span.parent:
        return None
    best: Span | None = None
    for s in spans:
        if (s is not span and s.start <= span.start + _EPS and s.end >= span.end - _EPS
                and s.duration > span.duration and (best is None or s.duration < best.duration)):
            best = s
    return best.id if best is not None else None


def _chain(group: list[Span]) -> list[Span]:
    if not group:
        return []
    current = max(group, key=lambda s: (s.end, s.duration))
    path = [current]
    while True:
        before = [s for s in group if s.end <= current.start + _EPS and s is not current and s not in path]
        if not before:
            break
        current = max(before, key=lambda s: (s.end, s.duration))
        path.append(current)
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
