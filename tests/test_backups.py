"""Backup names (logd.logfiles.names): dated names by default, AgenticGoKit's numbered ones on request,
and folders holding both after a switch, read, followed, shipped and pruned in rotation order.

Numbered fixtures follow AgenticGoKit's layout as logd's rotation has always written it
(``agent.log.1`` plain, ``agent.log.2.zst``...; tests/logsets.py); dated names follow
lumberjack's ``name-<time>.ext`` (natefinch/lumberjack, lumberjack.go ``backupName``) with
logd's own time format."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from logd.logfiles.content import read_lines
from logd.logfiles.names import Names
from logd.logfiles.snapshot import list_files, snapshot
from logd.rotation import Compression, FileSet, Retention, RotationPolicy, SizeLimit
from logd.ship.spool import SpoolSink, prune_spool, spool_backups
from logd.sinks.file import FileSink

from logsets import SteadySender, following, lines, record, rotated_set, write
from rotation_support import Clock, all_seqs, batch, decompress
from ship_support import Collector, ship_config
from support import config_error, wait_for


def file_seqs(current: Path) -> list[int]:
    """``seq`` of every line of the set, read the way logd query reads it."""
    out = []
    with snapshot(current) as files:
        for batch_ in read_lines(files, on_problem=lambda p: pytest.fail(str(p))):
            out.extend(r["seq"] for r in map(orjson.loads, batch_) if "seq" in r)
    return out


def age(folder: Path, seconds: float) -> None:
    """Make every file in ``folder`` look rotated ``seconds`` ago (an older logd's backups)."""
    then = time.time() - seconds
    for path in folder.iterdir():
        os.utime(path, (then, then))


# --- names ---

def test_dated_names_sort_by_rotation_time_and_stay_unique_within_a_millisecond(tmp_path: Path) -> None:
    clock = Clock(1_795_000_000.25)
    files = FileSet(tmp_path / "agent.log", RotationPolicy(), clock=clock)
    made = []
    for i in range(3):  # the clock does not move: each name still differs
        (tmp_path / "agent.log").write_bytes(lines([record(i)]))
        made.append(files.rotate().name)
    assert made == ["agent-2026-11-18T11-06-40.250.log", "agent-2026-11-18T11-06-40.251.log",
                    "agent-2026-11-18T11-06-40.252.log"]
    assert [p.name for p, _, _ in list_files(tmp_path / "agent.log")] == made  # oldest first
    assert file_seqs(tmp_path / "agent.log") == [0, 1, 2]


def test_names_of_other_files_are_not_backups(tmp_path: Path) -> None:
    names = Names(tmp_path / "agent.log")
    for name in ("agent.log", "agent.log.old", "other-2026-11-18T11-06-40.250.log", "agent-2026-11-18.log",
                 "agent.log.deleting.agent.log.3.zst", "agent-2026-11-18T11-06-40.250.log.tmp"):
        assert names.parse(name) is None, name
    assert names.parse("agent-2026-11-18T11-06-40.250.log.zst.tmp")[3:] == (".zst", True)
    assert Names(tmp_path / "spool").dated(0).name == "spool-1970-01-01T00-00-00.000"


def test_a_rotation_with_10000_backups_present_renames_only_the_current_file(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    for n in range(1, 10_001):
        (tmp_path / f"agent.log.{n}.zst").touch()
    inodes = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    files = FileSet(log, RotationPolicy(compression=Compression()))
    renames: list[tuple[str, str]] = []
    files.rename = lambda a, b: (renames.append((os.fspath(a), os.fspath(b))), os.rename(a, b))[1]
    log.write_bytes(lines([record(0)]))
    first = files.rotate()
    assert renames == [(os.fspath(log), os.fspath(first))]
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir() if p != first} == inodes
    assert len(Names(log).scan()) == 10_001 and Names(log).scan()[0].plain == first


# --- a folder with both layouts ---

def test_a_switch_either_way_keeps_one_rotation_order(tmp_path: Path) -> None:
    """numbered -> dated (the new default on an old folder) and back: every reader's order is
    the order records were written in."""
    log = tmp_path / "agent.log"
    clock = Clock()
    seq = 0

    def write_and_rotate(names: str, count: int) -> None:
        nonlocal seq
        sink = FileSink(log, RotationPolicy(size=SizeLimit(1_000), compression=Compression(), names=names),
                        clock=clock)
        for _ in range(count):
            sink.write(batch(seq, 5))
            seq += 5
            clock.advance(10)
        assert sink.settle()
        sink.close()

    write_and_rotate("numbered", 12)
    clock.advance(3600)
    write_and_rotate("dated", 12)
    layouts = {b.number is None for b in Names(log).scan()}
    assert layouts == {True, False}, "both layouts in the folder"
    assert all_seqs(log) == file_seqs(log) == list(range(seq))
    write_and_rotate("numbered", 12)  # and back: the numbered group is now the newest
    assert file_seqs(log) == list(range(seq))
    assert [b.number is None for b in Names(log).scan()][:2] == [False, False]


def test_retention_prunes_a_mixed_folder_in_rotation_order(tmp_path: Path) -> None:
    log = rotated_set(tmp_path)  # agent.log.4.gz .. agent.log.1 (seq 0-39), then agent.log (40-49)
    age(tmp_path, 3600)
    clock = Clock(time.time())
    deleted: list[str] = []
    sink = FileSink(log, RotationPolicy(size=SizeLimit(1 << 20), compression=Compression(),
                                        retention=Retention(max_backups=5)), clock=clock,
                    on_delete=lambda paths: deleted.extend(Names(log).undeleting(p).name for p in paths))
    for start in range(50, 100, 10):  # five dated rotations on top of four numbered backups
        clock.advance(1)
        sink.write(batch(start, 10))
        assert sink.rotate_now()
        assert sink.settle()
    sink.close()
    assert deleted == ["agent.log.4.gz", "agent.log.3.zst", "agent.log.2.zst", "agent.log.1.zst"]
    remaining = Names(log).scan()
    assert len(remaining) == 5 and all(b.number is None for b in remaining)
    assert file_seqs(log) == list(range(40, 100))


def test_spool_rotates_to_dated_names_and_prunes_older_numbered_ones_first(tmp_path: Path) -> None:
    spool = tmp_path / "spool.log"
    write(tmp_path / "spool.log.2", lines([record(0)]))
    write(tmp_path / "spool.log.1", lines([record(1)]))
    age(tmp_path, 3600)
    sink = SpoolSink(spool, max_bytes=1)
    sink.write(batch(2, 1))  # over max_bytes: rotates
    sink.close()
    found = spool_backups(spool)
    assert [p.name for _, p in found][1:] == ["spool.log.1", "spool.log.2"]
    assert found[0][1].name.startswith("spool-") and found[0][1].name.endswith(".log")
    assert file_seqs(spool) == [0, 1, 2]
    asked: list[str] = []
    deleted = prune_spool(spool, lambda p: asked.append(p.name) or p.name != found[0][1].name)
    assert [p.name for p in deleted] == ["spool.log.2", "spool.log.1"] and asked[-1] == found[0][1].name


def test_a_numbered_folder_switched_to_dated_is_queried_followed_and_shipped_in_order(daemon, tmp_path: Path) -> None:
    """An older logd's numbered backups (seq 0-49), then the default dated names under load:
    `logd query` and `logd tail -f` see one order, the shipper sends every record once."""
    log = rotated_set(tmp_path)
    age(tmp_path, 3600)
    collector = Collector(tmp_path / "collector").start()
    try:
        target = (f'type = "http"\nname = "central"\nurl = "{collector.url()}"\nbatch_size = 200\n'
                  'flush_interval = 0.05\n')
        d = daemon(ship_config(target, extra='max_size = 0.03\ncompress = true\n'))
        with following(d, tmp_path / "tail.out", "--config", str(d.config)) as printed:
            with SteadySender(d) as sender:
                sender.wait_sent(1_000)  # ~200 KB: several dated rotations
            sent = sender.sent
            wait_for(lambda: [s for s in printed() if s >= 0] == list(range(sent)), 30,
                     what="tail -f to print every record once, in order")
        found = Names(log).scan()
        assert sum(b.number is None for b in found) >= 4 and sum(b.number is not None for b in found) == 4

        def shipped() -> list[int]:
            return [r["seq"] for body in collector.accepted_bodies() for r in map(orjson.loads, body.splitlines())
                    if "seq" in r]
        old = list(range(50))
        wait_for(lambda: len([s for s in shipped()[50:] if s >= 0]) >= sent, 60, what="every record shipped")
        got = shipped()
        new = [s for s in got[50:] if s >= 0]
        assert got[:50] == old and new == list(range(sent)), "each record once, oldest first"
        d.stop()
        query = subprocess.run([sys.executable, "-m", "logd", "query", "--config", str(d.config)],
                               capture_output=True, text=True, timeout=60)
        assert query.returncode == 0, query.stderr
        queried = [r["seq"] for r in map(orjson.loads, query.stdout.splitlines()) if "seq" in r]
        assert queried[:50] == old and [s for s in queried[50:] if s >= 0] == list(range(sent))
    finally:
        collector.stop()


# --- settings and memory ---

def test_backup_names_setting_is_checked(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[logging]\nfile = "a.log"\nbackup_names = "rolling"\n')
    assert "logging.backup_names" in str(error) and '"dated", "numbered"' in str(error)


@pytest.mark.parametrize("level", [3, 22])
def test_one_zstd_context_compresses_file_after_file_in_bounded_memory(tmp_path: Path, level: int) -> None:
    """Level 22 would take ~130 MB of tables; capped, the reused context stays small, and
    every file it makes decodes to its source."""
    compression = Compression("zstd", level)
    context, buffer = compression.compressor(), bytearray(1 << 20)
    for i in range(2):
        source = tmp_path / f"in{i}"
        source.write_bytes(b"".join(orjson.dumps({"i": n, "pad": os.urandom(n % 64).hex()}) + b"\n"
                                    for n in range(i * 20_000, (i + 1) * 20_000)))
        target = tmp_path / f"out{i}.zst"
        src, dst = os.open(source, os.O_RDONLY), os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert compression.compress(src, dst, lambda: False, context, buffer)
        finally:
            os.close(src)
            os.close(dst)
        assert decompress(target) == source.read_bytes()
    assert context.memory_size() < 16 << 20


def test_the_shippers_survey_of_thousands_of_backups_holds_one_file_open_at_a_time(tmp_path: Path) -> None:
    """A kept-forever folder outgrows the descriptor limit: the survey must not open them all."""
    import resource

    from logd.logfiles.follow import take_survey

    log = tmp_path / "agent.log"
    for n in range(300):
        write(Names(log).dated(1_795_000_000 + n, ".zst"), lines([record(n)]))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(128, hard), hard))
    try:
        found = list(take_survey(log))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [f.first_line and orjson.loads(f.first_line)["seq"] for f in found] == list(range(300))


def test_start_up_after_a_crash_mid_compression_of_dated_backups_keeps_every_line_once(tmp_path: Path) -> None:
    """A kill -9 left an unfinished ``.zst.tmp`` beside one backup, and both copies of another
    (killed between the rename and the unlink): the temp and the extra plain copy go."""
    log = tmp_path / "agent.log"
    names = Names(log)
    older, newer = names.dated(1_795_000_000), names.dated(1_795_000_100)
    write(older, lines(record(s) for s in range(0, 10)))
    write(older.with_name(older.name + ".zst"), lines(record(s) for s in range(0, 10)))
    write(newer, lines(record(s) for s in range(10, 20)))
    newer.with_name(newer.name + ".zst.tmp").write_bytes(b"half a frame")
    write(log, lines(record(s) for s in range(20, 25)))
    done = FileSet(log, RotationPolicy(compression=Compression())).recover()
    assert sorted(os.listdir(tmp_path)) == sorted(["agent.log", older.name + ".zst", newer.name])
    assert len(done) == 2 and file_seqs(log) == list(range(25))


def test_a_scan_keeps_a_few_small_objects_per_backup_whatever_the_layout() -> None:
    """Rotation's compressor and retention scan the folder after every rotation, with
    10,000 backups and more kept: per backup a scan holds its number or time and a few bits,
    not paths (it held ~440 bytes per backup before, and several scans run at once)."""
    import tracemalloc

    log = Path("/nowhere/agent.log")
    names = Names(log)
    layouts = {"numbered": [f"agent.log.{n}.zst" for n in range(1, 10_001)],
               "dated": [names.dated(1_795_000_000 + n, ".zst").name for n in range(10_000)]}
    for layout, listing in layouts.items():
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            found = names.scan(listing)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        newest = "agent.log.1.zst" if layout == "numbered" else max(listing)
        assert len(found) == 10_000 and found[0].main.name == newest
        assert peak / 10_000 < 256, f"{layout}: {peak / 10_000:.0f} bytes per backup"


def test_the_shipper_finds_its_place_after_a_rotation_reading_a_few_heads_of_hundreds(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """At every rotation the shipper looks for the file it was reading: from the newest file
    back, so with hundreds of backups kept it opens two or three, not every one of them."""
    from logd.logfiles import follow

    log = tmp_path / "agent.log"
    names = Names(log)
    for n in range(300):
        write(names.dated(1_795_000_000 + n, ".zst"), lines([record(n)]))
    write(log, lines(record(s) for s in range(300, 350)))  # > 4 KiB: a full fingerprint
    follower = follow.Follower(log, None)
    got = []
    while (chunk := follower.read(1000)) is not None:
        got.extend(orjson.loads(line)["seq"] for line in chunk.lines)
    assert got == list(range(350))
    heads: list[str] = []
    real_info = follow.file_info
    monkeypatch.setattr(follow, "file_info", lambda path, *rest: heads.append(path.name) or real_info(path, *rest))
    os.rename(log, names.dated(1_795_000_300))
    write(log, lines(record(s) for s in range(350, 360)))
    got = []
    while (chunk := follower.read(1000)) is not None:
        got.extend(orjson.loads(line)["seq"] for line in chunk.lines)
    follower.close()
    assert got == list(range(350, 360)) and len(heads) <= 3, heads
