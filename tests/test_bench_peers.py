"""`logd bench --peers` runs logd and its peers (rsyslog raw and with mmjsonparse, socat) on the
same workload and checks every record; this asserts the comparison itself works, not speed."""

from __future__ import annotations

import subprocess
import sys

import orjson


def test_peers_bench_runs_every_server_and_loses_nothing():
    result = subprocess.run([sys.executable, "-m", "logd", "bench", "--peers", "--records", "4000", "--runs", "1",
                             "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (report,) = orjson.loads(result.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"logd, default pipeline", "rsyslog (imptcp -> omfile)", "rsyslog + mmjsonparse",
                         "socat (copies bytes)", "asyncio pass-through (no parsing)"}
    for name in ("logd, default pipeline", "rsyslog (imptcp -> omfile)", "rsyslog + mmjsonparse"):
        assert rows[name]["lost"] == 0, name  # every record of every client reached the file
    assert "logd / rsyslog + mmjsonparse" in report["ratios"] and "logd / socat (copies bytes)" in report["ratios"]
    assert any(note.startswith("peak RSS: logd, default pipeline") for note in report["notes"])
