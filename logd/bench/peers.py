"""``logd bench --peers``: logd's default pipeline beside other servers doing the same work, in
the same run: the same records, the same K client processes over a Unix stream socket, into
one file, every record checked, median of ``--runs``.

Peers, each when installed: rsyslog framing lines into a file (imptcp on a Unix socket ->
omfile, no parsing), rsyslog parsing each line as JSON and writing it back (mmjsonparse ->
``$!all-json``), syslog-ng the same two ways (``flags(no-parse)`` -> ``${MSG}``, and
``json-parser()`` -> ``$(format-json)``), socat copying bytes, and a raw asyncio pass-through.

``--mix`` (or ``--dialect NAME``) runs the comparison a second time on the mixed agent-log
workload of :mod:`logd.bench.dialects`, and reports the share of records that took logd's
compiled path (``hot_path.records`` of ``logd status``, read before the daemon stops).
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
from logd.bench.dialects import DIALECTS, describe_mix, make_mixed
from logd.bench.harness import Report, Row, drive_clients, machine_line, start_logd
from logd.control import request

RSS_BOUND_MB = 64  # issue 14's memory bound for the daemon under this load

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


SYSLOG_NG_SOURCE = """@version: {version}
options {{ log-msg-size(65536); stats-freq(0); }};
source s {{ unix-stream("{sock}" flags(no-parse) max-connections(64) log-iw-size(100000)); }};
"""

SYSLOG_NG_RAW = SYSLOG_NG_SOURCE + """destination d {{ file("{out}" template("${{MSG}}\\n")); }};
log {{ source(s); destination(d); }};
"""

# syslog-ng 3.38's json-parser() keeps every value as text: format-json writes them back as strings
SYSLOG_NG_JSON = SYSLOG_NG_SOURCE + """parser p {{ json-parser(prefix("j.")); }};
destination d {{ file("{out}" template("$(format-json --scope none --key j.* --rekey j.* --shift 2)\\n")); }};
log {{ source(s); parser(p); destination(d); }};
"""

# where .ci/setup --test unpacks Debian's syslog-ng-core (it conflicts with rsyslog: unpacked, not installed)
SYSLOG_NG_CACHE = Path(__file__).resolve().parents[2] / ".ci" / "cache" / "syslog-ng"


@dataclass
class Server:
    """One peer: how to start it on a socket writing to a file."""

    name: str
    start: Callable[[Path, Path, Path], subprocess.Popen]  # (folder, socket, out) -> process
    checks_lines: bool = True  # False: a byte copier interleaves clients' lines
    hot_path: Callable[[Path], int] | None = None  # logd: records its compiled path took, asked before it stops


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


def find_syslog_ng() -> tuple[list[str], dict[str, str]] | None:
    """The command that runs syslog-ng and its environment, or None: a folder where Debian's
    ``syslog-ng-core`` is unpacked (``dpkg -x``), named by ``LOGD_SYSLOG_NG``, else
    ``.ci/cache/syslog-ng`` of this checkout (``.ci/setup --test`` unpacks it there), else a
    ``syslog-ng`` on PATH."""
    named = os.environ.get("LOGD_SYSLOG_NG")
    root = Path(named) if named else SYSLOG_NG_CACHE
    binary = root / "usr" / "sbin" / "syslog-ng"
    if binary.is_file():
        libs = root / "usr" / "lib" / "syslog-ng"
        modules = sorted(p for p in libs.glob("[0-9]*") if p.is_dir())
        if not modules:
            raise SystemExit(f"logd bench: {libs} holds no syslog-ng module folder (such as 3.38)")
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, [str(libs), os.environ.get("LD_LIBRARY_PATH")]))}
        return [str(binary), f"--module-path={modules[-1]}"], env
    if named:
        raise SystemExit(f"logd bench: LOGD_SYSLOG_NG={named} has no usr/sbin/syslog-ng "
                         "(a folder where syslog-ng-core is unpacked with dpkg -x)")
    found = shutil.which("syslog-ng")
    return ([found], dict(os.environ)) if found else None


def _syslog_ng(command: list[str], env: dict[str, str], config: str) -> Callable[[Path, Path, Path], subprocess.Popen]:
    banner = subprocess.run([*command, "--version"], capture_output=True, text=True, env=env).stdout
    version = ".".join(banner.split("(", 1)[1].split(".")[:2]) if "(" in banner else "3.38"  # "syslog-ng 3 (3.38.1)"

    def start(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
        conf, errors = folder / "syslog-ng.conf", folder / "syslog-ng.err"
        conf.write_text(config.format(version=version, sock=sock, out=out))
        with open(errors, "wb") as err:  # its paths must be absolute and the run's own
            proc = subprocess.Popen([*command, "-F", "-f", str(conf), "-R", str(folder / "syslog-ng.persist"),
                                     "-p", str(folder / "syslog-ng.pid"), "-c", str(folder / "syslog-ng.ctl")],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            bench._wait_socket(sock, proc)
        except RuntimeError as exc:
            proc.kill()
            raise RuntimeError(f"syslog-ng: {exc}: {errors.read_text()[-500:]}") from None
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
    syslog_ng = find_syslog_ng()
    if syslog_ng is not None:
        found += [Server("syslog-ng (raw)", _syslog_ng(*syslog_ng, SYSLOG_NG_RAW)),
                  Server("syslog-ng + json-parser", _syslog_ng(*syslog_ng, SYSLOG_NG_JSON))]
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
    hot: int | None = None  # records logd's compiled path took


def _one_run(folder: Path, blobs: list[Path], total: int, server: Server) -> Run:
    folder.mkdir()
    sock, out = folder / "s.sock", folder / "out.log"
    proc = server.start(folder, sock, out)
    try:
        started = cpu_with_children(proc.pid)  # what starting took (logd's imports: ~0.3 s) is not the work's
        seconds = drive_clients(sock, blobs, out, total)
        time.sleep(0.05)  # let a forking server reap its finished children
        cpu, rss = cpu_with_children(proc.pid) - started, peak_rss_mb(proc.pid)
        hot = server.hot_path(folder) if server.hot_path is not None else None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lost = total - bench.count_agent_lines(out) if server.checks_lines else None
    return Run(seconds, cpu, rss, lost, hot)


def _logd(body: str) -> Callable[[Path, Path, Path], subprocess.Popen]:
    def start(folder: Path, sock: Path, out: Path) -> subprocess.Popen:
        proc, real_sock = start_logd(folder, f'file = "{out}"\nfile_only = true\nmax_size = 100000\n{body}')
        sock.symlink_to(real_sock)
        return proc
    return start


def _logd_hot_path(folder: Path) -> int:
    return int(request(folder / "logd.sock", "status")["hot_path"]["records"])


def _median_row(name: str, runs: list[Run], total: int, total_bytes: int) -> tuple[Row, float]:
    best = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    lost = None if best.lost is None else max(r.lost or 0 for r in runs)
    return Row(name, total, statistics.median(r.seconds for r in runs), total_bytes, best.cpu, lost), \
        max(r.rss_mb for r in runs)


LOGD = "logd, default pipeline"


def _compare(folder: Path, args: argparse.Namespace, make: Callable[[int, int], bytes], workload: str,
             mixed: bool) -> Report:
    """logd and every peer on one workload, interleaved run by run (a noisy moment hurts every
    server alike); the medians, ratios to logd, and the goals of that workload."""
    folder.mkdir()
    runs_n = max(1, getattr(args, "runs", 3))
    blobs, total, total_bytes = bench._write_blobs(folder, args.clients, args.records, make)
    servers = [Server(LOGD, _logd(""), hot_path=_logd_hot_path)] + peers()
    results: dict[str, list[Run]] = {s.name: [] for s in servers}
    for run in range(runs_n):
        for i, server in enumerate(servers):
            results[server.name].append(_one_run(folder / f"{run}-{i}", blobs, total, server))
    rows: list[Row] = []
    rss: dict[str, float] = {}
    for server in servers:
        row, rss[server.name] = _median_row(server.name, results[server.name], total, total_bytes)
        rows.append(row)
    logd = rows[0]
    by_name = {r.name: r for r in rows}
    hot_share = min((r.hot or 0) for r in results[LOGD]) / total
    report = Report(f"logd bench --peers, {workload}: {total:,} records (~{total_bytes // total} B), {args.clients} "
                    f"clients over a Unix socket into one file; {machine_line()}", rows,
                    [(f"logd / {r.name}", logd.rate / r.rate) for r in rows[1:]],
                    ["peak RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss.items()),
                     f"records that took logd's compiled path: {hot_share:.1%} (hot_path.records of logd status)",
                     # less sensitive than records/s to other work on the machine
                     "CPU per record: " + ", ".join(f"{r.name} {r.cpu_s / total * 1e6:.1f} µs" for r in rows
                                                    if r.cpu_s is not None),
                     f"median of {runs_n} run(s), servers interleaved; lost = records missing from the file"])
    goals = _mixed_goals(by_name, hot_share) if mixed else _canonical_goals(by_name)
    goals += [("0 lost", logd.lost == 0), (f"logd peak RSS < {RSS_BOUND_MB} MB", rss[LOGD] < RSS_BOUND_MB)]
    report.target = "; ".join(name for name, _ in goals)
    report.ok = all(ok for _, ok in goals)
    report.notes.append("goals: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals))
    return report


def _ratio_goal(by_name: dict[str, Row], peer: str, factor: float, label: str = "") -> list[tuple[str, bool]]:
    row = by_name.get(peer)
    if row is None:  # a peer not installed here is not judged
        return []
    return [(f"logd >= {factor:g}x {label or peer}", by_name[LOGD].rate >= factor * row.rate)]


def _canonical_goals(by_name: dict[str, Row]) -> list[tuple[str, bool]]:
    """Issue 14's, on records in logd's own shape."""
    return (_ratio_goal(by_name, "rsyslog + mmjsonparse", 2)
            + _ratio_goal(by_name, "socat (copies bytes)", 0.15, "socat (syslog-ng's raw pass-through rate)"))


def _mixed_goals(by_name: dict[str, Row], hot_share: float) -> list[tuple[str, bool]]:
    """Issue 31's, on what agents really send."""
    return (_ratio_goal(by_name, "rsyslog + mmjsonparse", 2) + _ratio_goal(by_name, "syslog-ng (raw)", 1)
            + [(">= 90% of records on the compiled path", hot_share >= 0.9)])


def bench_peers(args: argparse.Namespace) -> list[Report]:
    """The canonical workload; with ``--mix`` or ``--dialect`` the agent-log workload beside it."""
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-peers-", dir="/tmp"))
    only = getattr(args, "dialect", None)
    if only is not None and only not in DIALECTS:
        raise SystemExit(f"logd bench: unknown --dialect {only!r}; one of {', '.join(DIALECTS)}")
    try:
        reports = [_compare(folder / "canonical", args, bench.make_records, "records in logd's shape", False)]
        if getattr(args, "mix", False) or only is not None:
            workload = f"dialect {only}" if only else "mixed agent dialects"
            reports.append(_compare(folder / "mixed", args, lambda count, client: make_mixed(count, client, only),
                                    workload, True))
            reports[-1].notes.insert(0, "workload: " + describe_mix(only))
        return reports
    finally:
        shutil.rmtree(folder, ignore_errors=True)
