"""``logd bench --client``: what one ``logger.info(...)`` costs the caller with LogdHandler.

Each logger runs in its own fresh process, the same call the same number of times:
LogdHandler sending to a real ``logd run``, stdlib ``FileHandler`` and loguru's file
sink. Two figures per call: wall time of the calls (records/s), and the process's CPU
time, which includes LogdHandler's background thread (batching, encoding, socket) so
no work is hidden off the caller's thread. The target is judged on CPU per call: on
these shared 2-core machines wall time also counts waiting for a core, and only the
LogdHandler run has a second busy process (the daemon) competing for one.
Records logd wrote are counted ("lost").
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from logd.bench.harness import Report, Row, count_agent_lines, machine_line, start_logd

_CALLER_CODE = r"""
import logging, sys, time, orjson
kind, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = {"agent": "research-agent", "session_id": "sess-01-00042", "duration_ms": 2000, "model": "gpt-4o-mini"}
if kind == "loguru":
    from loguru import logger
    logger.remove()
    logger.add(target, level="INFO")
    call = lambda i: logger.bind(**extra).info("Agent execution completed step {}", i)
    settle, finish = (lambda: None), logger.remove  # remove() flushes and closes the file
else:
    if kind.startswith("logd"):
        import logd.client
        handler = logd.client.LogdHandler(target, ack=kind == "logd-ack")
        finish = lambda: handler.sender.flush(120)  # until logd has everything
    else:
        handler = logging.FileHandler(target)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        finish = handler.flush
    settle = finish
    log = logging.getLogger("bench-" + kind)
    log.addHandler(handler); log.setLevel(logging.INFO); log.propagate = False
    call = lambda i: log.info("Agent execution completed step %d", i, extra=extra)
for i in range(1000):  # warm up (imports, first connection, caches)
    call(i)
settle()
cpu0, thread0, start = time.process_time(), time.thread_time(), time.perf_counter()
for i in range(count):
    call(i)
calls, thread = time.perf_counter() - start, time.thread_time() - thread0
finish()  # the CPU spent until everything is written (or sent to logd) is part of the cost
done, cpu = time.perf_counter() - start, time.process_time() - cpu0
dropped = handler.sender.dropped if kind.startswith("logd") else 0
print(orjson.dumps({"calls_s": calls, "done_s": done, "cpu_s": cpu, "caller_cpu_s": thread, "dropped": dropped}).decode())
"""


def _run_caller(kind: str, target: Path, count: int) -> dict:
    result = subprocess.run([sys.executable, "-c", _CALLER_CODE, kind, str(target), str(count)],
                            capture_output=True, text=True, check=True, timeout=600)
    return orjson.loads(result.stdout.strip().splitlines()[-1])


def bench_client(args: argparse.Namespace) -> Report:
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-client-", dir="/tmp"))
    count = args.records
    try:
        out = folder / "agent.log"
        proc, sock = start_logd(folder, f'file = "{out}"\nfile_only = true\nmax_size = 100000')
        try:
            logd_run = _run_caller("logd", sock, count)
            ack_run = _run_caller("logd-ack", sock, count)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        # minus the warm-up calls
        written = count_agent_lines(out, b'"logger":"bench-logd"') - 1000
        ack_written = count_agent_lines(out, b'"logger":"bench-logd-ack"') - 1000
        fh_run = _run_caller("filehandler", folder / "fh.log", count)
        lg_run = _run_caller("loguru", folder / "loguru.log", count)

        rows = [
            Row("LogdHandler -> logd (caller)", count, logd_run["calls_s"], cpu_s=round(logd_run["cpu_s"], 2),
                lost=count - written),
            Row("LogdHandler(ack=True) (caller)", count, ack_run["calls_s"], cpu_s=round(ack_run["cpu_s"], 2),
                lost=count - ack_written),
            Row("logging.FileHandler", count, fh_run["calls_s"], cpu_s=round(fh_run["cpu_s"], 2)),
            Row("loguru file sink", count, lg_run["calls_s"], cpu_s=round(lg_run["cpu_s"], 2)),
        ]
        runs = (("LogdHandler", logd_run), ("LogdHandler(ack)", ack_run), ("FileHandler", fh_run), ("loguru", lg_run))
        wall = {name: run["calls_s"] / count * 1e6 for name, run in runs}
        cpu = {name: run["cpu_s"] / count * 1e6 for name, run in runs}
        report = Report(
            title=f"logd bench --client: {count:,} logger.info() calls with 4 extra fields; {machine_line()}",
            rows=rows,
            ratios=[("LogdHandler / FileHandler, CPU per call", cpu["LogdHandler"] / cpu["FileHandler"]),
                    ("LogdHandler / FileHandler, wall per call", wall["LogdHandler"] / wall["FileHandler"]),
                    ("LogdHandler(ack=True) / FileHandler, CPU per call", cpu["LogdHandler(ack)"] / cpu["FileHandler"]),
                    ("LogdHandler / loguru file sink, CPU per call", cpu["LogdHandler"] / cpu["loguru"])],
            notes=["CPU per call (whole process, background thread included): "
                   + ", ".join(f"{name} {us:.2f} us" for name, us in cpu.items()),
                   "wall per call: " + ", ".join(f"{name} {us:.2f} us" for name, us in wall.items()),
                   f"LogdHandler: caller thread CPU {logd_run['caller_cpu_s'] / count * 1e6:.2f} us per call; "
                   f"until logd had everything {logd_run['done_s']:.2f} s; dropped by its buffer: {logd_run['dropped']}"],
            target="LogdHandler costs no more CPU per call than FileHandler, and nothing is lost",
        )
        report.ok = cpu["LogdHandler"] <= cpu["FileHandler"] and written == count
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)
