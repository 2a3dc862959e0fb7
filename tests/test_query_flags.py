"""journalctl's habits in `logd query`, run as a user runs them against a file written by
`logd run`: -n, -r, -o, --output-fields, -p LOW..HIGH, --where != ~ > <, relative and local
times, the pager on a terminal (a real pty) and colour only there."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from logd.timestamps import format_epoch

from support import send_records

LEVELS = ("debug", "info", "warn", "error", "fatal")


NOW = 0.0  # when the records were made (set by the fixture: relative times count from it)


@pytest.fixture
def logfile(daemon, tmp_path: Path) -> Path:
    """12 records: seq 0-1 two days ago, 2-11 over the last half hour; written by `logd run`."""
    global NOW
    NOW = time.time()
    d = daemon('file = "agent.log"\nfile_only = true\nlevel = "debug"')
    records = []
    for seq in range(12):
        t = NOW - 2 * 86400 - 60 + seq if seq < 2 else NOW - 1800 + seq * 120
        records.append({"time": format_epoch(t), "level": LEVELS[seq % 5], "message": f"step {seq}",
                        "agent": "planner" if seq % 2 else "writer", "seq": seq, "tokens": {"prompt": seq * 10}})
    send_records(d.socket_path, records)
    d.stop()
    return tmp_path / "agent.log"


def q(logfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", "query", "--file", str(logfile), "--agent", "planner",
                           "--agent", "writer", *args], capture_output=True, text=True, env=env, timeout=60)


def seqs(result: subprocess.CompletedProcess[str]) -> list[int]:
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line)["seq"] for line in result.stdout.splitlines()]


def test_last_n_reverse_and_level_ranges(logfile: Path) -> None:
    assert seqs(q(logfile, "-n", "3")) == [9, 10, 11]
    assert seqs(q(logfile, "-r")) == list(range(11, -1, -1))
    assert seqs(q(logfile, "-n", "2", "-r")) == [11, 10]
    assert seqs(q(logfile, "-p", "warn..error")) == [2, 3, 7, 8]
    assert seqs(q(logfile, "-p", "error..warning")) == [2, 3, 7, 8]  # either order, aliases
    assert seqs(q(logfile, "-p", "error")) == [3, 4, 8, 9]


def test_where_operators_and_grep(logfile: Path) -> None:
    assert seqs(q(logfile, "--where", "seq>8")) == [9, 10, 11]
    assert seqs(q(logfile, "--where", "tokens.prompt<=20")) == [0, 1, 2]
    assert seqs(q(logfile, "--where", "agent!=writer", "--where", "seq<6")) == [1, 3, 5]
    assert seqs(q(logfile, "--where", "message~^step (1|10)$")) == [1, 10]
    assert seqs(q(logfile, "--grep", "step 1")) == [1, 10, 11]
    bad = q(logfile, "--where", "seq>many")
    assert bad.returncode == 2 and "expected a number after '>'" in bad.stderr


def test_journalctl_times(logfile: Path) -> None:
    assert seqs(q(logfile, "--since", "-1h")) == list(range(2, 12))
    assert seqs(q(logfile, "--since", "25m ago", "--until", "now")) == list(range(3, 12))  # 30 min ago + seq * 2 min
    assert seqs(q(logfile, "--until", "yesterday")) == [0, 1]
    assert seqs(q(logfile, "--since", "today")) == [s for s in range(2, 12) if _is_today(s)]
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW - 1800 + 5 * 120))
    assert seqs(q(logfile, "--since", local))[0] == 5
    bad = q(logfile, "--since", "last tuesday")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("logd: error: cannot read time 'last tuesday'")


def _is_today(seq: int) -> bool:
    return time.localtime(NOW - 1800 + seq * 120)[:3] == time.localtime()[:3]


def test_output_formats_and_fields(logfile: Path) -> None:
    fields = q(logfile, "-n", "2", "--output-fields", "seq,agent")
    assert [orjson.loads(line) for line in fields.stdout.splitlines()] == [
        {"seq": 10, "agent": "writer"}, {"seq": 11, "agent": "planner"}]
    assert q(logfile, "-n", "2", "-o", "cat").stdout == "step 10\nstep 11\n"
    pretty = q(logfile, "-n", "1", "-o", "json-pretty").stdout
    assert pretty.startswith('{\n  "time": ') and orjson.loads(pretty)["seq"] == 11
    iso = q(logfile, "-n", "1", "-o", "short-iso").stdout
    assert iso.split()[1:4] == ["INF", "step", "11"] and iso.split()[0][:19] == time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 1800 + 11 * 120))
    short = q(logfile, "-o", "short", "--output-fields", "seq").stdout.splitlines()
    old = time.strftime("%Y-%m-%d", time.localtime(NOW - 2 * 86400))
    assert short[0].startswith(old + " ") and short[0].endswith("DBG step 0 seq=0")  # not today: dated
    if _is_today(11):
        assert short[-1].startswith(time.strftime("%H:%M:%S", time.localtime(NOW - 1800 + 11 * 120)))
    assert "agent=" not in "".join(short)


def _in_pty(args: list[str], env: dict[str, str]) -> str:
    """Run with stdout and stderr on a real terminal; everything it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        out += chunk
    proc.wait(30)
    os.close(master)
    return out.decode(errors="replace")


def test_pager_and_colour_only_on_a_terminal(logfile: Path) -> None:
    env = {**os.environ, "PAGER": "sed s/^/PAGED:/"}
    env.pop("NO_COLOR", None)
    env.pop("LOGD_CONFIG", None)
    cmd = [sys.executable, "-m", "logd", "query", "--file", str(logfile), "-n", "2",
           "--agent", "planner", "--agent", "writer"]
    paged = _in_pty(cmd + ["-o", "short"], env)
    assert paged.count("PAGED:") == 2 and "\x1b[" in paged  # paged, in colour
    unpaged = _in_pty(cmd + ["--no-pager", "-o", "cat"], env)
    assert "PAGED" not in unpaged and unpaged.replace("\r", "") == "step 10\nstep 11\n"
    piped = subprocess.run(cmd + ["-o", "short"], capture_output=True, text=True, env=env)
    assert "PAGED" not in piped.stdout and "\x1b[" not in piped.stdout and len(piped.stdout.splitlines()) == 2
