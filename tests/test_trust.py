"""Issue 18, findings 1, 3 and 6: no record takes another with it, no secret is stored in
clear whatever form a record is kept in, and valid JSON is kept exactly. Every test drives
a real ``logd run`` over its real Unix socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from logd.control import ControlError, control_path, request

from support import LineSocket, agent_records, read_records, send, send_records, wait_for

FILE_ONLY = 'file = "agent.log"\nfile_only = true'
SUPERSCRIPT_TIME = "2026-01-01T00:00:00.²²²²²²Z"


def deep(levels: int) -> bytes:
    return b'{"message":"deep","a":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"


HOSTILE = [
    deep(600),  # orjson reads up to 1024 levels but writes only 254
    b'{"message":"sup","hook":"BeforeAgentRun","session_id":"s","agent":"x","time":"'
    + SUPERSCRIPT_TIME.encode() + b'"}',
    b'{"message":"tz","hook":"AfterAgentRun","session_id":"s","agent":"x","time":"2026-01-01T00:00:00+99:00"}',
    b'{"message":"list","a":' + b"[" * 1100 + b"]" * 1100 + b"}",  # deeper than orjson reads at all
]


def logd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, env={**os.environ, "NO_COLOR": "1"})


# --- finding 1: isolation ---

def test_hostile_records_never_take_honest_clients_records_with_them(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    per_client = 3000

    def honest(client: int) -> None:
        send_records(d.socket_path, ({"message": f"c{client}-{i}", "client": client, "i": i}
                                     for i in range(per_client)))

    def hostile() -> None:
        send(d.socket_path, b"\n".join(HOSTILE * 25) + b"\n")

    threads = [threading.Thread(target=honest, args=(c,)) for c in range(3)] + [threading.Thread(target=hostile)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    status = request(d.socket_path, "status")
    assert d.stop() == 0
    records = agent_records(tmp_path / "agent.log")
    for client in range(3):
        assert [r["i"] for r in records if r.get("client") == client] == list(range(per_client))
    kept = [r for r in records if "client" not in r]
    assert len(kept) == len(HOSTILE) * 25  # every hostile line is kept too, flagged
    assert all(r["_error"].startswith("encode:") for r in kept if r["message"] == "deep")
    assert all(r["time"] != SUPERSCRIPT_TIME for r in kept)
    assert status["record_errors"].get("encode") == 25
    assert "Traceback" not in d.stderr()


def test_an_ack_is_sent_for_a_batch_with_a_hostile_record_and_all_of_it_is_written(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    c = LineSocket(d.socket_path)
    c.send_lines(b'{"logd_ack":1,"stream":"s1"}')
    assert c.read() == {"logd_ack": 1, "stream": "s1"}
    c.send_lines(b'{"batch":1,"count":3}', b'{"message":"good-1"}', deep(600), b'{"message":"good-2"}')
    assert c.read() == {"ack": 1}
    c.send_lines(b'{"batch":2,"count":1}', b'{"message":"good-3"}')
    assert c.read() == {"ack": 2}
    c.sock.close()
    assert d.stop() == 0
    records = agent_records(tmp_path / "agent.log")
    assert [r["_rid"] for r in records] == ["s1:1:0", "s1:1:1", "s1:1:2", "s1:2:0"]
    assert [r["message"] for r in records if "_error" not in r] == ["good-1", "good-2", "good-3"]


def test_a_record_the_console_cannot_format_costs_no_other_record_in_any_sink(daemon, tmp_path):
    d = daemon('file = "agent.log"')  # the console too, in its text format
    send(d.socket_path, b'{"message":"first"}\n' + deep(600) + b'\n{"message":"last"}\n')
    status = request(d.socket_path, "status")
    assert d.stop() == 0
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")][::2] == ["first", "last"]
    assert "first" in d.stdout() and "last" in d.stdout() and "_error=" in d.stdout()
    assert status["record_errors"] == {"encode": 1, "sink_console": 1}


def test_a_superscript_time_is_not_canonical_and_list_and_trace_still_work(daemon, tmp_path):
    d = daemon('file = "agent.log"\nfile_only = true')
    send_records(d.socket_path, [
        {"timestamp": SUPERSCRIPT_TIME, "type": "trace", "session_id": "sess-sup", "agent_id": "planner",
         "hook": "BeforeAgentRun", "event_id": "e1"},
        {"timestamp": "2026-01-01T00:00:01Z", "type": "trace", "session_id": "sess-sup", "agent_id": "planner",
         "hook": "AfterAgentRun", "event_id": "e1"},
    ])
    assert d.stop() == 0
    first = agent_records(tmp_path / "agent.log")[0]
    assert first["_time"] == SUPERSCRIPT_TIME and first["time"] != SUPERSCRIPT_TIME
    listed = logd("list", "--config", str(d.config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "sess-sup" in listed.stdout
    shown = logd("trace", "sess-sup", "--config", str(d.config), cwd=tmp_path)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr


# --- finding 3: redaction of every stored form ---

def test_a_password_is_redacted_in_every_form_a_record_is_kept_in(daemon, tmp_path, sock_dir):
    d = daemon(FILE_ONLY, extra="max_record_bytes = 200\n")
    pad = "x" * 400
    send(d.socket_path, b"\n".join([
        b'{"message":"truncated","password":"hunter2","pad":"' + pad.encode() + b'"}',  # over max_record_bytes
        b'{"message":"malformed","password":"hunter2", oops}',
        b'{"message":"surrogate \\ud800","password":"hunter2"}',
        b'{"message":"big","password":"hunter2","n":1e400}',
        b'{"message":{"text":"login ok","password":"hunter2","api_key":"k-123456"}}',
        b'{"message":"deep","password":"hunter2","a":' + b"[" * 1100 + b"]" * 1100 + b"}",
        b"plain text login password=hunter2 token: abcdef",
    ]) + b"\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.fspath(d.socket_path))
    s.sendall(b'{"message":"partial","password":"hunter2"')  # no newline: the client goes away
    s.close()
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 8, what="8 records")
    assert d.stop() == 0
    text = (tmp_path / "agent.log").read_text()
    assert "hunter2" not in text and "k-123456" not in text and "abcdef" not in text
    records = agent_records(tmp_path / "agent.log")
    assert records[0]["_truncated"] > 200 and records[1]["_malformed"] and records[7]["_partial"]
    assert text.count("[REDACTED]") >= 9


def test_redacting_long_repetitive_text_takes_no_longer_than_reading_it(daemon, tmp_path):
    """The key=value search starts at the key: ``a_a_a_...`` is not quadratic (it took 60 s for 40 KB)."""
    d = daemon(FILE_ONLY)
    send(d.socket_path, b"a_" * 100_000 + b" password=hunter2\n" + b'{"message":"' + b"a." * 100_000 + b'"}\n')
    send_records(d.socket_path, [{"message": "right behind"}])
    wait_for(lambda: any(r["message"] == "right behind" for r in agent_records(tmp_path / "agent.log")),
             timeout=20, what="the record behind the long lines")
    assert d.stop() == 0
    assert "hunter2" not in (tmp_path / "agent.log").read_text()


# --- finding 6: smaller ones ---

def test_valid_json_is_kept_big_integers_exactly_huge_numbers_and_surrogates_flagged(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    big = "123456789012345678901234567890"
    send(d.socket_path, b"\n".join([
        b'{"message":"big","n":' + big.encode() + b',"m":-' + big.encode() + b"}",
        b'{"message":"exp","x":1e400,"y":1.5}',
        b'{"message":"sur","s":"a\\ud800b"}',
        b'{"message":"edge","u":18446744073709551615}',
    ]) + b"\n")
    assert d.stop() == 0
    lines = [line for line in (tmp_path / "agent.log").read_bytes().splitlines() if b'"agent":"logd"' not in line]
    assert b'"n":' + big.encode() + b',"m":-' + big.encode() in lines[0]  # the digits as sent, still a number
    assert b'"u":18446744073709551615' in lines[3]
    # what no UTF-8 / float reader takes is kept as text, and the record says so
    exp, sur = orjson.loads(lines[1]), orjson.loads(lines[2])
    assert (exp["x"], exp["y"], exp["_error"]) == ("1e400", 1.5, "parse: a number beyond float range is kept as text")
    assert (sur["s"], sur["_invalid_utf8"]) == ("a\ufffdb", True)
    assert not any(b"_malformed" in line for line in lines)


def test_a_plain_record_holding_logd_ack_is_a_record_not_a_hello(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    c = LineSocket(d.socket_path)
    c.send_lines(b'{"logd_ack":1,"stream":"s","message":"first record"}', b'{"message":"second"}')
    c.sock.shutdown(socket.SHUT_WR)
    assert c.sock.recv(100) == b""  # no hello answer: the connection stayed plain
    c.sock.close()
    assert d.stop() == 0
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["first record", "second"]


def test_a_long_stream_id_is_not_an_ack_hello(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    c = LineSocket(d.socket_path)
    c.send_lines(orjson.dumps({"logd_ack": 1, "stream": "s" * 2000}), b'{"batch":1,"count":1}', b'{"message":"m"}')
    c.sock.shutdown(socket.SHUT_WR)
    assert c.sock.recv(100) == b""
    c.sock.close()
    assert d.stop() == 0
    records = agent_records(tmp_path / "agent.log")
    assert len(records) == 3 and not any("_rid" in r for r in records)


def test_a_control_request_with_an_object_command_gets_an_error_answer(daemon, tmp_path):
    d = daemon(FILE_ONLY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.fspath(control_path(d.socket_path)))
    s.sendall(b'{"command":{"a":1}}\n')
    reply = orjson.loads(s.makefile("rb").readline())
    s.close()
    assert reply["ok"] is False and '"command" must be a string' in reply["error"]
    try:
        request(d.socket_path, "no-such")
    except ControlError as exc:
        assert "unknown command" in str(exc)
    assert request(d.socket_path, "ping")["pid"] == d.proc.pid
    assert d.stop() == 0
    assert "Traceback" not in d.stderr()
    assert read_records(tmp_path / "agent.log")
