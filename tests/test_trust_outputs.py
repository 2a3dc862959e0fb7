"""Issue 26, findings 4 and 5: what logd shows besides the file (``logd status``, ``logd top``,
``/metrics``, its own error records and stderr lines) holds no secret a record carried, and no
name a client chose is longer than a label may be. Real ``logd run`` processes, fed over the
socket, OTLP/HTTP (the OpenTelemetry SDK's own exporter) and the OpenAI Agents SDK's ingest
shape."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Status, StatusCode
from otel_support import recorded_spans

from logd.control import request
from logd.record import MAX_KEY_CHARS

from support import Receiver, read_records, send_records, start_receiver, wait_for

SECRET = "hunter2"


def metrics_url(r: Receiver) -> str:
    return wait_for(lambda: next((x["url"] for x in read_records(r.log) if x.get("event") == "metrics"), None),
                    what="the metrics server")


def everything_shown(r: Receiver, metrics: str) -> dict[str, str]:
    """Each output of logd besides the log file, as text."""
    with urllib.request.urlopen(metrics + "/metrics", timeout=30) as reply:
        scraped = reply.read().decode()
    top = orjson.dumps(request(r.daemon.socket_path, "top")).decode()
    once = subprocess.run([sys.executable, "-m", "logd", "top", "--once", "--interval", "0.1", "--width", "200",
                           "--config", str(r.config)], capture_output=True, text=True, timeout=60)
    assert once.returncode == 0, once.stderr
    return {"/metrics": scraped, "logd status --json": r.logd("status", "--json"), "logd status": r.logd("status"),
            "top (control)": top, "logd top --once": once.stdout, "stderr": r.daemon.stderr()}


def failed_tool_run(session: str) -> list:
    """An agent run as the OTel SDK records it, whose names, status and exception carry a secret."""
    with recorded_spans("support-bot", "test.trust") as (tracer, spans), tracer.start_as_current_span(
            "invoke_agent triage", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"triage password={SECRET}",
            "gen_ai.conversation.id": session}):
        with tracer.start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": f"gpt-4o password={SECRET}",
                "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}):
            pass
        with tracer.start_as_current_span("execute_tool", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"lookup password={SECRET}"}) as tool:
            tool.record_exception(PermissionError(f"login refused: password={SECRET}"))
            tool.set_status(Status(StatusCode.ERROR, f"denied, token: {SECRET}"))
    return spans


def test_secrets_in_names_statuses_errors_and_bodies_are_redacted_in_every_output(tmp_path: Path, sock_dir: Path):
    """Before: the last error per agent was kept before redaction (an OTLP log body
    {"password": ...}, an ingest span's error.data {"token": ...}); password=... inside agent,
    model or tool names, span statuses or exception messages was redacted nowhere, /metrics
    labels included."""
    r = start_receiver(tmp_path, sock_dir, 'file = "agent.log"\nfile_only = true',
                       otlp='\n[logging.metrics]\nlisten = "127.0.0.1:0"\n')
    try:
        metrics = metrics_url(r)
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
            "severityNumber": 17, "attributes": [{"key": "gen_ai.agent.name", "value": {"stringValue": "billing"}}],
            "body": {"kvlistValue": {"values": [{"key": "password", "value": {"stringValue": SECRET}}]}}}]}]}]}
        assert r.post("/v1/logs", orjson.dumps(body), "application/json")[0] == 200
        ingest = {"data": [{"object": "trace.span", "id": "span_1", "trace_id": "trace_1", "parent_id": None,
                            "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:01Z",
                            "span_data": {"type": "function", "name": "refund"},
                            "error": {"message": "refund failed", "data": {"token": SECRET * 3}}}]}
        assert r.post("/v1/traces/ingest", orjson.dumps(ingest), "application/json")[0] == 200
        assert OTLPSpanExporter(endpoint=r.url + "/v1/traces").export(failed_tool_run("s-otel")) \
            == SpanExportResult.SUCCESS
        send_records(r.daemon.socket_path, [
            {"level": "error", "message": "socket failure", "agent": f"planner password={SECRET}",
             "model": f"claude api_key: {SECRET}", "tokens": 5, "tool": f"search secret={SECRET}"},
        ])
        # an error record about bad input, quoting what the client sent
        bad = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": f"password={SECRET}", "spanId": "x"}]}]}]}
        assert r.post("/v1/traces", orjson.dumps(bad), "application/json")[0] == 400
        wait_for(lambda: r.records(message="OTLP request refused: malformed body")
                 and r.records(message="socket failure"), what="every record")
        shown = everything_shown(r, metrics)
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
    shown["agent.log"] = r.log.read_text()
    shown["session files"] = "".join(p.read_text() for p in (tmp_path / "traces").rglob("*.jsonl"))
    leaked = [where for where, text in shown.items() if SECRET in text]
    assert leaked == [], {where: shown[where][max(0, shown[where].find(SECRET) - 300):][:600] for where in leaked}
    status = json.loads(shown["logd status --json"])["usage"]["agents"]
    assert "billing" in status and "password" in status["billing"]["last_error"]["message"]  # redacted, still there
    assert 'tool="lookup password=[REDACTED]"' in shown["/metrics"]
    assert "planner password=[REDACTED]" in shown["/metrics"]


def test_long_model_tool_and_agent_names_are_cut_in_every_output(tmp_path: Path, sock_dir: Path):
    """Before: 300 records with 100 KB model names gave a 186 MB /metrics response and a 39 MB
    `logd status --json`. Now every name a client chooses is cut to 128 characters (with a
    checksum of the whole) wherever it becomes a label or a key."""
    r = start_receiver(tmp_path, sock_dir, 'file = "agent.log"\nfile_only = true',
                       otlp='\n[logging.metrics]\nlisten = "127.0.0.1:0"\n')
    try:
        metrics = metrics_url(r)
        send_records(r.daemon.socket_path, [
            {"level": "error", "message": "long names", "agent": f"a{n}" + "x" * 60_000,  # within max_record_bytes
             "model": f"m{n}" + "y" * 60_000, "tokens": 3, "tool": f"t{n}" + "z" * 60_000, "latency_ms": 5}
            for n in range(40)])
        wait_for(lambda: len(r.records(message="long names")) == 40, timeout=30, what="the records")
        shown = everything_shown(r, metrics)
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
    for where, text in shown.items():
        assert len(text) < 400_000, (where, len(text))
    usage = json.loads(shown["logd status --json"])["usage"]
    names = [*usage["agents"], *usage["models"],
             *(tool for agent in usage["agents"].values() for tool in agent.get("tool_calls", {}))]
    assert len(names) >= 120 and max(len(name) for name in names) <= MAX_KEY_CHARS
    assert "y" * (MAX_KEY_CHARS + 1) not in shown["/metrics"]
