"""logd query and logd/reader.py on real rotated files: plain, .gz and .zst backups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard

from logd.logfiles.content import Problem
from logd.logfiles.snapshot import list_files, snapshot
from logd.reading.query import Filter, parse_where, run_query
from logd.timeparse import TimeError, parse_time
from logd.timestamps import format_epoch

from logsets import BASE, lines, record, rotated_set, write


def run_logd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def seqs(stdout: str) -> list[int]:
    return [orjson.loads(line)["seq"] for line in stdout.splitlines()]


def query(current: Path, selection: Filter) -> tuple[list[int], list[Problem]]:
    problems: list[Problem] = []

    class Out:
        data = b""

        def write(self, b: bytes) -> None:
            Out.data += b

    with snapshot(current) as files:
        run_query(list(files), selection, Out(), problems.append)  # type: ignore[arg-type]
    return [orjson.loads(line)["seq"] for line in Out.data.splitlines()], problems


# --- the file set ---

def test_backups_are_listed_oldest_first_and_temp_files_ignored(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    (tmp_path / "agent.log.5.zst.tmp").write_bytes(b"half written")
    (tmp_path / "agent.log.old").write_bytes(b"not ours")
    (tmp_path / "other.log.1").write_bytes(b"not ours")
    names = [p.name for p, _, _ in list_files(current)]
    assert names == ["agent.log.4.gz", "agent.log.3.zst", "agent.log.2.zst", "agent.log.1", "agent.log"]


def test_a_backup_present_both_plain_and_compressed_is_read_once(tmp_path: Path) -> None:
    """The instant between the compressor's rename and its unlink of the plain file."""
    current = rotated_set(tmp_path, names=("agent.log.2.zst", "agent.log.1", "agent.log"))
    write(tmp_path / "agent.log.2", lines(record(s) for s in range(0, 10)))
    got, problems = query(current, Filter())
    assert got == list(range(30)) and problems == []


def test_query_reads_every_backup_in_time_order(tmp_path: Path) -> None:
    rotated_set(tmp_path)
    result = run_logd("query", "--file", str(tmp_path / "agent.log"))
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == list(range(50))
    assert result.stderr == ""


def test_query_output_is_the_stored_json_lines_unchanged(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.1.zst", "agent.log"))
    result = run_logd("query", "--file", str(current))
    expected = lines(record(s) for s in range(20)).decode()
    assert result.stdout == expected


def test_query_finds_the_file_through_the_config(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    rotated_set(logs, names=("agent.log.1.gz", "agent.log"))
    (tmp_path / "agentflow.toml").write_text('[logging]\nfile = "logs/agent.log"\n')
    result = run_logd("query", "--level", "error", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == [3, 13]
    by_flag = run_logd("query", "--level", "error", "--config", str(tmp_path / "agentflow.toml"))
    assert by_flag.stdout == result.stdout


def test_no_file_configured_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "agentflow.toml").write_text('[logging]\nlevel = "info"\n')
    result = run_logd("query", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("logd: error: ") and "no [logging] file is set" in result.stderr
    missing = run_logd("query", "--file", str(tmp_path / "nothing.log"))
    assert missing.returncode == 1
    assert f"no log file at {tmp_path / 'nothing.log'}" in missing.stderr


# --- filters ---

def test_level_means_this_level_and_above(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    warn, _ = query(current, Filter(level="warn"))
    assert warn == [s for s in range(50) if s % 10 in (3, 6)]
    error, _ = query(current, Filter(level="error"))
    assert error == [3, 13, 23, 33, 43]


def test_agent_session_grep_and_where_filters(tmp_path: Path) -> None:
    current = tmp_path / "agent.log"
    write(tmp_path / "agent.log.1.zst", lines([record(0), record(1, tokens={"prompt": 7}), record(2)]))
    write(current, lines([record(3, agent='say "hi"'), record(4, message="tool timeout after 30s"),
                          record(5, nested={"agent": "planner"})]))
    assert query(current, Filter(agents=("planner",)))[0] == [0]  # a nested "agent" is not the agent
    assert query(current, Filter(agents=("planner", "writer")))[0] == [0, 1, 4]
    assert query(current, Filter(agents=('say "hi"',)))[0] == [3]
    assert query(current, Filter(sessions=("s0",), level="warn"))[0] == [3]
    import re
    assert query(current, Filter(grep=re.compile(r"timeout after \d+s")))[0] == [4]
    assert query(current, Filter(where=(parse_where("tokens.prompt=7"),)))[0] == [1]
    assert query(current, Filter(where=(parse_where("seq=2"), parse_where("agent=critic"))))[0] == [2]
    assert query(current, Filter(where=(parse_where("session_id=s0"),)))[0] == [0, 1, 2, 3, 4, 5]
    assert query(current, Filter(where=(parse_where("missing=1"),)))[0] == []


def test_records_not_in_logd_layout_are_still_filtered_correctly(tmp_path: Path) -> None:
    """Lines whose keys are in another order take the parsing path, with the same result."""
    current = tmp_path / "agent.log"
    recs = [record(s) for s in range(20)]
    reordered = b"".join(orjson.dumps({k: r[k] for k in reversed(list(r))}) + b"\n" for r in recs)
    write(current, reordered)
    since, until = format_epoch(BASE + 5), format_epoch(BASE + 14)
    assert query(current, Filter(level="error", since=since, until=until))[0] == [13]
    assert query(current, Filter(since=since, until=until))[0] == list(range(5, 15))


def test_cli_filters(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    result = run_logd("query", "--file", str(current), "--level", "warn", "--agent", "planner",
                      "--grep", "6$", "--where", "session_id=s3")
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == [36]
    bad = run_logd("query", "--file", str(current), "--grep", "(")
    assert bad.returncode == 2 and "bad regular expression" in bad.stderr
    bad = run_logd("query", "--file", str(current), "--level", "loud")
    assert bad.returncode == 2 and "unknown level 'loud'" in bad.stderr


def test_human_output_is_the_consoles_format(tmp_path: Path) -> None:
    from logd.console_format import ConsoleFormatter

    current = rotated_set(tmp_path, names=("agent.log.1.zst", "agent.log"))
    result = run_logd("query", "--file", str(current), "--level", "error", "--human")
    formatter = ConsoleFormatter(color=False)
    assert result.stdout == formatter.format(record(3)) + formatter.format(record(13))
    assert " ERR step 3 agent=planner " in result.stdout


# --- time ranges ---

NOW = BASE + 100


def test_relative_and_absolute_times() -> None:
    assert parse_time("15m", now=NOW) == format_epoch(NOW - 900)
    assert parse_time("2h", now=NOW) == format_epoch(NOW - 7200)
    assert parse_time("3d", now=NOW) == format_epoch(NOW - 3 * 86400)
    assert parse_time("90s ago", now=NOW) == format_epoch(NOW - 90)
    assert parse_time("now", now=NOW) == format_epoch(NOW)
    assert parse_time("2026-11-18T09:46:40Z") == "2026-11-18T09:46:40.000000Z"
    assert parse_time("2026-11-18T10:46:40.5+01:00") == "2026-11-18T09:46:40.500000Z"
    for bad in ("yesterday-ish", "15x", "", "1795000000", "2026-13-45T00:00:00Z"):
        with pytest.raises(TimeError, match="cannot read time .*expected now, today"):
            parse_time(bad, now=NOW)


def test_since_and_until_are_inclusive_at_the_exact_microsecond(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)
    since, until = format_epoch(BASE + 10), format_epoch(BASE + 20)
    assert query(current, Filter(since=since, until=until))[0] == list(range(10, 21))
    just_after = format_epoch(BASE + 10.000001)
    just_before = format_epoch(BASE + 19.999999)
    assert query(current, Filter(since=just_after, until=just_before))[0] == list(range(11, 20))
    assert query(current, Filter(since=format_epoch(BASE + 60)))[0] == []
    assert query(current, Filter(until=format_epoch(BASE - 1)))[0] == []


def test_cli_relative_since_counts_back_from_now(tmp_path: Path) -> None:
    import time

    now = time.time()
    current = tmp_path / "agent.log"
    write(tmp_path / "agent.log.1.zst", lines(record(s, t=now - 7200 + s) for s in range(5)))  # 2h ago
    write(current, lines(record(s, t=now - 600 + s) for s in range(5, 10)))  # 10 minutes ago
    result = run_logd("query", "--file", str(current), "--since", "15m")
    assert seqs(result.stdout) == list(range(5, 10))
    result = run_logd("query", "--file", str(current), "--since", "3h", "--until", "1h")
    assert seqs(result.stdout) == list(range(5))
    bad = run_logd("query", "--file", str(current), "--since", "15 fortnights")
    assert bad.returncode == 2 and "cannot read time '15 fortnights'" in bad.stderr


# --- damage ---

def test_corrupt_backup_is_reported_once_with_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, per_file=2000)
    corrupt = tmp_path / "agent.log.3.zst"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    corrupt.write_bytes(bytes(data))
    result = run_logd("query", "--file", str(current))
    assert result.returncode == 1
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(f"logd: warning: {corrupt}:")
    assert "corrupt zstd data" in warnings[0] and "the rest of this file is skipped" in warnings[0]
    got = seqs(result.stdout)
    assert got[:2000] == list(range(2000))
    assert got[-6000:] == list(range(4000, 10000))
    reported_line = int(warnings[0].split(f"{corrupt}:")[1].split(":")[0])
    from_corrupt = [s for s in got if 2000 <= s < 4000]
    assert from_corrupt == list(range(2000, 2000 + len(from_corrupt)))
    assert reported_line == len(from_corrupt) + 1


def test_truncated_gzip_and_a_cut_last_line_are_reported(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.3.gz", "agent.log.2.zst", "agent.log.1", "agent.log"))
    gz = tmp_path / "agent.log.3.gz"
    gz.write_bytes(gz.read_bytes()[:-4])
    plain = tmp_path / "agent.log.1"
    plain.write_bytes(plain.read_bytes()[:-20])
    with current.open("ab") as f:
        f.write(b'{"time":"2026-11-18T09:50:00.000000Z","level":"info","mess')  # logd is writing it
    result = run_logd("query", "--file", str(current))
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith(f"logd: warning: {gz}:") and "truncated gzip data" in warnings[0]
    assert warnings[1] == f"logd: warning: {plain}:10: truncated: the last line has no end; it is skipped"
    got = seqs(result.stdout)
    assert got[-19:] == list(range(20, 29)) + list(range(30, 40))  # seq 29 was cut; the writer's line is not shown


def test_unreadable_file_and_garbage_lines_are_reported_once_each(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.2.zst", "agent.log.1", "agent.log"))
    (tmp_path / "agent.log.3").mkdir()  # a name in the set that cannot be read as a file
    one = tmp_path / "agent.log.1"
    body = one.read_bytes().splitlines(keepends=True)
    body[4:4] = [b"\x00\x00garbage\n", b"not json either\n"]
    one.write_bytes(b"".join(body))
    result = run_logd("query", "--file", str(current))
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr
    assert warnings[0] == f"logd: warning: {tmp_path / 'agent.log.3'}: cannot read: a directory, not a file; skipped"
    assert warnings[1] == (f"logd: warning: {one}:5: not a JSON record, skipped (and 1 more lines like it)")
    assert seqs(result.stdout) == list(range(30))
    assert result.returncode == 1


def test_query_is_streaming_in_constant_memory(tmp_path: Path) -> None:
    """Memory stays flat however large the files: ~40 MB of logs, peak RSS growth well below it."""
    current = tmp_path / "agent.log"
    cctx = zstandard.ZstdCompressor()
    with open(tmp_path / "agent.log.1.zst", "wb") as f, cctx.stream_writer(f) as w:
        for i in range(100):
            block = lines(record(s, padding=os.urandom(150).hex()) for s in range(i * 1000, i * 1000 + 1000))
            w.write(block)
    write(current, block)
    code = (
        "import resource, sys\n"
        "from logd.cli import main\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"main(['query', '--file', {str(current)!r}, '--level', 'error'])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('GROWTH', after - before, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 101 * 100
    growth_kb = int(result.stderr.split("GROWTH")[1])
    total_kb = 101 * len(block) // 1024
    assert total_kb > 40_000
    assert growth_kb < 20_000, f"RSS grew {growth_kb} kB reading {total_kb} kB"


def test_resent_copies_from_acknowledged_delivery_are_shown_once(tmp_path: Path) -> None:
    """A client in ack mode resends a batch it got no ack for: logd writes both copies, with
    the same _rid and the copy marked _resent; the query shows each record once, even when
    the copies sit on both sides of a rotation."""
    first = [record(s, _rid=f"stream-a:7:{s}") for s in range(4)]
    resent = [record(s, _rid=f"stream-a:7:{s}", _resent=True) for s in range(2, 4)]
    write(tmp_path / "agent.log.1.zst", lines(first + [record(10)]))
    current = tmp_path / "agent.log"
    write(current, lines(resent + [record(11), record(12, _rid="stream-b:1:0", _resent=True)]))
    result = run_logd("query", "--file", str(current))
    assert result.returncode == 0, result.stderr
    assert seqs(result.stdout) == [0, 1, 2, 3, 10, 11, 12]  # a resent copy whose first is unseen stays
    errors = run_logd("query", "--file", str(current), "--level", "error")
    assert seqs(errors.stdout) == [3]


def test_logds_zstd_backups_carry_a_checksum_and_damage_is_reported(tmp_path: Path) -> None:
    """logd's compressor writes zstd content checksums, so damage that still decodes to
    valid-looking JSON is caught too; a damaged backup is named on stderr."""
    import os as _os

    import zstandard

    from logd.rotation import Compression

    current = tmp_path / "agent.log"
    plain = tmp_path / "plain"
    plain.write_bytes(lines([record(i, t=1_790_000_000 + i) for i in range(200)]))
    backup = tmp_path / "agent.log.2.zst"
    src, dst = _os.open(plain, _os.O_RDONLY), _os.open(backup, _os.O_WRONLY | _os.O_CREAT, 0o640)
    try:
        assert Compression("zstd", None).compress(src, dst, lambda: False)
    finally:
        _os.close(src)
        _os.close(dst)
    assert zstandard.get_frame_parameters(backup.read_bytes()).has_checksum
    data = bytearray(backup.read_bytes())
    digits = [i for i in range(len(data) // 2, len(data) - 8) if chr(data[i]).isdigit()]
    data[digits[0]] = ord("7") if data[digits[0]] != ord("7") else ord("3")  # still a digit: JSON stays valid
    backup.write_bytes(bytes(data))
    current.write_bytes(lines([record(1000, t=1_790_001_000)]))
    result = subprocess.run([sys.executable, "-m", "logd", "query", "--file", str(current)],
                            capture_output=True, text=True)
    assert str(backup) in result.stderr and result.returncode == 1
