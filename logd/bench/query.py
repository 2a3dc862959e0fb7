"""``logd bench --query``: ``logd query --level error`` over rotated zstd logs, against
``zstdcat … | jq -c 'select(.level=="error")'`` (and ``zstdcat … | grep``, the floor: no
JSON at all) on the same files in the same run, and the same selection in SQL:
``logd query --sql "SELECT * FROM logs WHERE level = 'error'" --format json`` (when
DuckDB, the ``sql`` extra, is installed).

The data (``--query-mb``, default 1024 MB uncompressed) is written as logd writes it,
time, level, message first, then rotated the way logd names backups: ``agent.log.N.zst``
(~64 MB each before compression, highest number oldest), ``agent.log.1`` plain and a
current ``agent.log``. It is generated in a temp folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from logd.bench.harness import AGENTS, MESSAGES, Report, Row, machine_line
from logd.reading.output import Progress

FILE_MB = 64
_LINE = (b'{"time":"%s.%06dZ","level":"%s","message":"%s","agent":"%s","session_id":"sess-%05d",'
         b'"correlation_id":"c%010d","duration_ms":%d,"model":"gpt-4o-mini",'
         b'"tokens":{"prompt":%d,"completion":%d},"seq":%d,"_pid":%d,"_uid":1000,"_gid":1000,"_comm":"agent"}\n')


def _level(i: int) -> bytes:
    return b"error" if i % 50 == 0 else (b"warn" if i % 10 == 0 else b"info")


def write_logs(folder: Path, megabytes: int, seed_time: float = 1_790_000_000.0) -> tuple[Path, int, int]:
    """Rotated log files holding ``megabytes`` MB in all; returns (current file, records, bytes)."""
    agents = [a.encode() for a in AGENTS]
    messages = [m.encode() for m in MESSAGES]
    per_file = FILE_MB * 1024 * 1024
    files = max(3, round(megabytes / FILE_MB))
    budget = megabytes * 1024 * 1024
    sizes = [min(per_file, budget // files)] * files
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, threads=-1)
    seq = 0
    total = 0
    for index, size in enumerate(sizes):
        number = files - 1 - index  # the oldest first; the last one is the current file
        name = "agent.log" if number == 0 else f"agent.log.{number}" + (".zst" if number >= 2 else "")
        path = folder / name
        written = 0
        with open(path, "wb") as raw:
            out = cctx.stream_writer(raw) if name.endswith(".zst") else raw
            while written < size:
                block = []
                for i in range(seq, seq + 5000):
                    second = seed_time + i // 1000
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
                    block.append(_LINE % (stamp, (i % 1000) * 1000, _level(i), messages[i % len(messages)],
                                          agents[i % len(agents)], i // 500, i, (i * 37) % 5000,
                                          512 + i % 300, 128 + i % 90, i, 4000 + i % 64))
                data = b"".join(block)
                out.write(data)
                written += len(data)
                seq += 5000
            if out is not raw:
                out.close()
        total += written
    return folder / "agent.log", seq, total


def _timed(command: list[str] | str, out_path: Path, shell: bool = False) -> tuple[float, int]:
    """Run a command with stdout to a file; seconds and lines printed."""
    start = time.perf_counter()
    with open(out_path, "wb") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, shell=shell,
                                executable="/bin/bash" if shell else None)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr.decode(errors='replace').strip()}")
    with open(out_path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return seconds, lines


def _have_duckdb() -> bool:
    from logd.reading.sql import load_duckdb

    return load_duckdb() is not None


def bench_query(args: argparse.Namespace) -> Report:
    missing = [tool for tool in ("zstdcat", "jq") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"logd: error: logd bench --query compares against {' and '.join(missing)}; "
                         "install them (Debian: apt-get install zstd jq)")
    megabytes = getattr(args, "query_mb", 1024)
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-query-", dir="/tmp"))
    try:
        current, records, size = write_logs(folder, megabytes)
        on_disk = sum(p.stat().st_size for p in folder.iterdir())
        names = sorted((p.name for p in folder.iterdir() if p.name.startswith("agent.log.")),
                       key=lambda n: -int(n.split(".")[2]))
        inputs = " ".join(names + ["agent.log"])
        rows: list[Row] = []
        progress = Progress("logd bench --query")
        steps = 4 if _have_duckdb() else 3

        with progress.ticking(f"logd query (1/{steps})", 0.0):
            seconds, logd_lines = _timed([sys.executable, "-m", "logd", "query", "--file", str(current),
                                          "--level", "error"], folder / "logd.out")
        rows.append(Row("logd query --level error", records, seconds, size))
        jq = f"cd {folder} && zstdcat {inputs} | jq -c 'select(.level==\"error\")'"
        with progress.ticking(f"zstdcat | jq (2/{steps})", 1 / steps):
            seconds, jq_lines = _timed(jq, folder / "jq.out", shell=True)
        rows.append(Row("zstdcat | jq -c select(error)", records, seconds, size))
        grep = f"cd {folder} && zstdcat {inputs} | grep -F '\"level\":\"error\"'"
        with progress.ticking(f"zstdcat | grep (3/{steps})", 2 / steps):
            seconds, grep_lines = _timed(grep, folder / "grep.out", shell=True)
        rows.append(Row("zstdcat | grep (no JSON, floor)", records, seconds, size))
        notes = []
        if steps == 4:
            with progress.ticking(f"logd query --sql (4/{steps})", 3 / steps):
                seconds, sql_lines = _timed([sys.executable, "-m", "logd", "query", "--file", str(current), "--sql",
                                             "SELECT * FROM logs WHERE level = 'error'", "--format", "json"],
                                            folder / "sql.out")
            rows.append(Row("logd query --sql (DuckDB)", records, seconds, size))
            notes.append(f"matches: logd --sql {sql_lines:,}")
        else:
            notes.append("logd query --sql not timed: DuckDB is missing (pip install 'logd[sql]')")
        progress.finish()

        logd, jqrow, greprow = rows[:3]
        report = Report(
            title=(f"logd bench --query: {size / 1e6:,.0f} MB ({records:,} records) in {len(names) + 1} "
                   f"rotated files, {on_disk / 1e6:,.0f} MB on disk; {machine_line()}"),
            rows=rows,
            ratios=[("logd / zstdcat|jq (speed)", jqrow.seconds / logd.seconds),
                    ("logd / zstdcat|grep (speed)", greprow.seconds / logd.seconds)]
            + [("logd --sql / zstdcat|jq (speed)", jqrow.seconds / r.seconds) for r in rows[3:]],
            notes=[f"matches: logd {logd_lines:,}, jq {jq_lines:,}, grep {grep_lines:,}", *notes,
                   "zstdcat|jq and zstdcat|grep run two processes in parallel; logd query one"],
            target="logd query at least as fast as zstdcat | jq, same matches",
        )
        report.ok = logd.seconds <= jqrow.seconds and logd_lines == jq_lines
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)
