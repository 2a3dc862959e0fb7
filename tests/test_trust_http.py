"""Issue 26: the HTTP ingest listener of a real ``logd run`` under hostile requests.

Producers: the OpenTelemetry SDK's own exporters (``opentelemetry-exporter-otlp-proto-http``)
for the honest side; the hostile bodies are built with ``opentelemetry-proto``'s classes and
sent as raw HTTP.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import subprocess
import sys
import time
import urllib.parse

import h11
import orjson
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor

from logd.components import SinkStats
from logd.events import Events
from logd.pipeline import Batch, Pipeline

from support import (
    DaemonProcess,
    Receiver,
    protobuf_field,
    read_records,
    rss_peak_kb,
    send_records,
    start_receiver,
    wait_for,
    write_config,
)


def empty_log_records(count: int) -> bytes:
    """One ``/v1/logs`` request of ``count`` empty log records (2 bytes each on the wire)."""
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for _ in range(count):
        scope.log_records.add()
    return request.SerializeToString()


def minimal_spans(count: int) -> bytes:
    """One ``/v1/traces/ingest`` body (the OpenAI Agents SDK's shape) of ``count`` spans of one trace."""
    return orjson.dumps({"data": [{"object": "trace.span", "id": f"s{i}", "trace_id": "t1"} for i in range(count)]})


def sdk_log_exporter_succeeds(receiver: Receiver, text: str) -> bool:
    """One record through the SDK's own pipeline and its protobuf exporter (which retries a
    503 until its timeout, then reports FAILURE)."""
    memory = InMemoryLogRecordExporter()
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logs.get_logger("test.trust").emit(LogRecord(severity_number=SeverityNumber.INFO, body=text))
    logs.shutdown()
    exporter = OTLPLogExporter(endpoint=receiver.url + "/v1/logs", timeout=5)
    try:
        return exporter.export(memory.get_finished_logs()) == LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()


# --- finding 1: one request of 50,000 items paused logging for good ---

@pytest.mark.parametrize("route", ["/v1/logs", "/v1/traces/ingest"])
def test_one_request_of_50000_items_leaves_logging_running(tmp_path, sock_dir, route):
    """50,000 records in one request were written, then every later request got 503 for
    good: the pipeline paused on the count it took before writing them. (Bounds raised so
    one request may still carry 50,000.)"""
    r = start_receiver(tmp_path, sock_dir, otlp="max_items = 50000\nmax_inflight_bytes = 134217728\n")
    try:
        if route == "/v1/logs":
            body, content_type = empty_log_records(50_000), "application/x-protobuf"
        else:
            body, content_type = minimal_spans(50_000), "application/json"
        assert r.post(route, body, content_type)[0] == 200
        for n in range(3):  # an exporter's next batches, and a raw request between them
            assert sdk_log_exporter_succeeds(r, f"after the big request {n}")
            status, _, answer = r.post(route, empty_log_records(1) if route == "/v1/logs" else minimal_spans(1),
                                       content_type)
            assert status == 200, answer
        wait_for(lambda: len(r.records(message="after the big request 2")) == 1, what="the SDK's last record")
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()


class _Memory:
    name = "memory"

    def __init__(self) -> None:
        self.count = 0

    def open(self) -> None: ...

    def write(self, batch: Batch) -> None:
        self.count += batch.count

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> SinkStats:
        return SinkStats()


def test_the_pipeline_is_never_paused_by_records_it_already_wrote():
    """The pause follows the sinks: a put of any size that every sink took leaves no pause behind."""
    told: list[bool] = []

    async def main() -> tuple[bool, int]:
        sink = _Memory()
        pipeline = Pipeline([], [sink], events=Events(stderr=lambda line: None), on_pressure=told.append)
        pipeline.put([{"time": "t", "level": "info", "message": ""}] * 120_000)
        return pipeline.paused, sink.count

    assert asyncio.run(main()) == (False, 120_000)
    assert told == []


# --- finding 2: memory and time of the HTTP intake are bounded ---

def many_spans(count: int) -> bytes:
    """One ``/v1/traces`` request of ``count`` minimal spans, each its own trace (and session)."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for n in range(1, count + 1):
        span = scope.spans.add()
        span.trace_id, span.span_id = n.to_bytes(16, "big"), n.to_bytes(8, "big")
    return request.SerializeToString()


SMALL_BODIES = {  # 100,000 items in a few hundred KB: each route's cheapest way to ask for many records
    "/v1/logs protobuf": ("/v1/logs", lambda: empty_log_records(100_000), "application/x-protobuf"),
    "/v1/logs json": ("/v1/logs", lambda: b'{"resourceLogs":[{"scopeLogs":[{"logRecords":['
                      + b",".join([b"{}"] * 100_000) + b"]}]}]}", "application/json"),
    "/v1/traces protobuf": ("/v1/traces", lambda: many_spans(100_000), "application/x-protobuf"),
    "/v1/traces/ingest": ("/v1/traces/ingest", lambda: b'{"data":[' + b",".join([b"{}"] * 100_000) + b"]}",
                          "application/json"),
}


@pytest.mark.parametrize("body", SMALL_BODIES, ids=list(SMALL_BODIES))
def test_a_small_body_of_many_items_is_refused_before_it_becomes_records(tmp_path, sock_dir, body):
    """Before: 200, every item became a record (3 MB of empty log records: 7 GB of memory,
    37 s of a blocked event loop; 1.2 MB of spans: 40,000 session files). Now 413 names the
    bound, nothing is written, memory barely moves, and honest exporters go on."""
    path, make, content_type = SMALL_BODIES[body]
    r = start_receiver(tmp_path, sock_dir)
    try:
        before = rss_peak_kb(r.daemon.proc.pid)
        status, _, answer = r.post(path, make(), content_type)
        assert status == 413, answer
        assert b"max_items is 10000" in answer
        assert rss_peak_kb(r.daemon.proc.pid) - before < 64_000
        assert sdk_log_exporter_succeeds(r, "after the refused request")
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
    assert not (tmp_path / "traces").exists() or not any((tmp_path / "traces").iterdir())
    assert [x for x in r.records() if x.get("agent") != "logd"] == [r.records(message="after the refused request")[0]]


def test_many_attributes_in_one_record_are_charged_to_the_memory_budget(tmp_path, sock_dir):
    """One log record with a million (empty) attributes, 2 MB on the wire, would be ~190 MB of
    Python objects: more than max_inflight_bytes lets one request take, so 413 before they are
    made. (Only protobuf's own parse of them, ~50 MB, happens.)"""
    r = start_receiver(tmp_path, sock_dir)
    record = b"\x32\x00" * 1_000_000  # LogRecord field 6 (attributes), an empty KeyValue each
    # request -> resource_logs -> scope_logs -> log_records
    body = protobuf_field(1, protobuf_field(2, protobuf_field(2, record)))
    try:
        before = rss_peak_kb(r.daemon.proc.pid)
        status, _, answer = r.post("/v1/logs", body)
        assert status == 413 and b"max_inflight_bytes is 67108864" in answer, answer
        assert rss_peak_kb(r.daemon.proc.pid) - before < 100_000
        assert sdk_log_exporter_succeeds(r, "after the refused request")
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()


class Crowd:
    """Connections that each send a chunked body without ending it, and hold it until
    :meth:`release`: all at once, however busy the machine (the listener may still be reading
    what the kernel took in long after the last write returned)."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.answers: list[int] = []
        self.sent = 0
        self.released = False

    async def release_when(self, refused: int, deadline: float = 60.0) -> None:
        """Let go once every body is sent and ``refused`` requests were answered 503 (or at the
        deadline: the test's assertions then say what was missing)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while loop.time() < end and not (self.sent == self.size and self.answers.count(503) >= refused):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # an answer on its way is still read
        self.released = True

    async def hold(self, chunks: int, chunk: bytes) -> None:
        address = urllib.parse.urlsplit(self.url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        client = h11.Connection(h11.CLIENT)
        writer.write(client.send(h11.Request(method="POST", target="/v1/logs", headers=[
            ("Host", address.netloc), ("Content-Type", "application/x-protobuf"), ("Transfer-Encoding", "chunked")])))
        try:
            try:
                for _ in range(chunks):
                    writer.write(client.send(h11.Data(data=chunk)))
                    await writer.drain()
            finally:  # sent, or cut off (after a refusal): either way this one is done sending
                self.sent += 1
            while True:  # an answer before the body ended: the listener refused the request
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.25)
                except (TimeoutError, asyncio.TimeoutError):
                    if self.released:
                        return  # held: the listener took it in
                    continue
                if not data:
                    return
                client.receive_data(data)
                event = client.next_event()
                if isinstance(event, h11.Response):
                    self.answers.append(event.status_code)
                    if event.status_code == 503:
                        assert dict(event.headers)[b"retry-after"] == b"1"
                    return
        except (ConnectionError, h11.RemoteProtocolError):
            return
        finally:
            writer.close()


def test_bodies_held_open_share_one_memory_budget_and_the_rest_get_503(tmp_path, sock_dir):
    """Before: 150 chunked bodies of just under 4 MB held open took 803 MB. Now what requests
    in flight hold is bounded by max_inflight_bytes (64 MiB): past it, 503 + Retry-After at once."""
    r = start_receiver(tmp_path, sock_dir)
    crowd = Crowd(r.url, 40)

    async def everyone() -> None:
        chunk = b"\x12\x00" * 32768  # 64 KiB
        holding = [crowd.hold(48, chunk) for _ in range(crowd.size)]  # 3 MiB each
        await asyncio.wait_for(asyncio.gather(*holding, crowd.release_when(refused=15)), 120)

    try:
        before = rss_peak_kb(r.daemon.proc.pid)
        asyncio.run(everyone())  # 21 fit in 64 MiB, the others are refused at once
        assert crowd.answers.count(503) >= 15, crowd.answers
        # what is held is at most twice what it is charged (docs/security.md): buffers grow in steps
        assert rss_peak_kb(r.daemon.proc.pid) - before < 2 * 64 * 1024 + 16_000
        status = wait_for(lambda: (lambda s: s["inflight_bytes"] == 0 and s)(
            json.loads(r.logd("status", "--json"))["otlp"]), what="the held bodies to be let go")
        assert status["over_budget"] >= 15
        assert sdk_log_exporter_succeeds(r, "after the crowd")
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()


def test_a_request_that_does_not_arrive_within_request_timeout_is_closed(tmp_path, sock_dir):
    """Before: a connection sending one byte every 10 s was never closed (1,024 of them locked
    every exporter out). Now a request gets request_timeout from its first byte to its last."""
    r = start_receiver(tmp_path, sock_dir, otlp="request_timeout = 2\n")
    address = urllib.parse.urlsplit(r.url)
    slow = socket.create_connection((address.hostname, address.port), timeout=10)
    try:
        started = time.monotonic()
        request = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        answer = b""
        for byte in request:  # one byte every 0.2 s: each read is quick, the request never ends
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([slow], [], [], 0.2)
            if readable:
                answer = slow.recv(65536)
                break
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer and time.monotonic() - started < 8
        assert json.loads(r.logd("status", "--json"))["otlp"]["timed_out"] == 1
        assert r.daemon.stop() == 0
    finally:
        slow.close()
        r.daemon.kill()


# --- finding 3: the listener is off unless configured, and it can ask for a token ---

def test_the_listener_is_off_unless_configured(tmp_path, sock_dir):
    """Before: on by default on 127.0.0.1:4318, without authentication."""
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"')
    d = DaemonProcess(config, sock_dir / "logd.sock", tmp_path)
    del d.env["LOGD_OTLP_LISTEN"]
    d.start()
    try:
        status = json.loads(subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--config", str(config)],
                                           capture_output=True, text=True, timeout=30, env=d.env).stdout)
        assert status["otlp"] == {"listen": "off"}
        assert d.stop() == 0
    finally:
        d.kill()
    assert not [rec for rec in read_records(tmp_path / "agent.log") if rec.get("event") == "otlp"]


TOKEN = "5f2b8c1e9d4a7b3c6e0f1a2b3c4d5e6f"


def test_with_a_token_file_only_exporters_with_a_token_are_heard_and_records_name_it(tmp_path, sock_dir,
                                                                                      monkeypatch):
    """Before: any local user could write records and spans as any agent over OTLP, and
    nothing told them from socket records. Now: a token file, 401 without a known token, and
    every record names its transport and the token's name (a socket client cannot claim them)."""
    token_file = tmp_path / "otlp.tokens"
    token_file.write_text(f"# agents of team a\nplanner:{TOKEN}\nwriter:{'9' * 32}\n")
    token_file.chmod(0o640)
    r = start_receiver(tmp_path, sock_dir, otlp='token_file = "otlp.tokens"\n')
    try:
        assert not sdk_log_exporter_succeeds(r, "without a token")  # the exporter gets 401
        status, headers, answer = r.post("/v1/logs", empty_log_records(1), Authorization="Bearer " + "0" * 32)
        assert status == 401 and headers["www-authenticate"] == 'Bearer realm="logd"'
        assert b"OTEL_EXPORTER_OTLP_HEADERS" in answer
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {TOKEN}")
        assert sdk_log_exporter_succeeds(r, "with the planner's token")
        send_records(r.daemon.socket_path, [{"message": "from the socket", "_transport": "http", "_sender": "planner"}])
        [over_http] = wait_for(lambda: r.records(message="with the planner's token"))
        [over_socket] = wait_for(lambda: r.records(message="from the socket"))
        assert (over_http["_transport"], over_http["_sender"]) == ("http", "planner")
        assert "_transport" not in over_socket and "_sender" not in over_socket
        assert over_socket["client_transport"] == "http" and over_socket["client_sender"] == "planner"
        assert over_socket["_pid"] > 0
        assert r.daemon.stop() == 0
    finally:
        r.daemon.kill()
    assert TOKEN not in r.log.read_text() and "9" * 32 not in r.log.read_text()
    assert not r.records(message="without a token")


def test_a_token_file_every_user_may_read_is_a_config_error(tmp_path, sock_dir):
    token_file = tmp_path / "otlp.tokens"
    token_file.write_text(f"planner:{TOKEN}\n")
    token_file.chmod(0o644)
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"',
                          '[logging.otlp]\nlisten = "127.0.0.1:0"\ntoken_file = "otlp.tokens"\n')
    out = subprocess.run([sys.executable, "-m", "logd", "check", "--config", str(config)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "logging.otlp.token_file" in out.stderr and "mode 0o644" in out.stderr and "chmod 0640" in out.stderr


def test_a_busy_port_is_said_once_where_the_console_also_prints(tmp_path, sock_dir):
    """A newcomer's terminal shows stdout (the console) and stderr together: the warning
    was printed twice there, and its reason twice in each line."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = f"127.0.0.1:{holder.getsockname()[1]}"
    config = write_config(tmp_path, sock_dir / "logd.sock", "", f'[logging.otlp]\nlisten = "{busy}"\n')
    both = tmp_path / "terminal"
    try:
        with open(both, "wb") as terminal:
            d = DaemonProcess(config, sock_dir / "logd.sock", tmp_path)
            proc = subprocess.Popen([sys.executable, "-m", "logd", "run", "--config", str(config)], env=d.env,
                                    stdout=terminal, stderr=terminal, cwd=tmp_path)
            try:
                wait_for(lambda: "logd started" in both.read_text(), what="logd to start")
                proc.terminate()
                assert proc.wait(20) == 0
            finally:
                proc.kill()
    finally:
        holder.close()
    text = both.read_text()
    assert text.count("Address already in use") == 1, text
    assert text.count("OTLP receiver not started") == 1
