"""The component contract and the wiring: built from a config without a socket or a daemon.

``build(context)`` makes the steps, the sinks and the trace branch; the tests here
drive them through a real :class:`Pipeline` into real files in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from logd.backoff import Backoff
from logd.components import Sink, SinkStats
from logd.config import parse_config
from logd.control import request
from logd.daemon import build
from logd.events import Events
from logd.pipeline import Pipeline
from logd.record import parse_line
from logd.sources.framing import LineFramer
from logd.spec import Context
from logd.traces.store import read_lines, session_files

from support import read_records, send_records, wait_for
from trace_samples import agk_session


class Clock:
    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_build_wires_steps_sinks_and_the_trace_branch_without_a_socket(tmp_path):
    """level = "warn": the log keeps warnings only, the session file keeps every trace
    record, redacted; both deliveries are counted alike; logd's own events join the log."""
    config = parse_config(f'[logging]\nlevel = "warn"\nfile_only = true\nfile = "{tmp_path / "agent.log"}"\n',
                          tmp_path / "agentflow.toml")
    stderr: list[str] = []
    events = Events(Clock(), stderr=stderr.append)
    parts = build(Context(config, events, Clock()))
    assert [s.name for s in parts.sinks] == ["file"] and all(isinstance(s, Sink) for s in parts.sinks)
    hooks = agk_session()
    hooks[0]["state"]["password"] = "hunter2"  # info level: below the log's level, still a trace
    chatter = {"time": "2026-11-18T00:00:00Z", "level": "info", "message": "chatter"}
    alarm = {"time": "2026-11-18T00:00:01Z", "level": "error", "message": "disk", "token": "abc"}

    async def run() -> Pipeline:
        parts.open()
        pipeline = Pipeline(parts.steps, parts.sinks, events=events, branch=parts.branch, clock=Clock())
        events.connect(pipeline.put)
        pipeline.put([parse_line(orjson.dumps(r), "2026-11-18T00:00:00Z") for r in [*hooks, chatter, alarm]])
        events.emit("error", "something broke", sink="test", error="boom")
        pipeline.drain()
        return pipeline

    pipeline = asyncio.run(run())
    stats = pipeline.sink_stats()
    pipeline.close()
    logged = lines_of(tmp_path / "agent.log")
    assert [r["message"] for r in logged] == ["disk", "something broke"]
    assert logged[0]["token"] == "[REDACTED]" and logged[1]["agent"] == "logd" and logged[1]["error"] == "boom"
    stored = [record for f in session_files(tmp_path / "traces") for record in read_lines(f)[0]]
    assert len(stored) == len(hooks) and stored[0]["state"]["password"] == "[REDACTED]"
    assert set(stats) == {"file", "traces"}
    assert stats["traces"].received_events == len(hooks) and stats["traces"].sent_events == len(hooks)
    assert stats["file"].received_events == 2 and stats["file"].errors == 0
    assert stats["file"].sent_bytes > 0 and stats["file"].rotations == 0
    assert stderr == ['logd: error: something broke sink=test error=boom']
    assert pipeline.stats.dropped == {"below_level": len(hooks) + 1}


def test_every_sink_reports_the_same_counters(tmp_path):
    config = parse_config(f'[logging]\nfile = "{tmp_path / "agent.log"}"\n', tmp_path / "agentflow.toml")
    parts = build(Context(config, Events()))
    for sink in [*parts.sinks, parts.store]:
        stats = sink.stats()
        assert isinstance(stats, SinkStats) and set(stats.as_dict()) == set(SinkStats().as_dict())


def test_events_from_another_thread_reach_the_pipeline_on_its_loop(tmp_path):
    got: list[tuple[str, int]] = []

    async def run() -> None:
        events = Events(stderr=lambda line: None)
        events.emit("info", "before start")  # kept until the pipeline is connected
        events.connect(lambda records: got.extend((r["message"], threading.get_ident()) for r in records))
        worker = threading.Thread(target=events.emit, args=("warn", "from a thread"))
        worker.start()
        worker.join()
        for _ in range(10):
            await asyncio.sleep(0)
        events.disconnect()
        events.emit("info", "after shut-down")
        assert events.lost == 1 and events.counts == {"info": 2, "warn": 1}

    asyncio.run(run())
    loop_thread = threading.get_ident()
    assert got == [("before start", loop_thread), ("from a thread", loop_thread)]


def test_framing_cuts_long_lines_and_keeps_a_partial_last_one():
    framer = LineFramer(max_bytes=5)
    assert framer.feed(b"ab\ncdefghij") == ([b"ab"], None)
    assert framer.feed(b"kl\nxyz") == ([b"cdefg"], {0: 10})  # cut to 5, 10 bytes long
    assert framer.feed(b"123456789\n\n") == ([b"xyz12", b""], {0: 12})
    assert framer.feed(b"tail") == ([], None)
    assert framer.close() == (b"tail", None) and framer.close() is None
    framer.feed(b"toolongline")
    assert framer.close() == (b"toolo", 11)


def test_backoff_grows_to_its_cap_on_an_injected_clock_and_honours_retry_after():
    clock = Clock(0.0)
    backoff = Backoff(0.1, 1.0, clock=clock)
    assert [backoff.failed() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    clock.now = 0.5
    assert backoff.remaining() == 0.5
    backoff.succeeded()
    assert backoff.remaining() == 0 and backoff.failed() == 0.1
    assert Backoff(0.1, 1.0).delay(1, retry_after=30) == 30


def test_import_logd_client_loads_neither_zstandard_nor_httpx():
    code = ("import sys, logd.client\n"
            "print(sorted(m for m in ('zstandard', 'httpx', 'logd.config', 'logd.rotation', 'prometheus_client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_running_logd_counts_the_trace_branch_like_a_sink_and_its_own_events(daemon, tmp_path):
    """End to end: status shows the trace store among the sinks, with the same figures, and
    logd's own events by level; a clean run writes nothing to stderr."""
    d = daemon('file = "agent.log"\nlevel = "warn"')
    send_records(d.socket_path, agk_session())
    wait_for(lambda: request(d.socket_path, "status")["sinks"]["traces"]["sent_events"] == len(agk_session()),
             what="the trace records in the session files")
    status = request(d.socket_path, "status")
    assert status["sinks"]["traces"]["received_events"] == len(agk_session())
    assert status["sinks"]["traces"]["errors"] == 0
    # the agents' info hooks are below the log's level; logd's own "logd started" is never filtered
    assert status["sinks"]["file"]["sent_events"] == 1
    assert status["events"]["emitted"]["info"] >= 1 and status["events"]["lost"] == 0
    assert d.stop() == 0
    assert d.stderr() == ""
    # only logd's own start/stop: info, yet never dropped by the level filter
    assert [r["message"] for r in read_records(tmp_path / "agent.log")] == ["logd started", "logd stopped"]
