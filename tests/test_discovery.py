"""One rule finds logd for the CLI and for every client (logd/paths.py; issue 29, item 4): a
per-user daemon the user started is never passed over for the system config, and `logd status`
and `logd send --verbose` say which socket (and config) they chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from logd.paths import find_config, find_socket

from support import DaemonProcess, agent_records, wait_for


def test_the_config_search_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"LOGD_SYSTEM_ROOT": str(tmp_path / "root")}
    system = tmp_path / "root" / "etc" / "logd" / "agentflow.toml"
    assert find_config(None, env).path is None
    system.parent.mkdir(parents=True)
    system.write_text("[logging]\n")
    assert find_config(None, env).path == system and find_config(None, env, system=False).path is None
    (tmp_path / "agentflow.toml").write_text("[logging]\n")
    assert find_config(None, env).path == Path("agentflow.toml")
    assert find_config(None, {**env, "LOGD_CONFIG": "/x.toml"}).path == Path("/x.toml")
    assert find_config("given.toml", {**env, "LOGD_CONFIG": "/x.toml"}) == find_config("given.toml", {})
    assert find_config("given.toml", {}).why == "--config"


def test_the_socket_rule_step_by_step(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "run" / "logd" / "logd.sock"
    system = tmp_path / "root" / "run" / "logd" / "logd.sock"
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "LOGD_SYSTEM_ROOT": str(tmp_path / "root")}
    # 6: nothing runs: the per-user path, and the error says so
    assert find_socket(env=env).path == user and "no socket there" in find_socket(env=env).why
    # 5: a system-wide logd, no per-user one
    system.parent.mkdir(parents=True)
    system.touch()
    assert find_socket(env=env).path == system
    # 4: the user's own daemon wins over the system one
    user.parent.mkdir(parents=True)
    user.touch()
    assert find_socket(env=env).path == user and find_socket(env=env).why == "the per-user socket"
    # 3: $LOGD_SOCKET
    assert find_socket(env={**env, "LOGD_SOCKET": "/x.sock"}).path == Path("/x.sock")
    # 2: the socket the daemon's config names: ./agentflow.toml, $LOGD_CONFIG, --config (relative to it)
    (tmp_path / "agentflow.toml").write_text('[logging.socket]\npath = "here.sock"\n')
    found = find_socket(env={**env, "LOGD_SOCKET": "/x.sock"})
    assert found.path == tmp_path / "here.sock" and found.config == Path("agentflow.toml")
    (tmp_path / "other.toml").write_text('[logging.socket]\npath = "/elsewhere/other.sock"\n')
    assert find_socket(env={**env, "LOGD_CONFIG": str(tmp_path / "other.toml")}).path == Path("/elsewhere/other.sock")
    assert find_socket(config=tmp_path / "other.toml", env=env).path == Path("/elsewhere/other.sock")
    (tmp_path / "plain.toml").write_text('[logging]\nlevel = "info"\n')  # names no socket: on to step 3
    assert find_socket(config=tmp_path / "plain.toml", env=env).path == user
    # 1: --socket
    assert find_socket("/given.sock", tmp_path / "other.toml", env).path == Path("/given.sock")


def test_cli_and_python_client_reach_the_per_user_daemon_when_a_system_config_exists(tmp_path: Path,
                                                                                    sock_dir: Path) -> None:
    """The bug: once /etc/logd/agentflow.toml existed, the CLI sent to /run/logd and read
    /var/log/logd while the Python handler kept the per-user daemon. Now both reach it."""
    system = tmp_path / "system"
    (system / "etc" / "logd").mkdir(parents=True)
    (system / "etc" / "logd" / "agentflow.toml").write_text(f'[logging]\nfile = "{system}/var/log/logd/agent.log"\n'
                                                           f'[logging.socket]\npath = "{system}/run/logd/logd.sock"\n')
    user_socket = sock_dir / "logd" / "logd.sock"
    config = tmp_path / "dev.toml"  # `make run`'s: names no socket, so logd takes the per-user one
    config.write_text('[logging]\nfile = "logs/agent.log"\n')
    env = {**os.environ, "XDG_RUNTIME_DIR": str(sock_dir), "LOGD_SYSTEM_ROOT": str(system), "NO_COLOR": "1"}
    d = DaemonProcess(config, user_socket, tmp_path, env={"XDG_RUNTIME_DIR": str(sock_dir)}).start()
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60)

    try:
        sent = run(sys.executable, "-m", "logd", "send", "--verbose", "--field", "agent=cli", "from the cli")
        assert sent.returncode == 0, sent.stderr
        assert sent.stderr == f"logd: sending to {user_socket} (the per-user socket; config read: none)\n"
        python = run(sys.executable, "-c", "import logging, logd.client\n"
                     "logging.basicConfig(level=logging.INFO, handlers=[logd.client.LogdHandler("
                     "fields={'agent': 'python'})])\nlogging.getLogger('p').info('from python')\n")
        assert python.returncode == 0, python.stderr
        wait_for(lambda: {r.get("agent") for r in agent_records(tmp_path / "logs" / "agent.log")} >= {"cli", "python"},
                 what="both records in the per-user daemon's file")
        queried = run(sys.executable, "-m", "logd", "query", "--output-fields", "agent,message")
        assert queried.returncode == 0, queried.stderr
        assert [orjson.loads(line) for line in queried.stdout.splitlines() if '"agent":"logd"' not in line] == [
            {"agent": "cli", "message": "from the cli"}, {"agent": "python", "message": "from python"}]
        status = run(sys.executable, "-m", "logd", "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"reached:\n  socket: {user_socket}\n  by: the per-user socket\n"
                                        "  config_read: None\n")
        assert f"\nconfig: {config}\n" in status.stdout
    finally:
        assert d.stop() == 0
