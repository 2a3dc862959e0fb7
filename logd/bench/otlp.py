"""``logd bench --otlp``: spans/s and log records/s taken in over OTLP/HTTP (protobuf),
beside the Unix socket's records/s, all against one ``logd run`` in the same run.

Exporters are separate processes, like real ones: each POSTs pre-encoded
``ExportTraceServiceRequest``/``ExportLogsServiceRequest`` bodies of 512 items (the
SDK's BatchSpanProcessor batch size) over one keep-alive connection, retrying a 503 as
exporters do. The clock stops when every item is a line in logd's file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path

from logd.bench.harness import (
    AGENTS,
    Report,
    Row,
    _write_blobs,
    count_agent_lines,
    cpu_seconds,
    drive_clients,
    machine_line,
    start_logd,
)

BATCH = 512  # items per request

_EXPORTER_CODE = r"""
import http.client, struct, sys, time
host, port, path, blob = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = open(blob, "rb").read()
bodies, at = [], 0
while at < len(data):
    (n,) = struct.unpack_from("<I", data, at)
    bodies.append(data[at + 4:at + 4 + n]); at += 4 + n
conn = http.client.HTTPConnection(host, port, timeout=120)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for body in bodies:
    while True:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse(); response.read()
        if response.status == 200:
            break
        if response.status != 503:
            sys.exit(f"HTTP {response.status}")
        conn.close(); time.sleep(0.05)
"""


def _span_bodies(count: int, client: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies = []
    for first in range(0, count, BATCH):
        request = ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        resource.resource.attributes.add(key="service.name").value.string_value = "bench-agents"
        scope = resource.scope_spans.add()
        scope.scope.name = "bench"
        for i in range(first, min(count, first + BATCH)):
            span = scope.spans.add()
            span.trace_id = ((client + 1) << 64 | i // 8).to_bytes(16, "big")  # never all zero (invalid)
            span.span_id = (client << 40 | i + 1).to_bytes(8, "big")
            span.name = "chat gpt-4o-mini"
            span.start_time_unix_nano = 1_790_000_000_000_000_000 + i * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + 800_000
            for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.agent.name", AGENTS[i % len(AGENTS)]),
                               ("gen_ai.conversation.id", f"conv-{client:02d}-{i // 200:05d}"),
                               ("gen_ai.request.model", "gpt-4o-mini")):
                span.attributes.add(key=key).value.string_value = value
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 512 + i % 300
            span.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = 128 + i % 90
        bodies.append(request.SerializeToString())
    return bodies


def _log_bodies(count: int, client: int) -> list[bytes]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    bodies = []
    for first in range(0, count, BATCH):
        request = ExportLogsServiceRequest()
        resource = request.resource_logs.add()
        resource.resource.attributes.add(key="service.name").value.string_value = AGENTS[client % len(AGENTS)]
        scope = resource.scope_logs.add()
        scope.scope.name = "bench"
        for i in range(first, min(count, first + BATCH)):
            log = scope.log_records.add()
            log.time_unix_nano = 1_790_000_000_000_000_000 + i * 1_000_000
            log.severity_number = 17 if i % 50 == 0 else 9
            log.body.string_value = "LLM response received"
            log.attributes.add(key="session_id").value.string_value = f"sess-{client:02d}-{i // 500:05d}"
            log.attributes.add(key="seq").value.int_value = i
        bodies.append(request.SerializeToString())
    return bodies


def _drive_exporters(url: str, path: str, blobs: list[Path], out: Path, expected: int) -> float:
    host, port = re.fullmatch(r"http://([^:]+):(\d+)", url).groups()  # type: ignore[union-attr]
    return drive_clients(Path(path), blobs, out, expected,
                         sender=[sys.executable, "-c", _EXPORTER_CODE, host, port, path])


def _write_bodies(path: Path, bodies: list[bytes]) -> int:
    with open(path, "wb") as f:
        for body in bodies:
            f.write(struct.pack("<I", len(body)) + body)
    return sum(len(b) for b in bodies)


def bench_otlp(args: argparse.Namespace) -> Report:
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-otlp-", dir="/tmp"))
    try:
        per_client = args.records // args.clients
        total = per_client * args.clients
        blobs, _, socket_bytes = _write_blobs(folder, args.clients, args.records)
        span_blobs, log_blobs, span_bytes, log_bytes = [], [], 0, 0
        for c in range(args.clients):
            span_blobs.append(folder / f"spans{c}.bin")
            span_bytes += _write_bodies(span_blobs[-1], _span_bodies(per_client, c))
            log_blobs.append(folder / f"logs{c}.bin")
            log_bytes += _write_bodies(log_blobs[-1], _log_bodies(per_client, c))

        out = folder / "agent.log"
        proc, sock = start_logd(folder, f'file = "{out}"\nfile_only = true\nmax_size = 100000\n'
                                        f'[logging.traces]\ndir = "{folder / "traces"}"\n'
                                        '[logging.otlp]\nlisten = "127.0.0.1:0"\n')
        try:
            url = _receiver_url(out)
            rows = [Row(f"socket records ({args.clients} clients)", total,
                        drive_clients(sock, blobs, out, total), socket_bytes)]
            rows.append(Row(f"OTLP spans ({args.clients} exporters)", total,
                            _drive_exporters(url, "/v1/traces", span_blobs, out, total), span_bytes))
            rows.append(Row(f"OTLP log records ({args.clients} exporters)", total,
                            _drive_exporters(url, "/v1/logs", log_blobs, out, total), log_bytes))
            cpu = cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        rows[0].lost = total - count_agent_lines(out)
        rows[1].lost = total - count_agent_lines(out, b'"message":"generation chat gpt-4o-mini"')
        rows[2].lost = total - count_agent_lines(out, b'"logger":"bench"')
        socket_row, spans, logs = rows
        report = Report(
            title=f"logd bench --otlp: {total:,} records, spans and log records, {args.clients} clients/exporters "
                  f"({BATCH} per request, protobuf); {machine_line()}",
            rows=rows,
            ratios=[("OTLP spans / socket records", spans.rate / socket_row.rate),
                    ("OTLP log records / socket records", logs.rate / socket_row.rate)],
            notes=[f"daemon CPU over all three runs: {cpu:.2f}s"],
            target="0 lost")
        report.ok = all(r.lost == 0 for r in rows)
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _receiver_url(log: Path, timeout: float = 15) -> str:
    """The receiver's address, from logd's own "OTLP receiver on ..." record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rb'"OTLP receiver on (http://[0-9.]+:\d+)"', log.read_bytes() if log.exists() else b"")
        if found:
            return found.group(1).decode()
        time.sleep(0.02)
    raise RuntimeError(f"the OTLP receiver did not start within {timeout}s (see {log})")
