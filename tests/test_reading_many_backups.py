"""Reading a folder that keeps more backups than a process may open files: ``logd query``,
``logd tail`` and ``logd tail -f`` open backups one at a time, in order, and still read
exactly the files listed when they started, though rotation moves or compresses them."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from logd.logfiles.content import read_lines
from logd.logfiles.names import Names
from logd.logfiles.snapshot import snapshot
from logd.rotation import Compression, FileSet, RotationPolicy

from logsets import BASE, lines, record, seqs, write
from support import wait_for

FD_LIMIT = 64  # the soft limit the readers run under
BACKUPS = 200  # more than that
PER_FILE = 3


def many_backups(folder: Path, count: int = BACKUPS) -> Path:
    """``count`` dated backups (plain, .zst and .gz in turn) and a current file; records
    ``PER_FILE`` apiece, numbered in write order. Returns the current file's path."""
    log = folder / "agent.log"
    names = Names(log)
    for n in range(count):
        suffix = ("", ".zst", ".gz")[n % 3]
        write(names.dated(BASE + n, suffix), lines(record(s) for s in range(n * PER_FILE, (n + 1) * PER_FILE)))
    write(log, lines(record(s) for s in range(count * PER_FILE, (count + 1) * PER_FILE)))
    return log


def _limited() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_LIMIT, hard), hard))


def logd_limited(*args: str, **popen: object) -> subprocess.Popen[bytes]:
    """``logd ARGS`` in a process allowed FD_LIMIT open files."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen([sys.executable, "-m", "logd", *args], env=env, preexec_fn=_limited,
                            **popen)  # type: ignore[call-overload]


def run_limited(*args: str) -> tuple[int, bytes, bytes]:
    proc = logd_limited(*args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_query_and_tail_read_more_backups_than_the_process_may_open(tmp_path: Path) -> None:
    log = many_backups(tmp_path)
    everything = list(range((BACKUPS + 1) * PER_FILE))
    code, out, err = run_limited("query", "--file", str(log), "--no-pager")
    assert (code, err) == (0, b"") and seqs(out) == everything
    code, out, err = run_limited("query", "--file", str(log), "--no-pager", "--since", "2026-01-01T00:00:00Z")
    assert (code, err) == (0, b"") and seqs(out) == everything  # the window path reads every head first
    code, out, err = run_limited("tail", "--file", str(log), "-n", "100000", "--json")
    assert (code, err) == (0, b"") and seqs(out) == everything


def test_tail_follow_goes_on_across_rotations_with_more_backups_than_it_may_open(tmp_path: Path) -> None:
    log = many_backups(tmp_path)
    names = Names(log)
    out_path = tmp_path / "followed.jsonl"
    with out_path.open("wb") as out:
        follower = logd_limited("tail", "-f", "-n", "0", "--json", "--file", str(log), stdout=out)
    start = (BACKUPS + 1) * PER_FILE
    try:
        def printed() -> list[int]:
            data = out_path.read_bytes()
            return seqs(data[:data.rfind(b"\n") + 1])

        def marker_seen() -> bool:  # -n 0 starts at the end: append markers until one shows
            with log.open("ab") as f:
                f.write(lines([record(-1)]))
            return -1 in printed()

        wait_for(marker_seen, interval=0.2, what="tail -f to start following")
        sent = start
        for rotation in range(3):  # records, a rotation by rename, records in the new file
            with log.open("ab") as f:
                f.write(lines(record(s) for s in range(sent, sent + 5)))
            os.rename(log, names.dated(BASE + BACKUPS + rotation))
            write(log, lines(record(s) for s in range(sent + 5, sent + 10)))
            sent += 10
        wait_for(lambda: [s for s in printed() if s >= 0] == list(range(start, sent)), 30,
                 what="every record, once, in order")
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=30)
    assert err == b"", err


def test_a_snapshot_reads_the_files_it_listed_though_rotation_moves_and_compresses_them(tmp_path: Path) -> None:
    """Backups are opened when first read: a numbered rotation in between moves every name
    up one number (and the compressor replaces a plain backup by its .zst). The snapshot
    still reads what each name held when it was taken: no record twice, none missed, none
    of the newer ones."""
    log = tmp_path / "agent.log"
    for number, start in ((3, 0), (2, 10), (1, 20)):
        write(log.with_name(f"agent.log.{number}" + (".zst" if number > 1 else "")),
              lines(record(s) for s in range(start, start + 10)))
    write(log, lines(record(s) for s in range(30, 40)))
    files = FileSet(log, RotationPolicy(compression=Compression(), names="numbered"))
    with snapshot(log) as taken:
        assert [f.is_open for f in taken] == [False, False, False, True]  # backups: not yet
        files.rotate()  # .3.zst -> .4.zst, .2.zst -> .3.zst, .1 -> .2, agent.log -> .1
        files.start()
        try:  # the compressor's pass: .2 -> .2.zst (keeping the rotation time), the plain .2 goes
            files.kick()
            assert files.settle()
        finally:
            files.stop()
        assert sorted(os.listdir(tmp_path)) == ["agent.log.1", "agent.log.2.zst", "agent.log.3.zst", "agent.log.4.zst"]
        write(log, lines(record(s) for s in range(40, 50)))
        assert seqs(b"".join(line + b"\n" for batch in read_lines(taken, print) for line in batch)) == list(range(40))
        assert [f.is_open for f in taken] == [False, False, False, True]  # each closed once read
