"""Acknowledged delivery: the line protocol on a raw socket, the pipeline's on_written, kill -9 mid-stream."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import orjson

from logd.client import LogdHandler
from logd.pipeline import Pipeline
from logd.sinks.file import FileSink

from support import LineSocket, agent_records, wait_for

FILE_ONLY = 'file = "agent.log"\nfile_only = true'


def start_logd(daemon, tmp_path: Path, logging: str = FILE_ONLY):
    """``logd run`` with a file (the fixture returns once logd is fully up)."""
    return daemon(logging)


def test_the_ack_line_protocol_as_any_client_speaks_it(daemon, tmp_path):
    d = start_logd(daemon, tmp_path)
    c = LineSocket(d.socket_path)
    c.send({"logd_ack": 1, "stream": "go-7"})
    assert c.read() == {"logd_ack": 1, "stream": "go-7"}
    c.send({"batch": 1, "count": 2}, {"message": "a"}, {"message": "b", "_rid": "spoofed", "_resent": True})
    assert c.read() == {"ack": 1}
    c.send({"batch": 2, "count": 0})
    assert c.read() == {"ack": 2}
    c.send({"batch": 3, "count": 1, "resent": True}, {"message": "again"})
    assert c.read() == {"ack": 3}
    c.send({"message": "outside any batch"})  # kept like any line, without an ack
    c.close()
    d.stop()
    a, b, again, outside = agent_records(tmp_path / "agent.log")
    assert (a["message"], a["_rid"], "_resent" in a) == ("a", "go-7:1:0", False)
    # a client cannot set logd's fields: they are kept under client_ names
    assert (b["_rid"], b["client_rid"], b["client_resent"], "_resent" in b) == ("go-7:1:1", "spoofed", True, False)
    assert (again["_rid"], again["_resent"]) == ("go-7:3:0", True)
    assert outside["message"] == "outside any batch" and "_rid" not in outside


def test_plain_clients_are_untouched_by_the_ack_protocol(daemon, tmp_path):
    d = start_logd(daemon, tmp_path)
    c = LineSocket(d.socket_path)
    c.send({"batch": 1, "count": 1}, {"message": "x"})  # no hello first: these are two ordinary records
    c.sock.shutdown(socket.SHUT_WR)
    assert c.sock.recv(100) == b""  # nothing is ever answered
    c.close()
    d.stop()
    assert [r.get("batch", r["message"]) for r in agent_records(tmp_path / "agent.log")] == [1, "x"]


def test_on_written_waits_for_every_sink_and_is_withheld_while_one_fails(tmp_path):
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        written: list[str] = []
        good = Pipeline([], [FileSink(tmp_path / "a.log")])
        good.put([{"time": "t", "level": "info", "message": "m"}], on_written=lambda: written.append("good"))
        assert written == []  # not before the batch went through the sinks
        await asyncio.sleep(0)
        first = list(written)
        failing = Pipeline([], [FileSink(tmp_path / "b.log"), FileSink(Path("/dev/full"))])
        failing.put([{"time": "t", "level": "info", "message": "m"}], on_written=lambda: written.append("full"))
        failing.drain()
        held = list(written)
        for delivery in failing.deliveries:
            if delivery.retry is not None:
                delivery.retry.cancel()
        return first, held, failing.failing_sinks()

    first, held, failing = asyncio.run(scenario())
    assert first == ["good"]
    assert held == ["good"] and failing == ["file"]  # /dev/full: ENOSPC, so no ack
    first = orjson.loads((tmp_path / "b.log").read_bytes().splitlines()[0])
    assert first["message"] == "m"  # the healthy sink wrote it


def test_kill_9_mid_stream_then_restart_loses_nothing_and_marks_duplicates(daemon, tmp_path, sock_dir):
    d = start_logd(daemon, tmp_path)
    log = logging.getLogger("ack.kill9")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = LogdHandler(d.socket_path, ack=True, batch_size=100, backoff_initial=0.01, backoff_cap=0.1)
    log.addHandler(handler)
    total = 6000
    done = threading.Event()

    def produce() -> None:
        for i in range(total):
            log.info("work", extra={"n": i})
            if i % 50 == 0:
                time.sleep(0.002)  # a steady stream, so the kill lands in the middle of it
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: handler.sender.sent >= 1500, what="records acknowledged before the kill")
        # freeze logd so that a batch is surely on its way when it dies, then kill it
        d.signal(signal.SIGSTOP)
        wait_for(lambda: handler.sender.in_flight > 0, what="a batch waiting for its ack")
        d.kill()  # SIGKILL: no drain, no goodbye; the batch in its socket buffer is gone
        assert handler.sender.sent < total
        d = start_logd(daemon, tmp_path)
        done.wait(60)
        assert handler.sender.flush(30)
    finally:
        producer.join(60)
        log.removeHandler(handler)
        handler.close()
    d.stop()

    records = [r for r in agent_records(tmp_path / "agent.log") if "n" in r]
    assert {r["n"] for r in records} == set(range(total))  # every record is there
    first_copies: dict[str, dict] = {}
    for r in records:
        if r["_rid"] in first_copies:
            assert r.get("_resent") is True  # a duplicate is always marked
        else:
            first_copies[r["_rid"]] = r
    assert sorted(r["n"] for r in first_copies.values()) == list(range(total))  # dropping by _rid leaves one each
    duplicates = len(records) - total
    assert duplicates <= 100  # at most the one batch that was in flight
    assert any(r.get("_resent") for r in records)  # the unacknowledged batch came again, marked
    assert handler.sender.connects == 2 and handler.sender.dropped == 0


def test_deduplicator_keeps_the_first_copy_of_each_rid_and_only_drops_resent_ones():
    from logd.reading.dedupe import Deduplicator

    records = [{"_rid": "s:1:0"}, {"_rid": "s:1:1"}, {"_rid": "t:1:0"},
               {"_rid": "s:1:1", "_resent": True}, {"_rid": "s:1:2", "_resent": True},  # a dup, then a first copy
               {"_rid": "t:1:0", "_resent": True}, {"message": "plain"}, {"_rid": "a:b:c:2:0"}]
    dedup = Deduplicator()
    assert [dedup.keep(r) for r in records] == [True, True, True, False, True, False, True, True]
    assert dedup.dropped == 2
    small = Deduplicator(batches=2)
    for seq in range(1, 5):
        small.keep({"_rid": f"s:{seq}:0"})
    assert small.keep({"_rid": "s:1:0", "_resent": True})  # too old to remember: kept, never wrongly dropped
    assert not small.keep({"_rid": "s:4:0", "_resent": True})


def test_an_ack_client_facing_a_logd_without_ack_mode_keeps_its_records_and_does_not_hang(sock_dir):
    """A listener that reads and never answers stands in for an older logd: the hello times out."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(sock_dir / "old.sock"))
    listener.listen()
    handler = LogdHandler(sock_dir / "old.sock", ack=True, io_timeout=0.1, backoff_initial=0.01, backoff_cap=0.05,
                          exit_timeout=0.2)
    try:
        log = logging.getLogger("ack.old")
        log.propagate = False
        log.addHandler(handler)
        log.warning("kept")
        assert handler.sender.flush(0.5) is False
        assert handler.sender.sent == 0 and handler.sender.dropped == 0
        handler.close()
        assert not handler.sender.running  # gave up at its exit timeout
        assert handler.sender.dropped == 1  # and counted what it could not deliver
    finally:
        logging.getLogger("ack.old").removeHandler(handler)
        listener.close()
