"""``logd bench --traces``: what storing trace records per session costs the daemon.

The same number of records, from the same clients, twice: plain log records, then
AgenticGoKit trace entries spread over many sessions (each also written to its
session file). Reported as a ratio, the machine's noise cancels out.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

import orjson

from logd.bench import AGENTS, Report, Row, count_agent_lines, cpu_seconds, drive_clients, machine_line, start_logd
from logd.traces.names import SUFFIX

HOOKS = ("BeforeAgentRun", "AfterAgentRun", "BeforeEventHandling", "AfterEventHandling")
SESSION_RECORDS = 200  # records per session: many sessions, so the LRU of open files is exercised


def make_trace_records(count: int, client: int, seed_time: float = 1_790_000_000.0) -> bytes:
    lines = []
    for i in range(count):
        lines.append(orjson.dumps({
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seed_time + i // 1000)) + f".{i % 1000:03d}Z",
            "type": "trace", "event_id": f"ev-{client}-{i // 4}", "session_id": f"sess-{client:02d}-{i // SESSION_RECORDS:05d}",
            "agent_id": AGENTS[(i // 4) % len(AGENTS)], "hook": HOOKS[i % len(HOOKS)],
            "state": {"message": "Analyze this data", "step": i}, "client": client, "seq": i}))
    return b"\n".join(lines) + b"\n"


def _stored_lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("*" + SUFFIX)) if folder.exists() else 0


def bench_traces(args: argparse.Namespace) -> Report:
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-traces-", dir="/tmp"))
    try:
        per_client = args.records // args.clients
        total = per_client * args.clients
        rows: list[Row] = []
        from logd.bench import make_records

        for label, make in (("plain records -> file", make_records), ("trace records -> file + sessions", make_trace_records)):
            run = folder / label.split()[0]
            run.mkdir()
            blobs = []
            for c in range(args.clients):
                blob = run / f"client{c}.jsonl"
                blob.write_bytes(make(per_client, c))
                blobs.append(blob)
            size = sum(b.stat().st_size for b in blobs)
            out = run / "agent.log"
            proc, sock = start_logd(run, f'file = "{out}"\nfile_only = true\nmax_size = 100000\n'
                                         f'[logging.traces]\ndir = "{run / "traces"}"')
            seconds = drive_clients(sock, blobs, out, total)
            start = time.perf_counter()
            if make is make_trace_records:  # until every trace record is in its session file too
                deadline = start + 300
                while _stored_lines(run / "traces") < total and time.perf_counter() < deadline:
                    time.sleep(0.01)
                seconds += time.perf_counter() - start
            cpu = cpu_seconds(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            lost = total - count_agent_lines(out)
            if make is make_trace_records:
                lost = max(lost, total - _stored_lines(run / "traces"))
            rows.append(Row(f"logd {label}", total, seconds, size, cpu, lost))
        plain, traced = rows
        report = Report(
            title=f"logd bench --traces: {total:,} records, {args.clients} clients, "
                  f"{total // SESSION_RECORDS} sessions; {machine_line()}",
            rows=rows, ratios=[("trace records / plain records", traced.rate / plain.rate)],
            target="trace records >= 0.5x the plain rate, 0 lost")
        report.ok = traced.rate >= 0.5 * plain.rate and traced.lost == 0 and plain.lost == 0
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)
