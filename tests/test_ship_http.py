"""Shipping over HTTP to a real local server process: NDJSON, OTLP (protobuf and JSON, parsed
with opentelemetry-proto), Loki and Elasticsearch bodies; 429/Retry-After, 5xx, dead letters."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from logd.config import load_config
from logd.control import request
from logd.ship.shipper import Shipper

from ship_support import Certificates, Collector, numbered, ship_config
from support import send_records, wait_for, write_config

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.fixture
def collector(tmp_path):
    server = Collector(tmp_path / "collector").start()
    yield server
    server.stop()


def ndjson_records(bodies: list[bytes]) -> list[dict]:
    return [orjson.loads(line) for body in bodies for line in body.splitlines() if line]


def test_http_ndjson_gzip_with_secret_header_from_env(daemon, collector):
    """NDJSON batches, gzip-compressed, carry every record once; the header value comes from the env."""
    target = f'''type = "http"
url = "{collector.url('/ingest')}"
name = "vector"
compression = "gzip"
batch_size = 300
flush_interval = 0.05
headers = {{ Authorization = "env:SHIP_TOKEN", X-Source = "logd" }}
'''
    d = daemon(ship_config(target), env={"SHIP_TOKEN": "Bearer s3cret"})
    send_records(d.socket_path, numbered(3000))

    def shipped() -> list[dict]:
        return [r for r in ndjson_records(collector.accepted_bodies()) if r.get("agent") == "planner"]
    wait_for(lambda: len(shipped()) >= 3000, 30, what="3000 records at the collector")
    assert [r["seq"] for r in shipped()] == list(range(3000))
    first = collector.requests()[0]
    assert first["path"] == "/ingest"
    assert first["headers"]["Content-Encoding"] == "gzip"
    assert first["headers"]["Content-Type"] == "application/x-ndjson"
    assert first["headers"]["Authorization"] == "Bearer s3cret"
    assert first["headers"]["X-Source"] == "logd"
    assert max(len(body.splitlines()) for body in collector.accepted_bodies()) <= 300
    # the secret is never written anywhere logd writes
    assert b"s3cret" not in Path(d.workdir / "agent.log").read_bytes()


def test_otlp_protobuf_parses_as_export_logs_service_request(daemon, collector):
    """OTLP/HTTP protobuf: service.name per agent, severity, body, attributes, trace and span ids."""
    target = f'''type = "otlp"
url = "{collector.url('/v1/logs')}"
flush_interval = 0.05
'''
    d = daemon(ship_config(target))
    send_records(d.socket_path, [
        {"level": "warn", "message": "slow tool", "agent": "planner", "trace_id": TRACE, "span_id": SPAN,
         "duration_ms": 2300, "tokens": {"prompt": 512}, "ok": False, "tags": ["a", "b"], "ratio": 0.5,
         "time": "2026-11-23T11:28:07.123456Z"},
        {"level": "error", "message": "tool failed", "agent": "writer"},
    ])

    def exported() -> list:
        out = []
        for body in collector.accepted_bodies():
            req = ExportLogsServiceRequest.FromString(body)
            for rl in req.resource_logs:
                attrs = {a.key: a.value.string_value for a in rl.resource.attributes}
                for sl in rl.scope_logs:
                    out.extend((attrs, log) for log in sl.log_records)
        return out
    wait_for(lambda: {a["service.name"] for a, _ in exported()} >= {"planner", "writer"}, 30,
             what="both agents' records at the collector")
    assert collector.requests()[0]["headers"]["Content-Type"] == "application/x-protobuf"
    (attrs, log), = [(a, entry) for a, entry in exported() if a["service.name"] == "planner"]
    assert attrs["host.name"]
    assert (log.severity_number, log.severity_text, log.body.string_value) == (13, "WARN", "slow tool")
    assert log.time_unix_nano == 1795433287123456000
    assert (log.trace_id.hex(), log.span_id.hex()) == (TRACE, SPAN)
    fields = {a.key: a.value for a in log.attributes}
    assert fields["duration_ms"].int_value == 2300
    assert fields["ok"].HasField("bool_value") and fields["ok"].bool_value is False
    assert fields["ratio"].double_value == 0.5
    assert [v.string_value for v in fields["tags"].array_value.values] == ["a", "b"]
    assert fields["tokens"].kvlist_value.values[0].key == "prompt"
    assert "trace_id" not in fields and "message" not in fields
    (_, err), = [(a, entry) for a, entry in exported() if a["service.name"] == "writer"]
    assert (err.severity_number, err.severity_text) == (17, "ERROR")
    assert err.trace_id == b""


def test_otlp_json_follows_the_protobuf_json_mapping(daemon, collector):
    """OTLP/JSON parses into ExportLogsServiceRequest; trace ids are hex as OTLP/JSON requires."""
    target = f'''type = "otlp"
format = "json"
url = "{collector.url('/v1/logs')}"
flush_interval = 0.05
'''
    d = daemon(ship_config(target))
    send_records(d.socket_path, [{"level": "info", "message": "hello", "agent": "critic", "trace_id": TRACE}])

    def bodies() -> list[dict]:
        return [orjson.loads(b) for b in collector.accepted_bodies()]
    wait_for(lambda: any("critic" in str(b) for b in bodies()), 30, what="the record at the collector")
    body = next(b for b in bodies() if "critic" in str(b))
    critic = next(i for i, r in enumerate(body["resourceLogs"])
                  if r["resource"]["attributes"][0]["value"]["stringValue"] == "critic")
    log = body["resourceLogs"][critic]["scopeLogs"][0]["logRecords"][0]
    assert log["traceId"] == TRACE
    del log["traceId"]  # hex in OTLP/JSON; the generic protobuf mapping would expect base64
    request_message = Parse(orjson.dumps(body), ExportLogsServiceRequest())
    parsed = request_message.resource_logs[critic].scope_logs[0].log_records[0]
    assert (parsed.body.string_value, parsed.severity_number) == ("hello", 9)


def test_loki_and_elasticsearch_bodies(daemon, collector, tmp_path):
    """Loki: streams labelled by agent and level; Elasticsearch: _bulk create actions with stable ids."""
    loki = f'type = "loki"\nurl = "{collector.url("/loki/api/v1/push")}"\nflush_interval = 0.05\n'
    es = f'type = "elasticsearch"\nurl = "{collector.url("/_bulk")}"\nindex = "agents"\nflush_interval = 0.05\n'
    d = daemon(ship_config(loki, es))
    send_records(d.socket_path, numbered(3) + [{"level": "error", "message": "boom", "agent": "writer"}])

    def by_path(path: str) -> list[bytes]:
        return [r["body"] for r in collector.requests() if r["path"] == path]
    wait_for(lambda: b"boom" in b"".join(by_path("/loki/api/v1/push")) and b"boom" in b"".join(by_path("/_bulk")),
             30, what="records at both endpoints")
    streams = [s for body in by_path("/loki/api/v1/push") for s in orjson.loads(body)["streams"]]
    labels = {(s["stream"]["agent"], s["stream"]["level"]) for s in streams}
    assert {("planner", "info"), ("writer", "error")} <= labels
    planner = [v for s in streams if s["stream"]["agent"] == "planner" for v in s["values"]]
    assert [orjson.loads(line)["seq"] for _, line in planner] == [0, 1, 2]
    assert all(ts.isdigit() and len(ts) == 19 for ts, _ in planner)
    lines = [orjson.loads(line) for body in by_path("/_bulk") for line in body.splitlines()]
    actions, docs = lines[0::2], lines[1::2]
    assert all(a["create"]["_index"] == "agents" and a["create"]["_id"] for a in actions)
    assert len({a["create"]["_id"] for a in actions}) == len(actions)
    assert all("@timestamp" in doc for doc in docs)


# --- retries, Retry-After and dead letters, driven in-process with an injected sleeper ---

def run_shipper(tmp_path: Path, collector: Collector, records: list[dict], target: str,
                until: callable) -> tuple[Shipper, list[float]]:
    """A Shipper on a hand-written log file; its waits are recorded, not slept."""
    log = tmp_path / "agent.log"
    log.write_bytes(b"".join(orjson.dumps({"time": "2026-11-23T11:28:07.000000Z", **r}) + b"\n" for r in records))
    config = load_config(write_config(tmp_path, tmp_path / "unused.sock", ship_config(target)))
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False
    shipper = Shipper(config.ship[0], log, config.ship_state_dir, sleep=sleep, rng=random.Random(7))
    shipper.start()
    try:
        wait_for(until, 30, what="the shipper to finish")
    finally:
        shipper.stop(drain=0)
    return shipper, waits


def test_429_retry_after_and_5xx_are_retried_without_loss(tmp_path, collector):
    """429 waits at least its Retry-After; 503 backs off; the batch then goes through, once."""
    collector.plan([{"status": 429, "headers": {"Retry-After": "7"}}, {"status": 503, "body": "overloaded"}])
    target = (f'type = "http"\nurl = "{collector.url()}"\n'
              'batch_size = 100\nflush_interval = 0.05\nbackoff_initial = 0.5\n')
    records = numbered(250)
    shipper, waits = run_shipper(tmp_path, collector, records, target,
                                 lambda: len(ndjson_records(collector.accepted_bodies())) >= 250)
    assert waits[0] >= 7  # the server asked for 7 s
    assert 0.25 <= waits[1] <= 1.0  # second attempt: between half and all of 2 x 0.5 s
    assert [r["seq"] for r in ndjson_records(collector.accepted_bodies())] == list(range(250))
    assert [r["status"] for r in collector.requests()][:3] == [429, 503, 200]
    status = shipper.status()
    assert status["retries"] == 2 and status["last_error"].startswith("HTTP 503")
    assert status["lag_records"] == 0 and status["dead_lettered"] == 0


def test_permanent_4xx_batch_goes_to_dead_letter_with_reason(tmp_path, collector):
    """A 400 for a batch puts its records in the dead-letter file with the reason; the rest ship on."""
    collector.plan([{"status": 400, "body": "field tokens: bad type"}])
    target = f'type = "http"\nurl = "{collector.url()}"\nname = "strict"\nbatch_size = 10\nflush_interval = 0.05\n'
    shipper, waits = run_shipper(tmp_path, collector, numbered(25), target,
                                 lambda: len(ndjson_records(collector.accepted_bodies())) >= 15)
    dead = [orjson.loads(line) for line in shipper.dead_letter_path.read_text().splitlines()]
    assert [d["record"]["seq"] for d in dead] == list(range(10))
    assert dead[0]["reason"] == "HTTP 400: field tokens: bad type" and dead[0]["target"] == "strict"
    assert [r["seq"] for r in ndjson_records(collector.accepted_bodies())] == list(range(10, 25))
    assert waits == []  # refused for good: not retried
    assert shipper.status()["dead_lettered"] == 10


def test_elasticsearch_item_errors_retry_429_and_dead_letter_400(tmp_path, collector):
    """_bulk answering 200 with item errors: 429 items are resent, 400 items dead-lettered, 409 counts as stored."""
    items = [{"create": {"status": 201}},
             {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
             {"create": {"status": 400,
                         "error": {"type": "mapper_parsing_exception", "reason": "failed to parse [tokens]"}}},
             {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}]
    collector.plan([{"status": 200, "body": orjson.dumps({"errors": True, "items": items}).decode()}])
    target = f'type = "elasticsearch"\nurl = "{collector.url("/_bulk")}"\nbatch_size = 4\nflush_interval = 0.05\n'
    shipper, waits = run_shipper(tmp_path, collector, numbered(4), target, lambda: len(collector.requests()) >= 2)
    wait_for(lambda: shipper.position is not None, 10, what="the checkpoint")
    second = [orjson.loads(line) for line in collector.requests()[1]["body"].splitlines()]
    assert [doc["seq"] for doc in second[1::2]] == [1]  # only the 429 item went again, with its id
    assert second[0]["create"]["_id"] == orjson.loads(collector.requests()[0]["body"].splitlines()[2])["create"]["_id"]
    dead = [orjson.loads(line) for line in shipper.dead_letter_path.read_text().splitlines()]
    assert [(d["record"]["seq"], d["reason"]) for d in dead] == [
        (2, "HTTP 400: mapper_parsing_exception: failed to parse [tokens]")]
    assert len(waits) == 1


def test_status_and_cli_show_lag_and_last_error_per_target(daemon, collector):
    """`logd status` prints each target's lag in records and bytes, its last error and last success."""
    collector.plan([{"status": 503, "body": "down for maintenance"}] * 1000)
    target = (f'type = "http"\nurl = "{collector.url()}"\nname = "central"\n'
              'flush_interval = 0.05\nbackoff_initial = 0.05\nbackoff_max = 0.1\n')
    d = daemon(ship_config(target))
    send_records(d.socket_path, numbered(50))
    wait_for(lambda: request(d.socket_path, "status")["ship"]["central"]["retries"] >= 2, 30, what="retries")
    out = subprocess.run([sys.executable, "-m", "logd", "status", "--socket", str(d.socket_path)],
                         capture_output=True, text=True, check=True).stdout
    block = out[out.index("ship central"):]
    assert "retrying" in block and "HTTP 503: down for maintenance" in block
    status = request(d.socket_path, "status")["ship"]["central"]
    assert status["lag_records"] >= 50 and status["lag_bytes"] > 50 * 40
    assert f"lag: {status['lag_records']} records" in block
    collector.plan([])  # back to 200s
    wait_for(lambda: request(d.socket_path, "status")["ship"]["central"]["state"] == "up to date", 30,
             what="the target to catch up")
    status = request(d.socket_path, "status")["ship"]["central"]
    assert status["lag_records"] == 0 and status["last_success"] is not None


def test_413_halves_the_batch_instead_of_refusing_records(tmp_path, collector):
    collector.plan([{"status": 413, "body": "request entity too large"}])
    target = f'type = "http"\nurl = "{collector.url()}"\nbatch_size = 100\nflush_interval = 0.05\n'
    shipper, waits = run_shipper(tmp_path, collector, numbered(100), target,
                                 lambda: len(ndjson_records(collector.accepted_bodies())) >= 100)
    assert [len(r["body"].splitlines()) for r in collector.requests()] == [100, 50, 50]
    assert [r["seq"] for r in ndjson_records(collector.accepted_bodies())] == list(range(100))
    assert shipper.status()["dead_lettered"] == 0 and waits == []


def test_otlp_partial_success_is_counted_and_reported(tmp_path, collector):
    """A collector that takes a batch but drops some records says so; logd counts it (it cannot resend)."""
    body = orjson.dumps({"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "timestamps too old"}})
    collector.plan([{"status": 200, "headers": {"Content-Type": "application/json"}, "body": body.decode()}])
    target = f'type = "otlp"\nformat = "json"\nurl = "{collector.url()}"\nflush_interval = 0.05\n'
    shipper, _ = run_shipper(tmp_path, collector, numbered(5), target, lambda: len(collector.requests()) >= 1)
    wait_for(lambda: shipper.status()["rejected_by_remote"] == 3, 10, what="the partial success counted")
    assert "timestamps too old" in shipper.status()["last_error"]


def test_a_checkpoint_that_cannot_be_saved_restarts_the_shipper_without_loss(tmp_path, collector):
    """An error inside the shipper (here: the state folder refuses the checkpoint) is reported in
    status and the shipper restarts from its last checkpoint; once it can save, all is delivered."""
    target = f'type = "http"\nurl = "{collector.url()}"\nname = "central"\nbatch_size = 10\nflush_interval = 0.05\n'
    log = tmp_path / "agent.log"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in numbered(30)))
    config = load_config(write_config(tmp_path, tmp_path / "unused.sock", ship_config(target)))
    blocker = config.ship_state_dir / "central.checkpoint.json.tmp"
    blocker.mkdir(parents=True)  # the checkpoint's temp file cannot be created where a folder is
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return shipper._stop.wait(0.01)  # a token pause so the restart loop does not spin
    shipper = Shipper(config.ship[0], log, config.ship_state_dir, sleep=sleep, rng=random.Random(1))
    shipper.start()
    try:
        wait_for(lambda: shipper.status()["state"] == "restarting", 10, what="the shipper to report the error")
        assert "central.checkpoint.json.tmp" in shipper.status()["restarting_after"]
        blocker.rmdir()
        wait_for(lambda: shipper.status()["lag_records"] == 0 and shipper.position is not None, 15,
                 what="everything delivered once the checkpoint can be saved")
    finally:
        shipper.stop(drain=0)
    seqs = [r["seq"] for r in ndjson_records(collector.accepted_bodies())]
    assert sorted(set(seqs)) == list(range(30))  # the first batch went out again: duplicates, never loss
    assert shipper.status()["restarting_after"] is None and len(waits) >= 1


def test_max_retries_gives_up_into_the_dead_letter_file(tmp_path, collector):
    """With a retry limit set, a batch still failing after it is dead-lettered with the last error."""
    collector.plan([{"status": 503, "body": "busy"}] * 3)
    target = (f'type = "http"\nurl = "{collector.url()}"\nname = "limited"\nbatch_size = 5\nflush_interval = 0.05\n'
              'max_retries = 2\n')
    shipper, waits = run_shipper(tmp_path, collector, numbered(10), target,
                                 lambda: len(ndjson_records(collector.accepted_bodies())) >= 5)
    dead = [orjson.loads(line) for line in shipper.dead_letter_path.read_text().splitlines()]
    assert [d["record"]["seq"] for d in dead] == [0, 1, 2, 3, 4]
    assert dead[0]["reason"] == "gave up after 2 retries: HTTP 503: busy"
    assert len(waits) == 2
    assert [r["seq"] for r in ndjson_records(collector.accepted_bodies())] == [5, 6, 7, 8, 9]


def test_https_target_verifies_the_collector_against_tls_ca(daemon, tmp_path):
    """HTTPS: with tls_ca the collector's certificate is trusted and records arrive; without it
    (system trust only) the target keeps failing on verification and nothing is sent in clear."""
    certs = Certificates(tmp_path / "certs")
    secure = Collector(tmp_path / "secure", tls=certs).start()
    try:
        trusted = (f'type = "otlp"\nname = "trusted"\nurl = "{secure.url("/v1/logs")}"\n'
                   f'tls_ca = "{certs.ca}"\nflush_interval = 0.05\n')
        untrusted = (f'type = "http"\nname = "untrusted"\nurl = "{secure.url("/x")}"\nflush_interval = 0.05\n'
                     'backoff_initial = 0.05\nbackoff_max = 0.2\n')
        d = daemon(ship_config(trusted, untrusted))
        send_records(d.socket_path, numbered(20))

        def exported() -> int:
            return sum(len(sl.log_records) for r in secure.requests() if r["path"] == "/v1/logs"
                       for rl in ExportLogsServiceRequest.FromString(r["body"]).resource_logs for sl in rl.scope_logs)
        wait_for(lambda: exported() >= 20, 30, what="20 records over HTTPS")
        wait_for(lambda: request(d.socket_path, "status")["ship"]["untrusted"]["retries"] >= 1, 30,
                 what="the unverified target to fail")
        status = request(d.socket_path, "status")["ship"]["untrusted"]
        assert status["delivered"] == 0 and "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
        assert not [r for r in secure.requests() if r["path"] == "/x"]
    finally:
        secure.stop()
