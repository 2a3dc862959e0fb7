"""What a framework recorded of an agent run, and what logd shows of it, as the same facts.

The expected side is computed here from the framework's own record (its in-memory
exporter's OTel spans, or the OpenAI Agents SDK's own span exports), by the attribute
names each producer writes (read from their source; docs/traces.md has the table), with
a parent walk of its own: none of logd's trace code is used for it. The logd side is
read from a real ``logd run``: ``logd list``, ``logd trace --analyze --format json``,
the ``--analyze`` table, the chrome and html formats, and ``/metrics``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_metrics import get, samples

from support import DaemonProcess, read_records, wait_for, write_config

CONFIG = '\n[logging.otlp]\nlisten = "127.0.0.1:0"\n\n[logging.metrics]\nlisten = "127.0.0.1:0"\n'


@dataclass
class Facts:
    """One session's facts: what the views must agree with the framework on."""

    agents: set[str] = field(default_factory=set)
    route: list[str] = field(default_factory=list)
    tools: Counter = field(default_factory=Counter)  # (agent, tool, failed) -> calls
    guardrails: Counter = field(default_factory=Counter)  # (name, tripped) -> checks
    errors: int = 0
    tokens: dict[str, list[int]] = field(default_factory=dict)  # agent -> [input, output]


def add_tokens(facts: Facts, agent: str, n_in: int, n_out: int) -> None:
    row = facts.tokens.setdefault(agent, [0, 0])
    row[0] += n_in
    row[1] += n_out


def route_of(first: str | None, handoffs: Iterable[tuple[str, str]]) -> list[str]:
    """The agents in the order control reached them: the first, then each hand-off's target."""
    out = [first] if first else []
    for source, target in handoffs:
        for agent in (source, target):
            if agent not in out:
                out.append(agent)
    return out


# --- OTel spans (an instrumentation's own InMemorySpanExporter) ---

@dataclass
class OtelRules:
    """How one instrumentation marks what it records (from its source)."""

    is_agent: Callable[[dict, str], str | None]  # (attributes, span name) -> agent name
    is_tool: Callable[[dict, str], str | None]
    is_call: Callable[[dict], tuple[int, int] | None]  # model call -> (input, output) tokens
    handoff: Callable[[Any], tuple[str | None, str] | None] = lambda span: None  # -> (from, to)
    session: Callable[[dict], str | None] = lambda attrs: None


def otel_facts(spans: list[Any], rules: OtelRules) -> dict[str, Facts]:
    """Facts per session, from the spans as the instrumentation finished them."""
    by_id = {s.context.span_id: s for s in spans}

    def attrs(s: Any) -> dict:
        return dict(s.attributes or {})

    def agent_above(s: Any) -> str | None:
        at = s
        while at is not None:
            found = rules.is_agent(attrs(at), at.name)
            if found:
                return found
            at = by_id.get(at.parent.span_id) if at.parent is not None else None
        return None

    sessions: dict[int, str] = {}
    for s in sorted(spans, key=lambda s: s.start_time):
        declared = rules.session(attrs(s))
        if declared and s.context.trace_id not in sessions:
            sessions[s.context.trace_id] = declared
    out: dict[str, Facts] = {}
    handoffs: dict[str, list[tuple[int, tuple[str, str]]]] = {}
    first: dict[str, tuple[int, str]] = {}
    for s in spans:
        session = sessions.get(s.context.trace_id) or format(s.context.trace_id, "032x")
        facts = out.setdefault(session, Facts())
        a = attrs(s)
        failed = s.status.status_code.name == "ERROR"
        facts.errors += failed
        agent = rules.is_agent(a, s.name)
        if agent:
            facts.agents.add(agent)
            if session not in first or s.start_time < first[session][0]:
                first[session] = (s.start_time, agent)
        tool = rules.is_tool(a, s.name)
        if tool:
            facts.tools[(agent_above(s), tool, failed)] += 1
        call = rules.is_call(a)
        if call:
            add_tokens(facts, agent_above(s) or "-", *call)
        moved = rules.handoff(s)
        if moved:
            handoffs.setdefault(session, []).append((s.start_time, (moved[0] or agent_above(s) or "?", moved[1])))
    for session, facts in out.items():
        facts.route = route_of(first.get(session, (0, None))[1],
                               (h for _, h in sorted(handoffs.get(session, []), key=lambda x: x[0])))
    return out


# --- logd's side ---

class Logd:
    """A real ``logd run`` (in ``workdir``) with the OTLP receiver and /metrics, and its views."""

    def __init__(self, workdir: Path) -> None:
        self.sock = Path(tempfile.mkdtemp(prefix="logd-f-", dir="/tmp"))
        config = write_config(workdir, self.sock / "logd.sock", 'file = "agent.log"', CONFIG)
        self.d = DaemonProcess(config, self.sock / "logd.sock", workdir).start()
        self.workdir = workdir
        self.log = workdir / "agent.log"
        self.otlp = wait_for(lambda: next((r["url"] for r in read_records(self.log)
                                          if r.get("event") == "otlp" and "url" in r), None), what="the receiver")
        self.metrics = self.status()["metrics"]

    def stop(self) -> None:
        self.d.kill()
        shutil.rmtree(self.sock, ignore_errors=True)

    def run(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "logd", *args, "--config", str(self.d.config)],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
        assert out.returncode == 0, out.stderr
        return out.stdout

    def status(self) -> dict:
        return json.loads(self.run("status", "--json"))

    def wait_stored(self, n: int) -> None:
        wait_for(lambda: self.status()["traces"]["stored"] >= n, what=f"{n} trace records stored")

    def listing(self) -> dict[str, dict]:
        return {row["session"]: row for row in json.loads(self.run("list", "--format", "json"))}

    def trace(self, session: str) -> dict:
        return json.loads(self.run("trace", session, "--analyze", "--format", "json"))

    def facts(self, session: str) -> Facts:
        """The session's facts as ``logd trace --analyze --format json`` gives them, checked
        against the table, the chrome and html formats and ``logd list`` on the way."""
        shown = self.trace(session)
        analysis = shown["analysis"]
        facts = Facts(agents={s["name"] for s in shown["spans"] if s["kind"] == "agent"}, route=shown["route"],
                      errors=len(analysis["errors"]))
        for call in analysis["tool_calls"]:
            facts.tools[(call["agent"], call["tool"], call["failed"])] += 1
        for check in analysis["guardrails"]:
            facts.guardrails[(check["name"], check["tripped"])] += 1
        for row in analysis["tokens"]:
            add_tokens(facts, row["agent"], row["input"], row["output"])
        listed = self.listing()[session]
        assert set(listed["agents"]) == facts.agents and listed["errors"] == facts.errors
        assert listed["events"] == len(shown["events"])
        table = self.run("trace", session, "--analyze")
        for row in analysis["tokens"]:
            assert re.search(rf"{re.escape(row['agent'][:20])}\s+.*\s{row['input']}\s+{row['output']}\s", table), row
        tripped = sum(n for (_, hit), n in facts.guardrails.items() if hit)
        if facts.guardrails:
            assert f"Guardrails: {sum(facts.guardrails.values())} checked, {tripped} tripped" in table
        assert (f"Errors ({facts.errors}):" if facts.errors else "Errors: none") in table
        chrome = json.loads(self.run("trace", session, "--format", "chrome"))
        assert sum(1 for e in chrome["traceEvents"] if e.get("ph") == "X") == len(shown["spans"])
        assert sum(1 for e in chrome["traceEvents"] if e.get("args", {}).get("tripped")) == tripped
        page = self.run("trace", session, "--format", "html")
        data = json.loads(re.search(r'<script type="application/json" id="logd-data">(.*?)</script>', page, re.S)
                          .group(1))
        assert sorted(map(tuple, ([t[0], t[3], t[4]] for t in data["tokens"]))) == sorted(
            (t["agent"], t["input"], t["output"]) for t in analysis["tokens"])
        return facts

    def metric_facts(self) -> Facts:
        """Tokens, tool calls and failures per agent from /metrics (all sessions together)."""
        code, text = get(self.metrics + "/metrics")
        assert code == 200
        facts = Facts()
        for (name, labels), value in samples(text).items():
            label = dict(labels)
            if name == "logd_agent_tokens_total":
                add_tokens(facts, label["agent"], *((int(value), 0) if label["direction"] == "input"
                                                    else (0, int(value))))
            elif name == "logd_agent_tool_calls_total":
                facts.tools[(label["agent"], label["tool"], label["outcome"] == "error")] += int(value)
            elif name == "logd_agent_trace_errors_total":
                facts.errors += int(value)
        return facts


def merged(per_session: Iterable[Facts]) -> Facts:
    """Several sessions' facts as /metrics sums them (per agent, across sessions)."""
    out = Facts()
    for facts in per_session:
        out.agents |= facts.agents
        out.tools += facts.tools
        out.guardrails += facts.guardrails
        out.errors += facts.errors
        for agent, (n_in, n_out) in facts.tokens.items():
            add_tokens(out, agent, n_in, n_out)
    return out


def assert_metrics_match(got: Facts, expected: Facts) -> None:
    assert got.tokens == expected.tokens
    assert got.tools == expected.tools
    assert got.errors == expected.errors
