"""Shipping across real rotation (logd.rotation: rename, zstd compression, retention) in a
running daemon: exactly once and in order through rotations, resumed after kill -9 with
rotations in between, and every record either delivered or counted as lost to retention."""

from __future__ import annotations

import signal
import subprocess
import sys

import orjson
import pytest

from logd.control import request
from logd.logfiles.names import Names

from ship_support import Collector, numbered, ship_config
from support import send_records, wait_for


def cli_status(d) -> str:
    return subprocess.run([sys.executable, "-m", "logd", "status", "--socket", str(d.socket_path)],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def collector(tmp_path):
    server = Collector(tmp_path / "collector").start()
    yield server
    server.stop()


def shipped_seqs(collector: Collector) -> list[int]:
    return [r["seq"] for body in collector.accepted_bodies() for r in map(orjson.loads, body.splitlines())
            if "seq" in r]


def target(collector: Collector, batch: int = 200) -> str:
    return (f'type = "http"\nname = "central"\nurl = "{collector.url()}"\nbatch_size = {batch}\n'
            'flush_interval = 0.05\nbackoff_initial = 0.05\nbackoff_max = 0.2\n')


ROTATING = 'max_size = 0.05\ncompress = true\n'  # ~50 KB files: a rotation every ~300 records


def test_every_record_once_in_order_through_rotations_and_compression(daemon, collector, tmp_path):
    d = daemon(ship_config(target(collector), extra=ROTATING))
    for start in range(0, 6000, 1000):
        send_records(d.socket_path, numbered(1000, start=start))
    wait_for(lambda: len(shipped_seqs(collector)) >= 6000, 60, what="6000 records shipped")
    assert shipped_seqs(collector) == list(range(6000))
    assert [b for b in Names(tmp_path / "agent.log").scan() if b.compressed], "the test needs compressed backups"


def test_kill_9_then_rotations_while_down_then_restart_resumes_exactly(daemon, collector, tmp_path):
    """The checkpoint names a file that is renamed and compressed while logd is away (a second
    logd without the target writes meanwhile): the restarted shipper still resumes at the line."""
    collector.plan([{"status": 503}] * 10 ** 6)  # nothing is accepted until the kill
    d = daemon(ship_config(target(collector), extra=ROTATING))
    send_records(d.socket_path, numbered(1000))
    wait_for(lambda: request(d.socket_path, "status")["ship"]["central"]["retries"] >= 1, 30,
             what="failing deliveries")
    collector.plan([])  # accept from now on ...
    wait_for(lambda: len(shipped_seqs(collector)) >= 400, 30, what="the first records shipped")
    d.signal(signal.SIGKILL)  # ... and die mid-stream
    d.proc.wait(10)
    shipped_before = len(shipped_seqs(collector))
    assert shipped_before < 1000

    # a logd without ship targets writes more, rotating and compressing the checkpointed file
    other = daemon(f'file = "agent.log"\nfile_only = true\n{ROTATING}')
    send_records(other.socket_path, numbered(3000, start=1000))
    assert other.stop() == 0
    found = Names(tmp_path / "agent.log").scan()
    assert len(found) >= 5 and [b for b in found if b.compressed]

    daemon(ship_config(target(collector), extra=ROTATING))
    wait_for(lambda: len(set(shipped_seqs(collector))) >= 4000, 60, what="everything after the restart")
    seqs = shipped_seqs(collector)
    assert sorted(set(seqs)) == list(range(4000))
    assert len(seqs) - 4000 <= 200  # at most the batch in flight at the kill, twice
    assert list(dict.fromkeys(seqs)) == list(range(4000))


def test_retention_of_unshipped_backups_is_counted_shown_and_accounts_for_every_record(daemon, collector, tmp_path):
    """Collector down, retention keeping 1 backup: what it deletes unshipped is counted as lost,
    so delivered + lost covers every record sent."""
    collector.plan([{"status": 503, "body": "down"}] * 10 ** 6)
    d = daemon(ship_config(target(collector), extra='max_size = 0.02\nmax_backups = 1\n'))
    for start in range(0, 2000, 250):
        send_records(d.socket_path, numbered(250, start=start))

    def lost_so_far() -> int:
        return request(d.socket_path, "status")["ship"]["central"]["lost_to_retention"]
    wait_for(lambda: lost_so_far() > 0, 30, what="retention to delete an unshipped backup")
    assert "retention deleted" in d.stderr() and "had not shipped yet" in d.stderr()
    collector.plan([])
    wait_for(lambda: request(d.socket_path, "status")["ship"]["central"]["state"] == "up to date", 30,
             what="the target to catch up with what is left")
    delivered = shipped_seqs(collector)
    assert delivered == sorted(set(delivered))  # what was kept went out once, in order
    missing = 2000 - len(delivered)
    assert missing > 0, "the test needs retention to have deleted unshipped records"

    def accounted() -> bool:  # every line written (agents' and logd's own) is delivered or counted lost
        status = request(d.socket_path, "status")
        target = status["ship"]["central"]
        written = status["received"] - status["filtered"]
        return target["delivered"] + target["lost_to_retention"] + target["lag_records"] == written
    try:
        wait_for(accounted, 15, what="delivered + lost + lag to equal the records written")
    except AssertionError:
        status = request(d.socket_path, "status")
        raise AssertionError(f"not accounted for: {status['ship']['central']}, received {status['received']}, "
                             f"filtered {status['filtered']}") from None
    assert lost_so_far() >= missing
    assert "LOST: deleted by retention before shipping" in cli_status(d)
