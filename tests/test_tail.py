"""logd tail: last N across rotated files, and -f following across rotations (a real daemon)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from logd.console_format import ConsoleFormatter
from logd.logfiles.content import Problem
from logd.reading.query import Filter
from logd.reading.tail import TailFollower, last_lines, open_current

from logsets import SteadySender, following, lines, record, rotate_by_rename, rotated_set, seqs, write
from support import wait_for


def run_logd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, env=env, timeout=60)


# --- last N ---

def test_tail_shows_the_last_records_in_the_consoles_format(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    result = run_logd("tail", "--file", str(current), "-n", "3")
    assert result.returncode == 0, result.stderr
    formatter = ConsoleFormatter(color=False)
    assert result.stdout == "".join(formatter.format(record(s)) for s in (47, 48, 49))
    default = run_logd("tail", "--file", str(current), "--json")
    assert seqs(default.stdout) == list(range(40, 50))


def test_tail_reaches_back_into_backups_when_the_current_file_is_short(tmp_path: Path) -> None:
    """Just after a rotation the current file holds little; the last N come from the backups,
    compressed ones included, and still in order."""
    current = rotated_set(tmp_path, per_file=4, names=("agent.log.3.gz", "agent.log.2.zst", "agent.log.1", "agent.log"))
    result = run_logd("tail", "--file", str(current), "-n", "11", "--json")
    assert seqs(result.stdout) == list(range(5, 16))
    everything = run_logd("tail", "--file", str(current), "-n", "1000", "--json")
    assert seqs(everything.stdout) == list(range(16))
    none = run_logd("tail", "--file", str(current), "-n", "0", "--json")
    assert none.stdout == "" and none.returncode == 0


def test_tail_filters_pick_the_last_matching_records(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    result = run_logd("tail", "--file", str(current), "-n", "3", "--level", "error", "--json")
    assert seqs(result.stdout) == [23, 33, 43]
    result = run_logd("tail", "--file", str(current), "-n", "2", "--agent", "writer", "--session", "s4", "--json")
    assert seqs(result.stdout) == [46, 49]


def test_tail_reads_long_plain_files_backwards_exactly(tmp_path: Path) -> None:
    """Lines cross the 64 KiB blocks read from the end; an unfinished last line is not shown."""
    current = tmp_path / "agent.log"
    write(current, lines(record(s, padding="y" * (s * 7 % 900)) for s in range(3000)))
    with current.open("ab") as f:
        f.write(b'{"time":"2026-11-18T10:40:00.000000Z","level":"info"')
    with open_current(current)[0] as files:
        got = last_lines(list(files), 2500, lambda line: True, print,
                         current_end=open_current(current)[2])
    assert seqs(b"\n".join(got)) == list(range(500, 3000))
    result = run_logd("tail", "--file", str(current), "-n", "2", "--json")
    assert seqs(result.stdout) == [2998, 2999]


# --- following, step by step ---

class Collector:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.problems: list[Problem] = []

    def emit(self, batch: list[bytes]) -> None:
        self.lines.extend(batch)

    @property
    def seqs(self) -> list[int]:
        return [orjson.loads(line)["seq"] for line in self.lines]


def append(path: Path, seqs_: range) -> None:
    with path.open("ab") as f:
        f.write(lines(record(s) for s in seqs_))


def test_follow_survives_a_burst_of_rotations_between_two_reads(tmp_path: Path) -> None:
    """Three rotations (with compression, so the file we read is renamed, compressed and
    removed) happen before the follower looks again: every line once, in order."""
    current = tmp_path / "agent.log"
    append(current, range(0, 5))
    got = Collector()
    follower = TailFollower(current, got.emit, got.problems.append)
    files, file, start = open_current(current)
    files.remove(file)
    files.close()
    follower.start_at(file, start)
    append(current, range(5, 8))
    follower.poll()
    assert got.seqs == [5, 6, 7]
    seq = 8
    for _ in range(3):
        append(current, range(seq, seq + 4))
        seq += 4
        rotate_by_rename(current)
    append(current, range(seq, seq + 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent.log", "agent.log.1", "agent.log.2.zst", "agent.log.3.zst"]
    follower.poll()
    assert got.seqs == list(range(5, seq + 2))
    append(current, range(seq + 2, seq + 5))
    follower.poll()
    assert got.seqs == list(range(5, seq + 5)) and got.problems == []


def test_follow_waits_for_the_writer_to_leave_the_old_file(tmp_path: Path) -> None:
    """After the rename the writer may still write to the old file (logd announces a reopen
    there): the follower keeps reading it until the new file has data."""
    current = tmp_path / "agent.log"
    append(current, range(0, 3))
    got = Collector()
    follower = TailFollower(current, got.emit, got.problems.append)
    follower.poll()  # no file yet when started: it starts at the beginning
    assert got.seqs == [0, 1, 2]
    os.replace(current, tmp_path / "agent.log.1")
    follower.poll()  # the path is gone for a moment
    current.touch()
    append(tmp_path / "agent.log.1", range(3, 5))  # the writer's last lines in the old file
    follower.poll()
    assert got.seqs == [0, 1, 2, 3, 4]
    append(tmp_path / "agent.log.1", range(5, 6))
    append(current, range(6, 9))
    follower.poll()
    assert got.seqs == list(range(9)) and got.problems == []


def test_follow_keeps_an_unfinished_line_until_it_is_complete(tmp_path: Path) -> None:
    current = tmp_path / "agent.log"
    got = Collector()
    follower = TailFollower(current, got.emit, got.problems.append, Filter(level="warn").match)
    line = lines([record(6)])
    append(current, range(0, 5))
    with current.open("ab") as f:
        f.write(line[:30])
    follower.poll()
    assert got.seqs == [3]
    with current.open("ab") as f:
        f.write(line[30:])
    follower.poll()
    assert got.seqs == [3, 6]


# --- following a real daemon ---

def test_tail_follow_loses_and_repeats_nothing_while_a_daemon_writes_through_rotations(daemon, tmp_path: Path) -> None:
    """A real `logd run` writes while the files are rotated (renamed, compressed, logd told
    to reopen by SIGHUP), twice in bursts of three; `logd tail -f` prints every record once."""
    proc = daemon('file = "agent.log"\nfile_only = true')
    current = tmp_path / "agent.log"

    def reopened() -> bool:
        # logd announces the reopen in the old file, then writes only to the new one (what
        # its own rotation guarantees); the rotated file had no announcement before
        return b'"event":"reload"' in (tmp_path / "agent.log.1").read_bytes()

    with following(proc, tmp_path / "tail.out", "--file", str(current)) as printed:
        rotations = 0
        with SteadySender(proc) as sender:  # writes all the time, so rotations land mid-write
            for _burst in range(2):
                sender.wait_sent(400)
                for _ in range(3):
                    rotate_by_rename(current)
                    proc.signal(signal.SIGHUP)
                    try:
                        wait_for(reopened, what="logd to reopen its file")
                    except AssertionError as exc:
                        raise AssertionError(f"{exc}; logd's stderr: {proc.stderr()[-3000:]}") from None
                    rotations += 1
            sender.wait_sent(400)
        total = sender.sent

        wait_for(lambda: len([s for s in printed() if s >= 0]) >= total, timeout=30,
                 what="tail to print every record")
        got = printed()
        first = got.index(0)
        assert set(got[:first]) == {-1}  # only the markers come before
        missing = sorted(set(range(total)) - set(got))
        repeated = sorted(s for s in set(got) if got.count(s) > 1 and s >= 0)
        assert got[first:] == list(range(total)), f"missing {missing[:20]}, repeated {repeated[:20]}"
        names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("agent.log"))
        assert names == (["agent.log"] + [f"agent.log.{n}" for n in (1,)]
                         + [f"agent.log.{n}.zst" for n in range(2, rotations + 1)])


def test_follow_reports_an_unreadable_file_once_and_waits_for_it(tmp_path: Path) -> None:
    """A directory where the file should be cannot be followed (root reads any file, so a
    permission test would prove nothing here); it is reported once, then the real file is."""
    current = tmp_path / "agent.log"
    current.mkdir()
    got = Collector()
    follower = TailFollower(current, got.emit, got.problems.append)
    follower.poll()
    follower.poll()
    assert len(got.problems) == 1 and got.problems[0].path == current
    current.rmdir()
    append(current, range(3))
    follower.poll()
    assert got.seqs == [0, 1, 2] and len(got.problems) == 1


def test_tail_handles_records_longer_than_its_read_block(tmp_path: Path) -> None:
    """A 200 kB record (logd accepts up to 256 kB) spans several backward reads, also as
    the cut last line of a backup."""
    current = tmp_path / "agent.log"
    write(tmp_path / "agent.log.1", lines([record(0), record(1, blob="z" * 200_000)])
          + lines([record(2, blob="q" * 150_000)])[:-10])
    write(current, lines([record(3, blob="w" * 200_000)]))
    result = run_logd("tail", "--file", str(current), "-n", "3", "--json")
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == [0, 1, 3]
    assert [len(orjson.loads(line).get("blob", "")) for line in result.stdout.splitlines()] == [0, 200_000, 200_000]


def test_follow_keeps_reading_a_backup_the_writer_is_still_finishing(tmp_path: Path) -> None:
    """Two renames before the new file exists: the file rotated last may still get the
    writer's last lines, so it is followed, not read once and dropped."""
    current = tmp_path / "agent.log"
    append(current, range(0, 2))
    got = Collector()
    follower = TailFollower(current, got.emit, got.problems.append)
    follower.poll()
    rotate_by_rename(current)  # ours -> .1
    current.touch()
    append(current, range(2, 4))
    rotate_by_rename(current)  # ours -> .2.zst, the next -> .1, no current file yet
    follower.poll()
    assert got.seqs == [0, 1, 2, 3]
    append(tmp_path / "agent.log.1", range(4, 6))  # the writer, still on its old descriptor
    follower.poll()
    assert got.seqs == list(range(6))
    append(current, range(6, 8))
    follower.poll()
    assert got.seqs == list(range(8)) and got.problems == []
