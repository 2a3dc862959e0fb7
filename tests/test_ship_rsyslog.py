"""Shipping to a real rsyslogd over TCP (RFC 5424, octet-counted): exactly once and in order,
through an rsyslog outage and through kill -9 of logd."""

from __future__ import annotations

import signal
from pathlib import Path

from logd.control import request
from ship_support import Rsyslog, numbered, ship_config
from support import agent_records, send_records, wait_for


def rec_messages(rs: Rsyslog) -> list[str]:
    return [m for m in rs.messages() if m.startswith("rec ")]


def syslog_target(rs: Rsyslog, batch_size: int = 1000) -> str:
    return f'''type = "syslog"
url = "tcp://127.0.0.1:{rs.port}"
name = "central"
batch_size = {batch_size}
flush_interval = 0.05
backoff_initial = 0.05
backoff_max = 0.2
'''


def test_100k_records_arrive_exactly_once_in_order(daemon, tmp_path):
    """Every record reaches rsyslog once, in order, with its fields as SD-params."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    try:
        d = daemon(ship_config(syslog_target(rs)))
        total = 100_000
        send_records(d.socket_path, numbered(total))
        wait_for(lambda: len(rec_messages(rs)) >= total, 120, interval=0.1, what="100,000 records in rsyslog")
        assert rec_messages(rs) == [f"rec {i:06d}" for i in range(total)]
        line = next(line for line in rs.lines() if line.endswith("\trec 000042"))
        app, sd, _ = line.split("\t")
        assert app == "planner"
        assert sd.startswith("[logd@32473 ") and 'seq="42"' in sd
        status = request(d.socket_path, "status")["ship"]["central"]
        assert status["delivered"] >= total and status["last_error"] is None
    finally:
        rs.stop()
