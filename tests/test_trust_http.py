"""Issue 26: the HTTP ingest listener of a real ``logd run`` under hostile requests.

Producers: the OpenTelemetry SDK's own exporters (``opentelemetry-exporter-otlp-proto-http``)
for the honest side; the hostile bodies are built with ``opentelemetry-proto``'s classes and
sent as raw HTTP.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor

from logd.components import SinkStats
from logd.events import Events
from logd.pipeline import Batch, Pipeline

from support import Receiver, start_receiver, wait_for


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
    good: the pipeline paused on the count it took before writing them."""
    r = start_receiver(tmp_path, sock_dir)
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
