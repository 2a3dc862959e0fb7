"""docs/reading.md run as written: its first block starts a real `logd run` and sends it three
hours of records (rotated into .zst backups); every SQL recipe and its jq twin must give the
result computed here from the stored records; the journalctl examples and the bad-input
examples run with the exit codes the page documents."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from logd.logfiles.content import read_lines
from logd.logfiles.snapshot import snapshot

DOC = Path(__file__).resolve().parent.parent / "docs" / "reading.md"


def blocks() -> list[tuple[str, str]]:
    """(heading, shell block) in page order, without the illustrative ones."""
    found, heading = [], ""
    for part in re.split(r"(?m)^(#+ .*)$", DOC.read_text()):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
            continue
        for mark, body in re.findall(r"(<!-- illustrative -->\n)?```sh\n(.*?)```", part, re.S):
            if not mark:
                found.append((heading, body))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], list[dict]]]:
    assert shutil.which("jq"), "jq is installed by .ci/setup --test"
    folder = tmp_path_factory.mktemp("demo")
    sock = Path(f"/tmp/logd-doc-{os.getpid()}.sock")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "LOGD_DEMO": str(folder), "LOGD_SOCKET": str(sock), "NO_COLOR": "1", "TZ": "UTC"}
    env.pop("LOGD_CONFIG", None)
    heading, setup = blocks()[0]
    assert heading == "A demo log"
    result = subprocess.run(["bash", "-e", "-c", setup], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=120)
    try:
        assert result.returncode == 0, result.stderr
        assert re.search(r"\.log\.zst$", result.stdout, re.M), result.stdout  # it rotated into .zst backups
        with snapshot(folder / "logs" / "agent.log") as files:
            records = [orjson.loads(line) for batch in read_lines(list(files), print) for line in batch]
        records = [r for r in records if "seq" in r]
        assert len(records) == 1200
        yield env, records
    finally:
        stop_block = next(body for heading, body in blocks() if heading == "Stopping the demo")
        stop = subprocess.run(["bash", "-c", stop_block], env=env, capture_output=True, text=True)
        if stop.returncode != 0 and (folder / "logd.pid").exists():
            os.kill(int((folder / "logd.pid").read_text()), signal.SIGKILL)


def run(env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd="/", env=env, capture_output=True,
                          text=True, timeout=120)


def recipes() -> dict[str, tuple[str, str]]:
    """Recipe heading -> (SQL block, jq block)."""
    found: dict[str, list[str]] = {}
    for heading, body in blocks():
        found.setdefault(heading, []).append(body)
    names = ["Errors per agent per hour", "p95 duration_ms per tool", "Tokens per model",
             "A session's timeline", "Top error messages"]
    # the SQL section comes first; a later jq recipe of the same name is tests/test_jq_recipes.py's
    assert all(len(found[n]) >= 2 and "--sql" in found[n][0] and "jq" in found[n][1] for n in names)
    return {n: (found[n][0], found[n][1]) for n in names}


def table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert set(lines[1]) <= {"-", " "}, text  # header, rule, rows
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


def p95(values: list[float]) -> float:
    """quantile_cont: linear interpolation at (n - 1) * 0.95."""
    values = sorted(values)
    at = (len(values) - 1) * 0.95
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def test_errors_per_agent_per_hour(demo) -> None:
    env, records = demo
    expected = Counter((r["time"][:13], r["agent"]) for r in records if r["level"] == "error")
    sql, jq = recipes()["Errors per agent per hour"]
    got = run(env, sql)
    assert got.returncode == 0, got.stderr
    assert {(h[:10] + "T" + h[11:13], a): int(n) for h, a, n in table_rows(got.stdout)} == expected
    got = run(env, jq)
    assert {(h, a): int(n) for n, h, a in (re.split(r"\s+", line.strip()) for line in got.stdout.splitlines())} \
        == expected


def test_p95_duration_per_tool(demo) -> None:
    env, records = demo
    tools = sorted({r["tool"] for r in records if "tool" in r})
    expected = {t: (len(d), p95(d)) for t in tools for d in [[r["duration_ms"] for r in records if r.get("tool") == t]]}
    sql, jq = recipes()["p95 duration_ms per tool"]
    for script, split in ((sql, None), (jq, "\t")):
        got = run(env, script)
        assert got.returncode == 0, got.stderr
        rows = table_rows(got.stdout) if split is None else [line.split(split) for line in got.stdout.splitlines()]
        assert [row[0] for row in rows] == tools
        for tool, calls, value in rows:
            assert int(calls) == expected[tool][0] and float(value) == pytest.approx(expected[tool][1], abs=0.05)


def test_tokens_per_model(demo) -> None:
    env, records = demo
    models = sorted({r["model"] for r in records if "model" in r})
    assert len(models) == 3
    expected = [[m, str(sum(r["tokens"]["prompt"] for r in records if r.get("model") == m)),
                 str(sum(r["tokens"]["completion"] for r in records if r.get("model") == m))] for m in models]
    sql, jq = recipes()["Tokens per model"]
    got = run(env, sql)
    assert list(csv.reader(io.StringIO(got.stdout))) == [["model", "prompt", "completion"], *expected]
    got = run(env, jq)
    assert list(csv.reader(io.StringIO(got.stdout))) == expected


def test_a_sessions_timeline(demo) -> None:
    env, records = demo
    mine = sorted((r for r in records if r["session_id"] == "sess-7"), key=lambda r: (r["time"], r["seq"]))
    expected = [[r["time"][11:19], r["agent"], r["level"], r["message"]] for r in mine]
    sql, jq = recipes()["A session's timeline"]
    got = run(env, sql)
    assert table_rows(got.stdout) == expected
    assert "計画者" in got.stdout
    got = run(env, jq)
    assert [line.split("\t") for line in got.stdout.splitlines()] == expected


def test_top_error_messages(demo) -> None:
    env, records = demo
    counts = Counter(r["message"] for r in records if r["level"] == "error")
    expected = [{"message": m, "n": n} for m, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:5]
    sql, jq = recipes()["Top error messages"]
    for script in (sql, jq):
        got = run(env, script)
        assert [orjson.loads(line) for line in got.stdout.splitlines()] == expected, got.stderr


def test_journalctl_examples_run(demo) -> None:
    env, records = demo
    script = next(body for heading, body in blocks() if heading == "journalctl's habits")
    got = run(env, script)
    assert got.returncode == 0 and got.stderr == "", got.stderr
    fields = [orjson.loads(line) for line in got.stdout.splitlines() if line.startswith("{")]
    assert [list(f) for f in fields] == [["time", "agent", "message"]] * 3
    assert [f["time"] for f in fields] == sorted((r["time"] for r in records), reverse=True)[:3]
    assert got.stdout.splitlines()[-2:] == ["tool timeout"] * 2  # -o cat


def test_bad_input_is_one_line_each_with_the_documented_exit_codes(demo) -> None:
    env, _ = demo
    script = next(body for heading, body in blocks() if heading == "Exit codes and bad input")
    got = run(env, script)
    lines = (got.stderr + got.stdout).splitlines()
    assert [line for line in lines if line.startswith("exit ")] == ["exit 2", "exit 2", "exit 1"]
    errors = [line for line in lines if line.startswith("logd: error: ")]
    assert len(errors) == 3 and len(lines) == 6, lines
    assert "cannot read time 'last tuesday'" in errors[0] and "bad SQL" in errors[1] and "/no/such/folder" in errors[2]
