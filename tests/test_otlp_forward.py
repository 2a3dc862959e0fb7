"""Forwarding spans: an ``otlp`` ship target with ``signal = "traces"`` sends the span records
logd took in on to a collector as OTLP traces. The collector here is a second real
``logd run`` with its OTLP receiver; the spans come from the OTel SDK's own exporter
and from logd's socket (a :mod:`logd.client.tracing` span record)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from test_otlp import Receiver, finished_spans, start_receiver

from logd.config import ConfigError, load_config

from support import read_records, send_records, wait_for, write_toml


@pytest.fixture
def two_sock_dirs() -> Iterator[tuple[Path, Path]]:
    dirs = (Path(tempfile.mkdtemp(prefix="logd-c-", dir="/tmp")), Path(tempfile.mkdtemp(prefix="logd-e-", dir="/tmp")))
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_spans_received_are_shipped_on_to_a_collector_as_otlp_traces(tmp_path, two_sock_dirs):
    (tmp_path / "collector").mkdir()
    (tmp_path / "edge").mkdir()
    collector = start_receiver(tmp_path / "collector", two_sock_dirs[0])
    edge: Receiver | None = None
    try:
        edge = start_receiver(tmp_path / "edge", two_sock_dirs[1], 'file = "agent.log"\n\n'
                              f'[[logging.ship]]\ntype = "otlp"\nsignal = "traces"\nname = "central"\n'
                              f'url = "{collector.url}/v1/traces"\nflush_interval = 0.05\n')
        spans = finished_spans("conv-forwarded")
        assert OTLPSpanExporter(endpoint=edge.url + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
        # a span record from logd's own client, and a plain log line: only spans go to a traces target
        send_records(edge.daemon.socket_path, [
            {"message": "agent span planner", "trace_id": "trace_" + "ab" * 16, "span_id": "span_" + "cd" * 12,
             "parent_id": None, "started_at": "2026-11-29T10:00:00.000000Z", "ended_at": "2026-11-29T10:00:02.000000Z",
             "span_data": {"type": "agent", "name": "planner"}, "group_id": "conv-client", "agent": "planner"},
            {"message": "a plain log line", "agent": "planner"}])

        forwarded = wait_for(lambda: len(collector.session("conv-forwarded")) == 3
                             and collector.session("conv-forwarded"), 20, what="the spans at the collector")
        sent = {r["span_id"]: r for r in edge.session("conv-forwarded")}
        for r in forwarded:  # the same span, ids, parent, timing, attributes and error on both sides
            original = sent[r["span_id"]]
            for key in ("trace_id", "parent_id", "started_at", "ended_at", "span_data", "error", "agent",
                        "attributes", "level"):
                assert r[key] == original[key], key
            assert r["resource"]["service.name"] == "support-bot"
        [client_span] = wait_for(lambda: collector.session("conv-client"), 20)
        assert client_span["span_data"]["type"] == "agent" and client_span["agent"] == "planner"
        assert client_span["started_at"] == "2026-11-29T10:00:00.000000Z"
        assert collector.records(message="a plain log line") == []
        assert edge.daemon.stop() == 0
        logd_errors = [r for r in read_records(edge.log) if r.get("agent") == "logd" and r.get("level") == "error"]
        assert logd_errors == []  # no delivery failure reported
    finally:
        if edge is not None:
            edge.daemon.kill()
        collector.daemon.kill()


def test_signal_is_checked_against_the_type_and_the_url(tmp_path):
    def error(target: str) -> ConfigError:
        with pytest.raises(ConfigError) as info:
            load_config(write_toml(tmp_path, f"[logging]\nfile = \"a.log\"\n[[logging.ship]]\n{target}\n"))
        return info.value

    wrong_type = error('type = "loki"\nurl = "http://127.0.0.1:3100/loki/api/v1/push"\nsignal = "traces"')
    assert wrong_type.key == "logging.ship[0].signal" and '"otlp"' in str(wrong_type)
    wrong_url = error('type = "otlp"\nurl = "http://127.0.0.1:4318/v1/logs"\nsignal = "traces"')
    assert wrong_url.key == "logging.ship[0].url" and "/v1/traces" in str(wrong_url)
    bad_value = error('type = "otlp"\nurl = "http://127.0.0.1:4318/v1/traces"\nsignal = "metrics"')
    assert 'one of "logs", "traces"' in str(bad_value)
    ok = load_config(write_toml(tmp_path, '[logging]\nfile = "a.log"\n[[logging.ship]]\ntype = "otlp"\n'
                                          'url = "http://127.0.0.1:4318/v1/traces"\nsignal = "traces"\n'))
    assert ok.ship[0].signal == "traces"
