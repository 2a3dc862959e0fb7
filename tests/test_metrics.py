"""Metrics, health and readiness: a real `logd run`, scraped over real TCP and Unix sockets,
checked with Debian's promtool; agent-derived figures from real records."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from logd.steps.agents import OTHER_AGENTS, AgentMetrics

from ship_support import Collector, ship_config
from support import agent_records, can_connect, send_records, wait_for, write_config

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def status(d) -> dict:
    out = subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket", str(d.socket_path)],
                         capture_output=True, text=True, check=True).stdout
    return orjson.loads(out)


def metrics_url(d) -> str:
    url = status(d)["metrics"]
    assert url.startswith("http://"), url
    return url


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def get_unix(path: Path, target: str) -> tuple[int, str]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.fspath(path))
    s.sendall(f"GET {target} HTTP/1.0\r\nHost: logd\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def promtool_check(text: str) -> None:
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, f"promtool check metrics failed:\n{result.stdout}{result.stderr}"


METRICS_TCP = '\n[logging.metrics]\nlisten = "127.0.0.1:0"\n'


def test_scrape_of_a_running_daemon_passes_promtool_and_counts_agents(daemon, tmp_path):
    d = daemon(extra=METRICS_TCP)
    url = metrics_url(d)
    records = (
        [{"level": "info", "msg": "step", "agent": "planner", "duration_ms": 1500}] * 4
        + [{"level": "error", "msg": "tool failed", "agent": "planner"}] * 2
        + [{"level": "debug", "msg": "noise", "agent": "writer"}] * 3  # below the level: counted, then dropped
        + [{"level": "warn", "msg": "slow", "agent": "writer", "duration_ms": 40}]
        # an AgenticGoKit run, from its hooks: 2.5 s
        + [{"timestamp": "2026-11-23T10:00:00Z", "hook": "BeforeAgentRun", "session_id": "s1",
            "agent_id": "critic", "agent": "critic"},
           {"timestamp": "2026-11-23T10:00:02.5Z", "hook": "AfterAgentRun", "session_id": "s1",
            "agent_id": "critic", "agent": "critic"}]
        # an OpenAI Agents SDK agent span: 0.2 s
        + [{"trace_id": "t1", "span_id": "sp1", "started_at": "2026-11-23T10:00:00.000Z",
            "ended_at": "2026-11-23T10:00:00.200Z", "span_data": {"type": "agent", "name": "critic"}}]
    )
    send_records(d.socket_path, records)
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) >= 10, what="records in the file")

    code, text = get(url + "/metrics")
    assert code == 200
    promtool_check(text)
    got = samples(text)
    assert got[("logd_agent_records_total", (("agent", "planner"), ("level", "info")))] == 4
    assert got[("logd_agent_records_total", (("agent", "planner"), ("level", "error")))] == 2
    assert got[("logd_agent_records_total", (("agent", "writer"), ("level", "debug")))] == 3
    assert got[("logd_agent_errors_total", (("agent", "planner"),))] == 2
    assert got[("logd_agent_errors_total", (("agent", "writer"),))] == 0
    assert got[("logd_records_dropped_total", (("reason", "below_level"),))] == 3
    assert got[("logd_records_dropped_total", (("reason", "sampled"),))] == 0
    # durations: 4 x 1.5 s for planner; writer 0.04 s; critic 2.5 s (hooks) + 0.2 s (span)
    assert got[("logd_agent_run_duration_seconds_count", (("agent", "planner"),))] == 4
    assert got[("logd_agent_run_duration_seconds_sum", (("agent", "planner"),))] == pytest.approx(6.0)
    assert got[("logd_agent_run_duration_seconds_bucket", (("agent", "planner"), ("le", "1.0")))] == 0
    assert got[("logd_agent_run_duration_seconds_bucket", (("agent", "planner"), ("le", "2.5")))] == 4
    assert got[("logd_agent_run_duration_seconds_bucket", (("agent", "writer"), ("le", "0.05")))] == 1
    assert got[("logd_agent_run_duration_seconds_count", (("agent", "critic"),))] == 2
    assert got[("logd_agent_run_duration_seconds_sum", (("agent", "critic"),))] == pytest.approx(2.7)
    # about logd itself
    assert got[("logd_records_received_total", ())] >= len(records)
    assert got[("logd_received_bytes_total", ())] >= sum(len(orjson.dumps(r)) + 1 for r in records)
    assert got[("logd_records_written_total", (("sink", "file"),))] >= len(records) - 3
    assert got[("logd_rotations_total", (("sink", "file"),))] == 0
    assert got[("logd_ready", ())] == 1
    assert got[("logd_connections", ())] == 0
    assert got[("logd_config_reloads_total", ())] == 0
    assert ("logd_queue_depth", ()) in got
    assert ("process_resident_memory_bytes", ()) in got

    # logd status prints the same figures for humans
    st = status(d)
    assert st["agents"]["planner"]["records"] == {"error": 2, "info": 4}
    assert st["agents"]["planner"]["errors"] == 2
    assert st["agents"]["planner"]["runs"] == 4 and st["agents"]["planner"]["run_seconds_mean"] == 1.5
    assert st["dropped"]["below_level"] == 3
    assert st["ready"] is True
    human = subprocess.run([sys.executable, "-m", "logd", "status", "--socket", str(d.socket_path)],
                           capture_output=True, text=True, check=True).stdout
    assert "planner:" in human and "run_seconds_mean: 1.5" in human and f"metrics: {url}" in human


def test_health_and_ready_answer_and_unknown_paths_are_404(daemon):
    d = daemon(extra=METRICS_TCP)
    url = metrics_url(d)
    assert get(url + "/health") == (200, "ok\n")
    assert get(url + "/ready") == (200, "ready\n")
    assert get(url + "/nothing")[0] == 404


def test_metrics_on_a_unix_socket_with_owner_only_mode(daemon, sock_dir):
    path = sock_dir / "metrics.sock"
    d = daemon(extra=f'\n[logging.metrics]\nlisten = "unix:{path}"\nmode = "0600"\n')
    assert status(d)["metrics"] == f"unix:{path}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    send_records(d.socket_path, [{"msg": "hi", "agent": "unix-agent", "level": "error"}])
    code, text = get_unix(path, "/metrics")
    assert code == 200
    promtool_check(text)
    assert samples(text)[("logd_agent_errors_total", (("agent", "unix-agent"),))] == 1
    assert get_unix(path, "/ready") == (200, "ready\n")
    assert d.stop() == 0
    assert not path.exists(), "the metrics socket is removed at shutdown"


def test_not_ready_while_a_sink_cannot_write(tmp_path, sock_dir):
    """The console is a pipe whose reader went away: that sink is not writable, so not ready."""
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"', METRICS_TCP)
    proc = subprocess.Popen([sys.executable, "-m", "logd", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for(lambda: can_connect(sock_dir / "logd.sock"), what="socket")

        class D:
            socket_path = sock_dir / "logd.sock"

        url = metrics_url(D)
        assert get(url + "/ready")[0] == 200
        proc.stdout.close()  # nobody reads the console any more
        send_records(D.socket_path, [{"msg": "into the void"}])
        wait_for(lambda: get(url + "/ready")[0] == 503, what="/ready to turn 503")
        code, body = get(url + "/ready")
        assert "sink console is not writable" in body
        assert samples(get(url + "/metrics")[1])[("logd_sink_writable", (("sink", "console"),))] == 0
        assert get(url + "/health")[0] == 200  # alive, just not ready
    finally:
        proc.kill()
        proc.wait(10)


def test_a_stalled_scraper_does_not_block_ingestion(daemon, tmp_path):
    d = daemon(extra=METRICS_TCP)
    url = metrics_url(d)
    host, port = url.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never finishes the request
    try:
        send_records(d.socket_path, [{"msg": f"r{i}", "agent": "a"} for i in range(200)])
        wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 200, timeout=5,
                 what="records written while a scrape hangs")
        code, text = get(url + "/metrics")  # and other scrapes are still answered
        assert code == 200
        assert samples(text)[("logd_agent_records_total", (("agent", "a"), ("level", "info")))] == 200
    finally:
        stalled.close()


def test_busy_metrics_address_is_reported_and_logging_goes_on(daemon, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        d = daemon(extra=f'\n[logging.metrics]\nlisten = "127.0.0.1:{port}"\n')
        wait_for(lambda: f"cannot serve metrics on 127.0.0.1:{port}" in d.stderr(), what="the error on stderr")
        assert status(d)["metrics"].startswith("not served")
        send_records(d.socket_path, [{"msg": "still logging"}])
        wait_for(lambda: agent_records(tmp_path / "agent.log"), what="the record")
        own = [r for r in orjson_lines(tmp_path / "agent.log") if r.get("event") == "metrics"]
        assert own and own[0]["level"] == "error"
    finally:
        taken.close()


def orjson_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def test_reload_moves_the_metrics_server(daemon, tmp_path, sock_dir):
    d = daemon(extra=METRICS_TCP)
    old_url = metrics_url(d)
    path = sock_dir / "m2.sock"
    write_config(tmp_path, d.socket_path, 'file = "agent.log"', f'\n[logging.metrics]\nlisten = "unix:{path}"\n')
    # the config watcher applies it
    wait_for(lambda: status(d)["metrics"] == f"unix:{path}", what="metrics on the new address")
    assert get_unix(path, "/health") == (200, "ok\n")
    with pytest.raises(OSError):
        urllib.request.urlopen(old_url + "/health", timeout=2)
    code, text = get_unix(path, "/metrics")
    assert samples(text)[("logd_config_reloads_total", ())] >= 1


def test_ship_targets_report_lag_and_deliveries(daemon, tmp_path):
    collector = Collector(tmp_path / "collector").start()
    try:
        target = f'type = "http"\nurl = "{collector.url("/ingest")}"\nname = "central"\nflush_interval = 0.05\n'
        d = daemon(ship_config(target) + METRICS_TCP)
        url = metrics_url(d)
        send_records(d.socket_path, [{"msg": f"r{i}", "agent": "a"} for i in range(50)])

        def caught_up() -> dict | None:
            got = samples(get(url + "/metrics")[1])
            done = got.get(("logd_ship_delivered_records_total", (("target", "central"),)), 0) >= 50
            return got if done and got[("logd_ship_lag_records", (("target", "central"),))] == 0 else None
        got = wait_for(caught_up, 20, what="the target to catch up")
        assert got[("logd_ship_failing", (("target", "central"),))] == 0
        assert got[("logd_ship_dead_lettered_records_total", (("target", "central"),))] == 0
        promtool_check(get(url + "/metrics")[1])
    finally:
        collector.stop()


# --- AgentMetrics alone ---

def test_agent_labels_are_capped_so_series_stay_bounded():
    agents = AgentMetrics(max_agents=2)
    agents([{"level": "info", "message": "", "agent": name} for name in ("a", "b", "c", "d", "a")])
    agents([{"level": "info", "message": "", "agent": {"not": "a string"}}])
    assert agents.records == {("a", "info"): 2, ("b", "info"): 1, (OTHER_AGENTS, "info"): 3}


def test_unmatched_hooks_and_bad_durations_are_ignored():
    agents = AgentMetrics()
    agents([
        {"level": "info", "message": "", "agent": "x", "duration_ms": "12"},  # not a number
        {"level": "info", "message": "", "agent": "x", "duration_ms": -5},
        {"level": "info", "message": "", "agent": "x", "duration_ms": True},
        {"time": "2026-11-23T10:00:01.000000Z", "level": "info", "message": "", "hook": "AfterAgentRun",
         "session_id": "s", "agent_id": "x", "agent": "x"},  # no BeforeAgentRun seen
    ])
    assert agents.durations == {}
    assert agents.records == {("x", "info"): 4}
