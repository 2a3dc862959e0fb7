"""``logd bench --peers``: logd's default pipeline beside other servers doing the same work, in
the same run: the same records, the same K client processes over a Unix stream socket, into
one file, every record checked, median of ``--runs``.

Peers, each when installed: rsyslog framing lines into a file (imptcp on a Unix socket ->
omfile, no parsing), rsyslog parsing each line as JSON and writing it back (mmjsonparse ->
``$!all-json``), socat copying bytes, and a raw asyncio pass-through server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logd.bench import harness as bench
from logd.bench.harness import Report, Row, drive_clients, machine_line, start_logd

RSYSLOG_RAW = """
global(workDirectory="{folder}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imptcp")
main_queue(queue.type="Direct")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imptcp" path="{sock}" unlink="on" ruleset="r")
ruleset(name="r") {{ action(type="omfile" file="{out}" template="raw") }}
"""

RSYSLOG_JSON = """
global(workDirectory="{folder}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imptcp")
module(load="mmjsonparse")
main_queue(queue.type="Direct")
template(name="json" type="string" string="%$!all-json%\\n")
input(type="imptcp" path="{sock}" unlink="on" ruleset="r")
ruleset(name="r") {{
  action(type="mmjsonparse" cookie="" useRawMsg="on")
  action(type="omfile" file="{out}" template="json")
}}
"""


@dataclass
class Server:
    """One peer: how to start it on a socket writing to a file."""

    name: str
    start: Callable[[Path, Path, Path], subprocess.Popen]  # (folder, socket, out) -> process
    checks_lines: bool = True  # False: a byte copier interleaves clients' lines


def cpu_with_children(pid: int) -> float:
    """User + system CPU of a process and of its children it has waited for (socat forks one
    per connection), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rsyslog(config: str) -> Callable[[Path, Path, Path], subprocess.Popen]:
    def start(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
        conf = folder / "rsyslog.conf"
        conf.write_text(config.format(folder=folder, sock=sock, out=out))
        proc = subprocess.Popen([shutil.which("rsyslogd") or "rsyslogd", "-n", "-f", str(conf), "-i",
                                 str(folder / "rsyslog.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bench._wait_socket(sock, proc)
        return proc
    return start


def _socat(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([shutil.which("socat") or "socat", "-u", f"UNIX-LISTEN:{sock},fork",
                             f"OPEN:{out},creat,append"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench._wait_socket(sock, proc)
    return proc


def _raw_python(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", bench._RAW_SERVER_CODE, str(sock), str(out)])
    bench._wait_socket(sock, proc)
    return proc


def peers() -> list[Server]:
    found = []
    if shutil.which("rsyslogd"):
        found += [Server("rsyslog (imptcp -> omfile)", _rsyslog(RSYSLOG_RAW)),
                  Server("rsyslog + mmjsonparse", _rsyslog(RSYSLOG_JSON))]
    if shutil.which("socat"):
        found.append(Server("socat (copies bytes)", _socat, checks_lines=False))
    found.append(Server("asyncio pass-through (no parsing)", _raw_python, checks_lines=False))
    return found


@dataclass
class Run:
    seconds: float
    cpu: float
    rss_mb: float
    lost: int | None


def _one_run(folder: Path, blobs: list[Path], total: int, start: Callable[[Path, Path, Path], subprocess.Popen],
             checks_lines: bool) -> Run:
    folder.mkdir()
    sock, out = folder / "s.sock", folder / "out.log"
    proc = start(folder, sock, out)
    try:
        seconds = drive_clients(sock, blobs, out, total)
        time.sleep(0.05)  # let a forking server reap its finished children
        cpu, rss = cpu_with_children(proc.pid), peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lost = total - bench.count_agent_lines(out) if checks_lines else None
    return Run(seconds, cpu, rss, lost)


def _logd(body: str) -> Callable[[Path, Path, Path], subprocess.Popen]:
    def start(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
        proc, real_sock = start_logd(folder, f'file = "{out}"\nfile_only = true\nmax_size = 100000\n{body}')
        sock.symlink_to(real_sock)
        return proc
    return start


def _median_row(name: str, runs: list[Run], total: int, total_bytes: int) -> tuple[Row, float]:
    best = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    lost = None if best.lost is None else max(r.lost or 0 for r in runs)
    return Row(name, total, statistics.median(r.seconds for r in runs), total_bytes, best.cpu, lost), \
        max(r.rss_mb for r in runs)


def bench_peers(args: argparse.Namespace) -> Report:
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-peers-", dir="/tmp"))
    runs_n = max(1, getattr(args, "runs", 3))
    try:
        blobs, total, total_bytes = bench._write_blobs(folder, args.clients, args.records)
        servers = [Server("logd, default pipeline", _logd(""))] + peers()
        rows: list[Row] = []
        rss: dict[str, float] = {}
        # interleave the servers run by run, so a noisy moment hurts every server alike
        results: dict[str, list[Run]] = {s.name: [] for s in servers}
        for run in range(runs_n):
            for i, server in enumerate(servers):
                results[server.name].append(_one_run(folder / f"{run}-{i}", blobs, total, server.start,
                                                     server.checks_lines))
        for server in servers:
            row, peak = _median_row(server.name, results[server.name], total, total_bytes)
            rows.append(row)
            rss[server.name] = peak
        logd = rows[0]
        by_name = {r.name: r for r in rows}
        ratios = [(f"logd / {r.name}", logd.rate / r.rate) for r in rows[1:]]
        notes = ["peak RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items()),
                 f"median of {runs_n} run(s), servers interleaved; lost = records missing from the file"]
        report = Report(f"logd bench --peers: {total:,} records (~{total_bytes // total} B), {args.clients} clients "
                        f"over a Unix socket into one file; {machine_line()}", rows, ratios, notes)
        goals = []
        mmjson = by_name.get("rsyslog + mmjsonparse")
        if mmjson is not None:
            goals.append(("logd >= 2x rsyslog + mmjsonparse", logd.rate >= 2 * mmjson.rate))
        socat = by_name.get("socat (copies bytes)")
        if socat is not None:
            goals.append(("logd >= 0.15x socat (syslog-ng's raw pass-through rate)", logd.rate >= 0.15 * socat.rate))
        goals.append(("0 lost", logd.lost == 0))
        report.target = "; ".join(name for name, _ in goals)
        report.ok = all(ok for _, ok in goals)
        report.notes.append("goals: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals))
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)
