"""The rotating file sink on real files: sizes and names, the oversize record, compression,
retention, time rotation with an injected clock, and a file size limit then recovery."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from logd.events import Events
from logd.pipeline import Batch, Pipeline
from logd.rotation import Compression, Retention, RotationPolicy, Schedule, SizeLimit
from logd.sinks.file import FileSink

from rotation_support import Clock, all_seqs, batch, decompress, names, record, seqs_in
from support import wait_for


@pytest.fixture
def sinks():
    """Sinks made by a test are closed at teardown (their background threads stop)."""
    made: list[FileSink] = []
    yield made
    for sink in made:
        sink.close()


def make(sinks, path: Path, **policy) -> FileSink:
    clock = policy.pop("clock", None)
    sink = FileSink(path, RotationPolicy(**{"names": "numbered", **policy}), **({"clock": clock} if clock else {}))
    sinks.append(sink)
    return sink


def test_rotates_before_exceeding_max_size_and_keeps_every_line_once(tmp_path, sinks):
    """Many rotations: no file exceeds max_size, names run agent.log, .1, .2 ..., nothing lost or repeated."""
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(2_000))
    seq = 0
    for count in (1, 7, 30, 3, 50, 1, 12, 40, 5, 25):  # batches that straddle the limit
        sink.write(batch(seq, count))
        seq += count
    sink.close()
    files = names(tmp_path)
    backups = len(files) - 1
    assert files == ["agent.log"] + [f"agent.log.{n}" for n in range(1, backups + 1)]
    assert backups >= 10
    assert all((tmp_path / n).stat().st_size <= 2_000 for n in files)
    # every backup was full: the next line would not have fit
    line = len(orjson.dumps(record(0))) + 1
    assert all((tmp_path / n).stat().st_size > 2_000 - line - 10 for n in files[1:])
    assert all_seqs(tmp_path / "agent.log") == list(range(seq))
    assert sink.rotations == backups


def test_a_record_larger_than_max_size_is_written_whole_into_a_fresh_file(tmp_path, sinks):
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(1_000))
    sink.write(batch(0, 3))
    sink.write(Batch([record(3, pad=5_000)]))  # alone larger than max_size
    sink.write(batch(4, 2))
    sink.close()
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2"]
    big = (tmp_path / "agent.log.1").read_bytes()
    assert big.count(b"\n") == 1 and orjson.loads(big)["seq"] == 3 and len(big) > 5_000
    assert [orjson.loads(x)["seq"] for x in (tmp_path / "agent.log.2").read_bytes().splitlines()] == [0, 1, 2]
    assert all_seqs(tmp_path / "agent.log") == list(range(6))


@pytest.mark.parametrize("algorithm,suffix", [("zstd", ".zst"), ("gzip", ".gz")])
def test_older_backups_are_compressed_and_decompress_to_exactly_the_lines_written(tmp_path, sinks, algorithm, suffix):
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(3_000), compression=Compression(algorithm))
    written = b""
    for i in range(0, 300, 10):
        b = batch(i, 10)
        written += b.json_lines()
        sink.write(b)
    assert sink.settle(20)
    files = names(tmp_path)
    count = len(files) - 1
    # the newest backup stays plain until the next rotation; older ones are compressed
    assert files == ["agent.log", "agent.log.1"] + [f"agent.log.{n}{suffix}" for n in range(2, count + 1)]
    joined = b"".join(decompress(tmp_path / n) for n in reversed(files[1:])) + (tmp_path / "agent.log").read_bytes()
    assert joined == written
    assert sink.compression_seconds > 0
    # the real tools agree
    tool = ["zstd", "-dc"] if algorithm == "zstd" else ["gzip", "-dc"]
    out = subprocess.run(tool + [str(tmp_path / f"agent.log.2{suffix}")], capture_output=True, check=True).stdout
    assert out == decompress(tmp_path / f"agent.log.2{suffix}")


def test_compression_level_is_used(tmp_path, sinks):
    """A higher level makes a smaller file from the same lines (gzip 1 vs 9)."""
    sizes = {}
    for level in (1, 9):
        folder = tmp_path / str(level)
        sink = make(sinks, folder / "agent.log", size=SizeLimit(20_000), compression=Compression("gzip", level))
        for i in range(0, 900, 100):
            sink.write(Batch([{**record(j), "n": j * 7919 % 1000} for j in range(i, i + 100)]))
        assert sink.settle(20)
        sizes[level] = (folder / "agent.log.2.gz").stat().st_size
    assert sizes[9] < sizes[1]


def test_max_backups_keeps_the_newest_and_counts_deletions(tmp_path, sinks):
    deleted_seen: list[list[str]] = []

    def on_delete(paths: list[Path]) -> None:
        assert all(p.exists() for p in paths)  # the hook hears before the files go
        deleted_seen.append([p.name for p in paths])

    policy = RotationPolicy(names="numbered", size=SizeLimit(1_000), compression=Compression(),
                            retention=Retention(max_backups=3))
    sink = FileSink(tmp_path / "agent.log", policy, on_delete=on_delete)
    sinks.append(sink)
    for i in range(0, 200, 5):
        sink.write(batch(i, 5))
        assert sink.settle(10)
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2.zst", "agent.log.3.zst"]
    assert sink.retention_deleted == sink.rotations - 3 > 0
    assert sum(len(x) for x in deleted_seen) == sink.retention_deleted
    # what is left is the newest lines, contiguous up to the last one written
    seqs = all_seqs(tmp_path / "agent.log")
    assert seqs == list(range(seqs[0], 200))


def test_max_age_removes_backups_by_their_rotation_time(tmp_path, sinks):
    clock = Clock()
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(1_000), retention=Retention(max_age_days=2),
                clock=clock)
    for day in range(5):  # one rotation a day
        sink.write(batch(day * 100, 20))
        assert sink.settle(10)  # retention ran at this day's time
        clock.advance(86_400)
    # the last rotations (and retention) ran at day 4: what is left was rotated within 2 days of it
    last = clock.now - 86_400
    ages = sorted((last - (tmp_path / n).stat().st_mtime) / 86_400 for n in names(tmp_path)[1:])
    assert ages and ages[0] == 0 and ages[-1] == 2
    assert sink.retention_deleted > 0
    before = names(tmp_path)
    clock.advance(3 * 86_400)  # hourly retention, without a rotation
    sink.tick()
    assert sink.settle(10)
    assert names(tmp_path) == ["agent.log"] and len(before) > 1


def test_retention_applies_at_start_up(tmp_path, sinks):
    for n in range(1, 8):
        (tmp_path / f"agent.log.{n}").write_bytes(orjson.dumps(record(100 - n)) + b"\n")
    (tmp_path / "agent.log").write_bytes(orjson.dumps(record(100)) + b"\n")
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(10_000), retention=Retention(max_backups=2))
    sink.open()
    assert sink.settle(10)
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2"]
    assert sink.retention_deleted == 5


def test_time_rotation_on_local_hour_boundaries_with_an_injected_clock(tmp_path, sinks):
    tz = ZoneInfo("Europe/Berlin")
    clock = Clock(datetime(2026, 11, 23, 10, 20, tzinfo=tz).timestamp())
    sink = make(sinks, tmp_path / "agent.log", schedule=Schedule(1, "hourly", tz), clock=clock)
    sink.write(batch(0, 3))
    clock.now = datetime(2026, 11, 23, 10, 59, 59, tzinfo=tz).timestamp()
    sink.write(batch(3, 3))
    assert names(tmp_path) == ["agent.log"]
    clock.now = datetime(2026, 11, 23, 11, 0, 0, tzinfo=tz).timestamp()
    sink.write(batch(6, 3))
    assert names(tmp_path) == ["agent.log", "agent.log.1"]
    assert seqs_in(tmp_path / "agent.log.1") == list(range(6))
    # a boundary passed with no write: tick() rotates
    clock.now = datetime(2026, 11, 23, 12, 0, 5, tzinfo=tz).timestamp()
    sink.tick()
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2"]
    assert all_seqs(tmp_path / "agent.log") == list(range(9))


def test_schedule_boundaries_follow_local_wall_time_across_dst():
    tz = ZoneInfo("Europe/Berlin")
    daily, six = Schedule(24, "daily", tz), Schedule(6, "6h", tz)

    def at(*args):
        return datetime(*args, tzinfo=tz).timestamp()

    # 2026-10-25 has 25 hours in Berlin (CEST -> CET): still local midnight
    assert daily.next_boundary(at(2026, 10, 24, 23, 30)) == at(2026, 10, 25, 0, 0)
    assert daily.next_boundary(at(2026, 10, 25, 0, 0)) == at(2026, 10, 26, 0, 0)
    assert at(2026, 10, 26) - at(2026, 10, 25) == 25 * 3600
    assert six.next_boundary(at(2026, 11, 23, 5, 59)) == at(2026, 11, 23, 6, 0)
    assert six.next_boundary(at(2026, 11, 23, 6, 0)) == at(2026, 11, 23, 12, 0)


def test_time_schedule_comes_from_the_file_and_survives_a_restart(tmp_path, sinks):
    """A restart at 10:50 does not start a new hour-long period: the file began at 10:20."""
    tz = ZoneInfo("UTC")
    clock = Clock(datetime(2026, 11, 23, 10, 20, tzinfo=tz).timestamp())
    policy = dict(schedule=Schedule(1, "hourly", tz), clock=clock)
    first = make(sinks, tmp_path / "agent.log", **policy)
    first.write(Batch([{**record(0), "time": "2026-11-23T10:20:00.000000Z"}]))
    first.close()
    clock.now = datetime(2026, 11, 23, 11, 5, tzinfo=tz).timestamp()  # logd was down across 11:00
    second = make(sinks, tmp_path / "agent.log", **policy)
    second.write(Batch([{**record(1), "time": "2026-11-23T11:05:00.000000Z"}]))
    assert seqs_in(tmp_path / "agent.log.1") == [0] and seqs_in(tmp_path / "agent.log") == [1]
    second.close()
    # now the newest backup's rotation time (11:05) marks when the current file began
    clock.now = datetime(2026, 11, 23, 11, 50, tzinfo=tz).timestamp()
    third = make(sinks, tmp_path / "agent.log", **policy)
    third.write(batch(2, 1))
    assert names(tmp_path) == ["agent.log", "agent.log.1"]
    clock.now = datetime(2026, 11, 23, 12, 0, 1, tzinfo=tz).timestamp()
    third.write(batch(3, 1))
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2"]
    assert all_seqs(tmp_path / "agent.log") == [0, 1, 2, 3]


def test_rotate_now_rotates_a_non_empty_file_only(tmp_path, sinks):
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(1 << 20))
    sink.open()
    assert sink.rotate_now() is False
    sink.write(batch(0, 2))
    assert sink.rotate_now() is True
    assert names(tmp_path) == ["agent.log", "agent.log.1"]
    assert (tmp_path / "agent.log").read_bytes() == b""


def test_file_size_limit_holds_the_bytes_and_writes_them_once_the_limit_is_lifted(tmp_path, sinks):
    """EFBIG (RLIMIT_FSIZE) mid-line: the sink raises, keeps every byte, and finishes the cut
    line in the same file before rotating; nothing is lost, split or written twice."""
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(40_000), compression=Compression())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    written = 0
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_050, hard))  # ends inside a line
    try:
        with pytest.raises(OSError) as failure:
            for i in range(0, 1_000, 25):
                sink.write(batch(i, 25))
                written = i + 25
        assert failure.value.errno == errno.EFBIG
        assert sink.pending_bytes > 0
        with pytest.raises(OSError):
            sink.flush()  # still full: still held
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sink.flush()
    assert sink.pending_bytes == 0
    for i in range(written + 25, 1_000, 25):
        sink.write(batch(i, 25))
    assert sink.settle(20)
    assert all_seqs(tmp_path / "agent.log") == list(range(1_000))


def test_a_failing_rotation_goes_through_the_pipelines_hold_and_retry(tmp_path, sinks):
    """A rename that fails makes the sink fail like a full disk: the pipeline holds the
    records, pauses clients, retries with backoff; once renames work, all are written once."""
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(1_500))
    failures = {"left": 3}

    async def scenario() -> tuple[list[bool], list[str]]:
        pressure: list[bool] = []
        pipeline = Pipeline([], [sink], on_pressure=pressure.append)
        sink.open()
        real_rename = sink.files.rename

        def flaky_rename(src, dst):
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OSError(errno.EIO, "injected rename failure", str(src))
            real_rename(src, dst)

        sink.files.rename = flaky_rename
        for i in range(0, 100, 10):
            pipeline.put([record(j) for j in range(i, i + 10)])
            await asyncio.sleep(0)
        for _ in range(200):
            if not pipeline.failing_sinks() and pipeline.queue_depth == 0 and failures["left"] == 0:
                break
            await asyncio.sleep(0.05)
        pipeline.close()
        return pressure, [str(e) for e in [pipeline.stats.sink_errors]]

    pressure, errors = asyncio.run(scenario())
    assert pressure[:2] == [True, False]  # paused while failing, resumed after
    seqs = all_seqs(tmp_path / "agent.log")
    assert seqs == list(range(100))
    # logd's own records say so, in the file
    own = [orjson.loads(line) for p in sorted(tmp_path.iterdir()) for line in decompress(p).splitlines()]
    messages = [r["message"] for r in own if r.get("agent") == "logd"]
    assert any("failed" in m for m in messages) and any("recovered" in m for m in messages)


@pytest.fixture
def small_fs(tmp_path):
    """A 512 KB tmpfs: a real disk that fills up (needs mount rights, as root in CI)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()} "
                    "(test_file_size_limit_* covers a full file system through RLIMIT_FSIZE)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_disk_full_while_writing_and_compressing_loses_nothing_once_space_is_back(small_fs, sinks):
    log = small_fs / "agent.log"
    plain = make(sinks, log, size=SizeLimit(30_000))
    for i in range(0, 900, 30):  # plain backups .1, .2, .3 ... waiting for compression
        plain.write(batch(i, 30))
    plain.close()
    filler = fill(small_fs)

    reports: list[dict] = []  # logd's own records about the sink
    events = Events(stderr=lambda line: None)
    events.connect(reports.extend)
    sink = FileSink(log, RotationPolicy(names="numbered", size=SizeLimit(30_000), compression=Compression()),
                    events=events)
    sinks.append(sink)
    sink.open()  # start-up: the compressor tries agent.log.2 and finds the disk full
    wait_for(lambda: any(r["level"] == "error" for r in reports), 10, what="the compressor's error")
    assert "No space left" in [r for r in reports if r["level"] == "error"][0]["error"]
    assert "agent.log.2" in names(small_fs) and not [n for n in names(small_fs) if n.endswith(".tmp")]
    with pytest.raises(OSError) as full:
        sink.write(batch(900, 30))
    assert full.value.errno == errno.ENOSPC and sink.pending_bytes > 0

    filler.unlink()  # space is back
    sink.flush()
    sink.files.kick()  # the compressor's next retry, now rather than after its backoff
    assert sink.settle(20)
    assert all_seqs(log) == list(range(930))
    assert not [n for n in names(small_fs)[2:] if not n.endswith(".zst")]


def test_reopen_follows_an_external_move_and_takes_back_a_cut_line(tmp_path, sinks):
    """SIGHUP after an external logrotate: the next write goes to a new file at the path. A line
    a short write (a full disk) left unfinished in the moved file is truncated away there and
    written whole to the new file: neither file holds half a line, nothing is lost."""
    sink = make(sinks, tmp_path / "agent.log", size=SizeLimit(1 << 20))
    sink.write(batch(0, 3))
    os.rename(tmp_path / "agent.log", tmp_path / "moved.log")
    sink.reopen()
    sink.write(batch(3, 2))
    assert all_seqs(tmp_path / "moved.log") == [0, 1, 2] and all_seqs(tmp_path / "agent.log") == [3, 4]

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    size = (tmp_path / "agent.log").stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, hard))  # the next line is cut after 50 bytes
    try:
        with pytest.raises(OSError):
            sink.write(batch(5, 1))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    os.rename(tmp_path / "agent.log", tmp_path / "moved2.log")
    sink.reopen()
    sink.write(batch(6, 1))
    assert all_seqs(tmp_path / "moved2.log") == [3, 4] and all_seqs(tmp_path / "agent.log") == [5, 6]
