"""``logd bench --soak``: hours, not minutes. Sustained paced load from several clients into
a ``logd run`` subprocess that rotates (5 MB, zstd) and ships to a local rsyslogd, with a
SIGHUP, a ``logd reload`` and rsyslog killed (-9) and restarted on the way.

Before the run the log folder gets ``--backups`` (10,000) numbered backups from an "earlier
logd" (empty ``agent.log.N.zst``), so every rotation happens with that many backups present
and the folder holds both layouts. Each minute it prints the daemon's RSS, its CPU share,
the writer's stall per rotation (p50/p99/max, from ``status``) and the lag (records taken
in but not yet in the file; records in the files not yet shipped). At the end every record
is looked up, by client and sequence number, in the files (all layouts, via
:mod:`logd.logfiles`) and in rsyslog's output: lost and duplicated counts.

Records vary as agents' do: levels, tools, pad lengths, a new ``session_id`` every thousand
records per client; that variety is what made memory climb with compression (issue 20).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from logd.bench.harness import Report, machine_line, start_logd
from logd.bench.ship import _Rsyslog
from logd.control import ControlError, request
from logd.logfiles.content import Problem, read_lines
from logd.logfiles.snapshot import snapshot

MAX_SIZE_MB = 5
STATUS_EVERY = 10.0  # seconds between status polls (status keeps the latest 32 stalls)

# One paced sender: ``rate`` records/s until the stop file appears, then prints how many it sent.
_CLIENT_CODE = r"""
import os, random, socket, sys, time
import orjson
path, client, rate, stop, shape = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
rng = random.Random(client)
levels = ["info"] * 15 + ["warn", "warn", "error"]  # debug would be filtered out (level = info)
tools = ["search", "browse", "python", "sql", "shell", "retrieve", "summarise", "plan"]
agents = ["research-agent", "planner", "writer", "critic", "tool-runner"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
sent, start, tick = 0, time.monotonic(), 0.05
while not os.path.exists(stop):
    due = int((time.monotonic() - start) * rate)
    lines = []
    while sent < due and len(lines) < 2000:
        record = {
            "level": rng.choice(levels), "message": f"tool call {rng.choice(tools)} finished",
            "agent": rng.choice(agents), "session_id": f"s{client}-{sent // 1000}-{rng.getrandbits(32):08x}",
            "tool": rng.choice(tools), "duration_ms": rng.randint(1, 30000),
            "pad": "x" * rng.randint(0, 400), "soak_client": client, "seq": sent}
        if shape == "canonical":  # with a UTC time (and tokens): the compiled hot path takes them; without, Python
            now = time.time()
            record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
                      **record, "model": "gpt-4o", "tokens": {"input": rng.randint(1, 900), "output": 7}}
        lines.append(orjson.dumps(record))
        sent += 1
    if lines:
        s.sendall(b"\n".join(lines) + b"\n")
    else:
        time.sleep(tick)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(sent, flush=True)
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def seed_backups(log: Path, count: int) -> None:
    """``count`` numbered backups as an older logd left them (empty, rotated an hour ago)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600
    for n in range(1, count + 1):
        path = log.with_name(f"{log.name}.{n}.zst")
        path.touch()
        os.utime(path, (old - n, old - n))


def tally(lines: list[bytes], seen: dict[int, bytearray]) -> None:
    """Count each soak record (by client, seq) in ``seen``; other lines (logd's own) are skipped."""
    for line in lines:
        if b'"soak_client"' not in line:
            continue
        start = line.find(b"{")
        try:
            record = orjson.loads(line[start:])
            counts = seen[record["soak_client"]]
            seq = record["seq"]
        except (ValueError, KeyError, TypeError):
            continue
        if seq < len(counts):
            counts[seq] = min(255, counts[seq] + 1)


def lost_and_duplicated(seen: dict[int, bytearray]) -> tuple[int, int]:
    lost = sum(c.count(0) for c in seen.values())
    duplicated = sum(len(c) - c.count(0) - c.count(1) for c in seen.values())
    return lost, duplicated


class _Status:
    """Polls ``logd status``; collects every writer stall reported since the last poll."""

    def __init__(self, sock: Path) -> None:
        self.sock, self.seen_stalls = sock, 0
        self.last: dict = {}

    def poll(self) -> list[float]:
        try:
            self.last = request(self.sock, "status", timeout=60)
        except ControlError:
            return []
        sink = self.last.get("sinks", {}).get("file", {})
        count, recent = sink.get("rotation_stalls", 0), sink.get("rotation_stall_ms", [])
        new = recent[len(recent) - min(len(recent), count - self.seen_stalls):] if count > self.seen_stalls else []
        self.seen_stalls = count
        return new


def bench_soak(args: argparse.Namespace) -> Report:
    minutes, rate, clients = args.minutes, args.rate, args.clients
    backups = getattr(args, "backups", 10_000)
    if shutil.which("rsyslogd") is None:
        return Report("logd bench --soak", [], notes=["rsyslogd is not installed (apt-get install rsyslog)"], ok=False)
    folder = Path(tempfile.mkdtemp(prefix="logd-soak-", dir="/tmp"))
    out = sys.stdout
    children: list[subprocess.Popen] = []  # stopped whatever happens
    rs: _Rsyslog | None = None
    try:
        log, state, stop = folder / "logs" / "agent.log", folder / "state", folder / "stop"
        seed_backups(log, backups)
        rs = _Rsyslog(folder / "rsyslog")
        body = (f'file = "{log}"\nfile_only = true\nmax_size = {MAX_SIZE_MB}\ncompress = true\n'
                f'state_dir = "{state}"\n\n[[logging.ship]]\ntype = "syslog"\nurl = "tcp://127.0.0.1:{rs.port}"\n'
                f'name = "rsyslog"\nformat = "json"\nbatch_size = 2000\nflush_interval = 0.2\n')
        proc, sock = start_logd(folder, body)
        children.append(proc)
        _wait_control(sock)
        status = _Status(sock)
        shape = "canonical" if getattr(args, "canonical", False) else "mixed"
        out.write(f"logd bench --soak: {minutes:g} min at {rate:,} records/s from {clients} clients"
                  f"{' (in logd shape: the hot path)' if shape == 'canonical' else ''}, "
                  f"{MAX_SIZE_MB} MB files + zstd, {backups:,} numbered backups present, shipping to rsyslog; "
                  f"{machine_line()}\n")
        out.write(f"{'min':>4}{'received':>12}{'RSS MB':>8}{'CPU %':>7}{'rot':>5}{'stall p50':>11}{'p99':>8}"
                  f"{'max ms':>8}{'file lag':>10}{'ship lag':>10}  events\n")
        out.flush()
        senders = [subprocess.Popen([sys.executable, "-c", _CLIENT_CODE, str(sock), str(i), str(rate / clients),
                                     str(stop), shape], stdout=subprocess.PIPE, text=True) for i in range(clients)]
        children.extend(senders)
        started = time.monotonic()
        end = started + minutes * 60
        events = {0.33: "SIGHUP", 0.5: "rsyslog kill -9", 0.66: "logd reload"}
        restart_at: float | None = None
        all_stalls: list[float] = []
        minute_stalls: list[float] = []
        pending: list[str] = []
        rss_after_first: list[float] = []
        minute, cpu_before = 0, _cpu(proc.pid)
        next_report = started + 60
        while time.monotonic() < end:
            time.sleep(min(STATUS_EVERY, max(0.1, min(next_report, end) - time.monotonic())))
            now = time.monotonic()
            for at, name in list(events.items()):
                if now >= started + at * minutes * 60:
                    del events[at]
                    if name == "SIGHUP":
                        proc.send_signal(signal.SIGHUP)
                    elif name == "logd reload":
                        try:
                            request(sock, "reload", timeout=60)
                        except ControlError as exc:
                            name = f"logd reload failed: {exc}"
                    else:
                        rs.proc.kill()
                        rs.proc.wait()
                        restart_at = now + min(60.0, minutes * 6)
                    pending.append(name)
            if restart_at is not None and now >= restart_at:
                _restart(rs)
                restart_at = None
                pending.append("rsyslog restarted")
            stalls = status.poll()
            all_stalls.extend(stalls)
            minute_stalls.extend(stalls)
            if now < next_report:
                continue
            minute += 1
            next_report += 60
            cpu_now = _cpu(proc.pid)
            rss = rss_mb(proc.pid)
            if minute > 1:
                rss_after_first.append(rss)
            s = status.last
            file = s.get("sinks", {}).get("file", {})
            ship = s.get("ship", {}).get("rsyslog", {})
            out.write(f"{minute:>4}{s.get('received', 0):>12,}{rss:>8.1f}{(cpu_now - cpu_before) / 60 * 100:>7.0f}"
                      f"{len(minute_stalls):>5}{percentile(minute_stalls, 50):>11.2f}"
                      f"{percentile(minute_stalls, 99):>8.2f}{max(minute_stalls, default=0):>8.2f}"
                      f"{s.get('received', 0) - file.get('written', 0):>10,}{ship.get('lag_records', -1):>10,}"
                      f"  {', '.join(pending)}\n")
            out.flush()
            cpu_before, minute_stalls, pending = cpu_now, [], []
        if restart_at is not None:
            _restart(rs)
        stop.touch()
        sent = {i: int(c.communicate(timeout=120)[0].strip() or 0) for i, c in enumerate(senders)}
        total = sum(sent.values())
        drained = _drain(sock, total, timeout=600)
        all_stalls.extend(status.poll())
        final_rss = rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        rs.stop()
        files_seen = {i: bytearray(n) for i, n in sent.items()}
        def problem(p: Problem) -> None:
            out.write(f"problem: {p}\n")

        with snapshot(log) as opened:
            for lines in read_lines(opened, on_problem=problem):
                tally(lines, files_seen)
        shipped_seen = {i: bytearray(n) for i, n in sent.items()}
        with open(rs.out, "rb") as f:
            tally(f.read().splitlines(), shipped_seen)
        file_lost, file_dup = lost_and_duplicated(files_seen)
        ship_lost, ship_dup = lost_and_duplicated(shipped_seen)
        rss_range = (min(rss_after_first), max(rss_after_first)) if rss_after_first else (final_rss, final_rss)
        notes = [
            f"records sent: {total:,} ({total / (minutes * 60):,.0f}/s); all in and shipped before the end: {drained}",
            f"RSS after the first minute: {rss_range[0]:.1f}-{rss_range[1]:.1f} MB; at the end, idle: {final_rss:.1f} MB",
            f"writer stall per rotation ({len(all_stalls)} rotations, {backups:,} older backups present): "
            f"p50 {percentile(all_stalls, 50):.2f} ms, p99 {percentile(all_stalls, 99):.2f} ms, "
            f"max {max(all_stalls, default=0):.2f} ms",
            f"files: {file_lost} lost, {file_dup} duplicated; rsyslog: {ship_lost} lost, {ship_dup} duplicated",
            f"records that took the compiled hot path: {status.last.get('hot_path', {}).get('records', 0):,} "
            f"(logd status, at the last poll)",
        ]
        report = Report(f"logd bench --soak: {minutes:g} min; {machine_line()}", [], notes=notes,
                        target="RSS flat (<= 64 MB) after the first minute, 0 lost, 0 duplicated")
        report.ok = rss_range[1] <= 64 and file_lost == file_dup == ship_lost == ship_dup == 0 and drained
        return report
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        if rs is not None and rs.proc.poll() is None:
            rs.proc.kill()
            rs.proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_control(sock: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request(sock, "status", timeout=30)
            return
        except ControlError:
            time.sleep(0.1)


def _restart(rs: _Rsyslog) -> None:
    """rsyslogd again on the same config and port (after kill -9); waits until it listens."""
    conf = rs.folder / "rsyslog.conf"
    (rs.folder / "pid").unlink(missing_ok=True)
    rs.proc = subprocess.Popen([shutil.which("rsyslogd") or "rsyslogd", "-n", "-f", str(conf),
                                "-i", str(rs.folder / "pid")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", rs.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)


def _drain(sock: Path, total: int, timeout: float) -> bool:
    """Wait until the daemon has written every record sent and shipped all of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = request(sock, "status", timeout=60)
        except ControlError:
            time.sleep(1)
            continue
        written = s.get("sinks", {}).get("file", {}).get("sent_events", 0)
        lag = s.get("ship", {}).get("rsyslog", {}).get("lag_records", -1)
        if written >= total and lag == 0:
            return True
        time.sleep(1)
    return False
