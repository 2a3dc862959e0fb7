"""A large honest OTLP request takes turns on the event loop with everyone else.

The producer is the OpenTelemetry SDK itself: a ``BatchSpanProcessor`` with a large
``max_export_batch_size`` and the SDK's OTLP/JSON exporter
(``opentelemetry-exporter-otlp-json-http``), which sends its whole batch as one request.
Decoded and mapped in one go, such a request held logd's event loop for seconds: the
socket, the control socket and the watchdog ping all waited (logd/turns.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_pb
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otel_support import recorded_spans

from logd.components import Batch, SinkBase
from logd.events import Events
from logd.pipeline import Pipeline
from logd.sources.http import ITEM_BYTES, PROTOBUF, VALUE_BYTES, Budget, Refused, Request
from logd.sources.otlp import (
    JSON,
    SPAN_LEVELS,
    MalformedBody,
    OtlpReceiver,
    _hex_ids_to_base64,
    decode,
    json_item_limit,
)
from logd.turns import Turns, finish

from support import LineSocket, read_records, start_receiver, wait_for

SPANS = 2500  # ~1.5 MB of OTLP JSON: seconds of protobuf's pure-Python JSON parser in one go


def test_socket_records_are_written_while_a_large_otlp_request_is_ingested(tmp_path, sock_dir):
    """While one request of 2,500 spans is decoded, mapped and written, records an agent sends
    over the Unix socket meanwhile reach the file between its spans (in one go they all came
    after its last span); the spans keep their order, and the loop's lag is on `logd status`
    and /metrics."""
    r = start_receiver(tmp_path, sock_dir, otlp='[logging.metrics]\nlisten = "127.0.0.1:0"\n')
    provider = TracerProvider(resource=Resource.create({"service.name": "planner"}))
    provider.add_span_processor(BatchSpanProcessor(
        JsonSpanExporter(endpoint=r.url + "/v1/traces", timeout=60), max_queue_size=SPANS,
        max_export_batch_size=SPANS, schedule_delay_millis=3_600_000))
    tracer = provider.get_tracer("agents")
    for n in range(SPANS):
        with tracer.start_as_current_span(f"tool call {n}", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "n": n,
                "gen_ai.agent.name": "planner", "input": "where is my refund? " * 2}):
            pass
    agent, stop, sent = LineSocket(sock_dir / "logd.sock"), threading.Event(), list[int]()

    def sidecar() -> None:  # an agent logging over the socket all along
        while not stop.wait(0.003):
            agent.send({"level": "info", "message": f"sidecar {len(sent)}", "agent": "sidecar"})
            sent.append(len(sent))

    sender = threading.Thread(target=sidecar)
    try:
        sender.start()
        assert provider.force_flush(timeout_millis=120_000)  # the one batch of 2,500: answered 200
        stop.set()
        sender.join()
        agent.close()
        wait_for(lambda: len([x for x in read_records(r.log) if x.get("agent") in ("sidecar", "planner")])
                 == SPANS + len(sent), what="every span and socket record in the file")
        status = json.loads(r.logd("status", "--json"))
        metrics_url = next(x["url"] for x in r.records(event="metrics") if "url" in x)
        with urllib.request.urlopen(metrics_url + "/metrics", timeout=30) as reply:
            metrics = reply.read().decode()
        assert r.daemon.stop() == 0
    finally:
        stop.set()
        r.daemon.kill()
        provider.shutdown()
    records = [x for x in read_records(r.log) if x.get("agent") in ("sidecar", "planner")]
    spans = [i for i, x in enumerate(records) if x["agent"] == "planner"]
    assert [records[i]["otel"]["name"] for i in spans] == [f"tool call {n}" for n in range(SPANS)]
    between = [x["message"] for x in records[spans[0]:spans[-1]] if x["agent"] == "sidecar"]
    assert between, "no socket record was written while the request's spans were"
    assert [x["message"] for x in records if x["agent"] == "sidecar"] == [f"sidecar {n}" for n in sent]
    loop = status["event_loop"]
    assert loop["checks"] >= 1 and loop["max_lag_s"] >= loop["lag_s"] >= 0 and loop["interval_s"] == 0.25
    assert "logd_event_loop_lag_seconds_count" in metrics and "logd_event_loop_lag_max_seconds" in metrics


# --- the JSON body, a piece at a time, is the message protobuf's parser makes of the whole ---

def _whole(document: dict) -> ExportTraceServiceRequest:
    """What logd did before: every id to base64, then protobuf's JSON parser over the whole."""
    _hex_ids_to_base64(document, lambda count: None)
    return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)


def _sdk_document() -> dict:
    with recorded_spans("planner", "agents") as (tracer, spans), \
            tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.agent.name": "planner"}):
        for n in range(3):
            with tracer.start_as_current_span(f"execute_tool {n}", attributes={"n": n, "v": [1.5, "x"]}):
                pass
    return json.loads(encode_spans(spans).to_json())


def test_decoding_an_sdk_json_body_in_pieces_gives_the_same_message():
    document = _sdk_document()
    body = json.dumps(document).encode()
    assert finish(decode(body, JSON, ExportTraceServiceRequest(), SPAN_LEVELS)) == _whole(document)


def test_snake_case_keys_and_odd_entries_decode_as_protobuf_s_parser_decodes_them():
    document = {"resource_spans": [{"scope_spans": [{"spans": [{"name": "a"}, "not an object", {"name": "b"}]}],
                                    "resource": {}}, {}]}
    body = json.dumps(document).encode()
    assert finish(decode(body, JSON, ExportTraceServiceRequest(), SPAN_LEVELS)) == _whole(document)


@pytest.mark.parametrize("spans, error", [('{"x": 1}', "spans must be a list"),
                                          ("[null]", r"resourceSpans\[0\].scopeSpans\[0\].spans\[0\] is null"),
                                          ('[{"startTimeUnixNano": "soon"}]', r"spans\[0\]: .*soon")])
def test_a_bad_entry_is_named_by_its_place(spans, error):
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": ' + spans.encode() + b"}]}]}"
    with pytest.raises(MalformedBody, match=error):
        finish(decode(body, JSON, ExportTraceServiceRequest(), SPAN_LEVELS))


def test_a_json_span_counts_once_toward_max_items():
    """"spans" is both names of the third level: each span was counted twice, so a JSON
    request of more than half of max_items spans got 413."""
    request = Request("POST", "/v1/traces", {"content-type": JSON}, b"", "peer", max_items=4)
    check = json_item_limit(request, SPAN_LEVELS, "spans")
    check({"resourceSpans": [{"scopeSpans": [{"spans": [{}] * 4}]}]})
    with pytest.raises(Refused):
        check({"resourceSpans": [{"scopeSpans": [{"spans": [{}] * 5}]}]})


def test_a_request_refused_part_way_through_its_turns_hands_nothing_to_the_pipeline():
    """All or nothing, whatever ran between its turns: a request whose attributes overrun
    max_inflight_bytes half-way through the mapping (after many turns) gets 413, and none of
    its spans reached the pipeline; one that fits is handed over whole, in order."""
    with recorded_spans("planner", "agents") as (tracer, finished):
        for n in range(40):
            with tracer.start_as_current_span(f"span {n}", attributes={"a": 1, "b": 2, "c": 3, "d": 4}):
                pass
    body = encode_pb(finished).SerializeToString()
    taken: list[dict] = []

    class Memory(SinkBase):
        name = "memory"

        def write(self, batch: Batch) -> None:
            taken.extend(batch.records)

    async def post(limit: int) -> tuple[int, int]:
        pipeline = Pipeline([], [Memory()], events=Events(stderr=lambda line: None))
        receiver = OtlpReceiver(pipeline, pipeline.events)
        receiver.turns = Turns(turn=0.0)  # the loop given back after every unit of work
        budget = Budget(limit, retry_after=1)
        request = Request("POST", "/v1/traces", {"content-type": PROTOBUF}, body, "peer", hold=budget.hold(PROTOBUF))
        try:
            status = (await receiver.traces(request)).status
        except Refused as refused:
            status = refused.response.status
        assert request.hold is not None
        request.hold.release()
        assert budget.used == 0
        return status, receiver.turns.yields

    # one resource and one scope entry, 40 spans; the resource's 5 attributes (telemetry.sdk.*, service.*)
    decoded = 42 * ITEM_BYTES + 5 * VALUE_BYTES
    status, turns = asyncio.run(post(decoded + 20 * 4 * VALUE_BYTES + VALUE_BYTES))  # 20 spans' attributes fit
    assert (status, taken) == (413, []) and turns >= 20
    assert asyncio.run(post(decoded + 40 * 4 * VALUE_BYTES))[0] == 200
    assert [r["otel"]["name"] for r in taken] == [f"span {n}" for n in range(40)]
