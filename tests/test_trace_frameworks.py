"""Each framework's agent run through a real ``logd run``: the sessions, agents, route, tool
calls, guardrail trips, errors and tokens logd shows (``logd list``, ``logd trace --analyze``
as JSON and as a table, chrome, html) and counts (``/metrics``) are what the framework itself
recorded, collected in the same test with its own in-memory exporter or processor
(tests/trace_facts.py). Fake models only, no network.

Real packages: openai-agents (traced by logd's own processor, by OpenInference's and by
OpenLLMetry's instrumentations), pydantic-ai-slim, strands-agents (in a subprocess: it
traces through the global OTel tracer provider), opentelemetry-sdk (SimpleSpanProcessor
against BatchSpanProcessor). AgenticGoKit and Koog: files built from their source
(tests/framework_samples.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import agents
import pytest
from agents_sdk_run import Collect, sdk_facts, support_run
from framework_samples import agk_entries, koog_events
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from otel_support import pydantic_ai_shop
from test_metrics import get, samples
from trace_facts import Facts, Logd, OtelRules, add_tokens, assert_metrics_match, merged, otel_facts

from logd.client import OpenAITracingProcessor

from support import read_records, send_records


def otel_provider(logd: Logd, service: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    """The framework's own record (InMemorySpanExporter) and logd (OTLP/HTTP), both fed by
    SimpleSpanProcessor: each span is exported as it ends, children before parents."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=logd.otlp + "/v1/traces")))
    return provider, memory


def check(logd: Logd, expected: dict[str, Facts], route: dict[str, list[str]] | None = None) -> None:
    """Every view of every session, and /metrics, against the framework's own facts."""
    assert sorted(logd.listing()) == sorted(expected)
    for session, facts in expected.items():
        assert logd.facts(session) == facts, session
        if route is not None:
            assert facts.route == route[session]
    assert_metrics_match(logd.metric_facts(), merged(expected.values()))


# --- OpenAI Agents SDK, three ways ---

def test_openai_agents_sdk_through_logds_processor(start_logd, tmp_path):
    logd = start_logd(tmp_path)
    collect = Collect()
    processor = OpenAITracingProcessor(logd.d.socket_path)
    agents.set_trace_processors([collect, processor])
    try:
        usages = asyncio.run(support_run(group_id="conv-sdk"))
        processor.force_flush()
    finally:
        agents.set_trace_processors([])
    expected = sdk_facts(collect.items)
    logd.wait_stored(len(collect.items))
    check(logd, expected, {"conv-sdk": ["triage", "billing", "tech"]})
    facts = expected["conv-sdk"]
    assert facts.guardrails == Counter({("no_abuse", False): 2, ("no_abuse", True): 1}) and facts.errors == 2
    # the SDK's own run totals (its task and turn spans repeat them) are the calls' sum, counted once
    assert sum(row[0] for row in facts.tokens.values()) == sum(u.input_tokens for u in usages)
    # the log's span records name their agent and say what they were (logd query --agent)
    spans = [r for r in read_records(tmp_path / "agent.log") if r.get("object") == "trace.span"]
    refund = next(r for r in spans if r["span_data"].get("name") == "refund")
    assert refund["agent"] == "billing" and refund["message"].startswith("function refund failed: Error running tool")
    queried = logd.run("query", "--agent", "billing")
    assert sum(1 for line in queried.splitlines() if '"trace.span"' in line) == \
        sum(1 for r in spans if r.get("agent") == "billing")
    status = logd.status()["usage"]["agents"]
    assert status["billing"]["last_error"]["message"].startswith("Error running tool (non-fatal) {")
    assert status["triage"]["last_error"]["message"].startswith("Guardrail tripwire triggered {")


OPENINFERENCE = OtelRules(
    is_agent=lambda a, name: a.get("agent.name") if a.get("openinference.span.kind") == "AGENT" else None,
    is_tool=lambda a, name: a.get("tool.name") if a.get("openinference.span.kind") == "TOOL" else None,
    is_call=lambda a: (a.get("llm.token_count.prompt", 0), a.get("llm.token_count.completion", 0))
    if a.get("openinference.span.kind") == "LLM" else None,
    handoff=lambda s: (s.attributes.get("input.value"), s.attributes["output.value"])
    if s.attributes.get("openinference.span.kind") == "TOOL" and s.name.startswith("handoff to ") else None,
    session=lambda a: a.get("session.id"))


def test_openinference_openai_agents_instrumentation(start_logd, tmp_path):
    from openinference.instrumentation import using_session
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    logd = start_logd(tmp_path)
    provider, memory = otel_provider(logd, "support")
    agents.set_trace_processors([])
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with using_session("conv-oi"):
            asyncio.run(support_run())
    finally:
        instrumentor.uninstrument()
        agents.set_trace_processors([])
    provider.shutdown()
    spans = memory.get_finished_spans()
    expected = otel_facts(spans, OPENINFERENCE)
    guardrails = Counter((s.name, False) for s in spans if s.attributes.get("openinference.span.kind") == "GUARDRAIL")
    expected["conv-oi"].guardrails = guardrails  # exported without the SDK's triggered flag
    logd.wait_stored(len(spans))
    check(logd, expected, {"conv-oi": ["triage", "billing", "tech"]})
    # the workflow root (AGENT, named after the workflow) is no agent; hand-offs are no tool calls
    assert expected["conv-oi"].agents == {"triage", "billing", "tech"}
    assert not any(tool.startswith("handoff") for _, tool, _ in logd.metric_facts().tools)


OPENLLMETRY = OtelRules(
    is_agent=lambda a, name: a.get("gen_ai.agent.name") if a.get("gen_ai.operation.name") == "invoke_agent" else None,
    is_tool=lambda a, name: a.get("gen_ai.tool.name") if a.get("gen_ai.operation.name") == "execute_tool" else None,
    is_call=lambda a: (a.get("gen_ai.usage.input_tokens", 0), a.get("gen_ai.usage.output_tokens", 0))
    if a.get("gen_ai.operation.name") == "chat" and "gen_ai.usage.input_tokens" in a else None,
    handoff=lambda s: (s.attributes.get("gen_ai.handoff.from_agent"), s.attributes["gen_ai.handoff.to_agent"])
    if s.attributes.get("gen_ai.operation.name") == "handoff" and "gen_ai.handoff.to_agent" in s.attributes else None)


def test_openllmetry_openai_agents_instrumentation(start_logd, tmp_path):
    from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    logd = start_logd(tmp_path)
    provider, memory = otel_provider(logd, "support")
    agents.set_trace_processors([])
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        asyncio.run(support_run())
    finally:
        instrumentor.uninstrument()
        agents.set_trace_processors([])
    provider.shutdown()
    spans = memory.get_finished_spans()
    expected = otel_facts(spans, OPENLLMETRY)  # no conversation id: one session per trace
    logd.wait_stored(len(spans))
    check(logd, expected)
    # opentelemetry-instrumentation-openai-agents 0.62 reads a hand-off's target when the SDK
    # starts the span, before the SDK sets it: its spans name none ("triage → unknown.handoff"),
    # and its chat spans carry no usage for the SDK's generation spans; logd shows what it recorded
    assert sorted(f.route for f in expected.values()) == [["triage"], ["triage"], ["triage"]]
    assert all(not f.tokens for f in expected.values())
    handoffs = [s for session in expected for s in logd.trace(session)["spans"] if s["kind"] == "handoff"]
    assert len(handoffs) == 2  # gen_ai.operation.name=handoff is a hand-off span, not a custom one


# --- Pydantic AI ---

PYDANTIC_AI = OtelRules(
    is_agent=lambda a, name: a.get("gen_ai.agent.name") if a.get("gen_ai.operation.name") == "invoke_agent" else None,
    is_tool=lambda a, name: a.get("gen_ai.tool.name") if a.get("gen_ai.operation.name") == "execute_tool" else None,
    is_call=lambda a: (a.get("gen_ai.usage.input_tokens", 0), a.get("gen_ai.usage.output_tokens", 0))
    if a.get("gen_ai.operation.name") == "chat" else None,
    session=lambda a: a.get("gen_ai.conversation.id") or None)


def test_pydantic_ai_instrumentation(start_logd, tmp_path):
    logd = start_logd(tmp_path)
    provider, memory = otel_provider(logd, "shop")
    triage = pydantic_ai_shop(provider)

    result = triage.run_sync("I want a refund")
    provider.shutdown()
    spans = memory.get_finished_spans()
    expected = otel_facts(spans, PYDANTIC_AI)
    [conversation] = expected  # the outer run's: billing's run is inside it
    logd.wait_stored(len(spans))
    check(logd, expected, {conversation: ["triage"]})  # a sub-agent called from a tool is no hand-off
    assert expected[conversation].agents == {"triage", "billing"}
    # the agent spans carry their run's total on top of each chat span's: counted once
    assert expected[conversation].tokens["triage"] == [result.usage.input_tokens, result.usage.output_tokens]


# --- Strands ---

STRANDS_RUN = textwrap.dedent('''
    import json, os, sys
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from strands import Agent, tool
    from strands.models import Model
    from strands.multiagent import Swarm
    from strands.telemetry import tracer as strands_tracer

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "strands-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1])))
    trace.set_tracer_provider(provider)  # Strands traces through the global provider (telemetry/tracer.py)

    class Scripted(Model):
        """Streams its answers as a Strands model provider does (types/streaming.py), with the
        call's usage in the metadata event."""
        def __init__(self, turns): self.turns, self.n = list(turns), 0
        def get_config(self): return {}
        def update_config(self, **kw): pass
        async def structured_output(self, *a, **kw):
            if False: yield
        async def stream(self, messages, tool_specs=None, system_prompt=None, **kw):
            turn = self.turns.pop(0)
            self.n += 1
            yield {"messageStart": {"role": "assistant"}}
            if "tool" in turn:
                yield {"contentBlockStart": {"start": {"toolUse": {"name": turn["tool"], "toolUseId": f"t{self.n}"}}}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(turn["input"])}}}}
                yield {"contentBlockStop": {}}
                yield {"messageStop": {"stopReason": "tool_use"}}
            else:
                yield {"contentBlockStart": {"start": {}}}
                yield {"contentBlockDelta": {"delta": {"text": turn["say"]}}}
                yield {"contentBlockStop": {}}
                yield {"messageStop": {"stopReason": "end_turn"}}
            yield {"metadata": {"usage": {"inputTokens": 100 * self.n, "outputTokens": 10 * self.n,
                                          "totalTokens": 110 * self.n}, "metrics": {"latencyMs": 5}}}

    @tool
    def lookup_order(order: int) -> str:
        """Look an order up."""
        return "shipped"

    @tool
    def refund(order: int) -> str:
        """Refund an order."""
        raise RuntimeError("payment gateway down")

    agent = Agent(name="support", model=Scripted([{"tool": "lookup_order", "input": {"order": 42}},
                                                 {"tool": "refund", "input": {"order": 42}},
                                                 {"say": "the refund failed"}]),
                  tools=[lookup_order, refund], trace_attributes={"session.id": "conv-strands"},
                  callback_handler=None)
    result = agent("refund order 42")
    usage = result.metrics.accumulated_usage

    def to(agent, why):
        return {"tool": "handoff_to_agent", "input": {"agent_name": agent, "message": why}}

    def swarm_run():
        """A Swarm (multiagent/swarm.py): triage hands to an agent the swarm lacks (the tool
        fails), then to billing; billing's refund fails and it hands to tech, tech back to
        triage, which closes. Returns the swarm's own record of who ran, in order."""
        triage = Agent(name="triage", model=Scripted([to("refunds", "refund"), to("billing", "refund"),
                                                      {"say": "billing has it"}, {"say": "closed"}]),
                       callback_handler=None)
        billing = Agent(name="billing", model=Scripted([{"tool": "refund", "input": {"order": 42}},
                                                        to("tech", "gateway down"), {"say": "tech has it"}]),
                        tools=[refund], callback_handler=None)
        tech = Agent(name="tech", model=Scripted([{"tool": "lookup_order", "input": {"order": 42}},
                                                  to("triage", "gateway up"), {"say": "triage has it"}]),
                     tools=[lookup_order], callback_handler=None)
        ran = Swarm([triage, billing, tech], trace_attributes={"session.id": "conv-swarm"})("refund order 42")
        return [node.node_id for node in ran.node_history]

    histories = [swarm_run()]
    # the conversation's next request under the latest GenAI conventions (the call's arguments in
    # gen_ai.tool.call.arguments): Strands reads the opt-in when its tracer is made (get_tracer)
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    strands_tracer._tracer_instance = None
    histories.append(swarm_run())
    provider.shutdown()
    print(json.dumps({"usage": [usage["inputTokens"], usage["outputTokens"]], "swarm": histories,
                      "spans": [json.loads(s.to_json()) for s in memory.get_finished_spans()]}))
''')


def _readable(span: dict) -> Any:
    """A span of ReadableSpan.to_json() with what otel_facts reads of a ReadableSpan."""
    return SimpleNamespace(
        name=span["name"], attributes=span["attributes"], start_time=span["start_time"],
        context=SimpleNamespace(span_id=int(span["context"]["span_id"], 16),
                                trace_id=int(span["context"]["trace_id"], 16)),
        parent=SimpleNamespace(span_id=int(span["parent_id"], 16)) if span["parent_id"] else None,
        status=SimpleNamespace(status_code=SimpleNamespace(name=span["status"]["status_code"])),
        events=[SimpleNamespace(name=e["name"], attributes=e["attributes"]) for e in span["events"]])


def _strands_handoff(span: Any) -> tuple[None, str] | None:
    """A Swarm's handoff_to_agent call that went through (multiagent/swarm.py: one that names no
    agent of the swarm returns an error status): to ``agent_name`` of its arguments, which
    telemetry/tracer.py start_tool_call_span writes to gen_ai.tool.call.arguments (latest
    conventions) or to the content of its gen_ai.tool.message event."""
    a = span.attributes
    if a.get("gen_ai.tool.name") != "handoff_to_agent" or span.status.status_code.name == "ERROR":
        return None
    arguments = a.get("gen_ai.tool.call.arguments") or next(
        e.attributes["content"] for e in span.events if e.name == "gen_ai.tool.message")
    return None, json.loads(arguments)["agent_name"]


STRANDS = OtelRules(
    is_agent=lambda a, name: a.get("gen_ai.agent.name") if a.get("gen_ai.operation.name") == "invoke_agent" else None,
    is_tool=lambda a, name: a.get("gen_ai.tool.name") if a.get("gen_ai.operation.name") == "execute_tool"
    and a.get("gen_ai.tool.name") != "handoff_to_agent" else None,
    is_call=lambda a: (a.get("gen_ai.usage.input_tokens", 0), a.get("gen_ai.usage.output_tokens", 0))
    if a.get("gen_ai.operation.name") == "chat" else None,
    handoff=_strands_handoff,
    session=lambda a: a.get("session.id"))


def test_strands_agent_and_swarm(start_logd, tmp_path):
    logd = start_logd(tmp_path)
    ran = subprocess.run([sys.executable, "-c", STRANDS_RUN, logd.otlp + "/v1/traces"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout.splitlines()[-1])
    spans = [_readable(s) for s in out["spans"]]
    expected = otel_facts(spans, STRANDS)
    logd.wait_stored(len(out["spans"]))
    check(logd, expected, {"conv-strands": ["support"], "conv-swarm": ["triage", "billing", "tech"]})
    facts = expected["conv-strands"]
    # invoke_agent carries the run's accumulated usage on top of each chat span's: counted once
    assert facts.tokens == {"support": out["usage"]} and facts.errors >= 1
    assert facts.tools == Counter({("support", "lookup_order", False): 1, ("support", "refund", True): 1})
    # the Swarm: every hand-off in the order the swarm itself ran its nodes (two requests of one
    # conversation), in the flow of --format json and of the html report; none is a tool call
    history = out["swarm"]
    assert history == [["triage", "billing", "tech", "triage"]] * 2
    handed = [pair for run in history for pair in zip(run, run[1:], strict=False)] + [(history[-1][-1], "(end)")]
    shown = logd.trace("conv-swarm")
    assert [(step["agent"], step["next"]) for step in shown["flow"]] == handed
    page = logd.run("trace", "conv-swarm", "--format", "html")
    data = json.loads(re.search(r'<script type="application/json" id="logd-data">(.*?)</script>', page, re.S)[1])
    assert [tuple(step[1:3]) for step in data["flow"]["steps"]] == handed
    assert data["flow"]["route"] == shown["route"] == ["triage", "billing", "tech"]
    passed = [f"handoff {a} -> {b}" for a, b in zip(history[0], history[0][1:], strict=False)]
    assert [s["name"] for s in shown["spans"] if s["kind"] == "handoff"] == (["handoff_to_agent"] + passed) * 2
    swarm = expected["conv-swarm"]
    assert swarm.tools == Counter({("billing", "refund", True): 2, ("tech", "lookup_order", False): 2})
    assert not any(tool == "handoff_to_agent" for _, tool, _ in logd.metric_facts().tools)
    assert swarm.errors == 4  # per request: the refund, and the hand-off to an agent the swarm lacks
    # both places Strands writes a call's arguments were read
    calls = [s for s in spans if s.attributes.get("gen_ai.tool.name") == "handoff_to_agent"]
    assert {"gen_ai.tool.call.arguments" in s.attributes for s in calls} == {True, False}


# --- AgenticGoKit and Koog: their own files' shapes, sent as they write them ---

def test_agenticgokit_and_koog(start_logd, tmp_path):
    logd = start_logd(tmp_path)
    entries, events = agk_entries(), koog_events(fail=True)
    send_records(logd.d.socket_path, entries + events[:-1])  # AgentClosingEvent names no run: it stays a log line
    logd.wait_stored(len(entries) + len(events) - 1)
    agk = Facts(agents={"planner", "researcher"}, route=["planner", "researcher"], errors=1)  # one AgentError
    koog = Facts(agents={"weather-agent"}, route=["weather-agent"],
                 tools=Counter({("weather-agent", "weather", True): 2, ("weather-agent", "weather", False): 1}),
                 errors=sum(1 for e in events[:-1] if e["type"].endswith("FailedEvent")))
    add_tokens(koog, "weather-agent", 150, 40)  # LLMCallCompletedEvent's responses[].metaInfo, once per call
    shown = {s: logd.facts(s) for s in ("req-17461596", "run-7f3c")}
    agk.agents, koog.agents = shown["req-17461596"].agents, shown["run-7f3c"].agents  # spans: agent runs
    assert shown == {"req-17461596": agk, "run-7f3c": koog}
    assert_metrics_match(logd.metric_facts(), merged([agk, koog]))
    assert koog.agents == {"weather-agent"} and agk.agents == {"planner", "researcher"}


# --- OpenTelemetry SDK: SimpleSpanProcessor against BatchSpanProcessor ---

class _Ids(IdGenerator):
    """The same trace and span ids in both runs."""

    def __init__(self) -> None:
        self.n = 0

    def generate_span_id(self) -> int:
        self.n += 1
        return 0x1000 + self.n

    def generate_trace_id(self) -> int:
        return 0x5B8EFFF798038103D269B633813FC60C


def _agent_run(provider: TracerProvider) -> None:
    """invoke_agent (naming the conversation) around a chat and a failing execute_tool, with
    explicit times so both runs are the same spans."""
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    tracer, t0 = provider.get_tracer("test.agents"), 1_764_000_000_000_000_000
    agent = tracer.start_span("invoke_agent triage", start_time=t0, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage", "gen_ai.conversation.id": "conv-otel",
        "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 40})  # the run's total, as Strands writes it
    inside = set_span_in_context(agent)
    chat = tracer.start_span("chat gpt-4o", context=inside, start_time=t0 + 10**6, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 40})
    chat.end(end_time=t0 + 5 * 10**8)
    tool = tracer.start_span("execute_tool lookup_order", context=inside, start_time=t0 + 6 * 10**8, attributes={
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"})
    tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
    tool.end(end_time=t0 + 7 * 10**8)
    agent.end(end_time=t0 + 10**9)


def _export(logd: Logd, processor: str) -> list[int]:
    """The run exported to ``logd`` with the SDK's processor; the spans in each request."""
    requests: list[int] = []

    class Counting(OTLPSpanExporter):
        def export(self, spans: Any) -> Any:
            requests.append(len(spans))
            return super().export(spans)

    exporter = Counting(endpoint=logd.otlp + "/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}), id_generator=_Ids())
    # BatchSpanProcessor: two spans a request, so the parent (ended last) comes in a later request
    provider.add_span_processor(SimpleSpanProcessor(exporter) if processor == "simple" else
                                BatchSpanProcessor(exporter, max_export_batch_size=2, schedule_delay_millis=60_000))
    _agent_run(provider)
    provider.shutdown()
    return requests


def test_simple_and_batch_span_processors_give_the_same_views_and_metrics(start_logd, tmp_path):
    outputs = []
    for processor in ("simple", "batch"):
        folder = tmp_path / processor
        folder.mkdir()
        logd = start_logd(folder)
        requests = _export(logd, processor)
        assert requests == ([1, 1, 1] if processor == "simple" else [2, 1])  # the parent always last
        logd.wait_stored(3)
        code, text = get(logd.metrics + "/metrics")
        assert code == 200
        metrics = {k: v for k, v in samples(text).items() if k[0].startswith(("logd_agent_tokens",
                                                                               "logd_agent_tool_calls",
                                                                               "logd_agent_trace_errors"))}
        outputs.append((logd.run("list"), logd.run("trace", "conv-otel", "--analyze", "--format", "json"), metrics))
    assert outputs[0] == outputs[1]
    listing, shown, metrics = outputs[0]
    assert listing.splitlines()[1].startswith("conv-otel ")
    analysis = json.loads(shown)["analysis"]
    assert analysis["tokens"] == [{"agent": "triage", "model": "gpt-4o", "calls": 1, "input": 812, "output": 40,
                                   "total": 852}]
    assert [(e["agent"], e["error"]) for e in analysis["errors"]] == [("triage", "order 42 not found")]
    assert metrics[("logd_agent_tokens_total", (("agent", "triage"), ("direction", "input"), ("model", "gpt-4o")))] \
        == 812
    assert metrics[("logd_agent_tool_calls_total", (("agent", "triage"), ("outcome", "error"),
                                                    ("tool", "lookup_order")))] == 1


@pytest.fixture
def start_logd() -> Any:
    """``start_logd(folder)``: a real ``logd run`` there; each one is stopped at teardown."""
    started: list[Logd] = []

    def start(folder: Path) -> Logd:
        started.append(Logd(folder))
        return started[-1]

    yield start
    for logd in started:
        logd.stop()


@pytest.fixture(autouse=True)
def _no_sdk_export():
    """The SDK's default processor posts to OpenAI: never in these tests."""
    agents.set_trace_processors([])
    yield
    agents.set_trace_processors([])
