"""The OTLP/HTTP receiver of a real ``logd run``, fed by the real producers.

Producers: the OpenTelemetry SDK with its own exporters (``opentelemetry-exporter-otlp-
proto-http`` for protobuf, ``opentelemetry-exporter-otlp-json-http`` for JSON), and
Pydantic AI's own OTel instrumentation (``pydantic_ai/capabilities/instrumentation.py``,
GenAI semantic conventions) running its ``TestModel`` without network. Bad input goes
through ``http.client`` and asyncio + ``h11`` as raw HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from otel_support import pydantic_ai_shop, recorded_spans

from support import DaemonProcess, Receiver, read_records, start_receiver, wait_for, write_config


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One daemon for the module: each test uses its own trace ids and sessions."""
    sock = Path(tempfile.mkdtemp(prefix="logd-o-", dir="/tmp"))
    r = start_receiver(tmp_path_factory.mktemp("otlp"), sock)
    try:
        yield r
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
        shutil.rmtree(sock, ignore_errors=True)


def finished_spans(session: str) -> list:
    """A small agent run as the OTel SDK records it, with GenAI semantic-convention attributes."""
    with recorded_spans("support-bot", "test.agents") as (tracer, spans), tracer.start_as_current_span(
            "invoke_agent triage", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
            "gen_ai.conversation.id": session}):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 40}):
            pass
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}) as tool:
            tool.record_exception(LookupError("order 42 not found"))
            tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
    return spans


def session_json(receiver: Receiver, session: str) -> dict:
    return json.loads(receiver.logd("trace", session, "--format", "json", "--analyze"))


# --- the SDK's exporters ---

@pytest.mark.parametrize("exporter_class", [OTLPSpanExporter, JsonSpanExporter], ids=["protobuf", "json"])
def test_sdk_spans_become_a_session_that_logd_trace_shows(receiver, exporter_class):
    session = f"conv-{exporter_class.__module__.split('.')[3]}"
    exporter = exporter_class(endpoint=receiver.url + "/v1/traces")
    assert exporter.export(finished_spans(session)) == SpanExportResult.SUCCESS
    exporter.shutdown()

    spans = wait_for(lambda: len(receiver.session(session)) == 3 and receiver.session(session))
    by_kind = {r["span_data"]["type"]: r for r in spans}
    agent, chat, tool = by_kind["agent"], by_kind["generation"], by_kind["function"]
    assert agent["span_data"]["name"] == "triage" and agent["parent_id"] is None
    assert chat["parent_id"] == agent["span_id"] == tool["parent_id"] and len(agent["trace_id"]) == 32
    assert chat["span_data"]["model"] == "gpt-4o-2024-08-06"
    assert chat["span_data"]["usage"] == {"input_tokens": 812, "output_tokens": 40}
    assert tool["level"] == "error" and tool["error"]["type"] == "LookupError"
    assert tool["error"]["message"] == "order 42 not found" and tool["span_data"]["name"] == "lookup_order"
    assert {r["agent"] for r in spans} == {"triage"}  # children: the enclosing invoke_agent span
    assert agent["resource"]["service.name"] == "support-bot"

    listing = receiver.logd("list")
    assert session in listing and "triage" in listing
    shown = session_json(receiver, session)
    assert {s["kind"] for s in shown["spans"]} == {"agent", "generation", "function"}
    assert shown["route"] == ["triage"]
    assert shown["analysis"]["tokens"] == [{"agent": "triage", "model": "gpt-4o-2024-08-06", "calls": 1,
                                            "input": 812, "output": 40, "total": 852}]
    assert [e["agent"] for e in shown["analysis"]["errors"]] == ["triage"]
    table = receiver.logd("trace", session, "--analyze")
    assert "TOKENS BY AGENT" in table and "812" in table and "Timeline:" in table and "lookup_order" in table
    chrome = json.loads(receiver.logd("trace", session, "--format", "chrome"))
    assert {e["name"] for e in chrome["traceEvents"] if e.get("ph") == "X"} >= {"triage", "lookup_order"}


@pytest.mark.parametrize("exporter_class", [OTLPLogExporter, JsonLogExporter], ids=["protobuf", "json"])
def test_sdk_log_records_become_ordinary_records(receiver, exporter_class):
    tag = exporter_class.__module__.split(".")[3]
    memory = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=Resource.create({"service.name": "billing", "deployment.environment": "test"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("refund") as span:  # no timestamp: observed time is used
        logs.get_logger(f"test.otlp.{tag}").emit(LogRecord(
            severity_number=SeverityNumber.WARN, severity_text="WARN", body=f"refund {tag} delayed",
            attributes={"order": 42}))
        ids = (format(span.get_span_context().trace_id, "032x"), format(span.get_span_context().span_id, "016x"))
    logs.shutdown()
    exporter = exporter_class(endpoint=receiver.url + "/v1/logs")
    assert exporter.export(memory.get_finished_logs()) == LogRecordExportResult.SUCCESS

    [record] = wait_for(lambda: receiver.records(message=f"refund {tag} delayed"))
    assert record["level"] == "warn" and record["severity_number"] == 13
    assert record["order"] == 42 and record["deployment.environment"] == "test"
    assert record["agent"] == "billing" and record["logger"] == f"test.otlp.{tag}"
    assert (record["trace_id"], record["span_id"]) == ids
    assert ids[0] not in receiver.logd("list")  # a log written inside a span is not a span


def test_the_environment_variables_the_docs_show_point_an_exporter_at_logd(receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    exporter = OTLPSpanExporter(compression=Compression.Gzip)  # endpoint + /v1/traces from the variable
    assert exporter.export(finished_spans("conv-env")) == SpanExportResult.SUCCESS
    wait_for(lambda: len(receiver.session("conv-env")) == 3, what="the spans sent gzipped")


# --- a real agent framework ---

def test_pydantic_ai_instrumentation_gives_session_agents_tools_errors_and_tokens(receiver):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    triage = pydantic_ai_shop(provider)

    assert "billing failed: payment gateway down" in triage.run_sync("I want a refund").output
    provider.shutdown()
    spans = memory.get_finished_spans()
    assert OTLPSpanExporter(endpoint=receiver.url + "/v1/traces").export(spans) == SpanExportResult.SUCCESS

    # the session is the outer run's conversation: billing's run (its own conversation id) is inside it
    conversation = next(s.attributes["gen_ai.conversation.id"] for s in spans if s.name == "invoke_agent triage")
    wait_for(lambda: len(receiver.session(conversation)) == len(spans))
    shown = session_json(receiver, conversation)
    agent_spans = {s["name"] for s in shown["spans"] if s["kind"] == "agent"}
    tools = {(s["agent"], s["name"]) for s in shown["spans"] if s["kind"] == "function"}
    assert agent_spans == {"triage", "billing"}
    assert tools == {("triage", "ask_billing"), ("billing", "refund")}
    errors = {(e["agent"], e["hook"]) for e in shown["analysis"]["errors"]}
    assert errors == {("billing", "span:function"), ("billing", "span:agent")}
    assert all("payment gateway down" in e["error"] for e in shown["analysis"]["errors"])
    # every chat span's gen_ai.usage.* as Pydantic AI recorded it, summed per agent and model
    expected: dict[str, list[int]] = {}
    for s in spans:
        if s.attributes.get("gen_ai.operation.name") == "chat":
            row = expected.setdefault(s.attributes["gen_ai.agent.name"], [0, 0])
            row[0] += s.attributes["gen_ai.usage.input_tokens"]
            row[1] += s.attributes["gen_ai.usage.output_tokens"]
    tokens = {t["agent"]: [t["input"], t["output"]] for t in shown["analysis"]["tokens"]}
    assert tokens == expected and set(tokens) == {"triage", "billing"}
    assert {t["model"] for t in shown["analysis"]["tokens"]} == {"test"}


# --- bad input ---

def test_a_body_over_the_limit_gets_413_and_the_receiver_goes_on(receiver):
    status, headers, body = receiver.post("/v1/traces", b"\0" * (10 * 1024 * 1024))
    from google.rpc.status_pb2 import Status as RpcStatus  # the OTLP error body, in the request's encoding
    assert status == 413 and headers["content-type"] == "application/x-protobuf"
    assert RpcStatus.FromString(body).code == 8 and "max_body_bytes" in RpcStatus.FromString(body).message
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))  # 10 KB on the wire, 10 MB inflated
    status, _, _ = receiver.post("/v1/traces", bomb, **{"Content-Encoding": "gzip"})
    assert status == 413
    assert OTLPSpanExporter(endpoint=receiver.url + "/v1/traces").export(finished_spans("after-413")) \
        == SpanExportResult.SUCCESS


def test_a_truncated_protobuf_gets_400_and_a_logd_error_record(receiver):
    body = encode_spans(finished_spans("truncated")).SerializeToString()
    status, headers, answer = receiver.post("/v1/traces", body[: len(body) // 2])
    assert status == 400 and headers["content-type"] == "application/x-protobuf"
    from google.rpc.status_pb2 import Status as RpcStatus  # the OTLP error body
    assert "ExportTraceServiceRequest" in RpcStatus.FromString(answer).message
    [error] = wait_for(lambda: receiver.records(message="OTLP request refused: malformed body"))
    assert error["level"] == "error" and error["path"] == "/v1/traces" and error["bytes"] == len(body) // 2
    assert receiver.session("truncated") == []


def test_malformed_json_wrong_type_and_unknown_routes_get_clear_answers(receiver):
    status, _, answer = receiver.post("/v1/logs", b'{"resourceLogs": [', "application/json")
    assert status == 400 and "not valid JSON" in json.loads(answer)["message"]
    status, _, answer = receiver.post("/v1/logs", b"hello", "text/plain")
    assert status == 415 and "application/x-protobuf" in json.loads(answer)["message"]
    status, _, _ = receiver.post("/v1/metrics", b"{}", "application/json")
    assert status == 404
    status, headers, _ = receiver.post("/v1/logs", b"x", **{"Content-Encoding": "br"})
    assert status == 415


def test_spans_with_bad_ids_are_rejected_as_partial_success(receiver):
    good = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "kept",
            "startTimeUnixNano": "1764000000000000000", "endTimeUnixNano": "1764000001000000000",
            "attributes": [{"key": "session.id", "value": {"stringValue": "partial"}}]}
    bad = {**good, "traceId": "abcd", "name": "short id"}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good, bad]}]}]}).encode()
    status, _, answer = receiver.post("/v1/traces", body, "application/json")
    assert status == 200
    assert json.loads(answer) == {"partialSuccess": {
        "rejectedSpans": "1", "errorMessage": "a span needs a 16-byte traceId and an 8-byte spanId"}}
    [kept] = wait_for(lambda: receiver.session("partial"))
    assert kept["span_data"]["name"] == "kept" and kept["started_at"].startswith("2025-11-24T")


def test_a_thousand_concurrent_exporters_are_all_answered_and_nothing_accepted_is_lost(receiver):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))

    answers: dict[object, int] = {}
    address = urllib.parse.urlsplit(receiver.url)

    async def post(n: int) -> tuple[int, dict[bytes, bytes], bytes]:
        """One exporter's request on its own connection (h11 frames it; httpx's pool is
        quadratic in the number of connections, which would be the test's cost, not logd's)."""
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        client = h11.Connection(h11.CLIENT)
        data = single_span_body(n, "crowd")
        writer.write(client.send(h11.Request(method="POST", target="/v1/traces", headers=[
            ("Host", address.netloc), ("Content-Type", "application/x-protobuf"),
            ("Content-Length", str(len(data))), ("Connection", "close")])) + client.send(h11.Data(data=data))
            + client.send(h11.EndOfMessage()))
        status, headers, content = 0, {}, b""
        try:
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await asyncio.wait_for(reader.read(65536), 60))
                elif isinstance(event, h11.Response):
                    status, headers = event.status_code, dict(event.headers)
                elif isinstance(event, h11.Data):
                    content += event.data
                else:
                    assert isinstance(event, h11.EndOfMessage), event
                    return status, headers, content
        finally:
            writer.close()

    async def exporter(n: int) -> int:
        for _ in range(20):  # 503 (backpressure) and refused connections are retried, as exporters do
            try:
                status, headers, content = await post(n)
            except (OSError, h11.RemoteProtocolError) as exc:
                answers[type(exc).__name__] = answers.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.1)
                continue
            answers[status] = answers.get(status, 0) + 1
            if status == 503:
                assert headers[b"retry-after"] == b"1"
                await asyncio.sleep(0.1)
                continue
            assert status == 200
            assert ExportTraceServiceResponse.FromString(content).partial_success.rejected_spans == 0
            return n
        raise AssertionError(f"exporter {n} got no answer")

    async def crowd() -> list[int]:
        return await asyncio.gather(*(exporter(n) for n in range(1, 1001)))

    accepted = asyncio.run(crowd())
    assert sorted(accepted) == list(range(1, 1001))
    assert set(answers) <= {200, 503}, answers  # every request answered: no reset, no timeout
    stored = wait_for(lambda: (lambda rs: len(rs) >= 1000 and rs)(
        [r for r in read_records(receiver.log) if r.get("message", "").startswith("custom crowd ")]), 30)
    assert sorted(int(r["trace_id"], 16) for r in stored) == list(range(1, 1001))


def test_backpressure_answers_503_with_retry_after_and_accepted_records_are_written(tmp_path, sock_dir):
    """The log file cannot grow (RLIMIT_FSIZE): the request whose records are held waits, later
    ones get 503 + Retry-After; once the file can grow, the held one is answered 200 and written."""
    r = start_receiver(tmp_path, sock_dir, 'file = "agent.log"\nfile_only = true')
    body = encode_spans(finished_spans("held")).SerializeToString()
    try:
        size = r.log.stat().st_size
        resource.prlimit(r.daemon.proc.pid, resource.RLIMIT_FSIZE, (size + 3000, resource.RLIM_INFINITY))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            posted = []

            def answered_503() -> bool:
                posted.append(pool.submit(r.post, "/v1/traces", body))
                done, _ = concurrent.futures.wait(posted[-1:], timeout=0.5)
                return any(f.result()[0] == 503 for f in done)

            wait_for(answered_503, 20, what="a 503 while the file cannot be written")
            assert r.daemon.proc.poll() is None
            assert posted[-1].result()[1]["retry-after"] == "1"
            resource.prlimit(r.daemon.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            answers = [f.result(timeout=30)[0] for f in posted]
        assert OTLPSpanExporter(endpoint=r.url + "/v1/traces").export(finished_spans("after")) \
            == SpanExportResult.SUCCESS
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
    assert set(answers) == {200, 503}
    assert len(r.session("held")) == 3 * answers.count(200)  # each 200 written once, no 503
    assert len(r.session("after")) == 3


# --- the listener's life cycle ---

def test_a_busy_port_is_one_clear_line_and_logging_goes_on(daemon):
    """The default address comes from $LOGD_OTLP_LISTEN here (4318 may be anyone's on a test machine)."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        d = daemon(env={"LOGD_OTLP_LISTEN": busy})
        wait_for(lambda: "OTLP receiver not started" in d.stderr(), what="the line about the busy port")
        [line] = [x for x in d.stderr().splitlines() if "OTLP" in x]
        assert busy in line and "[logging.otlp] listen" in line
        status = json.loads(subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--config",
                                            str(d.config)], capture_output=True, text=True, timeout=30).stdout)
        assert status["otlp"]["listen"] == busy and "in use" in status["otlp"]["error"]
        assert d.stop() == 0
    finally:
        holder.close()
    [record] = [r for r in read_records(d.workdir / "agent.log") if r.get("event") == "otlp"]
    assert record["level"] == "warn" and record["listen"] == busy


def test_logd_bench_otlp_reports_spans_and_log_records_beside_the_socket():
    out = subprocess.run([sys.executable, "-m", "logd", "bench", "--otlp", "--records", "2000", "--clients", "1",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    [report] = json.loads(out.stdout)
    assert [r["name"].split(" (")[0] for r in report["rows"]] == ["socket records", "OTLP spans", "OTLP log records"]
    assert all(r["records"] == 2000 and r["lost"] == 0 for r in report["rows"])
    assert set(report["ratios"]) == {"OTLP spans / socket records", "OTLP log records / socket records"}


def test_a_reload_that_changes_logging_otlp_restarts_the_receiver(daemon, tmp_path, sock_dir):
    import socket

    d = daemon(extra='[logging.otlp]\nlisten = "127.0.0.1:0"\n')
    first = wait_for(lambda: [r["url"] for r in read_records(tmp_path / "agent.log") if r.get("event") == "otlp"])
    port = int(first[0].rsplit(":", 1)[1])
    write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"', '[logging.otlp]\nlisten = ""\n')
    subprocess.run([sys.executable, "-m", "logd", "reload", "--config", str(d.config)], check=True,
                   capture_output=True, timeout=30)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_for(refused, what="the receiver to stop after the reload")
    assert d.stop() == 0


def test_a_stop_while_exporters_send_keeps_every_accepted_span(tmp_path, sock_dir):
    """SIGTERM mid-stream: every request answered 200 has its spans in the file; the rest
    got an error or no answer (so their exporters would retry), never a 200 for lost spans."""
    import signal
    import threading

    r = start_receiver(tmp_path, sock_dir)
    accepted: list[int] = []
    lock = threading.Lock()

    def exporter(first: int) -> None:
        n = first
        while True:
            try:
                status, _, _ = r.post("/v1/traces", single_span_body(n, "stopping"))
            except OSError:
                return
            if status != 200:
                return
            with lock:
                accepted.append(n)
            n += 4

    threads = [threading.Thread(target=exporter, args=(first,)) for first in range(1, 5)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(accepted) >= 200, what="exporters under way")
        r.daemon.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert r.daemon.proc.wait(30) == 0
    finally:
        r.daemon.kill()
    stored = {int(rec["trace_id"], 16) for rec in r.session("stopping")}
    assert set(accepted) <= stored


def single_span_body(n: int, session: str) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = n.to_bytes(16, "big"), n.to_bytes(8, "big"), f"{session} {n}"
    span.start_time_unix_nano, span.end_time_unix_nano = 1_764_000_000_000_000_000, 1_764_000_001_000_000_000
    span.attributes.add(key="session.id").value.string_value = session
    return request.SerializeToString()


def test_the_receiver_s_counters_are_on_metrics(tmp_path, sock_dir):
    """What `logd status` shows of the receiver is on /metrics too, for the alert rules."""
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"',
                          '[logging.otlp]\nlisten = "127.0.0.1:0"\n\n[logging.metrics]\nlisten = "127.0.0.1:0"\n')
    daemon = DaemonProcess(config, sock_dir / "logd.sock", tmp_path).start()
    try:
        def url_of(event: str) -> str | None:
            return next((r["url"] for r in read_records(tmp_path / "agent.log")
                         if r.get("event") == event and "url" in r), None)
        otlp = Receiver(daemon, wait_for(lambda: url_of("otlp"), what="the receiver"), tmp_path / "agent.log", config)
        metrics = wait_for(lambda: url_of("metrics"), what="the metrics server")
        body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1795000000000000000", "severityText": "WARN", "body": {"stringValue": "m"}}]}]}]})
        assert otlp.post("/v1/logs", body.encode(), "application/json")[0] == 200
        assert otlp.post("/v1/logs", b'{"resourceLogs": [', "application/json")[0] == 400
        with urllib.request.urlopen(metrics + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert 'logd_otlp_received_total{signal="log_records"} 1.0' in text
        assert 'logd_otlp_received_total{signal="spans"} 0.0' in text
        assert "logd_otlp_malformed_requests_total 1.0" in text
        assert 'logd_otlp_responses_total{code="200"} 1.0' in text
        assert 'logd_otlp_responses_total{code="400"} 1.0' in text
        assert "logd_otlp_inflight_bytes 0.0" in text and "logd_otlp_over_budget_requests_total 0.0" in text
        assert "logd_otlp_timed_out_requests_total 0.0" in text
        assert daemon.stop() == 0
    finally:
        daemon.kill()
