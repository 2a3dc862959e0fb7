"""Tokens, tool calls and model latency: real-shaped records (zerolog, OpenAI Agents SDK spans,
OTel GenAI spans, Koog tool events) through a real `logd run`, read back from /metrics
(checked by Debian's promtool) and `logd status`; the step alone for caps and bad values."""

from __future__ import annotations

import pytest
from test_metrics import METRICS_TCP, get, metrics_url, promtool_check, samples, status
from usage_samples import agents_sdk_spans, genai_spans, koog_llm_call, zerolog_records

from logd.client.tracing import BatchSender, span, trace
from logd.steps.agents import AgentMetrics
from logd.usage import OTHER, UsageMetrics, quantile

from support import agent_records, send_records, wait_for
from trace_samples import koog_run


def test_tokens_tools_and_model_latency_reach_metrics_and_status(daemon, tmp_path):
    d = daemon(extra=METRICS_TCP)
    url = metrics_url(d)
    records = zerolog_records() + agents_sdk_spans() + genai_spans() + koog_run() + koog_llm_call()
    send_records(d.socket_path, records)
    # logd's own tracing client: the generation span carries its enclosing agent
    sender = BatchSender(d.socket_path)
    with (
        trace("support", sender=sender),
        span("triage", kind="agent", sender=sender),
        span("o3-mini", kind="generation", model="o3-mini", sender=sender) as s,
    ):
        s.set(usage={"input_tokens": 812, "output_tokens": 40})
    assert sender.flush()
    sender.close()
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) >= len(records) + 3, what="records in the file")

    code, text = get(url + "/metrics")
    assert code == 200
    promtool_check(text)
    got = samples(text)

    def tokens(agent: str, model: str, direction: str) -> float:
        return got[("logd_agent_tokens_total", (("agent", agent), ("direction", direction), ("model", model)))]

    def tools(agent: str, tool: str, outcome: str) -> float:
        return got[("logd_agent_tool_calls_total", (("agent", agent), ("outcome", outcome), ("tool", tool)))]

    # zerolog: Chat Completions usage names, and a bare total
    assert tokens("planner", "gpt-4o", "input") == 900
    assert tokens("planner", "gpt-4o", "output") == 120
    assert tokens("planner", "gpt-4o", "total") == 300
    assert tools("planner", "web_search", "ok") == 1
    assert tools("planner", "web_search", "error") == 1
    # Agents SDK: generation usage, function spans with and without error, under the agent
    # span that encloses them (exported after them)
    assert tokens("billing", "gpt-4.1", "input") == 1200
    assert tokens("billing", "gpt-4.1", "output") == 80
    assert tools("billing", "lookup_invoice", "error") == 1
    assert tools("billing", "lookup_invoice", "ok") == 1
    # GenAI: the response model names the series; execute_tool error.type is an error
    assert tokens("researcher", "claude-sonnet-4-20250514", "input") == 2000
    assert tokens("researcher", "claude-sonnet-4-20250514", "output") == 500
    assert tools("researcher", "get_weather", "error") == 1
    assert tools("researcher", "get_weather", "ok") == 1
    assert tokens("triage", "o3-mini", "input") == 812  # logd.client.tracing
    assert tokens("triage", "o3-mini", "output") == 40
    # Koog: ToolCallFailedEvent; an LLM call's metaInfo, once for the call (two responses share it)
    assert tools("koog-agent", "weather", "error") == 1
    assert tokens("koog-writer", "gpt-4.1-mini", "input") == 52
    assert tokens("koog-writer", "gpt-4.1-mini", "output") == 19

    # model latency: zerolog latency_ms 0.812 s, generation span 1.5 s, chat span 3 s, Koog pair 0.5 s
    def latency(model: str, suffix: str, le: str | None = None) -> float:
        labels = (("le", le), ("model", model)) if le else (("model", model),)
        return got[(f"logd_model_call_duration_seconds_{suffix}", labels)]

    assert latency("gpt-4o", "count") == 1 and latency("gpt-4o", "sum") == pytest.approx(0.812)
    assert latency("gpt-4o", "bucket", "0.5") == 0 and latency("gpt-4o", "bucket", "1.0") == 1
    assert latency("gpt-4.1", "count") == 1 and latency("gpt-4.1", "sum") == pytest.approx(1.5)
    assert latency("gpt-4o-mini", "count") == 1  # Koog LLMCallStarting -> Completed: 0.5 s
    assert latency("gpt-4o-mini", "sum") == pytest.approx(0.5)
    assert latency("gpt-4.1-mini", "count") == 1  # Koog's model object names the series
    assert latency("gpt-4.1-mini", "sum") == pytest.approx(1.2)
    assert latency("claude-sonnet-4-20250514", "bucket", "2.5") == 0
    assert latency("claude-sonnet-4-20250514", "bucket", "5.0") == 1

    usage = status(d)["usage"]
    assert usage["agents"]["planner"]["tokens"]["gpt-4o"] == {"input": 900, "output": 120, "total": 300}
    assert usage["agents"]["planner"]["tool_calls"]["web_search"] == {"error": 1, "ok": 1}
    assert usage["agents"]["planner"]["last_error"]["message"] == "tool failed: HTTP 429"
    assert usage["models"]["gpt-4.1"]["calls"] == 1
    assert usage["pending_spans"] == 0 and usage["pending_expired"] == 0  # every span found its agent


def test_ordinary_records_count_nothing():
    usage = UsageMetrics(AgentMetrics().label)
    usage([{"level": "info", "message": "started", "agent": "x"},
           {"level": "debug", "message": "", "agent": "x", "tokens": "many"},  # not a number
           {"level": "info", "message": "", "agent": "x", "usage": {"input_tokens": -3}},
           {"level": "info", "message": "", "agent": "x", "latency_ms": 5},  # no model: not a model call
           {"level": "info", "message": "", "agent": "x", "tool": ""},
           {"level": "info", "message": "", "span_data": {"type": "generation", "model": "m"},
            "started_at": "2026-01-01T00:00:02Z", "ended_at": "2026-01-01T00:00:01Z"}])  # ends before it starts
    assert usage.tokens == {} and usage.tool_calls == {} and usage.latency == {} and usage.last_error == {}


def test_tokens_in_and_out_are_input_and_output():
    """Issue 31's agent record names its directions "in" and "out"."""
    usage = UsageMetrics(AgentMetrics().label)
    usage([{"time": "2026-01-01T00:00:00.000000Z", "level": "info", "message": "step", "agent": "planner",
            "seq": 0, "duration_ms": 1899.0, "tokens": {"in": 30947, "out": 2323}, "model": "gpt-4o", "pid": 4000}])
    assert usage.tokens == {("planner", "gpt-4o", "input"): 30947, ("planner", "gpt-4o", "output"): 2323}


def test_model_and_tool_labels_are_capped():
    usage = UsageMetrics(AgentMetrics().label, max_models=2, max_tools=1)
    usage([{"level": "info", "message": "", "agent": "a", "model": m, "tokens": 1} for m in ("m1", "m2", "m3", "m4")])
    usage([{"level": "info", "message": "", "agent": "a", "tool": t} for t in ("t1", "t2", "t3")])
    assert usage.tokens == {("a", "m1", "total"): 1, ("a", "m2", "total"): 1, ("a", OTHER, "total"): 2}
    assert usage.tool_calls == {("a", "t1", "ok"): 1, ("a", OTHER, "ok"): 2}


def test_quantile_interpolates_within_buckets_like_histogram_quantile():
    buckets = (1.0, 2.0, 4.0)
    assert quantile(0.5, [0, 10, 0, 0, 0.0], buckets) == 1.5
    assert quantile(0.95, [0, 0, 0, 3, 0.0], buckets) == 4.0  # all in +Inf: the highest bound
    assert quantile(0.95, [0, 0, 0, 0, 0.0], buckets) is None


def test_live_counts_wait_for_their_agent_and_never_outlive_their_bounds():
    """Spans whose parent never comes are counted with what they say themselves, once they
    waited max_wait (by the injected clock) or max_pending spans wait: late, never lost."""
    from logd.traces.live import LiveTraces
    from logd.traces.shapes import classify

    now = [0.0]
    live = LiveTraces(clock=lambda: now[0], max_pending=3, max_wait=60.0)

    def span(sid: str, parent: str | None, data: dict, **extra: object) -> dict:
        return {"trace_id": "t1", "span_id": sid, "parent_id": parent, "started_at": "2026-11-29T10:00:00Z",
                "ended_at": "2026-11-29T10:00:01Z", "span_data": data, **extra}

    def feed(record: dict) -> list:
        found = classify(record)
        assert found is not None
        return live.feed(record, found)

    call = span("g1", "lost-agent", {"type": "generation", "model": "m", "usage": {"input_tokens": 5}}, agent="a")
    assert feed(call) == [] and live.pending == 1  # waits for the agent span above it
    now[0] = 61.0
    [fact] = feed(span("f1", "other", {"type": "function", "name": "t"}))  # the next arrival expires it
    assert (fact.agent, fact.usage.input) == ("a", 5) and live.pending_expired == 1 and live.pending == 1
    for n in range(4):  # past max_pending the oldest go at once
        feed(span(f"x{n}", "elsewhere", {"type": "custom", "name": "c"}))
    assert live.pending == 3 and live.pending_expired == 3
    # an agent span settles what waited below it: the chat, and the turn between them, whose run total
    # is not counted again
    live = LiveTraces(clock=lambda: now[0])
    waiting = [span("c1", "turn", {"type": "generation", "model": "m", "usage": {"input_tokens": 7}}),
               span("turn", "agent", {"type": "custom", "name": "turn", "data": {"usage": {"input_tokens": 7}}})]
    assert [feed(r) for r in waiting] == [[], []]
    facts = feed(span("agent", None, {"type": "agent", "name": "billing"}))
    assert sorted((f.agent, f.usage.input if f.usage else 0) for f in facts) == [
        ("billing", 0), ("billing", 0), ("billing", 7)]


def test_a_span_sent_twice_is_counted_once():
    """An exporter that retries a batch (its answer was lost) sends the same spans again: the
    views keep one per (trace id, span id), and so do the live counts, waiting or settled."""
    from logd.traces.live import LiveTraces
    from logd.traces.shapes import classify

    live = LiveTraces()

    def span(sid: str, parent: str | None, data: dict) -> dict:
        return {"trace_id": "t1", "span_id": sid, "parent_id": parent, "started_at": "2026-11-29T10:00:00Z",
                "ended_at": "2026-11-29T10:00:01Z", "span_data": data}

    def feed(record: dict) -> list:
        found = classify(record)
        assert found is not None
        return live.feed(dict(record), found)

    call = span("g1", "a1", {"type": "generation", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 2}})
    agent = span("a1", None, {"type": "agent", "name": "billing"})
    assert feed(call) == [] and feed(call) == [] and live.pending == 1  # waiting, sent twice
    facts = feed(agent) + feed(agent) + feed(call)  # settled, then sent again
    assert sorted((f.agent, f.usage.input if f.usage else 0) for f in facts) == [("billing", 0), ("billing", 5)]
    assert live.duplicates == 3
