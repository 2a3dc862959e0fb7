"""The OTLP mapping on its own: requests built with opentelemetry-proto's classes (the
receiver's end-to-end behaviour against ``logd run`` is in test_otlp.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from logd.ship.encoders import otlp_trace_request
from logd.sources.otlp import JSON, SPAN_LEVELS, MalformedBody, SpanMapper, decode, level_of, log_records
from logd.traces.model import build_session, trace_sessions
from logd.traces.otel import AgentsAbove
from logd.traces.semantics import is_span
from logd.traces.shapes import classify
from logd.traces.tokens import token_usage
from logd.turns import finish

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def span_request(*spans: tuple[int, int, str, dict]) -> ExportTraceServiceRequest:
    """(span id, parent id or 0, name, string/int attributes) -> one request."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "svc"
    scope = resource.scope_spans.add()
    for span_id, parent, name, attributes in spans:
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = TRACE, span_id.to_bytes(8, "big"), name
        if parent:
            span.parent_span_id = parent.to_bytes(8, "big")
        span.start_time_unix_nano = 1_764_000_000_000_000_000 + span_id
        span.end_time_unix_nano = 1_764_000_001_000_000_000
        for key, value in attributes.items():
            attr = span.attributes.add(key=key)
            if isinstance(value, int):
                attr.value.int_value = value
            else:
                attr.value.string_value = value
    return request


AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "gen_ai.conversation.id": "conv-9"}
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}


def test_severity_numbers_map_to_levels_and_text_is_the_fallback():
    assert [level_of(n, "") for n in (1, 4, 5, 9, 12, 13, 17, 21, 24)] == \
        ["trace", "trace", "debug", "info", "info", "warn", "error", "fatal", "fatal"]
    assert level_of(0, "WARNING") == "warn" and level_of(0, "") == "info" and level_of(0, "loud") == "info"


def test_attributes_never_overwrite_core_or_trusted_fields():
    request = ExportLogsServiceRequest()
    log = request.resource_logs.add().scope_logs.add().log_records.add()
    log.body.string_value = "real message"
    for key in ("message", "_pid", "level"):
        log.attributes.add(key=key).value.string_value = "forged"
    [record] = finish(log_records(request, received_ns=1_764_000_000_000_000_000))
    assert record["message"] == "real message" and record["level"] == "info" and "_pid" not in record
    assert record["otel.message"] == record["client_pid"] == record["otel.level"] == "forged"
    assert record["time"] == "2025-11-24T16:00:00.000000Z"  # no time in the record: arrival


def test_a_structured_body_is_kept_as_json_text():
    request = ExportLogsServiceRequest()
    log = request.resource_logs.add().scope_logs.add().log_records.add()
    log.body.kvlist_value.values.add(key="event").value.string_value = "refund"
    assert finish(log_records(request, 0))[0]["message"] == '{"event":"refund"}'


def test_a_trace_read_whole_is_the_same_whichever_span_came_first():
    """SimpleSpanProcessor exports children first, BatchSpanProcessor may send the parent in a
    later request: the records say only what each span says itself, and the trace they make
    (session, agents) is the same either way."""
    def records(order: list[int]) -> list[dict]:
        spans = {1: (1, 0, "invoke_agent planner", AGENT), 2: (2, 1, "execute_tool search", TOOL)}
        out = []
        for n in order:
            out += finish(SpanMapper().records(span_request(spans[n]), 0))[0]
        return out

    parent_last, parent_first = records([2, 1]), records([1, 2])
    tool = parent_last[0]
    assert "session_id" not in tool and tool["span_data"] == {"type": "function", "name": "search",
                                                              "operation": "execute_tool"}
    for found in (parent_last, parent_first):
        assert trace_sessions(found) == {TRACE.hex(): "conv-9"}
        session = build_session("conv-9", found)
        assert {s.name: s.agent for s in session.spans} == {"planner": "planner", "search": "planner"}
        assert session.agents == ["planner"]


def test_json_ids_must_be_hex():
    body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","spanId":"eee19b7ec3c1b174"}]}]}]}'
    with pytest.raises(MalformedBody, match="traceId 'not-hex' is not a hex id"):
        finish(decode(body, JSON, ExportTraceServiceRequest(), SPAN_LEVELS))
    with pytest.raises(MalformedBody, match="expected a JSON object"):
        finish(decode(b"[1, 2]", JSON, ExportTraceServiceRequest(), SPAN_LEVELS))


def test_a_log_record_inside_a_span_is_not_a_span():
    request = ExportLogsServiceRequest()
    log = request.resource_logs.add().scope_logs.add().log_records.add()
    log.trace_id, log.span_id = TRACE, (7).to_bytes(8, "big")
    [record] = finish(log_records(request, 0))
    assert record["trace_id"] == TRACE.hex() and classify(record) is None and not is_span(record)


def test_client_span_records_go_out_as_otlp_spans_that_come_back_the_same():
    """logd.client.tracing's records (prefixed ids, span_data) -> OTLP -> the receiver's mapping."""
    root = {"trace_id": "trace_" + "ab" * 16, "span_id": "span_" + "01" * 12, "parent_id": None,
            "started_at": "2026-11-29T10:00:00.000000Z", "ended_at": "2026-11-29T10:00:03.000000Z",
            "span_data": {"type": "agent", "name": "triage"}, "group_id": "conv-7", "agent": "triage", "error": None}
    call = {**root, "span_id": "span_" + "02" * 12, "parent_id": root["span_id"],
            "span_data": {"type": "generation", "name": "gpt-4o", "model": "gpt-4o",
                          "usage": {"input_tokens": 812, "output_tokens": 40}},
            "error": {"type": "TimeoutError", "message": "no answer in 30s"}}
    request = otlp_trace_request([("a", root), ("b", call)], service_name="logd", hostname="host")
    [spans] = [s.spans for r in request.resource_spans for s in r.scope_spans]
    assert spans[1].parent_span_id == spans[0].span_id and len(spans[0].trace_id) == 16
    assert [e.name for e in spans[1].events] == ["exception"] and spans[1].status.message == "no answer in 30s"
    back, rejected, _ = finish(SpanMapper().records(request, 0))
    assert rejected == 0
    assert [r["session_id"] for r in back] == ["conv-7", "conv-7"]  # gen_ai.conversation.id on each
    assert back[1]["span_data"]["usage"] == {"input_tokens": 812, "output_tokens": 40}
    assert back[1]["span_data"]["model"] == "gpt-4o" and back[1]["agent"] == "triage"
    assert back[1]["error"]["type"] == "TimeoutError" and back[0]["started_at"] == root["started_at"]


def test_token_usage_sums_per_agent_and_model_across_span_sources():
    """Usage from logd.client spans, OpenAI Agents SDK generation spans (prompt/completion
    names) and OTLP spans (int64 sent as strings in JSON) add up per agent and model."""
    def span(sid: str, parent: str | None, data: dict, agent: str | None = None) -> dict:
        return {"trace_id": "t1", "span_id": sid, "parent_id": parent, "started_at": "2026-11-29T10:00:00Z",
                "ended_at": "2026-11-29T10:00:01Z", "span_data": data, **({"agent": agent} if agent else {})}

    records = [span("a", None, {"type": "agent", "name": "writer"}),
               span("g1", "a", {"type": "generation", "model": "gpt-4o",
                                "usage": {"input_tokens": 10, "output_tokens": 2}}),
               span("g2", "a", {"type": "generation", "model": "gpt-4o",
                                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}),
               span("g3", "a", {"type": "generation", "model": "o3",
                                "usage": {"input_tokens": "7", "output_tokens": "3"}})]
    usage = [(t.agent, t.model, t.calls, t.input, t.output)
             for t in token_usage(build_session("s", records))]
    assert usage == [("writer", "gpt-4o", 2, 15, 3), ("writer", "o3", 1, 7, 3)]


def _walk_each_time(agents: dict[str, str], parents: dict[str, str | None], at: str | None) -> str | None:
    """The rule as first written: walk up from every span (quadratic on a long chain)."""
    seen: set[str] = set()
    agent = None
    while agent is None and at is not None and at not in seen:
        seen.add(at)
        agent = agents.get(at)
        at = parents.get(at)
    return agent


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.one_of(st.none(), st.integers(0, 30)), st.booleans()), max_size=40))
def test_the_agent_above_each_span_is_the_walks_answer_for_any_parents(rows):
    """Any parent graph of one request (missing parents, cycles, self-parents): the remembered
    answers equal a walk from each span, in any order of asking."""
    parents = {str(i): (None if p is None else str(p)) for i, p, _ in rows}
    agents = {str(i): f"agent-{i}" for i, _, is_agent in rows if is_agent}
    above = AgentsAbove(agents, parents)
    for _, p, _ in rows:
        start = None if p is None else str(p)
        assert above.nearest(start) == _walk_each_time(agents, parents, start)


def test_a_10000_span_chain_under_no_agent_is_walked_once():
    """Hostile input: a chain of 10,000 spans, none an agent. Asked for every span, the walk
    looks each parent up once (50 million steps when each span walked to the root)."""
    class Counted(dict):
        lookups = 0

        def get(self, key, default=None):
            Counted.lookups += 1
            return super().get(key, default)

    n = 10_000
    parents = Counted({str(i): (str(i - 1) if i else None) for i in range(n)})
    above = AgentsAbove({}, parents)
    assert all(above.nearest(str(i)) is None for i in range(n))
    assert Counted.lookups <= n
