"""`logd bench --peers` runs logd and its peers (rsyslog raw and with mmjsonparse, syslog-ng raw and
with json-parser, socat) on the same workload and checks every record; this asserts the
comparison itself works, not speed. `--mix` adds the agent-dialect workload of
logd.bench.dialects, whose shapes are checked here against the real Python libraries."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import orjson
from loguru import logger
from pythonjsonlogger.json import JsonFormatter

from logd.bench.dialects import DIALECTS, make_mixed

LOSSLESS = ("logd, default pipeline", "rsyslog (imptcp -> omfile)", "rsyslog + mmjsonparse", "syslog-ng (raw)",
            "syslog-ng + json-parser")


def test_peers_bench_runs_every_server_on_both_workloads_and_loses_nothing():
    result = subprocess.run([sys.executable, "-m", "logd", "bench", "--peers", "--mix", "--records", "4000",
                             "--runs", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    canonical, mixed = orjson.loads(result.stdout)
    assert "records in logd's shape" in canonical["title"] and "mixed agent dialects" in mixed["title"]
    for report in (canonical, mixed):
        rows = {row["name"]: row for row in report["rows"]}
        assert set(rows) == {*LOSSLESS, "socat (copies bytes)", "asyncio pass-through (no parsing)"}
        for name in LOSSLESS:
            assert rows[name]["lost"] == 0, (report["title"], name)  # every record of every client is in the file
        assert {"logd / rsyslog + mmjsonparse", "logd / syslog-ng (raw)"} <= set(report["ratios"])
        assert any(note.startswith("peak RSS: logd, default pipeline") for note in report["notes"])
    assert "logd >= 1x syslog-ng (raw)" in mixed["target"] and ">= 90% of records" in mixed["target"]
    (share,) = [note for note in mixed["notes"] if note.startswith("records that took logd's compiled path")]
    assert 0.0 < float(share.split(": ")[1].split("%")[0]) <= 100.0  # logd's own shape (15%) takes it today


def _keys(value: object) -> object:
    """The shape of a JSON value: its keys, nested, without the values."""
    if isinstance(value, dict):
        return {key: _keys(v) for key, v in value.items()}
    return type(value).__name__ if value is not None else None


def test_loguru_and_python_json_logger_dialects_are_what_the_libraries_write():
    out = io.StringIO()
    sink = logger.add(out, serialize=True)
    try:
        logger.bind(agent="planner", client=0, seq=3).info("Calling tool")
    finally:
        logger.remove(sink)
    real = json.loads(out.getvalue())
    ours = json.loads(DIALECTS["loguru"](0, 3, False))
    assert _keys(ours) == _keys(real)

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("agents.planner")
    log.addHandler(handler)
    try:
        log.warning("Calling tool", extra={"agent": "planner", "tool": "web_search", "client": 0, "seq": 3})
    finally:
        log.removeHandler(handler)
    real_line = out.getvalue().strip().encode()
    ours_line = DIALECTS["python-json-logger"](0, 3, False)
    assert list(json.loads(ours_line)) == list(json.loads(real_line))
    assert ours_line[:15] == real_line[:15]  # json.dumps spacing: '{"asctime": "20'


def test_mixed_workload_is_the_stated_proportions_with_a_few_errors():
    lines = make_mixed(3300, client=2).splitlines()
    assert len(lines) == 3300 and all(b'"client": 2' in line or b'"client":2' in line for line in lines)
    zap = [line for line in lines if line.startswith(b'{"level":') and b'"ts":' in line]
    assert len(zap) == 12 * 33  # 12% of the records
    errors = [line for line in lines if b'"error"' in line or b'"ERROR"' in line]
    assert len(errors) == 100  # 1 in 33
