"""Real Go agents logging to a real `logd run` take the compiled path (issue 31).

zerolog and zap (Debian's packages, built once per session) write to logd's Unix socket as
they write anywhere: zerolog with the level first and the time last, in the machine's zone (an
offset) or as epoch milliseconds; zap's production encoder with `ts` as epoch seconds, `msg`,
durations in seconds, control characters as \\u00xx. `logd status` must count every line on the
hot path, and the file must hold, byte for byte in its fields and their order, the records the
Python path makes of the same lines (each program writes its lines to standard output too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from logd.record import TRUSTED_FIELDS, parse_line

from support import read_records, wait_for

GO_PATH = "/usr/share/gocode"  # Debian's golang-github-rs-zerolog-dev and golang-go.uber-zap-dev
PROGRAMS = Path(__file__).parent / "go"
LINES = 400


@pytest.fixture(scope="session")
def go_agents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("go-agents")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{folder / 'gopath'}:{GO_PATH}",
           "GOCACHE": str(folder / "cache"), "GOFLAGS": ""}
    built = {}
    for name in ("zerolog_agent", "zap_agent"):
        binary = folder / name
        result = subprocess.run(["go", "build", "-o", str(binary), str(PROGRAMS / name / "main.go")], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"go build {name} failed\n{result.stderr}"
        built[name] = binary
    return built


@pytest.mark.parametrize(("program", "args", "zone"), [
    ("zerolog_agent", ["rfc3339"], "Asia/Kolkata"),  # "time":"2026-...T15:42:07+05:30"
    ("zerolog_agent", ["nano"], "America/St_Johns"),  # RFC3339Nano, -03:30 or -02:30
    ("zerolog_agent", ["unixms"], "UTC"),  # "time":1764410000123
    ("zap_agent", [], "UTC"),
], ids=["zerolog", "zerolog-nano", "zerolog-unixms", "zap"])
def test_a_real_go_agents_lines_take_the_hot_path_and_make_pythons_records(
        daemon, tmp_path: Path, go_agents: dict[str, Path], program: str, args: list[str], zone: str) -> None:
    d = daemon('file = "agent.log"\nlevel = "debug"')
    ran = subprocess.run([str(go_agents[program]), str(d.socket_path), str(LINES), *args],
                         env={**os.environ, "TZ": zone}, capture_output=True, timeout=60, check=True)
    sent = ran.stdout.splitlines()
    assert len(sent) == LINES
    log = tmp_path / "agent.log"
    records = wait_for(lambda: (lambda rs: len(rs) >= LINES and rs)([r for r in read_records(log) if "seq" in r]),
                       what="the Go agent's records")
    status = orjson.loads(subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket",
                                          str(d.socket_path)], capture_output=True, text=True, check=True).stdout)
    assert status["hot_path"] == {"on": True, "records": LINES, "trace_entries": 0}
    trusted = {k: v for k, v in records[0].items() if k in TRUSTED_FIELDS}
    assert trusted["_pid"] > 0
    expected = [parse_line(line, "2000-01-01T00:00:00.000000Z", trusted) for line in sent]
    assert [list(r.items()) for r in records] == [list(r.items()) for r in expected]
    assert records[0]["note"] == 'naïve café ☕ "quoted"\ttab' + ("\x01" if program == "zap_agent" else "")
    assert {r["level"] for r in records} == {"debug", "info"} | ({"warn"} if program == "zerolog_agent" else set())
