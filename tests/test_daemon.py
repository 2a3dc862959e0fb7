"""End-to-end: a real `logd run` subprocess, real Unix sockets, real files."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from support import DaemonProcess, agent_records, can_connect, read_records, send, send_records, wait_for, write_config


def test_each_dialect_arrives_normalised_in_the_file(daemon, tmp_path):
    d = daemon('level = "debug"\nfile = "agent.log"')
    send(d.socket_path, b"\n".join([
        b'{"level":"warn","time":"2026-11-23T12:00:00+01:00","message":"zerolog","caller":"a.go:1"}',
        b'{"level":"error","ts":1700000000.5,"msg":"zap","stacktrace":"main.main"}',
        b'{"asctime":"2026-11-23 11:00:00,250","levelname":"INFO","name":"py","message":"pjl"}',
        orjson.dumps({"text": "t", "record": {"message": "loguru", "level": {"name": "DEBUG"},
                                              "time": {"timestamp": 1700000000.0}, "extra": {"k": 1}}}),
        b"plain words",
    ]) + b"\n")
    d.stop()
    recs = {r["message"]: r for r in agent_records(tmp_path / "agent.log")}
    assert recs["zerolog"]["time"] == "2026-11-23T11:00:00.000000Z" and recs["zerolog"]["level"] == "warn"
    assert recs["zap"]["time"] == "2023-11-14T22:13:20.500000Z" and recs["zap"]["stacktrace"] == "main.main"
    assert recs["pjl"]["name"] == "py"
    assert recs["loguru"]["level"] == "debug" and recs["loguru"]["k"] == 1
    assert recs["plain words"]["level"] == "info"


def test_every_line_in_the_file_starts_with_time_level_message(daemon, tmp_path):
    d = daemon()
    send_records(d.socket_path, [{"z": 1, "msg": "m", "level": "info"}])
    d.stop()
    raw = (tmp_path / "agent.log").read_bytes().splitlines()
    assert raw and all(line.startswith(b'{"time":"') for line in raw)
    assert all(list(orjson.loads(line))[:3] == ["time", "level", "message"] for line in raw)
    assert stat.S_IMODE(os.stat(tmp_path / "agent.log").st_mode) == 0o640


def test_file_parent_folders_are_created(daemon, tmp_path):
    d = daemon('file = "deep/er/agent.log"')
    send_records(d.socket_path, [{"msg": "x"}])
    d.stop()
    assert [r["message"] for r in agent_records(tmp_path / "deep" / "er" / "agent.log")] == ["x"]


def test_bad_input_is_kept_and_flagged(daemon, tmp_path):
    d = daemon('file = "agent.log"', extra="max_record_bytes = 100\n")
    long_line = b'{"msg":"' + b"y" * 500 + b'"}'
    send(d.socket_path, b'{"msg": broken\n' + b"bad \xff byte\n" + long_line + b"\n" + b'{"msg":"after"}\n'
         + b"x" * 300 + b"\n" + b'{"msg":"cut mid')
    d.stop()
    recs = agent_records(tmp_path / "agent.log")
    assert [r.get("_malformed") for r in recs[:1]] == [True]
    assert recs[1]["_invalid_utf8"] is True and recs[1]["message"] == "bad \ufffd byte"
    assert recs[2]["_truncated"] == len(long_line) and len(recs[2]["message"].encode()) <= 100
    assert recs[3]["message"] == "after"
    assert recs[4]["_truncated"] == 300 and recs[4]["message"] == "x" * 100
    assert recs[5]["_partial"] is True and recs[5]["message"] == '{"msg":"cut mid'
    assert len(recs) == 6


def test_oversize_line_arriving_in_many_reads_is_cut_without_buffering_it_all(daemon, tmp_path):
    d = daemon('file = "agent.log"', extra="max_record_bytes = 1024\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.socket_path))
    for _ in range(200):  # 2 MB in one line, written in pieces
        s.sendall(b"z" * 10_000)
    s.sendall(b'\n{"msg":"next"}\n')
    s.close()
    wait_for(lambda: any(r["message"] == "next" for r in agent_records(tmp_path / "agent.log")), what="next record")
    d.stop()
    first, second = agent_records(tmp_path / "agent.log")
    assert first["_truncated"] == 2_000_000 and first["message"] == "z" * 1024
    assert second["message"] == "next"


def test_trusted_fields_come_from_the_kernel_not_the_record(daemon, tmp_path):
    d = daemon()
    send_records(d.socket_path, [{"msg": "spoof", "_pid": 1, "_uid": 0, "_comm": "init"}])
    d.stop()
    [rec] = agent_records(tmp_path / "agent.log")
    assert rec["_pid"] == os.getpid() and rec["_uid"] == os.getuid() and rec["_gid"] == os.getgid()
    assert rec["_comm"] == Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert (rec["client_pid"], rec["client_uid"], rec["client_comm"]) == (1, 0, "init")


def _client(path: Path, client: int, count: int) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    batch = []
    for i in range(count):
        batch.append(orjson.dumps({"level": "info", "msg": f"c{client} r{i}", "client": client, "seq": i}) + b"\n")
        if len(batch) == 97:  # odd-sized writes so lines straddle reads
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"".join(batch))
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def test_eight_concurrent_clients_every_record_once_in_order(daemon, tmp_path):
    d = daemon()
    threads = [threading.Thread(target=_client, args=(d.socket_path, c, 10_000)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.stop() == 0
    recs = agent_records(tmp_path / "agent.log")
    assert len(recs) == 80_000
    for c in range(8):
        assert [r["seq"] for r in recs if r["client"] == c] == list(range(10_000))


def test_a_slow_client_does_not_delay_others(daemon, tmp_path):
    d = daemon()
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(str(d.socket_path))
    slow.sendall(b'{"msg":"slow client, half a li')  # and then nothing
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(d.socket_path))
    send_records(d.socket_path, [{"msg": "fast"}])
    wait_for(lambda: any(r["message"] == "fast" for r in agent_records(tmp_path / "agent.log")), 5, what="fast record")
    slow.sendall(b'ne"}\n')
    slow.close()
    idle.close()
    d.stop()
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["fast", "slow client, half a line"]


SENDER = r"""
import socket, sys, orjson
path, client = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
sent = 0
data = b""
try:
    for i in range(10**7):
        line = orjson.dumps({"msg": "load", "client": client, "seq": i}) + b"\n"
        view = memoryview(line)
        while view:
            n = s.send(view)
            view = view[n:]
        sent = i + 1
except OSError:
    pass
print(sent, flush=True)
"""


def test_sigterm_under_load_loses_nothing_a_client_managed_to_send(daemon, tmp_path):
    d = daemon()
    senders = [subprocess.Popen([sys.executable, "-c", SENDER, str(d.socket_path), str(c)],
                                stdout=subprocess.PIPE, text=True) for c in range(4)]
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) > 20_000, 30, what="load to build up")
    assert d.stop() == 0
    sent = {c: int(p.communicate(timeout=30)[0]) for c, p in enumerate(senders)}
    recs = agent_records(tmp_path / "agent.log")
    for c in range(4):
        seqs = [r["seq"] for r in recs if r.get("client") == c and not r.get("_partial")]
        # every line the client wrote completely was read and written, in order, once
        assert seqs[: sent[c]] == list(range(sent[c]))
        assert len(seqs) in (sent[c], sent[c] + 1)  # +1: a line wholly written just as the write failed
    assert all(r.get("_partial") for r in recs if "seq" not in r)
    stop = [r for r in read_records(tmp_path / "agent.log") if r.get("event") == "stop"]
    assert stop and stop[0]["received"] >= sum(sent.values())
    assert not d.socket_path.exists()


def test_level_filter_applies_to_every_sink(daemon, tmp_path):
    d = daemon('level = "warn"\nfile = "agent.log"')
    send_records(d.socket_path, [{"level": lvl, "msg": lvl} for lvl in ("debug", "info", "warn", "error", "fatal")])
    d.stop()
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["warn", "error", "fatal"]
    assert "debug" not in d.stdout() and " INF info" not in d.stdout() and "WRN warn" in d.stdout()


def test_console_prints_human_lines(daemon, tmp_path):
    d = daemon('level = "debug"')
    send_records(d.socket_path, [
        {"level": "info", "time": "2026-11-23T11:28:07.123Z", "message": "Agent execution completed",
         "agent": "research-agent", "duration": "2s"},
        {"level": "error", "message": "tool failed", "error": "timeout after 30s"},
    ])
    d.stop()
    out = d.stdout()
    import datetime
    logged_at = datetime.datetime(2026, 11, 23, 11, 28, 7, tzinfo=datetime.timezone.utc)
    expected_time = logged_at.astimezone().strftime("%H:%M:%S")
    assert f"{expected_time}.123 INF Agent execution completed agent=research-agent duration=2s" in out
    assert 'ERR tool failed error="timeout after 30s"' in out
    assert "\x1b[" not in out  # NO_COLOR is set by the test harness
    assert "logd started" in out


def test_force_color_colours_levels_even_without_a_tty(daemon):
    d = daemon('level = "debug"', env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    send_records(d.socket_path, [{"level": "error", "message": "boom"}])
    d.stop()
    assert "\x1b[1;31mERR\x1b[0m" in d.stdout()


def test_json_console_format_prints_json_lines(daemon):
    d = daemon('format = "json"')
    send_records(d.socket_path, [{"level": "info", "message": "as json", "k": 1}])
    d.stop()
    lines = [orjson.loads(line) for line in d.stdout().splitlines()]
    assert any(r["message"] == "as json" and r["k"] == 1 for r in lines)


def test_file_only_prints_nothing_on_the_console(daemon, tmp_path):
    d = daemon('file = "agent.log"\nfile_only = true')
    send_records(d.socket_path, [{"message": "quiet"}])
    d.stop()
    assert d.stdout() == ""
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["quiet"]


def test_socket_is_created_with_restrictive_permissions(daemon):
    d = daemon()
    st = os.stat(d.socket_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    ctl = d.socket_path.with_name("logd.ctl")
    assert stat.S_IMODE(os.stat(ctl).st_mode) == 0o600


def test_second_daemon_on_the_same_socket_refuses_to_start(daemon, tmp_path, sock_dir):
    first = daemon()
    second = DaemonProcess(first.config, first.socket_path, tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.start(wait=False)
    assert second.proc.wait(15) == 1
    assert f"another logd is already listening on {first.socket_path}" in second.stderr()
    assert "Traceback" not in second.stderr()
    send_records(first.socket_path, [{"msg": "first still serves"}])
    first.stop()
    assert "first still serves" in [r["message"] for r in agent_records(tmp_path / "agent.log")]


def test_stale_socket_from_a_crashed_daemon_is_replaced(daemon, tmp_path):
    first = daemon()
    first.proc.kill()
    first.proc.wait()
    assert first.socket_path.exists() and not can_connect(first.socket_path)
    second = daemon()
    send_records(second.socket_path, [{"msg": "after crash"}])
    second.stop()
    assert "after crash" in [r["message"] for r in agent_records(tmp_path / "agent.log")]


def test_a_regular_file_in_the_socket_path_is_not_deleted(daemon, sock_dir):
    (sock_dir / "logd.sock").write_text("precious")
    d = daemon(wait=False)
    assert d.proc.wait(15) == 1
    assert "exists and is not a socket" in d.stderr()
    assert (sock_dir / "logd.sock").read_text() == "precious"


def test_invalid_config_at_start_exits_2_with_the_error(daemon, tmp_path):
    d = daemon('level = "loud"', wait=False)
    assert d.proc.wait(15) == 2
    assert f"{tmp_path / 'agentflow.toml'}:5:1: logging.level: expected one of" in d.stderr()


def test_no_config_runs_on_embedded_defaults_with_the_default_socket(tmp_path, sock_dir):
    env = {"XDG_RUNTIME_DIR": str(sock_dir)}
    d = DaemonProcess(None, sock_dir / "logd" / "logd.sock", tmp_path, env=env)
    d.env.pop("LOGD_SOCKET")
    try:
        d.start()
        assert stat.S_IMODE(os.stat(sock_dir / "logd").st_mode) == 0o700
        result = subprocess.run([sys.executable, "-m", "logd", "send", "hello defaults"], env=d.env,
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert d.stop() == 0
        assert " INF hello defaults" in d.stdout()
    finally:
        d.kill()


def test_logd_send_fields_levels_and_stdin(daemon, tmp_path):
    d = daemon()
    env = {**d.env}
    base = [sys.executable, "-m", "logd", "send", "--socket", str(d.socket_path)]
    fields = ["--field", "agent=planner", "--field", "duration_ms=12", "--field", "id=007"]
    r1 = subprocess.run(base + ["-l", "warn", *fields, "hi"], env=env, capture_output=True, text=True)
    r2 = subprocess.run(base + ["--field", "src=stdin"], input="line one\nline two\n",
                        env=env, capture_output=True, text=True)
    r3 = subprocess.run(base + ["--raw"], input='{"level":"error","msg":"raw zap"}\n',
                        env=env, capture_output=True, text=True)
    assert (r1.returncode, r2.returncode, r3.returncode) == (0, 0, 0), (r1.stderr, r2.stderr, r3.stderr)
    d.stop()
    recs = agent_records(tmp_path / "agent.log")
    hi = recs[0]
    assert (hi["level"], hi["message"], hi["agent"], hi["duration_ms"], hi["id"]) == (
        "warn", "hi", "planner", 12, "007")
    assert [(r["message"], r["src"]) for r in recs[1:3]] == [("line one", "stdin"), ("line two", "stdin")]
    assert (recs[3]["level"], recs[3]["message"]) == ("error", "raw zap")


def test_logd_send_without_a_daemon_fails_clearly(sock_dir):
    result = subprocess.run([sys.executable, "-m", "logd", "send", "--socket", str(sock_dir / "none.sock"), "x"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"logd: error: no logd is listening on {sock_dir / 'none.sock'}; "
                                     "start one with `logd run` (or pass --socket/--config)")


def test_status_reports_counts_through_the_control_socket(daemon):
    d = daemon()
    send_records(d.socket_path, [{"msg": str(i)} for i in range(5)])
    result = subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket", str(d.socket_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    status = orjson.loads(result.stdout)
    assert status["pid"] == d.proc.pid and status["received"] >= 6  # 5 + logd's own start record
    assert status["sinks"]["file"]["received_events"] >= 6


def test_max_connections_refuses_extra_clients_and_reports_it(daemon, tmp_path):
    d = daemon(extra="max_connections = 2\n")
    wait_for(lambda: _status(d)["connections"] == 0, what="the start-up probe connection to close")
    held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    for s in held:
        s.connect(str(d.socket_path))
    wait_for(lambda: _status(d)["connections"] == 2, what="two connections")
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.connect(str(d.socket_path))
    assert extra.recv(1) == b""  # closed by the daemon
    for s in held + [extra]:
        s.close()
    d.stop()
    warn = [r for r in read_records(tmp_path / "agent.log") if "max_connections" in r["message"]]
    assert warn and warn[0]["level"] == "warn" and warn[0]["refused_total"] == 1


def _status(d: DaemonProcess) -> dict:
    out = subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket", str(d.socket_path)],
                         capture_output=True, text=True, check=True).stdout
    return orjson.loads(out)


def test_sigint_also_shuts_down_cleanly(daemon, tmp_path):
    d = daemon()
    send_records(d.socket_path, [{"msg": "before sigint"}])
    d.signal(signal.SIGINT)
    assert d.proc.wait(15) == 0
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["before sigint"]


def test_hundreds_of_clients_at_once(daemon, tmp_path):
    d = daemon(extra="max_connections = 400\n")
    clients = []
    for _ in range(300):  # all connected at the same time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket_path))
        clients.append(s)
    for c, s in enumerate(clients):
        s.sendall(b"".join(orjson.dumps({"msg": "hi", "client": c, "seq": i}) + b"\n" for i in range(20)))
    for s in clients:
        s.close()
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 6000, 30, what="6000 records")
    d.stop()
    recs = agent_records(tmp_path / "agent.log")
    for c in range(300):
        assert [r["seq"] for r in recs if r["client"] == c] == list(range(20))


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stuck_sink_stops_reading_instead_of_buffering(tmp_path, sock_dir):
    """Console on a pipe nobody reads: logd must stop reading clients, not grow memory."""
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"')
    proc = subprocess.Popen([sys.executable, "-m", "logd", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for(lambda: can_connect(sock_dir / "logd.sock"), what="socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock_dir / "logd.sock"))
        s.settimeout(0.5)
        line = orjson.dumps({"msg": "x" * 200}) + b"\n"
        sent = 0
        try:
            while sent < 200_000:  # ~45 MB if nothing pushed back
                s.sendall(line * 100)
                sent += 100
        except TimeoutError:
            pass
        assert sent < 200_000, "the client was never slowed down"
        rss_blocked = _rss_kb(proc.pid)
        assert rss_blocked < 150_000, f"logd buffered {rss_blocked} kB instead of pushing back"
        # now drain the console: everything the client managed to send arrives
        reader = threading.Thread(target=lambda: proc.stdout.read(), daemon=True)
        reader.start()
        s.settimeout(None)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert len(agent_records(tmp_path / "agent.log")) >= sent
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_console_whose_reader_is_gone_is_disabled_counted_and_reported(tmp_path, sock_dir):
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"')
    proc = subprocess.Popen([sys.executable, "-m", "logd", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for(lambda: can_connect(sock_dir / "logd.sock") and can_connect(sock_dir / "logd.ctl"), what="socket")
        proc.stdout.close()  # the reader of the console goes away
        send_records(sock_dir / "logd.sock", [{"msg": f"r{i}"} for i in range(50)])
        wait_for(lambda: any("console output failed" in r["message"] for r in read_records(tmp_path / "agent.log")),
                 what="the console failure record")
        send_records(sock_dir / "logd.sock", [{"msg": "after"}])
        wait_for(lambda: any(r["message"] == "after" for r in read_records(tmp_path / "agent.log")), what="after")
        status = orjson.loads(subprocess.run(
            [sys.executable, "-m", "logd", "status", "--json", "--socket", str(sock_dir / "logd.sock")],
            capture_output=True, text=True, check=True).stdout)
        console = status["sinks"]["console"]
        assert console["writable"] is False and console["discarded_events"] >= 51
        assert console["sent_events"] + console["discarded_events"] == console["received_events"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert b"console output failed" in proc.stderr.read()
        assert len(agent_records(tmp_path / "agent.log")) == 51  # the file got every record
    finally:
        if proc.poll() is None:
            proc.kill()
