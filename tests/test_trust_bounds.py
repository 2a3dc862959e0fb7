"""Issue 18, finding 4: memory stays bounded whatever clients send or fail to read, and
idle connections cannot hold every slot. Real ``logd run`` subprocesses, real sockets."""

from __future__ import annotations

import os
import socket
import time

from logd.control import request
from logd.record import MAX_KEY_CHARS
from logd.steps.agents import AgentMetrics
from logd.steps.sampling import RateLimiter

from support import agent_records, rss_peak_kb, send_records, wait_for

FILE_ONLY = 'file = "agent.log"\nfile_only = true'


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_an_ack_client_that_never_reads_its_acks_is_paused_then_dropped(daemon, tmp_path):
    d = daemon(FILE_ONLY, extra="ack_timeout = 1\n")
    before = rss_peak_kb(d.proc.pid)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # acks back up into logd at once
    c.connect(os.fspath(d.socket_path))
    c.sendall(b'{"logd_ack":1,"stream":"deaf"}\n')
    chunk = b"".join(b'{"batch":%d,"count":0}\n' % i for i in range(20_000))  # each asks for an ack
    c.settimeout(15)
    sent = 0
    try:
        while sent < 400 * len(chunk):  # ~170 MB of headers: acks for all of them would be ~300 MB
            c.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # dropped after ack_timeout
    except TimeoutError:
        raise AssertionError("logd neither read nor dropped the client") from None
    assert sent < 400 * len(chunk), "logd kept reading from a client that reads none of its acks"
    c.close()
    status = request(d.socket_path, "status")
    assert status["ack_clients_dropped"] == 1
    assert rss_peak_kb(d.proc.pid) - before < 40_000  # KB: the unread acks are bounded by the pause
    send_records(d.socket_path, [{"message": "still serving"}])
    assert d.stop() == 0
    assert any(r["message"] == "still serving" for r in agent_records(tmp_path / "agent.log"))
    assert "ack client dropped" in (tmp_path / "agent.log").read_text()


def test_idle_connections_are_closed_so_they_cannot_hold_every_slot(daemon, tmp_path):
    d = daemon(FILE_ONLY, extra="max_connections = 3\nidle_timeout = 0.5\n")
    wait_for(lambda: request(d.socket_path, "status")["connections"] == 0, what="the start-up probe to go")
    idle = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.fspath(d.socket_path))
        s.setblocking(False)
        idle.append(s)
    wait_for(lambda: all(closed_by_peer(s) for s in idle), timeout=10, what="idle connections closed")
    send_records(d.socket_path, [{"message": "a slot is free again"}])
    assert request(d.socket_path, "status")["connections_closed_idle"] == 3
    assert d.stop() == 0
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["a slot is free again"]


def test_a_connection_that_keeps_sending_is_not_idle(daemon, tmp_path):
    d = daemon(FILE_ONLY, extra="idle_timeout = 0.5\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.fspath(d.socket_path))
    deadline = time.monotonic() + 1.5
    i = 0
    while time.monotonic() < deadline:  # one record after another, each written, for three idle timeouts
        s.sendall(b'{"message":"tick","i":%d}\n' % i)
        i += 1
        wait_for(lambda i=i: len(agent_records(tmp_path / "agent.log")) >= i, what=f"record {i}")
    s.sendall(b'{"message":"last"}\n')
    s.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b""
    assert d.stop() == 0
    assert agent_records(tmp_path / "agent.log")[-1]["message"] == "last"


def test_huge_agent_names_and_session_ids_are_cut_in_every_per_key_table(daemon, tmp_path):
    d = daemon(FILE_ONLY + "\n[logging.sampling]\nburst = 5\ninterval = 60", extra="")
    huge = "a" * 100_000
    send_records(d.socket_path, [{"message": "run", "agent": huge + str(i), "hook": "BeforeAgentRun",
                                  "session_id": "s" * 100_000 + str(i)} for i in range(20)])
    status = request(d.socket_path, "status")
    assert d.stop() == 0
    long_names = [name for name in status["agents"] if name.startswith("aaa")]  # (logd is an agent too)
    assert len(long_names) == 20 and all(len(name) == MAX_KEY_CHARS for name in long_names)
    assert len(agent_records(tmp_path / "agent.log")) == 20  # long names stay apart: each its own burst
    assert len(agent_records(tmp_path / "agent.log")[0]["agent"]) == 100_001


def test_per_key_tables_are_capped_in_key_length():
    metrics = AgentMetrics()
    records = [{"time": "2026-01-01T00:00:00.000000Z", "level": "info", "message": "", "hook": "BeforeAgentRun",
                "agent": "x" * 10_000 + str(i), "session_id": "s" * 10_000 + str(i)} for i in range(50)]
    metrics(records)
    assert all(len(session) <= 128 and len(agent) <= 128 for session, agent in metrics._open_runs)
    limiter = RateLimiter(burst=1, interval=60, clock=lambda: 0.0)
    limiter(records)
    assert all(len(agent) <= MAX_KEY_CHARS for agent in limiter._windows)
