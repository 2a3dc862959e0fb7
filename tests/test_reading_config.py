"""`logd query/tail/list/trace` find the files of the running daemon (control command
`config`), then fall back to the config search order, and say what they tried."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from logd.control import request

from support import send_records
from trace_samples import agk_session


def logd(*args: str, cwd: Path, sock: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "LOGD_SOCKET": str(sock)}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def test_reading_commands_ask_the_running_daemon_for_its_files(daemon, tmp_path: Path, sock_dir: Path) -> None:
    d = daemon('file = "logs/agent.log"\n[logging.traces]\ndir = "tr"')
    reply = request(d.socket_path, "config")
    assert reply["config"] == str(d.config) and reply["file"] == str(tmp_path / "logs" / "agent.log")
    assert reply["traces_dir"] == str(tmp_path / "tr")
    send_records(d.socket_path, [{"message": f"m{i}", "agent": "a", "seq": i} for i in range(3)] + agk_session())
    elsewhere = sock_dir  # no agentflow.toml here: only the daemon knows
    queried = logd("query", "--agent", "a", cwd=elsewhere, sock=d.socket_path)
    assert queried.returncode == 0, queried.stderr
    assert [orjson.loads(line)["seq"] for line in queried.stdout.splitlines()] == [0, 1, 2]
    tailed = logd("tail", "-n", "1", "--json", "--agent", "a", cwd=elsewhere, sock=d.socket_path)
    assert tailed.returncode == 0 and orjson.loads(tailed.stdout)["seq"] == 2
    listed = logd("list", "--format", "json", cwd=elsewhere, sock=d.socket_path)
    assert "req-17461596" in [s["session"] for s in orjson.loads(listed.stdout)], listed.stderr
    shown = logd("trace", "req-17461596", cwd=elsewhere, sock=d.socket_path)
    assert shown.returncode == 0 and "AgentError" in shown.stdout


def test_without_a_daemon_or_config_the_error_names_what_was_tried(tmp_path: Path, sock_dir: Path) -> None:
    result = logd("query", cwd=tmp_path, sock=sock_dir / "none.sock")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("logd: error: no log file found; tried ")
    for tried in ("a running daemon", str(sock_dir / "none.sock"), "$LOGD_CONFIG (unset)", "./agentflow.toml",
                  "/etc/logd/agentflow.toml", "--file"):
        assert tried in result.stderr, tried
