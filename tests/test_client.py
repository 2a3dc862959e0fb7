"""logd.client: stdlib handler, loguru sink, context, buffering, drops, exit flush, against a real `logd run`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from loguru import logger as loguru_logger

import logd.client
from logd.client import LogdHandler, Reconnect, Sender, bind, correlation_id, loguru_sink
from logd.client.sender import encode_batch

from support import agent_records, wait_for

FILE_ONLY = 'file = "agent.log"\nfile_only = true\nlevel = "debug"'


def start_logd(daemon, tmp_path: Path, logging: str = FILE_ONLY):
    """``logd run`` with a file (the fixture returns once logd is fully up)."""
    return daemon(logging)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stdlib_logger(request):
    """A fresh stdlib logger (no propagation) and the handlers added to it, closed at teardown."""
    log = logging.getLogger(f"test.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def records_of(path: Path, **match: object) -> list[dict]:
    return [r for r in agent_records(path) if all(r.get(k) == v for k, v in match.items())]


# --- the reconnect policy, on an injected clock ---

def test_reconnect_waits_grow_exponentially_up_to_the_cap_and_reset_on_success():
    clock = FakeClock()
    policy = Reconnect(initial=0.1, cap=1.0, clock=clock)
    assert policy.remaining() == 0  # a first attempt is due at once
    delays = [policy.failed() for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.remaining() == pytest.approx(1.0)
    clock.now += 0.6
    assert policy.remaining() == pytest.approx(0.4)
    clock.now += 0.4
    assert policy.remaining() == 0
    policy.succeeded()
    assert policy.failed() == 0.1


def test_records_are_encoded_off_the_callers_thread_with_canonical_time_and_never_raise():
    data, lengths = encode_batch([{"time": 1_700_000_000.25, "level": "info", "message": "m", "obj": object(), 3: "k"},
                          {"time": "2026-11-23T11:28:07.000001Z", "level": "info", "message": "big", "n": 2**70}])
    lines = data.splitlines(keepends=True)
    assert [len(line) for line in lines] == lengths and all(line.endswith(b"\n") for line in lines)
    first, second = (orjson.loads(line) for line in lines)
    assert first["time"] == "2023-11-14T22:13:20.250000Z" and first["3"] == "k" and "object" in first["obj"]
    assert second["n"] == str(2**70) and "encode_error" in second and second["message"] == "big"



def test_the_clients_cached_time_format_matches_the_daemons_canonical_time():
    from logd.client.sender import _TimeFormatter
    from logd.timestamps import format_epoch

    fmt = _TimeFormatter()
    values = [1_700_000_000.0, 1_700_000_000.25, 1_700_000_000.9999996, 1_700_000_001.000001,
              1_700_000_059.5, 1_700_003_599.999999, 1_790_000_000.123456]
    values += [1_700_000_000 + i * 0.37 for i in range(50)]
    assert [fmt(v) for v in values] == [format_epoch(v) for v in values]


# --- stdlib handler ---

def test_handler_sends_level_time_message_logger_context_and_extra_fields(daemon, tmp_path, stdlib_logger):
    d = start_logd(daemon, tmp_path)
    handler = LogdHandler(d.socket_path, fields={"agent": "planner"})
    stdlib_logger.addHandler(handler)
    with bind(session_id="s-1", correlation_id="c-1"):
        stdlib_logger.warning("tool %s slow", "search", extra={"duration_ms": 2100, "tokens": {"prompt": 5}})
    stdlib_logger.debug("after the bind")
    assert handler.sender.flush(5)
    d.stop()
    slow, after = agent_records(tmp_path / "agent.log")
    assert list(slow)[:3] == ["time", "level", "message"]
    assert slow["level"] == "warn" and slow["message"] == "tool search slow"
    assert slow["logger"] == stdlib_logger.name and slow["agent"] == "planner"
    assert slow["session_id"] == "s-1" and slow["correlation_id"] == "c-1"
    assert slow["duration_ms"] == 2100 and slow["tokens"] == {"prompt": 5}
    assert slow["time"].endswith("Z") and slow["_pid"] == os.getpid()
    assert after["level"] == "debug" and "session_id" not in after


def test_exceptions_arrive_as_error_and_stack(daemon, tmp_path, stdlib_logger):
    d = start_logd(daemon, tmp_path)
    handler = LogdHandler(d.socket_path)
    stdlib_logger.addHandler(handler)
    try:
        {}["missing"]
    except KeyError:
        stdlib_logger.exception("lookup failed")
    stdlib_logger.info("with stack", stack_info=True)
    assert handler.sender.flush(5)
    d.stop()
    failed, with_stack = agent_records(tmp_path / "agent.log")
    assert failed["level"] == "error" and failed["error"] == "KeyError: 'missing'"
    assert failed["stack"].startswith("Traceback (most recent call last):") and "{}[\"missing\"]" in failed["stack"]
    assert "test_exceptions_arrive_as_error_and_stack" in with_stack["stack"] and "error" not in with_stack


def test_emit_never_raises_when_no_daemon_listens(sock_dir, stdlib_logger):
    handler = LogdHandler(sock_dir / "nobody.sock", backoff_cap=0.05, exit_timeout=0.2)
    stdlib_logger.addHandler(handler)
    for i in range(50):
        stdlib_logger.info("into the void %d", i)
    assert handler.sender.flush(0.2) is False  # nothing can be delivered, and the call returns
    assert handler.sender.sent == 0


# --- loguru ---

def test_loguru_sink_sends_level_message_logger_extra_context_and_exception(daemon, tmp_path):
    d = start_logd(daemon, tmp_path)
    sink = loguru_sink(d.socket_path, fields={"agent": "writer"})
    sink_id = loguru_logger.add(sink, level="TRACE")
    try:
        with bind(session_id="s-9"):
            loguru_logger.bind(model="gpt-4o").success("draft done")
        try:
            raise ValueError("bad draft")
        except ValueError:
            loguru_logger.exception("rejected")
        assert sink.sender.flush(5)
    finally:
        loguru_logger.remove(sink_id)  # stops the sink: its sender is closed
    assert not sink.sender.running
    d.stop()
    done, rejected = agent_records(tmp_path / "agent.log")
    assert done["level"] == "info" and done["message"] == "draft done" and done["logger"] == __name__
    assert done["model"] == "gpt-4o" and done["session_id"] == "s-9" and done["agent"] == "writer"
    assert rejected["level"] == "error" and rejected["error"] == "ValueError: bad draft"
    assert "raise ValueError" in rejected["stack"]


# --- context ---

def test_bound_context_follows_each_asyncio_task_and_never_leaks_back(daemon, tmp_path, stdlib_logger):
    d = start_logd(daemon, tmp_path)
    handler = LogdHandler(d.socket_path)
    stdlib_logger.addHandler(handler)

    async def agent(name: str) -> str:
        bind(agent=name, session_id=f"s-{name}")
        cid = correlation_id()  # none bound in this task yet: one is made and bound
        for step in range(5):
            stdlib_logger.info("step", extra={"step": step})
            await asyncio.sleep(0)  # let the other task run between records
        assert correlation_id() == cid
        return cid

    async def main() -> dict[str, str]:
        bind(run="r-1")
        ids = await asyncio.gather(agent("planner"), agent("critic"))
        stdlib_logger.info("parent")
        return dict(zip(("planner", "critic"), ids, strict=True))

    ids = asyncio.run(main())
    assert handler.sender.flush(5)
    d.stop()
    records = agent_records(tmp_path / "agent.log")
    for name in ("planner", "critic"):
        mine = [r for r in records if r.get("agent") == name]
        assert [r["step"] for r in mine] == list(range(5))
        assert {(r["session_id"], r["correlation_id"], r["run"]) for r in mine} == {(f"s-{name}", ids[name], "r-1")}
    assert ids["planner"] != ids["critic"]
    parent = records_of(tmp_path / "agent.log", message="parent")[0]
    assert parent["run"] == "r-1" and "agent" not in parent and "correlation_id" not in parent


def test_bind_as_context_manager_restores_and_none_unbinds():
    with bind(session_id="a", agent="x"):
        with bind(session_id="b", agent=None):
            assert logd.client.bound() == {"session_id": "b"}
        assert logd.client.bound() == {"session_id": "a", "agent": "x"}
    assert logd.client.bound() == {}


# --- daemon down, buffering, drops ---

def test_records_logged_while_the_daemon_is_down_arrive_once_it_is_up(daemon, tmp_path, sock_dir, stdlib_logger):
    handler = LogdHandler(sock_dir / "logd.sock", backoff_initial=0.01, backoff_cap=0.05)
    stdlib_logger.addHandler(handler)
    for i in range(100):
        stdlib_logger.info("early", extra={"n": i})
    assert handler.sender.flush(0.1) is False
    d = start_logd(daemon, tmp_path)
    for i in range(100, 150):
        stdlib_logger.info("late", extra={"n": i})
    assert handler.sender.flush(10)
    d.stop()  # a graceful restart in the middle loses nothing either
    for i in range(150, 200):
        stdlib_logger.info("after restart", extra={"n": i})
    d = start_logd(daemon, tmp_path)
    assert handler.sender.flush(10)
    d.stop()
    assert [r["n"] for r in agent_records(tmp_path / "agent.log") if "n" in r] == list(range(200))
    assert handler.sender.dropped == 0 and handler.sender.connects >= 2


def test_a_full_buffer_drops_the_oldest_and_reports_how_many(daemon, tmp_path, sock_dir, stdlib_logger):
    handler = LogdHandler(sock_dir / "logd.sock", max_buffer=100, batch_size=50,
                          backoff_initial=0.01, backoff_cap=0.05)
    stdlib_logger.addHandler(handler)
    for i in range(400):
        stdlib_logger.info("r", extra={"n": i})
    dropped = handler.sender.dropped
    assert dropped > 0
    d = start_logd(daemon, tmp_path)
    assert handler.sender.flush(10)
    d.stop()
    records = agent_records(tmp_path / "agent.log")
    numbers = [r["n"] for r in records if "n" in r]
    assert len(numbers) == 400 - dropped, d.stderr()
    assert numbers[-100:] == list(range(300, 400))  # the newest max_buffer records are all kept
    assert numbers == sorted(numbers)
    # each gap is announced where it is, by one warn record that counts it (usually one gap:
    # a second one when the batch in flight was taken after the first drops)
    reports = [r for r in records if r.get("logger") == "logd.client"]
    assert 1 <= len(reports) <= 2 and all(r["level"] == "warn" for r in reports)
    assert sum(r["dropped"] for r in reports) == dropped
    previous = -1
    for i, r in enumerate(records):
        if r.get("logger") == "logd.client":
            following = next(x["n"] for x in records[i:] if "n" in x)
            assert following - previous - 1 == r["dropped"]  # the report sits exactly in its gap
        elif "n" in r:
            previous = r["n"]


_EXIT_SCRIPT = textwrap.dedent("""
    import logging, sys
    import logd.client
    log = logging.getLogger("exit")
    log.addHandler(logd.client.LogdHandler(sys.argv[1], exit_timeout=float(sys.argv[3])))
    log.setLevel(logging.INFO)
    for i in range(int(sys.argv[2])):
        log.info("bye", extra={"n": i})
    # no flush, no close: the interpreter's exit must do it
""")


def test_records_still_queued_at_interpreter_exit_are_flushed(daemon, tmp_path):
    d = start_logd(daemon, tmp_path)
    subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(d.socket_path), "3000", "5"], check=True, timeout=30)
    wait_for(lambda: len(records_of(tmp_path / "agent.log", logger="exit")) >= 3000, what="3000 records")
    d.stop()
    assert [r["n"] for r in records_of(tmp_path / "agent.log", logger="exit")] == list(range(3000))


def test_exit_without_a_daemon_gives_up_after_the_timeout_and_says_so(sock_dir):
    result = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(sock_dir / "none.sock"), "10", "0.3"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "10 records not delivered to logd" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_sender_serves_several_handlers_and_tracing_style_ready_records(daemon, tmp_path, stdlib_logger):
    d = start_logd(daemon, tmp_path)
    sender = Sender(d.socket_path)
    stdlib_logger.addHandler(LogdHandler(sender=sender))
    sink_id = loguru_logger.add(loguru_sink(sender=sender))
    try:
        stdlib_logger.info("from stdlib")
        loguru_logger.info("from loguru")
        sender.put({"time": "2026-11-23T11:28:07.000000Z", "level": "info", "message": "ready record", "span": "s1"})
        assert sender.flush(5)
    finally:
        loguru_logger.remove(sink_id)
    assert sender.running  # the sink did not own it, so it did not close it
    sender.close()
    d.stop()
    messages = [r["message"] for r in agent_records(tmp_path / "agent.log")]
    assert messages == ["from stdlib", "from loguru", "ready record"]
    assert sender.connects == 1


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_sends_its_own_records_on_its_own_connection(daemon, tmp_path, stdlib_logger):
    d = start_logd(daemon, tmp_path)
    handler = LogdHandler(d.socket_path)
    stdlib_logger.addHandler(handler)
    stdlib_logger.info("parent before fork")
    assert handler.sender.flush(5)
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread does not exist here; a fresh sender must
        code = 1
        try:
            stdlib_logger.info("from the child")
            code = 0 if handler.sender.flush(5) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    stdlib_logger.info("parent after fork")
    assert handler.sender.flush(5)
    d.stop()
    records = {r["message"]: r for r in agent_records(tmp_path / "agent.log")}
    assert sorted(records) == ["from the child", "parent after fork", "parent before fork"]
    assert records["from the child"]["_pid"] == pid
    assert records["parent after fork"]["_pid"] == os.getpid()


def test_a_stuck_daemon_never_blocks_the_caller_and_the_overflow_is_reported(daemon, tmp_path, stdlib_logger):
    """logd frozen (SIGSTOP): the socket fills, then the buffer; log calls still return at once."""
    d = start_logd(daemon, tmp_path)
    handler = LogdHandler(d.socket_path, max_buffer=200, batch_size=50)
    stdlib_logger.addHandler(handler)
    stdlib_logger.info("warm-up")
    assert handler.sender.flush(5)
    d.signal(signal.SIGSTOP)
    try:
        blob = "x" * 10_000  # ~20 MB in all: more than any socket buffer holds
        for i in range(2000):
            stdlib_logger.info(blob, extra={"n": i})
        dropped = handler.sender.dropped
        assert dropped > 0 and handler.sender.flush(0.2) is False
    finally:
        d.signal(signal.SIGCONT)
    assert handler.sender.flush(20)
    d.stop()
    records = agent_records(tmp_path / "agent.log")
    numbers = [r["n"] for r in records if "n" in r]
    assert len(numbers) == 2000 - dropped and numbers[-200:] == list(range(1800, 2000))
    assert sum(r["dropped"] for r in records if r.get("logger") == "logd.client") == dropped


def test_the_readme_python_set_up_works_as_written(daemon, tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "docs" / "clients.md").read_text()
    section = readme[readme.index("### From Python: `logd.client`"):]
    start = section.index("```python\n") + len("```python\n")
    set_up = section[start:section.index("```\n", start)]
    script = set_up + textwrap.dedent("""
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("readme").info("via stdlib", extra={"step": 1})
        logger.info("via loguru")
    """)
    d = start_logd(daemon, tmp_path)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30,
                   env={**os.environ, "LOGD_SOCKET": str(d.socket_path)})
    wait_for(lambda: len(records_of(tmp_path / "agent.log", agent="planner")) >= 2, what="both records")
    d.stop()
    got = {r["message"]: r for r in records_of(tmp_path / "agent.log", agent="planner")}
    assert got["via stdlib"]["logger"] == "readme" and got["via stdlib"]["step"] == 1
    assert got["via loguru"]["logger"] == "__main__"
