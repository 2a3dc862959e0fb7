"""Shipping to a real rsyslogd over TCP (RFC 5424, octet-counted): exactly once and in order,
through an rsyslog outage and through kill -9 of logd."""

from __future__ import annotations

import signal
from pathlib import Path

from logd.control import request

from ship_support import Certificates, Rsyslog, numbered, ship_config
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


def assert_all_once_or_one_batch_twice(messages: list[str], total: int, batch_size: int) -> None:
    expected = [f"rec {i:06d}" for i in range(total)]
    assert set(messages) == set(expected), f"lost: {sorted(set(expected) - set(messages))[:5]}"
    duplicates = len(messages) - total
    assert duplicates <= batch_size, f"{duplicates} duplicates, more than one batch of {batch_size}"
    first_seen = list(dict.fromkeys(messages))
    assert first_seen == expected  # in order: a resent batch repeats, it never reorders


def test_rsyslog_stopped_mid_stream_and_restarted_loses_nothing(daemon, tmp_path):
    """While rsyslog is down the shipper retries (status says so); after it returns all arrive."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    try:
        batch = 500
        d = daemon(ship_config(syslog_target(rs, batch)))
        send_records(d.socket_path, numbered(20_000))
        wait_for(lambda: len(rec_messages(rs)) >= 2_000, 60, what="the first batches in rsyslog")
        rs.stop()
        send_records(d.socket_path, numbered(20_000, start=20_000))

        def retrying() -> bool:
            status = request(d.socket_path, "status")["ship"]["central"]
            return status["state"] == "retrying" and status["lag_records"] > 0
        wait_for(retrying, 30, what="status to show the target retrying with a lag")
        status = request(d.socket_path, "status")["ship"]["central"]
        assert "127.0.0.1" in status["last_error"]

        rs.start()
        wait_for(lambda: len(set(rec_messages(rs))) >= 40_000, 60, interval=0.1, what="all 40,000 records")
        assert_all_once_or_one_batch_twice(rec_messages(rs), 40_000, batch)
        wait_for(lambda: request(d.socket_path, "status")["ship"]["central"]["state"] == "up to date", 15,
                 what="status up to date")
    finally:
        rs.stop()


def test_kill_9_mid_stream_then_restart_loses_nothing(daemon, tmp_path):
    """Killed while shipping, logd resumes from its checkpoint: nothing lost, at most one batch twice."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    try:
        batch, total = 200, 60_000
        d = daemon(ship_config(syslog_target(rs, batch)))
        send_records(d.socket_path, numbered(total))
        log = Path(tmp_path / "agent.log")
        wait_for(lambda: len(agent_records(log)) >= total, 30, what="every record in the file")
        arrived = len(rec_messages(rs))
        assert arrived < total, "shipping finished before the kill; the test needs a slower pace"
        d.signal(signal.SIGKILL)
        d.proc.wait(10)

        daemon(ship_config(syslog_target(rs, batch)))
        wait_for(lambda: len(set(rec_messages(rs))) >= total, 60, interval=0.1, what="all records after restart")
        assert_all_once_or_one_batch_twice(rec_messages(rs), total, batch)
    finally:
        rs.stop()


def test_tls_to_rsyslog_verifies_the_server_and_delivers(daemon, tmp_path):
    """RFC 5425: TLS to rsyslog's GnuTLS listener; the server is verified against tls_ca."""
    certs = Certificates(tmp_path / "certs")
    rs = Rsyslog(tmp_path / "rsyslog", tls=certs).start()
    try:
        trusted = f'''type = "syslog"
url = "tls://127.0.0.1:{rs.port}"
name = "secure"
tls_ca = "{certs.ca}"
flush_interval = 0.05
'''
        untrusted = f'''type = "syslog"
url = "tls://127.0.0.1:{rs.port}"
name = "unverified"
level = "fatal"
backoff_initial = 0.05
backoff_max = 0.2
'''
        d = daemon(ship_config(trusted, untrusted))
        send_records(d.socket_path, numbered(2000) + [{"level": "fatal", "message": "rec 999999", "seq": -1}])
        wait_for(lambda: len(rec_messages(rs)) >= 2001, 60, what="2000 records over TLS")
        assert rec_messages(rs) == [f"rec {i:06d}" for i in range(2000)] + ["rec 999999"]
        # the second target has no tls_ca: the test CA is not trusted, so nothing goes out
        wait_for(lambda: request(d.socket_path, "status")["ship"]["unverified"]["retries"] >= 1, 30,
                 what="the unverified target to fail")
        status = request(d.socket_path, "status")["ship"]["unverified"]
        assert status["delivered"] == 0 and "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
    finally:
        rs.stop()


def test_mutual_tls_client_certificate(daemon, tmp_path):
    """rsyslog asking for a client certificate: tls_cert/tls_key present it and every record
    arrives; without them rsyslog refuses the target, and nothing of its reaches the file."""
    certs = Certificates(tmp_path / "certs")
    rs = Rsyslog(tmp_path / "rsyslog", tls=certs, client_certs=True).start()
    try:
        base = f'type = "syslog"\nurl = "tls://127.0.0.1:{rs.port}"\ntls_ca = "{certs.ca}"\nflush_interval = 0.05\n'
        with_cert = base + f'name = "mtls"\ntls_cert = "{certs.client_cert}"\ntls_key = "{certs.client_key}"\n'
        without = base + 'name = "anonymous"\nlevel = "fatal"\nbackoff_initial = 0.05\nbackoff_max = 0.2\n'
        d = daemon(ship_config(with_cert, without))
        send_records(d.socket_path, numbered(500) + [{"level": "fatal", "message": "rec 999999", "seq": -1}])
        # rsyslog's own word that it turned "anonymous" away. Not the shipper's counters: rsyslog
        # closes a refused session without a TLS alert, and when its close reaches logd before the
        # record reaches rsyslog, logd cannot tell it from a delivery (it may count it delivered).
        wait_for(lambda: "peer did not provide a certificate" in rs.diagnostics(), 30,
                 what="rsyslog to refuse the target without a certificate")
        wait_for(lambda: len(rec_messages(rs)) >= 501, 60, what="500 records over mutual TLS")
        # the file is the check, read once both targets were served: "rec 999999" once, from "mtls"
        assert rec_messages(rs) == [f"rec {i:06d}" for i in range(500)] + ["rec 999999"]
    finally:
        rs.stop()
