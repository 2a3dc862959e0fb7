"""The journald sink (logd/sinks/journald.py: one file and a registry line) against a real
systemd-journald: Debian's own binary, run in a mount namespace of its own (a tmpfs on /run,
so the machine's journal is never touched) and reached through /proc/PID/root; what it
stored is read back with journalctl. The native protocol is systemd's
(src/libsystemd/sd-journal/journal-send.c: ``NAME=value\\n``, a length-prefixed value when it
holds a newline, a sealed memfd for an entry too large for a datagram)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from logd.control import request

from support import read_records, send_records, wait_for, write_toml

JOURNALD = "/lib/systemd/systemd-journald"


class Journal:
    """A private journald: its socket, and what it stored (``journalctl -D``)."""

    def __init__(self) -> None:
        script = ("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal /run/log/journal && "
                  f"exec {JOURNALD}")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.root = Path(f"/proc/{self.proc.pid}/root")
        self.socket = self.root / "run/systemd/journal/socket"
        wait_for(lambda: self.proc.poll() is None and self.socket.exists(), what="journald's socket")

    def entries(self, **match: str) -> list[dict]:
        query = [f"{k}={v}" for k, v in match.items()]
        out = subprocess.run(["journalctl", "-D", str(self.root / "run/log/journal"), "-o", "json", "--no-pager",
                              "--all", *query], capture_output=True, text=True, timeout=30)
        return [orjson.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def journal() -> Iterator[Journal]:
    journal = Journal()
    yield journal
    journal.stop()


def test_records_reach_a_real_journald_with_their_fields(daemon, tmp_path: Path, journal: Journal) -> None:
    """What an agent sent, as journalctl shows it: the message, the syslog priority of its level,
    the agent as identifier, every field upper-cased, a nested one as JSON, a multi-line message
    whole, and a record too large for a datagram (a sealed memfd) whole too."""
    d = daemon('file = "agent.log"', extra=f'[logging.journald]\nenabled = true\nsocket = "{journal.socket}"\n')
    big = "x" * 100_000
    send_records(d.socket_path, [
        {"level": "info", "message": "plan ready", "agent": "planner", "step": 3, "tool": {"name": "search"}},
        {"level": "error", "message": "Traceback (most recent call last):\n  boom", "agent": "planner"},
        {"level": "warn", "message": big, "agent": "planner"},
    ])
    wait_for(lambda: len(journal.entries(SYSLOG_IDENTIFIER="planner")) == 3, 15, what="three journal entries")
    plan, error, large = journal.entries(SYSLOG_IDENTIFIER="planner")
    assert (plan["MESSAGE"], plan["PRIORITY"], plan["AGENT"], plan["STEP"]) == ("plan ready", "6", "planner", "3")
    assert orjson.loads(plan["TOOL"]) == {"name": "search"} and plan["PID"] == str(os.getpid())
    assert plan["TIME"] == read_records(tmp_path / "agent.log")[1]["time"]  # the record's own time, as in the file
    assert (error["MESSAGE"], error["PRIORITY"]) == ("Traceback (most recent call last):\n  boom", "3")
    assert (large["MESSAGE"], large["PRIORITY"]) == (big, "4")
    status = request(d.socket_path, "status")["sinks"]["journald"]
    assert status["sent_events"] >= 4 and status["errors"] == 0  # logd's own "logd started" too
    assert [e["MESSAGE"] for e in journal.entries(SYSLOG_IDENTIFIER="logd")][:1] == ["logd started"]


def test_a_journal_that_is_not_there_yet_holds_the_records_until_it_is(daemon, sock_dir: Path,
                                                                       journal: Journal) -> None:
    """Nothing accepted is lost: records for a journal whose socket is missing are held and
    retried (clients wait), and reach it once it is there, in order."""
    link = sock_dir / "journal.sock"
    d = daemon('file = "agent.log"', extra=f'[logging.journald]\nenabled = true\nsocket = "{link}"\n')
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not waiting for it: logd stops reading
    client.connect(str(d.socket_path))
    client.sendall(b"".join(orjson.dumps({"message": f"n{i}", "agent": "writer"}) + b"\n" for i in range(5)))
    wait_for(lambda: request(d.socket_path, "status")["sinks"]["journald"]["errors"] >= 1, what="a failed write")
    assert request(d.socket_path, "status")["paused"] is True
    link.symlink_to(journal.socket)
    wait_for(lambda: len(journal.entries(SYSLOG_IDENTIFIER="writer")) == 5, 20, what="the held records")
    assert [e["MESSAGE"] for e in journal.entries(SYSLOG_IDENTIFIER="writer")] == [f"n{i}" for i in range(5)]
    client.close()
    assert d.stop() == 0


def test_logd_check_knows_the_journald_table(tmp_path: Path) -> None:
    """Its keys are checked like every table's (from its settings class, nothing else)."""
    def check(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "logd", "check", "--config", str(write_toml(tmp_path, text))],
                              capture_output=True, text=True, timeout=30)

    good = check('[logging.journald]\nenabled = true\n')
    assert good.returncode == 0 and "[logging.journald]\nenabled = true\n" in good.stdout
    bad = check('[logging.journald]\nenabled = "yes"\nsokcet = "/x"\n')
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        f'logd: error: {tmp_path / "agentflow.toml"}:2:1: logging.journald.enabled: expected true or false, '
        'found string "yes"',
        f'logd: error: {tmp_path / "agentflow.toml"}:3:1: logging.journald.sokcet: unknown key (did you mean '
        '"socket"?)']


def test_the_reference_lists_the_journald_keys() -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "config-reference.md").read_text()
    assert "## `[logging.journald]`" in reference and "| `socket` |" in reference
