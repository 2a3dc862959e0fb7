"""The progress line (on a real pty: drawn only on a terminal, only after a second, cleared
at the end) and `logd bench --query` with its SQL row, at a small size."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys

from logd.reading.output import Progress, last_and_reversed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_drawn_on_a_terminal_after_a_second_and_cleared() -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as terminal:
            clock = Clock()
            progress = Progress("logd query", terminal, clock=clock)
            assert progress.enabled
            progress.update("file 1 of 3", 0.1)
            clock.now = 1.5
            progress.update("file 2 of 3", 0.5)
            progress.finish()
            terminal.flush()
            drawn = ""
            while not drawn.endswith("\r\x1b[2K") and select.select([master], [], [], 10)[0]:
                drawn += os.read(master, 4096).decode()  # a pty hands writes over in pieces
    finally:
        os.close(master)
    assert "file 1 of 3" not in drawn  # the first second stays quiet
    assert "logd query: [############............]  50% file 2 of 3 (2s)" in drawn
    assert drawn.endswith("\r\x1b[2K")  # the line is cleared: the output is left clean


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    clock = Clock()
    progress = Progress("logd query", stream, clock=clock)
    clock.now = 5
    progress.update("file 2 of 3", 0.5)
    progress.finish()
    assert not progress.enabled and stream.getvalue() == ""


def test_last_n_and_reverse_keep_order_across_batches() -> None:
    batches = [[b"1", b"2"], [b"3"], [b"4", b"5"]]
    assert [x for b in last_and_reversed(iter(batches), 3, False) for x in b] == [b"3", b"4", b"5"]
    assert [x for b in last_and_reversed(iter(batches), None, True) for x in b] == [b"5", b"4", b"3", b"2", b"1"]
    assert [x for b in last_and_reversed(iter(batches), 0, False) for x in b] == []


def test_bench_query_times_sql_beside_jq_with_the_same_matches() -> None:
    result = subprocess.run([sys.executable, "-m", "logd", "bench", "--query", "--query-mb", "8", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    import orjson

    (report,) = orjson.loads(result.stdout)
    names = [row["name"] for row in report["rows"]]
    assert names == ["logd query --level error", "zstdcat | jq -c select(error)", "zstdcat | grep (no JSON, floor)",
                     "logd query --sql (DuckDB)"]
    matches = report["notes"][0].split(": ", 1)[1]
    count = matches.split(", ")[0].split()[-1]
    assert matches == f"logd {count}, jq {count}, grep {count}" and report["notes"][1] == f"matches: logd --sql {count}"
    assert "logd --sql / zstdcat|jq (speed)" in report["ratios"]
