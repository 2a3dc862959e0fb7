"""Issue 18: fuzzing as a standing test. Honest clients (plain and ack mode) interleaved
with generated hostile lines (deep nesting, huge numbers, other scripts' digits in times,
lone surrogates, offsets out of range, reserved keys, ack headers, raw bytes) through one
real ``logd run``. After every example: each honest record is in the file exactly once
and in its connection's order, every ack came back, the daemon answers, every line of
the file is valid JSON, and its memory stays bounded.

A fixed seed and ``LOGD_FUZZ_EXAMPLES`` examples (default 40: about 10 s) in CI;
a longer run: ``LOGD_FUZZ_EXAMPLES=5000 LOGD_FUZZ_SEED=7 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from logd.control import request

from support import DaemonProcess, Follower, rss_peak_kb, send, wait_for, write_config

EXAMPLES = int(os.environ.get("LOGD_FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("LOGD_FUZZ_SEED", "18"))
RSS_LIMIT_KB = 400_000  # the daemon's peak; a leak per hostile line would pass it in a long run

# --- hostile lines ---

ODD_DIGITS = "²³¹⁰⁴⁵⁶⁷⁸⁹٠١٢٣٤٥٦٧٨٩０１２３４５６７８９߀߁৪৫"


def _nest(depth: int, kind: str) -> bytes:
    if kind == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


CANONICAL_TIME = "2026-01-01T00:00:00.123456Z"


def _odd_time(digits: str, pos: int, key: str) -> bytes:
    """A canonical time with some of its digits written in other scripts."""
    stamp = CANONICAL_TIME[:pos] + digits + CANONICAL_TIME[pos + len(digits):]
    return b'{"%s":"%s","message":"odd time"}' % (key.encode(), stamp.encode())


odd_time = st.builds(_odd_time, st.text(alphabet=ODD_DIGITS, min_size=1, max_size=6), st.integers(0, 25),
                     st.sampled_from(["time", "ts", "timestamp"]))
bad_offset = st.builds(
    lambda h, m, sign: b'{"time":"2026-01-01T00:00:00%s%02d:%02d","hook":"AfterAgentRun","session_id":"s"}'
    % (sign, h, m),
    st.integers(0, 99), st.integers(0, 99), st.sampled_from([b"+", b"-"]))
deep = st.builds(
    lambda d, kind, where: (b'{"message":"deep","x":' + _nest(d, kind) + b"}") if where else _nest(d, kind),
    st.integers(200, 1500), st.sampled_from(["dict", "list"]), st.booleans())
huge_number = st.one_of(
    st.builds(lambda n: b'{"n":%s}' % str(n).encode(), st.integers(min_value=-(10**400), max_value=10**400)),
    st.builds(lambda m, e: b'{"f":%de%d}' % (m, e), st.integers(1, 99), st.integers(300, 99999)),
    st.builds(lambda e: b'{"time":1e%d}' % e, st.integers(15, 400)),
)
surrogate = st.builds(lambda cp, where: (b'{"message":"s\\u%04x","password":"hunter2"}' % cp) if where
                      else (b'{"\\u%04x":1}' % cp), st.integers(0xD800, 0xDFFF), st.booleans())
def _dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()  # orjson refuses integers beyond 64 bits; the strategies make them


reserved = st.builds(lambda key, value: _dumps({key: value, "message": "claims"}),
                     st.sampled_from(["_pid", "_uid", "_rid", "_resent", "_error", "_malformed", "_time", "_comm"]),
                     st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.floats()))
ack_header = st.one_of(
    st.builds(lambda s, c: _dumps({"batch": s, "count": c}), st.integers(-5, 2**40), st.integers(-3, 10**9)),
    st.builds(lambda s: _dumps({"logd_ack": 1, "stream": s}), st.text(max_size=300)),
    st.just(b'{"logd_ack":1,"message":"a plain record"}'),
)
structured = st.builds(lambda v: _dumps({"message": {"text": "login", "password": "hunter2", "v": v}}),
                       st.one_of(st.integers(), st.text(max_size=30)))
raw_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" "))
# long repetitive text: a regular expression that backtracks would take minutes on it
repetitive = st.builds(lambda unit, n, json: (b'{"message":"%s"}' % (unit * n)) if json else unit * n,
                       st.sampled_from([b"a_", b"a.", b"a-", b"password ", b"x=", b"token:", b"Bearer ", b"sk-"]),
                       st.integers(1000, 40000), st.booleans())
# AgenticGoKit entries at the edge of the quiet path (issue 27): sessions that name no file or
# try to leave the folder, a state or agent result nested deep or cut, a hook's near misses
_SESSIONS = st.sampled_from(["../../etc/passwd", "/abs", ".", "..", "", "a\u0000b", "x" * 5000, "s\nt", "☕" * 40])
agk_edge = st.builds(
    lambda hook, session, extra: b'{"time":"2026-01-01T00:00:00Z","hook":"%s","session_id":%s%s}'
    % (hook.encode(), json.dumps(session).encode(), extra),
    st.sampled_from(["BeforeAgentRun", "AfterAgentRun", "AgentError", "BeforeAgentRun ", "beforeagentrun"]), _SESSIONS,
    st.sampled_from([b"", b',"state":' + _nest(300, "dict"), b',"agent_result":{"error":' + _nest(300, "list") + b"}",
                     b',"state":{"data":{"usage":{"input_tokens":99999999999999999999999}}}',
                     rb',"agent_result":{"error":"\ud800"}', b',"agent_id":' + b"[" * 40 + b"]" * 40]))
HOSTILE = st.one_of(odd_time, bad_offset, deep, huge_number, surrogate, reserved, ack_header, structured, raw_bytes,
                    repetitive, agk_edge)

# --- honest records ---

honest_fields = st.fixed_dictionaries({}, optional={
    "agent": st.sampled_from(["planner", "writer", "researcher", "x" * 300]),
    "level": st.sampled_from(["info", "warn", "error", "INFO", "warning"]),
    "duration_ms": st.floats(0, 1e6),
    "time": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+02:00", 1767225600, 1767225600123]),
    "text": st.text(max_size=40),
    # AgenticGoKit entries: those that report nothing take the compiled path without a record
    "hook": st.sampled_from(["BeforeAgentRun", "AfterAgentRun", "BeforeEventHandling", "AgentError"]),
    "session_id": st.sampled_from(["fz-session", "../fz", "fz/1", "é☕"]),
    "agent_result": st.sampled_from([{"duration_ms": 4, "output_state": None}, {"error": "boom"}, {"error": ""}]),
})

example_ids = itertools.count()


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory) -> Iterator[DaemonProcess]:
    workdir = tmp_path_factory.mktemp("fuzz")
    socks = Path(tempfile.mkdtemp(prefix="logd-fz-", dir="/tmp"))
    # 20 MB files: a long run rotates many times, and the reader follows (read_new)
    config = write_config(workdir, socks / "logd.sock",
                          'file = "agent.log"\nfile_only = true\nmax_size = 20\nmax_backups = 3\n'
                          'backup_names = "numbered"')  # the reader below follows agent.log -> agent.log.1
    d = DaemonProcess(config, socks / "logd.sock", workdir).start()
    d.follower = Follower(workdir / "agent.log")  # type: ignore[attr-defined]
    d.seen = {}  # type: ignore[attr-defined]  # example tag -> (client -> [i...])
    d.totals = dict.fromkeys(("examples", "honest", "hostile", "acks"), 0)  # type: ignore[attr-defined]
    yield d
    print(f"\nfuzz seed {SEED}: {d.totals} peak RSS {rss_peak_kb(d.proc.pid)} KB")  # type: ignore[attr-defined]
    try:
        assert d.stop() == 0
        assert "Traceback" not in d.stderr()
    finally:
        d.kill()
        shutil.rmtree(socks, ignore_errors=True)


def read_new(d: DaemonProcess) -> None:
    """Index the honest records written since the last look (every line must be JSON)."""
    for record in d.follower.records():  # type: ignore[attr-defined]
        tag = record.get("fz")
        if isinstance(tag, int) and "c" in record:
            d.seen.setdefault(tag, {}).setdefault(record["c"], []).append(record["i"])  # type: ignore[attr-defined]


def honest_line(tag: int, client: object, i: int, fields: dict) -> bytes:
    return orjson.dumps({**fields, "message": f"h-{tag}-{client}-{i}", "fz": tag, "c": client, "i": i})


def plain_client(d: DaemonProcess, lines: list[bytes]) -> None:
    send(d.socket_path, b"".join(line + b"\n" for line in lines))


def ack_client(d: DaemonProcess, batches: list[list[bytes]], errors: list[str]) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.fspath(d.socket_path))
    inbox = b""

    def read() -> dict:
        nonlocal inbox
        while b"\n" not in inbox:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("logd closed an ack connection")
            inbox += chunk
        line, _, inbox = inbox.partition(b"\n")
        return orjson.loads(line)

    try:
        s.sendall(b'{"logd_ack":1,"stream":"fz"}\n')
        if read() != {"logd_ack": 1, "stream": "fz"}:
            errors.append("no hello answer")
        for seq, batch in enumerate(batches, 1):
            s.sendall(b'{"batch":%d,"count":%d}\n' % (seq, len(batch)) + b"".join(line + b"\n" for line in batch))
            reply = read()
            if reply != {"ack": seq}:
                errors.append(f"batch {seq}: answered {reply}")
    except (OSError, AssertionError) as exc:
        errors.append(f"ack client: {exc}")
    finally:
        s.close()


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data(), clients=st.integers(1, 3), hostile=st.lists(HOSTILE, min_size=1, max_size=12))
def test_hostile_lines_never_cost_an_honest_record_or_an_ack(fuzz_daemon, data, clients, hostile):
    d = fuzz_daemon
    tag = next(example_ids)
    expected: dict[object, int] = {}
    threads, errors = [], []
    for client in range(clients):
        n = data.draw(st.integers(1, 40), label=f"records of client {client}")
        fields = data.draw(st.lists(honest_fields, min_size=n, max_size=n), label="fields")
        lines = [honest_line(tag, client, i, f) for i, f in enumerate(fields)]
        # the hostile lines go in between the honest ones, on the same connection
        for line in hostile:
            lines.insert(data.draw(st.integers(0, len(lines)), label="where"), line)
        expected[client] = n
        threads.append(threading.Thread(target=plain_client, args=(d, lines)))
    sizes = data.draw(st.lists(st.integers(0, 8), min_size=1, max_size=4), label="ack batches")
    batches, i = [], 0
    for size in sizes:
        batch = [honest_line(tag, "ack", i + k, {}) for k in range(size)]
        i += size
        for line in data.draw(st.lists(st.sampled_from(hostile), max_size=3), label="hostile in batch"):
            batch.insert(data.draw(st.integers(0, len(batch)), label="where in batch"), line)
        batches.append(batch)
    expected["ack"] = i
    threads.append(threading.Thread(target=ack_client, args=(d, batches, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), f"a client is stuck: {diagnosis(d)}"
    assert not errors, errors

    def complete() -> bool:
        read_new(d)
        got = d.seen.get(tag, {})  # type: ignore[attr-defined]
        return all(len(got.get(c, [])) >= n for c, n in expected.items())

    try:
        wait_for(complete, timeout=20, what=f"example {tag}'s honest records")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {diagnosis(d)}") from None
    got = d.seen.pop(tag)  # type: ignore[attr-defined]
    for client, n in expected.items():
        assert got.get(client, []) == list(range(n)), f"client {client}: {got.get(client)}"
    assert d.proc.poll() is None and request(d.socket_path, "ping")["pid"] == d.proc.pid
    assert rss_peak_kb(d.proc.pid) < RSS_LIMIT_KB
    totals = d.totals  # type: ignore[attr-defined]
    totals["examples"] += 1
    totals["honest"] += sum(expected.values())
    totals["hostile"] += len(hostile) * clients + sum(len(b) for b in batches) - expected["ack"]
    totals["acks"] += len(batches)


def diagnosis(d: DaemonProcess) -> str:
    """What the daemon says about itself, for a failure message."""
    try:
        status = request(d.socket_path, "status", timeout=5)
        keys = ("connections", "paused", "queue_depth", "received", "record_errors", "sinks")
        return f"status {({k: status.get(k) for k in keys})}; stderr {d.stderr()[-1500:]!r}"
    except Exception as exc:  # the diagnosis must not hide the failure
        return f"no status ({exc}); alive={d.proc.poll() is None}; stderr {d.stderr()[-1500:]!r}"


