"""The tracing API: spans from real code, sent in batches over a real socket, shown by logd."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from logd.client import tracing
from logd.client.tracing import BatchSender, propagate, span, trace

from support import read_records, wait_for
from trace_samples import TRACING_CLIENT


class Collector:
    """A plain Unix socket server that keeps every line it receives (what logd would read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[dict] = []
        self.reads = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(os.fspath(path))
        self._server.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        while chunk := conn.recv(65536):
            self.reads += 1
            buf += chunk
            *done, buf = buf.split(b"\n")
            self.lines.extend(orjson.loads(line) for line in done)

    def received(self, count: int) -> list[dict]:
        """The lines, once ``count`` have arrived (sent is not yet read)."""
        wait_for(lambda: len(self.lines) >= count, what=f"{count} lines")
        return self.lines

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def collector(sock_dir):
    c = Collector(sock_dir / "c.sock")
    yield c
    c.close()


@pytest.fixture
def sender(collector):
    s = BatchSender(collector.path, batch_size=64, flush_interval=0.05)
    yield s
    s.close()


def test_nested_spans_carry_one_trace_and_their_parents(sender, collector):
    with (
        trace("support", group_id="conv-1", sender=sender) as root,
        span("triage", kind="agent", sender=sender) as agent,
        span("gpt-4o", kind="generation", model="gpt-4o", sender=sender) as gen,
    ):
        gen.set(usage={"input_tokens": 10})
    assert sender.flush()
    by_name = {r["span_data"]["name"]: r for r in collector.received(3)}
    assert list(by_name) == ["gpt-4o", "triage", "support"]  # sent as each one ends
    assert {r["trace_id"] for r in collector.lines} == {root.trace_id}
    assert by_name["gpt-4o"]["parent_id"] == agent.span_id and by_name["triage"]["parent_id"] == root.span_id
    assert by_name["support"]["parent_id"] is None and all(r["group_id"] == "conv-1" for r in collector.lines)
    assert by_name["gpt-4o"]["span_data"] == {"type": "generation", "name": "gpt-4o", "model": "gpt-4o",
                                              "usage": {"input_tokens": 10}}
    assert by_name["gpt-4o"]["agent"] == "triage"  # the enclosing agent
    assert by_name["gpt-4o"]["started_at"] >= by_name["triage"]["started_at"]
    assert by_name["gpt-4o"]["ended_at"] <= by_name["triage"]["ended_at"]


def test_an_exception_is_recorded_on_every_span_it_leaves_and_re_raised(sender, collector):
    with (
        pytest.raises(KeyError),
        trace("wf", sender=sender),
        span("billing", kind="agent", sender=sender),
        span("lookup", kind="function", sender=sender),
    ):
        raise KeyError("invoice 7")
    with trace("ok", sender=sender) as t:
        t.record_error("guardrail tripped", rule="pii")
    sender.flush()
    errors = {r["span_data"]["name"]: r["error"] for r in collector.received(4)}
    assert errors["lookup"] == {"type": "KeyError", "message": "'invoice 7'"}
    assert errors["billing"] == errors["wf"] == errors["lookup"]
    assert errors["ok"] == {"message": "guardrail tripped", "data": {"rule": "pii"}}
    assert {r["level"] for r in collector.lines} == {"error"}


def test_asyncio_tasks_each_continue_the_span_that_started_them(sender, collector):
    async def worker(name: str, delay: float) -> str:
        with span(name, kind="agent", sender=sender) as s:
            await asyncio.sleep(delay)
            with span(f"{name}-tool", kind="function", sender=sender):
                await asyncio.sleep(0)
            return s.span_id

    async def main() -> tuple[str, list[str]]:
        with trace("fan-out", sender=sender) as root:
            ids = await asyncio.gather(worker("a", 0.02), worker("b", 0.0))
        return root.span_id, ids

    root_id, (a_id, b_id) = asyncio.run(main())
    sender.flush()
    parents = {r["span_data"]["name"]: r["parent_id"] for r in collector.received(5)}
    assert parents == {"a": root_id, "b": root_id, "a-tool": a_id, "b-tool": b_id, "fan-out": None}


def test_threads_continue_the_span_through_propagate(sender, collector):
    seen: dict[str, str | None] = {}

    def work(name: str) -> None:
        with span(name, kind="function", sender=sender):
            pass
        seen[name] = tracing.current_span() and tracing.current_span().span_id

    with trace("threads", sender=sender) as root:
        carried = threading.Thread(target=propagate(work), args=("carried",))
        plain = threading.Thread(target=work, args=("plain",))
        for t in (carried, plain):
            t.start()
            t.join()
    sender.flush()
    recs = {r["span_data"]["name"]: r for r in collector.received(3)}
    assert recs["carried"]["parent_id"] == root.span_id and recs["carried"]["trace_id"] == root.trace_id
    assert recs["plain"]["parent_id"] is None and recs["plain"]["trace_id"] != root.trace_id  # a trace of its own
    assert seen["carried"] == root.span_id and seen["plain"] is None


def test_records_go_out_in_batches_of_batch_size(collector):
    sender = BatchSender(collector.path, batch_size=3, flush_interval=30)
    try:
        for i in range(2):
            with span(f"s{i}", sender=sender):
                pass
        assert sender.sent == 0 and collector.lines == []  # neither a full batch nor the interval yet
        with span("s2", sender=sender):
            pass
        wait_for(lambda: len(collector.lines) == 3, what="a full batch")
        with span("s3", sender=sender):
            pass
        assert sender.flush() and [r["span_data"]["name"] for r in collector.received(4)] == ["s0", "s1", "s2", "s3"]
    finally:
        sender.close()


def test_a_partial_batch_goes_out_after_the_flush_interval(collector):
    sender = BatchSender(collector.path, batch_size=1000, flush_interval=0.05)
    try:
        with span("lonely", sender=sender):
            pass
        wait_for(lambda: len(collector.lines) == 1, what="the interval flush")  # no flush() called
    finally:
        sender.close()


def test_records_wait_while_logd_is_down_and_overflow_is_counted(sock_dir):
    path = sock_dir / "later.sock"
    # one batch holds them all and the interval is long, so the sender's thread takes nothing before
    # the queue overflows: the drops are the oldest whatever the machine's load
    sender = BatchSender(path, batch_size=10, flush_interval=60, max_queue=3)
    try:
        for i in range(5):
            with span(f"s{i}", sender=sender):
                pass
        assert not sender.flush(timeout=0.2)
        assert sender.dropped == 2
        collector = Collector(path)
        try:
            assert sender.flush()
            assert [r["span_data"]["name"] for r in collector.received(3)] == ["s2", "s3", "s4"]
        finally:
            collector.close()
    finally:
        sender.close()


def test_batches_can_go_through_the_logging_clients_sender(collector):
    client_sender = pytest.importorskip("logd.client.sender", reason="logd.client's sender is another issue's")
    transport = client_sender.Sender(collector.path)
    sender = BatchSender(batch_size=2, flush_interval=30, transport=transport)
    try:
        with trace("via-client", sender=sender), span("a", kind="agent", sender=sender):
            pass
        wait_for(lambda: len(collector.lines) == 2, what="a full batch through the client's sender")
        with span("b", sender=sender):
            pass
        assert sender.flush()
        assert [r["span_data"]["name"] for r in collector.received(3)] == ["a", "via-client", "b"]
        assert transport.sent == 3
    finally:
        sender.close()
        transport.close()


def test_client_module_re_exports_the_api():
    import logd.client

    assert logd.client.trace is trace and logd.client.span is span and logd.client.propagate is propagate


def test_fields_bound_with_the_client_go_on_every_span(sender, collector):
    import logd.client

    with (
        logd.client.bind(session_id="s-42", agent="planner-process"),
        trace("wf", sender=sender),
        span("planner", kind="agent", sender=sender),
    ):
        pass
    sender.flush()
    lines = collector.received(2)
    assert {r["session_id"] for r in lines} == {"s-42"}
    assert [r["agent"] for r in lines] == ["planner", "planner-process"]  # a span's own agent wins


def test_unknown_span_kind_is_refused():
    with pytest.raises(ValueError, match="span kind must be one of agent, function"):
        span("x", kind="llm")


def test_spans_through_logd_show_in_logd_trace(daemon, tmp_path):
    d = daemon('file = "agent.log"')
    env = {**os.environ, "LOGD_SOCKET": str(d.socket_path)}
    subprocess.run([sys.executable, "-c", TRACING_CLIENT], check=True, env=env, timeout=30)  # flushed at exit
    folder = tmp_path / "traces"
    wait_for(lambda: sum(len(read_records(p)) for p in folder.glob("*.jsonl")) == 6 if folder.exists() else False,
             what="6 spans stored")
    out = subprocess.run([sys.executable, "-m", "logd", "trace", "conv-42", "--analyze", "--config", str(d.config)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Condensed route:\nplanner → writer" in out.stdout
    assert "RuntimeError: tool broke" in out.stdout
    assert "Critical path" in out.stdout and "research" in out.stdout
    d.stop()
