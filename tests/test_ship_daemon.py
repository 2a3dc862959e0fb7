"""Shipping inside a running daemon: the spool without a file sink, reloads that add and change
targets, per-target filters, and a clean stop that ships what was already received."""

from __future__ import annotations

import signal

import orjson
import pytest

from logd.control import request
from logd.ship.spool import spool_backups

from ship_support import Collector, numbered, ship_config
from support import send_records, wait_for, write_config


@pytest.fixture
def collector(tmp_path):
    server = Collector(tmp_path / "collector").start()
    yield server
    server.stop()


def shipped(collector: Collector, path: str = "/") -> list[dict]:
    return [orjson.loads(line) for r in collector.requests() if r["path"] == path and r["status"] == 200
            for line in r["body"].splitlines()]


def seqs(records: list[dict]) -> list[int]:
    return [r["seq"] for r in records if "seq" in r]


def http_target(collector: Collector, name: str, path: str = "/", extra: str = "") -> str:
    return (f'type = "http"\nname = "{name}"\nurl = "{collector.url(path)}"\n'
            f"batch_size = 200\nflush_interval = 0.05\n{extra}")


def test_without_a_file_sink_records_are_spooled_shipped_and_the_spool_pruned(daemon, collector, tmp_path):
    """No `file`: a spool in the state folder feeds the shipper; it rotates, and shipped backups go away."""
    body = 'state_dir = "state"\nmax_size = 0.02\n\n[[logging.ship]]\n' + http_target(collector, "central")
    d = daemon(body)
    for start in range(0, 3000, 500):
        send_records(d.socket_path, numbered(500, start=start))
    wait_for(lambda: len(seqs(shipped(collector))) >= 3000, 30, what="3000 records shipped from the spool")
    assert seqs(shipped(collector)) == list(range(3000))
    spool = tmp_path / "state"
    # ~450 KB went through a spool rotating at 20 KB: without pruning there would be ~20 backups
    wait_for(lambda: len(spool_backups(spool / "spool.log")) <= 1, 10, what="shipped spool backups pruned")
    status = request(d.socket_path, "status")
    assert "spool" in status["sinks"] and status["ship"]["central"]["lag_records"] == 0


def test_reload_adds_a_target_that_ships_from_the_start_and_keeps_the_other(daemon, collector, tmp_path):
    d = daemon(ship_config(http_target(collector, "first", "/first")))
    send_records(d.socket_path, numbered(300))
    wait_for(lambda: len(seqs(shipped(collector, "/first"))) >= 300, 30, what="the first target")
    write_config(tmp_path, d.socket_path, ship_config(http_target(collector, "first", "/first"),
                                                      http_target(collector, "second", "/second")))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "second" in request(d.socket_path, "status").get("ship", {}), 15, what="the new target")
    send_records(d.socket_path, numbered(100, start=300))
    wait_for(lambda: len(seqs(shipped(collector, "/second"))) >= 400, 30, what="the second target caught up")
    wait_for(lambda: len(seqs(shipped(collector, "/first"))) >= 400, 30, what="the first target went on")
    assert seqs(shipped(collector, "/first")) == list(range(400))  # not restarted: nothing twice
    assert seqs(shipped(collector, "/second")) == list(range(400))  # new: from the oldest record kept


def test_reload_moving_a_target_resumes_from_its_checkpoint(daemon, collector, tmp_path):
    d = daemon(ship_config(http_target(collector, "central", "/old")))
    send_records(d.socket_path, numbered(200))
    wait_for(lambda: len(seqs(shipped(collector, "/old"))) >= 200, 30, what="the old URL")
    write_config(tmp_path, d.socket_path, ship_config(http_target(collector, "central", "/new")))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "/new" in request(d.socket_path, "status")["ship"]["central"]["url"], 15, what="the new URL")
    send_records(d.socket_path, numbered(100, start=200))
    wait_for(lambda: len(seqs(shipped(collector, "/new"))) >= 100, 30, what="the new URL")
    assert seqs(shipped(collector, "/new")) == list(range(200, 300))


def test_level_and_field_filter_per_target(daemon, collector):
    errors = http_target(collector, "errors", "/errors", 'level = "error"\n')
    writer = http_target(collector, "writer", "/writer", 'match = { agent = ["writer"] }\n')
    d = daemon(ship_config(errors, writer))
    send_records(d.socket_path, [{"level": "error" if i % 3 == 0 else "info", "message": f"m{i}",
                                  "agent": "writer" if i % 2 else "planner", "seq": i} for i in range(60)])
    wait_for(lambda: request(d.socket_path, "status")["ship"]["writer"]["lag_records"] == 0
             and request(d.socket_path, "status")["ship"]["errors"]["lag_records"] == 0
             and seqs(shipped(collector, "/errors")), 30, what="both targets up to date")
    assert seqs(shipped(collector, "/errors")) == [i for i in range(60) if i % 3 == 0]
    assert seqs(shipped(collector, "/writer")) == [i for i in range(60) if i % 2]
    assert request(d.socket_path, "status")["ship"]["writer"]["filtered_out"] >= 30


def test_sigterm_ships_what_was_received_before_exiting(daemon, collector):
    target = f'type = "http"\nname = "central"\nurl = "{collector.url()}"\nbatch_size = 100000\nflush_interval = 30\n'
    d = daemon(ship_config(target))
    send_records(d.socket_path, numbered(500))
    assert d.stop() == 0
    assert seqs(shipped(collector)) == list(range(500))  # the partial batch was not left waiting


def test_a_corrupt_checkpoint_stops_start_up_with_a_clear_error(daemon, collector, tmp_path):
    """Starting over silently would resend everything (or skip, with a guessed position): refuse, say why."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "central.checkpoint.json").write_text("{half a checkpoint")
    d = daemon(ship_config(http_target(collector, "central")), wait=False)
    assert d.proc.wait(15) == 1
    err = d.stderr()
    assert "logd: error: cannot start shipping: cannot read checkpoint" in err
    assert "central.checkpoint.json" in err and "move it away to start over" in err
    assert "Traceback" not in err
