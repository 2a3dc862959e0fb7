"""Issue 26, finding 6: the readers trust nothing in the log folder. Whoever may write there
can plant a symbolic link named like a backup (pointing at a file of their choosing), a FIFO
(an open that waits for ever) or name a device; ``logd query``, ``--sql``, ``tail`` and
``logd trace import`` read only regular files they expect, say in one line what they skip,
and never hang. Real ``logd run`` writing the log, the real CLI reading it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support import agent_records, send_records, wait_for

NUMBERED = 'file = "agent.log"\nfile_only = true\nbackup_names = "numbered"'


def logd(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture
def planted(daemon, tmp_path: Path) -> Path:
    """A folder logd writes, with a link and a FIFO named like backups and like the bounds index."""
    d = daemon(NUMBERED)
    send_records(d.socket_path, [{"message": f"honest {n}", "agent": "planner"} for n in range(3)])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 3, what="the records")
    chosen = tmp_path / "elsewhere" / "private.jsonl"  # a file the reader may read, the planter may not
    chosen.parent.mkdir()
    chosen.write_bytes(orjson.dumps({"time": "2026-01-01T00:00:00Z", "level": "error", "message": "PRIVATE"}) + b"\n")
    (tmp_path / "agent.log.1").symlink_to(chosen)
    os.mkfifo(tmp_path / "agent.log.2")
    os.mkfifo(tmp_path / ".agent.log.bounds")
    return tmp_path


@pytest.mark.parametrize("command", [["query"], ["query", "--sql", "SELECT message FROM logs"], ["tail", "-n", "50"]],
                         ids=["query", "sql", "tail"])
def test_readers_skip_a_link_and_a_fifo_named_like_backups_and_say_so(planted: Path, command: list[str]):
    """Before: query, --sql and tail followed the link and printed the other file;
    query hung on the FIFO."""
    out = logd(*command, "--config", "agentflow.toml", cwd=planted, timeout=30)
    assert out.returncode == (0 if command[0] == "tail" else 1), out.stderr  # query: a file skipped fails it
    assert "PRIVATE" not in out.stdout
    assert "honest 2" in out.stdout
    assert f"{planted / 'agent.log.1'}: cannot read: a symbolic link; logd's readers do not follow links; " \
           "skipped" in out.stderr
    assert f"{planted / 'agent.log.2'}: cannot read: a FIFO, not a regular file; skipped" in out.stderr


def test_trace_import_reads_only_regular_files_of_a_bounded_size(tmp_path: Path):
    """Before: `logd trace import /dev/zero` read until memory ran out, and a FIFO hung it."""
    config = tmp_path / "agentflow.toml"
    config.write_text('[logging]\nfile = "agent.log"\n')
    os.mkfifo(tmp_path / "run.trace.json")
    big = tmp_path / "big.trace.json"
    with open(big, "wb") as f:
        f.truncate(3 * 1024 * 1024)
    for name, expected in (("/dev/zero", "a device, not a regular file"),
                           (str(tmp_path / "run.trace.json"), "a FIFO, not a regular file"),
                           (str(big), "over 2,097,152 bytes, more than this reader takes")):
        out = logd("trace", "import", name, "--max-mb", "2", "--config", str(config), cwd=tmp_path, timeout=30)
        assert out.returncode == 1 and f"cannot import {name}: {expected}" in out.stderr, out.stderr
