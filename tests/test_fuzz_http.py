"""Issue 26: the HTTP intake fuzzed through one real ``logd run``. Each example sends generated
hostile requests (OTLP protobuf and JSON, the OpenAI ingest shape; dense empty items,
attribute floods, nested arrays, random bytes and documents, gzip bombs, lying lengths,
chunked floods, slow senders, missing and wrong tokens, secrets in every name) while the
OpenTelemetry SDK's own exporters (protobuf and JSON, with the bearer token) export honest
spans and log records. After every example: each honest span and record is in the file
exactly once, every hostile request got one of the answers the listener gives (never a
500, never a hang), the intake is free again (nothing paused, no memory held) within the
configured ``retry_after`` once the load stops, and the daemon's peak RSS stays under the
bound docs/security.md gives for its settings. At the end, the secret the hostile bodies
carried is nowhere in what logd wrote or shows.

A fixed seed and ``LOGD_HTTP_FUZZ_EXAMPLES`` examples (default 20: about 12 s) in CI; a long
run: ``LOGD_HTTP_FUZZ_EXAMPLES=100000 LOGD_HTTP_FUZZ_SECONDS=600 LOGD_HTTP_FUZZ_SEED=26
pytest -s tests/test_fuzz_http.py`` (``-s`` prints the counts).
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from otel_support import recorded_spans

from logd.control import request

from support import DaemonProcess, Follower, protobuf_field, rss_peak_kb, wait_for, write_config

EXAMPLES = int(os.environ.get("LOGD_HTTP_FUZZ_EXAMPLES", "20"))
SECONDS = float(os.environ.get("LOGD_HTTP_FUZZ_SECONDS", "0"))  # > 0: examples after this many seconds do nothing
SEED = int(os.environ.get("LOGD_HTTP_FUZZ_SEED", "26"))
SECRET = "hunter2fz"
TOKEN = "fz-" + "7" * 40
MAX_BODY = 256 * 1024
MAX_ITEMS = 2000
MAX_INFLIGHT = 8 * 1024 * 1024
RETRY_AFTER = 1
REQUEST_TIMEOUT = 1.5
# docs/security.md: peak RSS <= 100 MB + 2 x max_inflight_bytes + 48 x max_body_bytes
RSS_BOUND_KB = (100 * 1024 * 1024 + 2 * MAX_INFLIGHT + 48 * MAX_BODY) // 1024
ANSWERS = {200, 400, 401, 404, 405, 408, 413, 415, 431, 503}  # what the listener says; never 500

PROTOBUF, JSON = "application/x-protobuf", "application/json"


# --- hostile requests ---

@dataclass
class Hostile:
    path: str
    body: bytes
    content_type: str = PROTOBUF
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = TOKEN
    mode: str = "whole"  # whole | chunked | partial (a Content-Length it never reaches) | slow | crowd
    crowd: int = 0  # crowd: this many connections at once, each holding its body unfinished for a while


paths = st.sampled_from(["/v1/logs", "/v1/traces"])


def one_record(record_fields: bytes) -> bytes:
    """A /v1/logs request of one resource, one scope and one log record of these fields."""
    return protobuf_field(1, protobuf_field(2, protobuf_field(2, record_fields)))


dense_items = st.builds(lambda path, n: Hostile(path, protobuf_field(1, protobuf_field(2, b"\x12\x00" * n))),
                        paths, st.integers(MAX_ITEMS - 3, 120_000))
attribute_flood = st.builds(  # many empty attributes (field 6 of a log record)
    lambda n: Hostile("/v1/logs", one_record(b"\x32\x00" * n)), st.integers(1000, 120_000))
array_flood = st.builds(  # a body (field 5) that is an array (field 5) of many empty AnyValues
    lambda n: Hostile("/v1/logs", one_record(protobuf_field(5, protobuf_field(5, b"\x0a\x00" * n)))),
    st.integers(1000, 120_000))
random_bytes = st.builds(Hostile, paths, st.binary(max_size=2000))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.sampled_from(["resourceLogs", "resourceSpans", "scopeLogs", "scopeSpans", "logRecords", "spans", "data",
                         "attributes", "body", "traceId", "spanId", "name", "key", "value", "stringValue",
                         "arrayValue", "values", "status", "message", "object", "span_data", "error"]),
        children, max_size=6),
    max_leaves=60)
random_json = st.builds(lambda path, doc: Hostile(path, json.dumps(doc).encode(), JSON),
                        st.sampled_from(["/v1/logs", "/v1/traces", "/v1/traces/ingest"]), json_values)
deep_json = st.builds(lambda path, depth: Hostile(path, b"[" * depth + b"]" * depth, JSON),
                      st.sampled_from(["/v1/logs", "/v1/traces/ingest"]), st.integers(500, 3000))
JSON_WRAP = {"/v1/logs": (b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[', b"]}]}]}"),
             "/v1/traces/ingest": (b'{"data":[{"data":[', b"]}]}")}  # the ingest's nested batches
many_json_items = st.builds(
    lambda path, n: Hostile(path, JSON_WRAP[path][0] + b",".join([b"{}"] * n) + JSON_WRAP[path][1], JSON),
    st.sampled_from(sorted(JSON_WRAP)), st.integers(MAX_ITEMS - 3, 60_000))
gzip_bomb = st.builds(lambda path, n: Hostile(path, gzip.compress(b"\x12\x00" * n),
                                              headers={"Content-Encoding": "gzip"}),
                      paths, st.integers(MAX_BODY // 4, MAX_BODY * 8))
bad_token = st.builds(lambda path, token: Hostile(path, b"", token=token), paths,
                      st.one_of(st.none(), st.just("0" * 40), st.text(max_size=50).filter(lambda t: t != TOKEN)))
lying = st.builds(lambda path, body, mode: Hostile(path, body, mode=mode), paths, st.binary(min_size=1, max_size=3000),
                  st.sampled_from(["partial", "chunked", "slow"]))
chunked_flood = st.builds(lambda n: Hostile("/v1/logs", b"\x12\x00" * (n // 2), mode="chunked"),
                          st.integers(MAX_BODY // 2, MAX_BODY * 4))
secret_names = st.builds(  # names, statuses and bodies that carry a secret
    lambda name: Hostile("/v1/traces", orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": name,
        "status": {"code": 2, "message": name},
        "attributes": [{"key": "gen_ai.agent.name", "value": {"stringValue": name}},
                       {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                       {"key": "gen_ai.tool.name", "value": {"stringValue": name}}]}]}]}]}), JSON),
    st.sampled_from([f"password={SECRET}", f"token: {SECRET}", f"x api_key={SECRET} y"]))
crowd = st.builds(lambda n, size: Hostile("/v1/logs", b"\x12\x00" * (size // 2), mode="crowd", crowd=n),
                  st.integers(10, 80), st.integers(MAX_BODY // 2, MAX_BODY))  # past max_inflight_bytes: 503s
# the secret where the redactor promises to find it: in a field that names something or holds
# text (docs/security.md; other fields keep their text, only secret key names and patterns apply)
text_keys = st.sampled_from(["message", "name", "agent", "model", "tool", "status", "error", "exception.message",
                             "gen_ai.agent.name", "toolName", "description", "stacktrace"])
secret_text = st.sampled_from([f"password={SECRET}", f"token: {SECRET}", f'{{"api_key": "{SECRET}"}}'])
secret_ingest = st.builds(
    lambda key, text, nest, wrap: Hostile("/v1/traces/ingest", json.dumps({"data": [{
        "object": "trace.span", "id": "span_s", "trace_id": "trace_s",
        **({"span_data": {"type": "function", key: text}} if nest else {key: text}),
        "error": {"message": "failed", "data": [{"x": wrap}], key: text}}]}).encode(), JSON),
    text_keys, secret_text, st.booleans(), json_values)
HOSTILE = st.one_of(secret_ingest, crowd, dense_items, attribute_flood, array_flood, random_bytes, random_json,
                    deep_json, many_json_items, gzip_bomb, bad_token, lying, chunked_flood, secret_names)


def send_hostile(url: tuple[str, int], h: Hostile, answers: Counter) -> None:
    """One hostile request on its own connection (a crowd: many at once); its answer (or how
    it ended) counted."""
    if h.mode == "crowd":
        holders = [threading.Thread(target=send_hostile, args=(url, Hostile(h.path, h.body, mode="hold"), answers))
                   for _ in range(h.crowd)]
        for t in holders:
            t.start()
        for t in holders:
            t.join()
        return
    headers = {"Host": f"{url[0]}:{url[1]}", "Content-Type": h.content_type, **h.headers}
    if h.token is not None:
        headers["Authorization"] = f"Bearer {h.token}"
    if h.mode == "chunked":
        headers["Transfer-Encoding"] = "chunked"
    else:
        promised = {"partial": 2 * len(h.body), "hold": len(h.body) + 1, "slow": len(h.body) + 65536}
        headers["Content-Length"] = str(promised.get(h.mode, len(h.body)))
    head = f"POST {h.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(url, timeout=REQUEST_TIMEOUT + 10)
    try:
        sock.sendall(head.encode())
        if h.mode == "chunked":
            for start in range(0, len(h.body), 65536):
                piece = h.body[start:start + 65536]
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        elif h.mode == "slow":  # a byte at a time, until past request_timeout
            deadline = time.monotonic() + REQUEST_TIMEOUT + 0.5
            for byte in itertools.cycle(h.body):
                if time.monotonic() > deadline:
                    break
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        else:
            sock.sendall(h.body)  # "partial": half of what Content-Length promised
            if h.mode == "partial":
                sock.shutdown(socket.SHUT_WR)
        if h.mode == "hold":  # the last byte never comes: an answer now is a refusal (503), else let go
            sock.settimeout(0.5)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                answers["held"] += 1
                return
            answers[int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else "closed while held"] += 1
            return
        answer = sock.recv(65536)
        if answer.startswith(b"HTTP/1.1 "):
            status: int | str = int(answer.split(b" ", 2)[1])
        else:  # closed without an answer: right only for a body that never came whole
            status = "closed" if h.mode == "partial" else f"closed without an answer ({h.mode})"
    except (ConnectionError, BrokenPipeError):
        status = "reset"  # it answered early (413, 401) and closed while the client still sent
    except TimeoutError:
        status = "timeout"
    finally:
        sock.close()
    answers[status] += 1


# --- honest exporters ---

class CountingIds(IdGenerator):
    """Ids that never repeat: Hypothesis seeds ``random``, from which the SDK's default ids
    come, so every example would reuse the first one's trace ids (and logd, rightly, keep a
    trace in the session it first saw it in)."""

    def __init__(self) -> None:
        self.next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self.next)

    def generate_trace_id(self) -> int:
        return next(self.next) << 64 | 0xF022


ids = CountingIds()


def honest_spans(tag: int, n: int) -> list:
    with recorded_spans("fuzz", "test.fuzz_http", ids) as (tracer, spans):
        for k in range(n):
            with tracer.start_as_current_span(f"fz-{tag}-{k}", attributes={"session.id": f"fz-{tag}"}):
                pass
    return spans


def honest_logs(tag: int, n: int) -> list:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "fuzz"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    for k in range(n):
        provider.get_logger("test.fuzz_http").emit(LogRecord(severity_number=SeverityNumber.INFO,
                                                             body=f"hl-{tag}-{k}"))
    provider.shutdown()
    return list(memory.get_finished_logs())


def export_honest(url: str, tag: int, spans: int, logs: int, as_json: bool, results: list) -> None:
    """The SDK's exporters, as an agent configured with OTEL_EXPORTER_OTLP_HEADERS uses them
    (they retry a 503 themselves, honouring Retry-After, until their timeout)."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    span_class, log_class = (JsonSpanExporter, JsonLogExporter) if as_json else (OTLPSpanExporter, OTLPLogExporter)
    spans_out = span_class(endpoint=url + "/v1/traces", headers=headers, timeout=30)
    logs_out = log_class(endpoint=url + "/v1/logs", headers=headers, timeout=30)
    try:
        results.append(("spans", spans_out.export(honest_spans(tag, spans)) == SpanExportResult.SUCCESS))
        results.append(("logs", logs_out.export(honest_logs(tag, logs)) == LogRecordExportResult.SUCCESS))
    finally:
        spans_out.shutdown()
        logs_out.shutdown()


# --- the daemon ---

@dataclass
class Fuzzed:
    daemon: DaemonProcess
    url: str
    follower: Follower
    seen_spans: dict[str, list[str]] = field(default_factory=dict)  # session -> span names
    seen_logs: Counter = field(default_factory=Counter)  # message -> times written
    totals: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def read(self) -> None:
        for record in self.follower.records():
            session = record.get("session_id")
            if isinstance(session, str) and session.startswith("fz-"):
                self.seen_spans.setdefault(session, []).append(record["span_data"]["name"])
            message = record.get("message")
            if isinstance(message, str) and message.startswith("hl-"):
                self.seen_logs[message] += 1


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    workdir = tmp_path_factory.mktemp("fuzz_http")
    socks = Path(tempfile.mkdtemp(prefix="logd-fh-", dir="/tmp"))
    tokens = workdir / "otlp.tokens"
    tokens.write_text(f"fuzzer:{TOKEN}\n")
    tokens.chmod(0o640)
    config = write_config(workdir, socks / "logd.sock",
                          'file = "agent.log"\nfile_only = true\nmax_size = 20\nmax_backups = 3\n'
                          'backup_names = "numbered"',
                          f'[logging.otlp]\nlisten = "127.0.0.1:0"\ntoken_file = "otlp.tokens"\n'
                          f"max_body_bytes = {MAX_BODY}\nmax_items = {MAX_ITEMS}\n"
                          f"max_inflight_bytes = {MAX_INFLIGHT}\nrequest_timeout = {REQUEST_TIMEOUT}\n"
                          f"retry_after = {RETRY_AFTER}\n")
    d = DaemonProcess(config, socks / "logd.sock", workdir).start()
    follower = Follower(workdir / "agent.log")
    url = wait_for(lambda: next((r["url"] for r in follower.records() if r.get("event") == "otlp" and "url" in r),
                                None), what="the OTLP receiver")
    f = Fuzzed(d, url, Follower(workdir / "agent.log"))
    yield f
    try:
        status = request(d.socket_path, "status")
        otlp = status["otlp"]
        print(f"\nHTTP fuzz seed {SEED}: {dict(f.totals)}; answers seen by clients {dict(f.answers)}; "
              f"logd's answers {otlp['responses']}, timed out {otlp['timed_out']}, over budget "
              f"{otlp['over_budget']}, received {otlp['received']}; peak RSS {rss_peak_kb(d.proc.pid)} KB "
              f"(bound {RSS_BOUND_KB} KB); {time.monotonic() - f.started:.0f} s")
        assert d.stop() == 0
        assert "Traceback" not in d.stderr() and "exception was never retrieved" not in d.stderr()
        written = b"".join(p.read_bytes() for p in workdir.rglob("*") if p.is_file() and p.name != "otlp.tokens")
        assert SECRET.encode() not in written
        assert SECRET not in json.dumps(status) and SECRET not in d.stderr()
    finally:
        d.kill()
        shutil.rmtree(socks, ignore_errors=True)


example_ids = itertools.count()


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: an example takes seconds; it is printed whole
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(hostile=st.lists(st.lists(HOSTILE, min_size=1, max_size=4), min_size=1, max_size=3),
       spans=st.integers(1, 30), logs=st.integers(1, 30), as_json=st.booleans())
def test_hostile_requests_never_cost_an_honest_span_or_record(fuzzed: Fuzzed, hostile: list[list[Hostile]],
                                                               spans: int, logs: int, as_json: bool) -> None:
    f = fuzzed
    if SECONDS and time.monotonic() - f.started > SECONDS:
        return  # a timed run is over: the examples left do nothing
    tag = next(example_ids)
    address = f.url.removeprefix("http://").rsplit(":", 1)
    target = (address[0], int(address[1]))
    results: list = []
    answers: Counter = Counter()
    senders = [threading.Thread(target=lambda batch=batch: [send_hostile(target, h, answers) for h in batch])
               for batch in hostile]
    honest = threading.Thread(target=export_honest, args=(f.url, tag, spans, logs, as_json, results))
    for t in (*senders, honest):
        t.start()
    for t in (*senders, honest):
        t.join(120)
    stopped = time.monotonic()
    assert not any(t.is_alive() for t in (*senders, honest)), "a client is stuck"
    # "reset": it answered early (413, 401, 408) and closed while the client still sent;
    # "held": a crowd's body that fitted, let go unfinished
    assert set(answers) - {"reset", "closed", "held"} <= ANSWERS, answers

    def free() -> bool:  # the load has stopped: nothing paused, nothing held, within retry_after
        s = request(f.daemon.socket_path, "status")
        return not s["paused"] and s["otlp"]["inflight_bytes"] == 0
    wait_for(free, timeout=RETRY_AFTER, interval=0.05, what="the intake to be free once the load stopped")
    free_after = time.monotonic() - stopped

    assert results == [("spans", True), ("logs", True)], results

    def complete() -> bool:
        f.read()
        return len(f.seen_spans.get(f"fz-{tag}", [])) >= spans and \
            all(f.seen_logs[f"hl-{tag}-{k}"] for k in range(logs))
    try:
        wait_for(complete, timeout=30, what=f"example {tag}'s honest spans and records")
    except AssertionError as exc:
        found = (f.seen_spans.get(f"fz-{tag}"), [k for k in range(logs) if f.seen_logs[f"hl-{tag}-{k}"]])
        raise AssertionError(f"{exc}: found {found}; stderr {f.daemon.stderr()[-2000:]}") from None
    assert sorted(f.seen_spans.pop(f"fz-{tag}")) == sorted(f"fz-{tag}-{k}" for k in range(spans))
    assert all(f.seen_logs.pop(f"hl-{tag}-{k}") == 1 for k in range(logs))
    assert f.daemon.proc.poll() is None
    assert rss_peak_kb(f.daemon.proc.pid) < RSS_BOUND_KB
    f.totals.update(examples=1, hostile_requests=sum(answers.values()), honest_requests=2, honest_spans=spans,
                    honest_log_records=logs)
    f.totals["max_free_after_ms"] = max(f.totals["max_free_after_ms"], int(free_after * 1000))
    f.answers.update(answers)
