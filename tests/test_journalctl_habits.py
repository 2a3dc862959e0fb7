"""What journalctl's users type works on `logd query` and `logd tail` (issue 29, item 6):
`query -f` follows, `tail --since`, `-u` for the agent, numeric `-p` (syslog severities)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from logsets import BASE, lines, record, rotated_set, seqs, write
from support import wait_for


def logd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1", "TZ": "UTC"})


def test_u_is_agent_and_numeric_p_is_a_syslog_severity(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    journal = logd("query", "--file", str(current), "-u", "writer", "-p", "3")
    assert journal.returncode == 0, journal.stderr
    assert journal.stdout == logd("query", "--file", str(current), "--agent", "writer", "--level", "error").stdout
    assert seqs(journal.stdout) and all(s % 10 == 3 for s in seqs(journal.stdout))
    warnings = logd("query", "--file", str(current), "-p", "4..4")  # warning only
    assert seqs(warnings.stdout) == [s for s in range(50) if s % 10 == 6]
    tail = logd("tail", "--file", str(current), "--json", "-n", "2", "-p", "3", "-u", "planner")
    assert seqs(tail.stdout) == [s for s in range(50) if s % 10 == 3 and s % 3 == 0][-2:]
    bad = logd("query", "--file", str(current), "-p", "9")
    assert bad.returncode == 2 and "unknown level '9'" in bad.stderr


def test_tail_since_shows_only_records_at_or_after_it(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    since = record(45)["time"]
    result = logd("tail", "--file", str(current), "--json", "-n", "10", "--since", since)
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == list(range(45, 50))
    until = logd("tail", "--file", str(current), "--json", "-n", "3", "-U", record(20)["time"])
    assert seqs(until.stdout) == [18, 19, 20]


def test_query_f_follows_like_journalctl_f(tmp_path: Path) -> None:
    current = tmp_path / "agent.log"
    write(current, lines(record(s) for s in range(30)))
    out = tmp_path / "followed.jsonl"
    with out.open("wb") as sink:
        follower = subprocess.Popen([sys.executable, "-m", "logd", "query", "-f", "--file", str(current),
                                     "-u", "planner"], stdout=sink, stderr=subprocess.PIPE,
                                    env={**os.environ, "NO_COLOR": "1"})
    try:
        # the last 10 selected records first (journalctl -f shows 10), then what is appended
        wait_for(lambda: len(seqs(out.read_bytes())) == 10, what="the last 10 planner records")
        assert seqs(out.read_bytes()) == [s for s in range(30) if s % 3 == 0][-10:]
        with current.open("ab") as f:
            f.write(lines(record(s, t=BASE + s) for s in range(30, 36)))
        wait_for(lambda: seqs(out.read_bytes())[-1:] == [33], what="the appended planner records")
    finally:
        follower.terminate()
        _, err = follower.communicate(timeout=20)
    assert follower.returncode == 0 and err == b""
    assert seqs(out.read_bytes())[10:] == [30, 33]
    refused = logd("query", "-f", "--file", str(current), "-o", "cat")
    assert refused.returncode == 2
    assert refused.stderr == ("logd: error: logd query -f follows in -o json or -o short only, oldest first; "
                              "or use `logd tail -f` with the same selection\n")
