"""`logd query --sql` (logd/reading/sql.py) with real DuckDB over real rotated files:
typed columns and every field, .zst/.gz/plain together, a damaged backup reported once
with the rest still counted, SQL errors and a missing DuckDB as one clear line each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import zstandard

from logd.reading.sql import display_width, table

from logsets import BASE, lines, record, rotated_set, write
from support import wait_for


def sql(current: Path, query: str, *args: str, python: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TZ": "UTC"}
    env.pop("LOGD_CONFIG", None)
    cmd = (python or [sys.executable, "-m", "logd"]) + ["query", "--file", str(current), "--sql", query, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def json_rows(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_every_file_and_every_field_with_types(tmp_path: Path) -> None:
    current = rotated_set(tmp_path)  # .4.gz .3.zst .2.zst .1 and the current file, 10 records each
    late = [record(s) for s in range(50, 3050)] + [record(3050, only_at_the_end={"depth": 7})]
    write(tmp_path / "agent.log.5.zst", lines(late))  # a field first seen after 3000 records
    got = json_rows(sql(current, "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, "
                                 "max(only_at_the_end.depth) AS depth, typeof(any_value(time)) AS t, "
                                 "typeof(any_value(level)) AS l, typeof(any_value(duration_ms)) AS d FROM logs",
                        "--format", "json"))
    assert got == [{"n": 3051, "lo": 0, "hi": 3050, "depth": 7, "t": "TIMESTAMP WITH TIME ZONE", "l": "VARCHAR",
                    "d": "BIGINT"}]
    first = json_rows(sql(current, f"SELECT count(*) AS n FROM logs WHERE time >= to_timestamp({BASE}) "
                                   f"AND time < to_timestamp({BASE}) + INTERVAL 20 SECOND", "--format", "json"))
    assert first == [{"n": 20}]  # seq 0-19: a typed time compares as a time


def test_formats(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.1.gz", "agent.log"))
    query = "SELECT agent, count(*) AS n FROM logs GROUP BY agent ORDER BY agent"
    assert sql(current, query, "--format", "csv").stdout == "agent,n\ncritic,6\nplanner,7\nwriter,7\n"
    assert sql(current, query).stdout == "agent    n\n-------  -\ncritic   6\nplanner  7\nwriter   7\n"


def test_wide_characters_are_aligned() -> None:
    assert display_width("計画者") == 6 and display_width("plan") == 4
    out = table(["agent", "n"], [("計画者", 12), ("planner", 3)])
    assert out.splitlines() == ["agent     n", "-------  --", "計画者   12", "planner   3"]
    widths = {display_width(line) for line in out.splitlines()}
    assert widths == {11}


def test_a_damaged_zst_in_the_middle_is_one_warning_and_the_rest_is_counted(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, per_file=3000)  # 15000 records
    damaged = tmp_path / "agent.log.3.zst"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    damaged.write_bytes(bytes(data))
    result = sql(current, "SELECT count(*) AS n, count(DISTINCT seq) AS distinct_seq FROM logs", "--format", "json")
    assert result.returncode == 1
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"logd: warning: {damaged}:"), result.stderr
    line = int(warnings[0].split(":")[3])
    assert "corrupt zstd data" in warnings[0] and 1 < line < 3000
    n = orjson.loads(result.stdout)["n"]
    assert n == 12000 + line - 1 == orjson.loads(result.stdout)["distinct_seq"]  # every record before the damage


def test_sql_errors_are_one_line(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.1.zst", "agent.log"))
    for query, words in (("SELEC 1", "syntax error"), ("SELECT nope FROM logs", "nope"),
                         ("SELECT * FROM nowhere", "nowhere")):
        result = sql(current, query)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("logd: error: bad SQL: ")
        assert words in result.stderr and "/proc/self/fd" not in result.stderr


def test_without_duckdb_the_message_names_the_extra(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log",))
    # a Python where `import duckdb` fails, as in an install without the [sql] extra
    no_duckdb = [sys.executable, "-c", "import sys; sys.modules['duckdb'] = None; from logd.cli import main; "
                 "sys.exit(main(sys.argv[1:]))"]
    result = sql(current, "SELECT 1", python=no_duckdb)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "logd: error: logd query --sql needs DuckDB: pip install 'logd[sql]'\n"


def test_zstd_written_by_logd_run_is_read(tmp_path: Path, daemon) -> None:
    from support import send_records

    d = daemon('file = "agent.log"\nfile_only = true\nmax_size = 0.01\ncompress = true')
    send_records(d.socket_path, [record(s, agent="tester") for s in range(600)])
    # rotated and compressed (dated names by default); the compressor is a background thread
    # that shutdown does not wait for, so wait for its first file before stopping
    wait_for(lambda: list(tmp_path.glob("*.zst")), what="a compressed backup")
    d.stop()
    got = json_rows(sql(tmp_path / "agent.log", "SELECT count(*) AS n, sum(seq) AS total FROM logs "
                                                  "WHERE agent = 'tester'", "--format", "json"))
    assert got == [{"n": 600, "total": sum(range(600))}]
    assert zstandard  # the backups are real zstd frames, read by DuckDB itself


def test_selection_flags_are_refused_beside_sql(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log",))
    result = sql(current, "SELECT 1", "--since", "-1h", "--level", "error")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("logd: error: --sql selects with its own WHERE; it cannot be combined with "
                             "--since, --level\n")


def test_an_empty_current_file_is_left_out_and_no_records_is_one_line(tmp_path: Path) -> None:
    current = rotated_set(tmp_path, names=("agent.log.1.zst",))
    current.write_bytes(b"")  # just rotated
    assert json_rows(sql(current, "SELECT count(*) AS n FROM logs", "--format", "json")) == [{"n": 10}]
    (tmp_path / "agent.log.1.zst").unlink()
    result = sql(current, "SELECT count(*) FROM logs")
    assert result.returncode == 1 and result.stderr == f"logd: error: no records in {current} or its backups\n"
