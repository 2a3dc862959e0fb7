"""What a session means: the agent flow, per-agent timing, the critical path.

Pure functions over a :class:`~logd.traces.model.Session`; rendering lives in
:mod:`logd.traces.render`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from logd.traces.model import Event, Session, Span
from logd.traces.semantics import AGK_AFTER, agk_next
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
    then ``agent_result.output_state.meta.route``, then ``target_agent_id``, else (end);
    an entry without an agent (AgenticGoKit leaves ``agent_id`` out when the runner had
    none) takes the agent that ran its event, or is no step.
    Other sessions: their hand-offs (:func:`semantics.handoff`), then the last agent
    handed to ends; with no hand-off at all, each agent run ends where it is (nothing is
    invented: a later run of another agent is not a hand-off to it).
    """
    if any(e.shape == AGK for e in session.events):
        return _agentcli_flow(session)
    handoffs = [e for e in session.events if e.target and (e.source or e.agent)]
    if handoffs:
        steps = [FlowStep(e.time, e.source or e.agent, e.target or END, e.hook, e.span_id or e.event_id)
                 for e in handoffs]
        last = steps[-1]
        tail = [e for e in session.events if e.agent == last.next and e.time >= last.time]
        steps.append(FlowStep(tail[-1].time if tail else last.time, last.next, END,
                              tail[-1].hook if tail else last.hook, tail[-1].event_id if tail else None))
        return steps
    runs = sorted((s for s in session.spans if s.kind == "agent"), key=lambda s: s.start)
    return [FlowStep(s.start, s.agent or s.name, END, f"{s.kind} run", s.id) for s in runs]


def _agentcli_flow(session: Session) -> list[FlowStep]:
    """agentcli's flow (displayAgentFlow): After* entries, their next agent or (end)."""
    ran = {e.event_id: e.agent for e in session.events
           if e.shape == AGK and e.agent and e.hook in ("BeforeAgentRun", "AfterAgentRun", "AgentError")}
    steps = []
    for e in session.events:
        if e.shape != AGK or e.record.get("hook") not in AGK_AFTER:
            continue  # agentcli reads the hook field only (InMemoryTracer's typed entries have none)
        agent = e.agent or ran.get(e.event_id, "")
        if not agent:
            continue
        steps.append(FlowStep(e.time, agent, agk_next(e.record) or END, e.hook, e.event_id))
    return steps


def route(steps: list[FlowStep]) -> list[str]:
    """The condensed route: the first agent, then the agents of each hand-off in order, never
    repeated. AgenticGoKit sessions get agentcli's buildRouteChain; elsewhere a triage that
    hands to billing, then to tech, keeps both: triage → billing → tech. An agent run without
    a hand-off to it (a sub-agent called from a tool) is not on the route."""
    if not steps:
        return []
    chain = [steps[0].agent]
    seen = {steps[0].agent}
    if all(step.hook in AGK_AFTER for step in steps):  # agentcli's own chain for its own sessions
        for step in steps:
            if step.agent == chain[-1] and step.next != END and step.next not in seen:
                chain.append(step.next)
                seen.add(step.next)
        return chain
    for step in steps:
        if step.next == END:
            continue  # a run that ends is no hand-off: an agent reached otherwise is not on the route
        for agent in (step.agent, step.next):
            if agent not in seen:
                chain.append(agent)
                seen.add(agent)
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
