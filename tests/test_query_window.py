"""Time windows never miss a record: a backup is skipped only on bounds known to hold for
every record in it (logd/logfiles/bounds.py), whatever order the times are in the files."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import zstandard

from logd.logfiles import bounds
from logd.logfiles.snapshot import snapshot
from logd.reading.query import Filter, select
from logd.timestamps import format_epoch

from logsets import BASE, lines, record, rotated_set, write
from support import send_records, wait_for


def run_logd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def selected(current: Path, selection: Filter) -> tuple[list[int], list[object]]:
    problems: list[object] = []
    with snapshot(current) as files:
        got = [orjson.loads(line)["seq"] for batch in select(list(files), selection, problems.append)
               for line in batch]
    return got, problems


def kept_names(current: Path, since: str | None, until: str | None) -> list[str]:
    with snapshot(current) as files:
        return [k.file.path.name for k in bounds.files_in_window(current, list(files), since, until)]


def test_a_file_whose_first_record_is_late_is_still_read(tmp_path: Path) -> None:
    """README's case: the backup starts after --until, but a skewed client wrote an earlier record into it."""
    write(tmp_path / "agent.log.1.zst",
          lines([record(0, t=BASE + 500), record(1, t=BASE + 5), record(2, t=BASE + 600)]))
    write(tmp_path / "agent.log", lines([record(3, t=BASE + 700)]))
    got, problems = selected(tmp_path / "agent.log", Filter(until=format_epoch(BASE + 10)))
    assert got == [1] and problems == []


def test_bounds_are_rebuilt_by_the_reader_and_follow_content_not_names(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    assert not bounds.index_path(current).exists()
    window = (format_epoch(BASE + 20.5), format_epoch(BASE + 29))
    assert kept_names(current, *window) == ["agent.log.4.gz", "agent.log.3.zst", "agent.log.2.zst",
                                             "agent.log.1", "agent.log"]  # nothing known: all read
    assert selected(current, Filter(since=window[0], until=window[1]))[0] == list(range(21, 30))
    assert len(bounds.load(current)) == 4  # every backup read whole got its bounds
    assert kept_names(current, *window) == ["agent.log.2.zst", "agent.log"]
    # rename and recompress every backup: the content is the same, so are its bounds
    (tmp_path / "agent.log.2.zst").rename(tmp_path / "agent.log.7.zst")
    oldest = zstandard.ZstdDecompressor().decompress((tmp_path / "agent.log.3.zst").read_bytes())
    write(tmp_path / "agent.log.9.gz", oldest)
    (tmp_path / "agent.log.3.zst").unlink()
    assert kept_names(current, *window) == ["agent.log.7.zst", "agent.log"]
    assert selected(current, Filter(since=window[0], until=window[1]))[0] == list(range(21, 30))


def test_a_damaged_backup_outside_known_bounds_is_skipped_and_inside_reported(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    damaged = tmp_path / "agent.log.3.zst"
    big = lines(record(s, padding=os.urandom(20_000).hex()) for s in range(10, 20))  # several zstd blocks
    good = zstandard.ZstdCompressor(write_checksum=True).compress(big)
    damaged.write_bytes(good)
    selected(current, Filter(since=format_epoch(BASE)))  # files every backup's bounds
    damaged.write_bytes(good[: len(good) - 8])  # cut inside the frame
    outside, problems = selected(current, Filter(since=format_epoch(BASE + 20.000001)))
    assert outside == list(range(21, 50)) and problems == []
    inside, problems = selected(current, Filter(since=format_epoch(BASE + 15)))
    assert [p.path.name for p in problems] == ["agent.log.3.zst"]  # type: ignore[attr-defined]
    assert inside[-30:] == list(range(20, 50))


def test_shuffled_times_across_many_rotations_match_jq_for_every_window(tmp_path: Path, daemon) -> None:
    """Records with shuffled times through a real `logd run` rotating every 8 KB into .zst;
    a restart in the middle leaves a file the writer did not see whole (the reader measures it).
    `logd query --since --until` must print exactly what jq selects, for many windows."""
    rng = random.Random(16)
    # numbered names: the jq side below lists the files oldest first by their number
    config = 'file = "agent.log"\nfile_only = true\nmax_size = 0.008\ncompress = true\nbackup_names = "numbered"'
    times = [BASE + rng.uniform(0, 7200) for _ in range(2400)]
    d = daemon(config)
    for start in range(0, 1200, 40):  # batches: each one is a slow batch of mixed times
        send_records(d.socket_path, [record(s, t=times[s], agent="tester") for s in range(start, start + 40)])
    d.stop()
    d = daemon(config)
    for start in range(1200, 2400, 40):
        send_records(d.socket_path, [record(s, t=times[s], agent="tester") for s in range(start, start + 40)])
    current = tmp_path / "agent.log"
    wait_for(lambda: not [p for p in tmp_path.glob("agent.log.[2-9]*") if p.suffix not in (".zst",)]
             and not list(tmp_path.glob("*.tmp")), what="background compression")
    d.stop()
    backups = sorted(p.name for p in tmp_path.glob("agent.log.*"))
    assert len(backups) >= 20, backups
    assert len(bounds.load(current)) >= len(backups) - 3  # filed by the writer at each rotation

    windows = []
    for _ in range(60):
        a, b = sorted(rng.uniform(-300, 7500) for _ in range(2))
        windows.append((format_epoch(BASE + a), format_epoch(BASE + b)))
    windows += [(format_epoch(BASE + t), format_epoch(BASE + t)) for t in rng.sample(times, 5)]  # one record each
    names = [p.name for p in sorted(tmp_path.glob("agent.log*"), key=_age)]
    script = ('[inputs | select(.agent == "tester")] as $r | $w[] as [$a, $b]'
              ' | [$r[] | select(.time >= $a and .time <= $b) | .seq]')
    jq = subprocess.run(f"zstdcat -f {' '.join(names)} | jq -c -n --argjson w '{orjson.dumps(windows).decode()}' "
                        f"'{script}'", shell=True, cwd=tmp_path, capture_output=True, text=True, check=True)
    expected = [orjson.loads(line) for line in jq.stdout.splitlines()]
    assert len(expected) == len(windows) and sum(map(len, expected)) > 2400
    skipped = 0
    for (since, until), want in zip(windows, expected, strict=True):
        got, problems = selected(current, Filter(since=since, until=until, agents=("tester",)))
        assert problems == [] and got == want, (since, until)
        skipped += len(backups) + 1 - len(kept_names(current, since, until))
    assert skipped > 0  # the bounds did let whole backups be skipped
    for since, until in windows[:4]:  # and the command itself, as a user runs it
        result = run_logd("query", "--file", str(current), "--agent", "tester", "--since", since, "--until", until)
        assert result.returncode == 0, result.stderr
        assert [orjson.loads(line)["seq"] for line in result.stdout.splitlines()] == \
            expected[windows.index((since, until))]


def _age(path: Path) -> tuple[int, int]:
    """Oldest first: the highest backup number, the current file last."""
    rest = path.name[len("agent.log."):]
    return (0, -int(rest.split(".")[0])) if rest else (1, 0)


def test_an_index_root_makes_belongs_to_the_log_folder_s_owner(tmp_path):
    """`sudo logd query` files bounds too; the daemon, running as its own user, must still be
    able to add to that index (and to its trimmed copy)."""
    assert os.geteuid() == 0, "chown needs root: CI runs the suite as root"
    folder = tmp_path / "logs"
    folder.mkdir()
    os.chown(folder, 4321, 4322)  # the service account's folder (no such user is needed to own files)
    current = folder / "agent.log"
    entry = bounds.Entry("f" * 32, 10, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:01.000000Z")
    bounds.append(current, entry)
    made = os.stat(bounds.index_path(current))
    assert (made.st_uid, made.st_gid) == (4321, 4322)
    bounds.index_path(current).write_bytes(b"x" * (bounds.MAX_INDEX_BYTES + 1) + b"\n")  # the next append trims
    os.chown(bounds.index_path(current), 0, 0)
    bounds.append(current, entry)
    trimmed = os.stat(bounds.index_path(current))
    assert (trimmed.st_uid, trimmed.st_gid) == (4321, 4322)
    assert bounds.load(current)[entry.fp] == entry
