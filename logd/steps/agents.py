"""The first step: what the records say about their agents (``logd_agent_*`` in ``/metrics``,
``agents`` in ``logd status``).

:class:`AgentMetrics` counts records by agent and level and collects agent run durations
(``duration_ms`` fields, AgenticGoKit ``BeforeAgentRun``/``AfterAgentRun`` hook pairs,
agent spans). It also holds the counts the other steps make (sampled, rate-limited,
redacted) and the agents' label cap, so they survive reloads: one instance lives as long
as the daemon (:meth:`logd.spec.Context.keep`). On the compiled path it counts through
:meth:`AgentMetrics.add_tally` what its :class:`~logd.spec.CountByLevel` role asked for.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily

from logd.isolation import StepFailures
from logd.levels import ERROR_LEVELS, LEVELS
from logd.metrics import MetricsSettings, histogram
from logd.record import MAX_KEY_CHARS, Record, bounded_key
from logd.spec import STEP, Context, CountByLevel, PairsRuns, ReadsRecords, Spec
from logd.timestamps import epoch_seconds

OTHER_AGENTS = "_other"  # label for agents beyond max_agents: keeps the number of series bounded
NO_AGENT = "unknown"
# agent runs take from milliseconds (a cached tool call) to minutes (a long LLM chain)
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_MAX_OPEN_RUNS = 10_000  # BeforeAgentRun hooks waiting for their AfterAgentRun
RUN_START, RUN_END = "BeforeAgentRun", "AfterAgentRun"  # AgenticGoKit's run hooks


_epoch = epoch_seconds


def _name(agent: object) -> str:
    """The name an agent value is labelled by: bounded, as a label and a key of every per-agent
    table (issue 18)."""
    name = agent if agent.__class__ is str else (NO_AGENT if agent is None else str(agent))
    return bounded_key(name) if len(name) > MAX_KEY_CHARS else name


class AgentMetrics:
    """Pipeline step (first, before any filter): what the records say about their agents.

    One instance lives as long as the daemon, so counters never go back on reload.
    """

    TRACE_KEYS = frozenset({"hook", "span_data"})  # a record with one is looked at further (run hooks, agent spans)

    def __init__(self, max_agents: int = 500, buckets: Iterable[float] = DURATION_BUCKETS) -> None:
        self.max_agents = max_agents
        self.buckets = tuple(buckets)
        self.records: dict[tuple[str, str], int] = {}  # (agent, level) -> records received
        # agent -> [count per bucket (not cumulative; the last is +Inf)..., sum of seconds]
        self.durations: dict[str, list[float]] = {}
        self.sampled: dict[str, int] = {}  # level -> records sampled out (sampling.Sampler)
        self.rate_limited: dict[str, int] = {}  # agent -> records suppressed (sampling.RateLimiter)
        self.redacted: dict[str, int] = {}  # rule ("key", "pattern") -> values redacted
        self._labels: dict[str, str] = {}
        self._open_runs: dict[tuple[str, str], float] = {}

    def label(self, agent: object) -> str:
        """The agent's label value: its name, until ``max_agents`` names are known."""
        name = _name(agent)
        known = self._labels.get(name)
        if known is None:
            known = name if len(self._labels) < self.max_agents else OTHER_AGENTS
            if known is not OTHER_AGENTS:
                self._labels[name] = known
        return known

    def __call__(self, records: list[Record]) -> list[Record]:
        # on every record: kept to local names, one tuple and a few dict operations
        counts, labels, label = self.records, self._labels, self.label
        durations, buckets = self.durations, self.buckets
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                agent = record.get("agent")
                # trace entries name their agent elsewhere (agent_id): most records here have none
                name = labels.get(agent) if agent.__class__ is str else labels.get(NO_AGENT) if agent is None else None
                if name is None:
                    name = label(agent)
                key = (name, record["level"])
                counts[key] = counts.get(key, 0) + 1
                ms = record.get("duration_ms")
                if ms is not None:
                    if (ms.__class__ is int or ms.__class__ is float) and ms >= 0:
                        row = durations.get(name)
                        if row is None:
                            row = durations[name] = [0] * (len(buckets) + 1) + [0.0]
                        seconds = ms / 1000
                        row[bisect_left(buckets, seconds)] += 1
                        row[-1] += seconds
                elif "hook" in record or "span_data" in record:
                    hook = record.get("hook")
                    if hook in (RUN_START, RUN_END):  # half of a session's hooks
                        self._run_hook(hook, record.get("session_id"), record.get("agent_id") or record.get("agent"),
                                       record.get("time"))
                    elif "span_data" in record:
                        self._agent_span(record)
            except Exception as exc:  # isolation (issue 18): counted once, flagged by the pipeline
                failed.append((record, exc))
        if failed:
            raise StepFailures(records, failed)
        return records

    def add_tally(self, rows: list[list[Any]]) -> None:
        """Counts the hot path (logd/hotpath.py) made per agent, in the order agents first
        appeared: ``[agent, records per level (rank order), per duration bucket, seconds]``,
        as :meth:`__call__` counts them record by record (the seconds are summed here, in
        order, so the float sum is the same)."""
        counts, durations = self.records, self.durations
        for agent, per_level, buckets, seconds in rows:
            name = self.label(agent)
            for level, n in zip(LEVELS, per_level, strict=True):
                if n:
                    key = (name, level)
                    counts[key] = counts.get(key, 0) + n
            if seconds:
                row = durations.get(name)
                if row is None:
                    row = durations[name] = [0] * (len(self.buckets) + 1) + [0.0]
                for i, n in enumerate(buckets):
                    row[i] += n
                total = row[-1]
                for s in seconds:
                    total += s
                row[-1] = total

    def observe_duration(self, agent: str, seconds: float) -> None:
        row = self.durations.get(agent)
        if row is None:
            row = self.durations[agent] = [0] * (len(self.buckets) + 1) + [0.0]
        row[bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def add_runs(self, runs: list[tuple[str, str, Any, Any, str]]) -> None:
        """The run hooks of quiet trace entries (:class:`~logd.spec.PairsRuns`), in order:
        ``(hook, session, agent_id, agent, time)``, paired as :meth:`__call__` pairs them."""
        for hook, session, agent_id, agent, time in runs:
            self._run_hook(hook, session, agent_id or agent, time)

    def fits(self, agents: Iterable[object]) -> bool:
        """Whether labelling ``agents`` in any order gives each the label it would get in order:
        each is known, or all the new ones still get their own."""
        new = {_name(agent) for agent in agents} - self._labels.keys()
        return len(self._labels) + len(new) <= self.max_agents

    def _run_hook(self, hook: str, session: object, agent: object, time: object) -> None:
        """Run durations from AgenticGoKit's BeforeAgentRun/AfterAgentRun pairs."""
        # the pair's key, bounded: most ids are short strings, kept as they are
        key = (session if session.__class__ is str and len(session) <= MAX_KEY_CHARS else bounded_key(str(session)),
               agent if agent.__class__ is str and len(agent) <= MAX_KEY_CHARS else bounded_key(str(agent)))
        if hook == RUN_START:
            if len(self._open_runs) >= _MAX_OPEN_RUNS:
                self._open_runs.clear()  # runs that never ended: forget rather than grow
            started = _epoch(time)
            if started is not None:
                self._open_runs[key] = started
        else:
            started = self._open_runs.pop(key, None)
            if started is not None:
                ended = _epoch(time)
                if ended is not None and ended >= started:
                    self.observe_duration(self.label(agent), ended - started)

    def _agent_span(self, record: Record) -> None:
        """Run durations from agent spans."""
        data = record.get("span_data")
        if isinstance(data, dict) and data.get("type") == "agent":
            start, end = _epoch(record.get("started_at")), _epoch(record.get("ended_at"))
            if start is not None and end is not None and end >= start:
                agent = data.get("name") if isinstance(data.get("name"), str) else record.get("agent")
                self.observe_duration(self.label(agent), end - start)


def agents_of(ctx: Context) -> AgentMetrics:
    """The daemon's one :class:`AgentMetrics` (made at the first build; kept over reloads)."""
    agents = ctx.keep("agents", AgentMetrics)
    agents.max_agents = ctx.config.of(MetricsSettings).max_agents
    return agents


def _figures(agents: AgentMetrics) -> dict[str, Any]:
    per_agent: dict[str, dict[str, int]] = {}
    for (agent, level), n in agents.records.items():
        per_agent.setdefault(agent, {})[level] = n
    return {"sampled": dict(agents.sampled), "rate_limited": dict(agents.rate_limited),
            "redacted": dict(agents.redacted), "agents": per_agent,
            "durations": {agent: list(row) for agent, row in agents.durations.items()},
            "duration_buckets": list(agents.buckets)}


def _families(s: dict[str, Any]) -> Iterable[Any]:
    sampled = CounterMetricFamily("logd_records_sampled", "Records sampled out, by level", labels=["level"])
    for level, n in sorted(s["sampled"].items()):
        sampled.add_metric([level], n)
    limited = CounterMetricFamily("logd_records_rate_limited", "Records suppressed by the per-agent rate limit",
                                  labels=["agent"])
    for agent, n in sorted(s["rate_limited"].items()):
        limited.add_metric([agent], n)
    redacted = CounterMetricFamily("logd_redactions", "Values redacted, by rule", labels=["rule"])
    for rule in ("key", "pattern"):
        redacted.add_metric([rule], s["redacted"].get(rule, 0))
    yield from (sampled, limited, redacted)

    by_level = CounterMetricFamily("logd_agent_records", "Records received, by agent and level",
                                   labels=["agent", "level"])
    agent_errors = CounterMetricFamily("logd_agent_errors", "Records at error level or above, by agent",
                                       labels=["agent"])
    for agent, levels in sorted(s["agents"].items()):
        for level, n in sorted(levels.items()):
            by_level.add_metric([agent, level], n)
        agent_errors.add_metric([agent], sum(levels.get(level, 0) for level in ERROR_LEVELS))
    yield from (by_level, agent_errors)

    yield histogram("logd_agent_run_duration_seconds",
                    "Agent run durations (duration_ms fields, agent run hooks, agent spans)", "agent",
                    s["durations"], s["duration_buckets"])


def _view(s: dict[str, Any], view: dict[str, Any]) -> None:
    """``agents`` as ``logd status`` shows them: records by level, errors, runs and their mean."""
    view.pop("durations", None)
    view.pop("duration_buckets", None)
    view["agents"] = {}
    # an agent that only ran (AgenticGoKit's entries name it in agent_id, not agent) is shown too
    for agent in sorted(s["agents"].keys() | s["durations"].keys()):
        levels = s["agents"].get(agent, {})
        entry: dict[str, Any] = {"records": dict(sorted(levels.items())),
                                 "errors": sum(levels.get(level, 0) for level in ERROR_LEVELS)}
        row = s["durations"].get(agent)
        if row:
            count = int(sum(row[:-1]))
            entry["runs"] = count
            entry["run_seconds_mean"] = round(row[-1] / count, 3) if count else 0
        if agent in s["rate_limited"]:
            entry["rate_limited"] = s["rate_limited"][agent]
        view["agents"][agent] = entry


def _hot(agents: AgentMetrics) -> tuple[CountByLevel, ReadsRecords, PairsRuns]:
    # the trace records it reads (run durations) it only counts; quiet entries' run hooks it pairs
    return (CountByLevel("agent", agents.add_tally, "duration_ms", 1000.0, agents.buckets), ReadsRecords(),
            PairsRuns((RUN_START, RUN_END), ("agent_id", "agent"), agents.add_runs, agents.fits))


SPEC = Spec(STEP, "agents", lambda settings, ctx: agents_of(ctx), reads=AgentMetrics.TRACE_KEYS, hot=_hot,
            figures=_figures, families=_families, view=_view)
