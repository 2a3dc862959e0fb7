"""The "Query with jq" recipes, taken from docs/reading.md and run as written with real
jq and `logd query` on a generated, rotated log; each output is checked against the data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import orjson
import pytest

from logd.levels import RANK

from logsets import lines, write

README = Path(__file__).resolve().parent.parent / "docs" / "reading.md"
AGENTS = ("planner", "researcher", "writer", "critic")
MESSAGES = ("LLM call failed", "tool timeout", "rate limited", "bad tool output", "context too long", "index missing")


def recipes() -> dict[str, str]:
    """Heading -> shell block of each recipe under "## Query with jq"."""
    text = README.read_text()
    section = text.split("\n## Query with jq\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for part in section.split("\n### ")[1:]:
        heading, body = part.split("\n", 1)
        blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
        assert len(blocks) == 1, f"recipe {heading!r} should have one sh block"
        found[heading.strip()] = blocks[0]
    return found


def generate(now: float) -> list[dict]:
    """Three hours of records up to ``now``, in write order, none near the one-hour edge."""
    recs = []
    start = now - 3 * 3600
    for i in range(600):
        t = start + i * 18  # 18 s apart: 10800 s in all
        if abs(t - (now - 3600)) < 300:
            continue
        level = ("error" if i % 7 == 0 else "fatal" if i % 97 == 0 else "warn" if i % 5 == 0
                 else "debug" if i % 11 == 0 else "info")
        rec = {"time": t, "level": level, "message": MESSAGES[(i * i) % len(MESSAGES)] if level in ("error", "fatal")
               else f"step {i}", "agent": AGENTS[i % 4], "session_id": f"sess-{i % 50}", "seq": i}
        if i % 3:
            rec["duration_ms"] = (i * 7919) % 100_003  # distinct values
        if i % 50 == 1:
            del rec["agent"]  # some records carry no agent
        recs.append(rec)
    from logd.timestamps import format_epoch
    for rec in recs:
        rec["time"] = format_epoch(rec["time"])
    return recs


@pytest.fixture(scope="module")
def logset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], float]:
    folder = tmp_path_factory.mktemp("jq")
    logs = folder / "logs"
    logs.mkdir()
    now = time.time()
    recs = generate(now)
    cut = [0, 200, 350, 450, len(recs)]
    names = ("agent.log.3.zst", "agent.log.2.gz", "agent.log.1", "agent.log")
    for (a, b), name in zip(pairwise(cut), names, strict=True):
        write(logs / name, lines(recs[a:b]))
    (folder / "agentflow.toml").write_text('[logging]\nfile = "logs/agent.log"\n')
    return folder, recs, now


def run_recipe(folder: Path, script: str) -> str:
    assert shutil.which("jq"), "jq is installed by .ci/setup --test"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def errors_in_the_last_hour(out: str, recs: list[dict], now: float) -> None:
    from logd.timestamps import format_epoch
    edge = format_epoch(now - 3600)
    expected = [f"{r['time']}\t{r['agent']}\t{r['message']}" for r in recs
                if r["time"] >= edge and RANK[r["level"]] >= RANK["error"]]
    assert out.splitlines() == expected
    assert len(expected) > 5 and any(r["level"] == "fatal" and r["time"] >= edge for r in recs)


def counts_per_agent_and_level(out: str, recs: list[dict], now: float) -> None:
    counts: dict[str, Counter] = {}
    for r in recs:
        counts.setdefault(r.get("agent", "-"), Counter())[r["level"]] += 1
    assert orjson.loads(out) == {agent: dict(c) for agent, c in counts.items()}
    assert "-" in counts


def one_sessions_timeline(out: str, recs: list[dict], now: float) -> None:
    expected = [f"{r['time'][11:23]} {r.get('agent', 'null')} {r['level']} {r['message']}"
                for r in recs if r["session_id"] == "sess-42"]
    assert out.splitlines() == expected and len(expected) >= 10


def slowest_operations(out: str, recs: list[dict], now: float) -> None:
    timed = [r for r in recs if "duration_ms" in r]
    top = sorted(timed, key=lambda r: -r["duration_ms"])[:5]
    expected = [{"duration_ms": r["duration_ms"], "agent": r.get("agent"), "message": r["message"], "time": r["time"]}
                for r in top]
    assert [orjson.loads(line) for line in out.splitlines()] == expected


def top_error_messages(out: str, recs: list[dict], now: float) -> None:
    counts = Counter(r["message"] for r in recs if RANK[r["level"]] >= RANK["error"])
    ranked = sorted(sorted(counts.items()), key=lambda kv: -kv[1])[:5]  # jq: group_by sorts, sort_by is stable
    assert out.splitlines() == [f"{n}\t{message}" for message, n in ranked]


CHECKS: dict[str, Callable[[str, list[dict], float], None]] = {
    "Errors in the last hour": errors_in_the_last_hour,
    "Counts per agent and level": counts_per_agent_and_level,
    "One session's timeline": one_sessions_timeline,
    "Slowest operations by duration_ms": slowest_operations,
    "Top error messages": top_error_messages,
}


def test_every_recipe_in_the_readme_is_checked() -> None:
    assert set(recipes()) == set(CHECKS)


@pytest.mark.parametrize("heading", list(CHECKS))
def test_recipe(heading: str, logset: tuple[Path, list[dict], float]) -> None:
    folder, recs, now = logset
    script = recipes()[heading]
    assert "logd query" in script and "jq" in script
    CHECKS[heading](run_recipe(folder, script), recs, now)
