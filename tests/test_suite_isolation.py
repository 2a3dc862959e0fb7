"""The suite isolates itself from the user's own logd (issue 29, item 1): README's quick start has
`make run` up while `make test` runs. Here the tests that once failed beside a live daemon run
in a session that has everything a user's may have: a per-user daemon on the default socket with
records of its own, LOGD_SOCKET and LOGD_CONFIG pointing at it, an agentflow.toml in the working
folder. CI runs the whole suite that way too (.ci/run starts `make run` first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import DaemonProcess, send_records, wait_for

ROOT = Path(__file__).resolve().parent.parent
ONCE_FAILING = ["tests/test_query.py::test_query_finds_the_file_through_the_config",
                "tests/test_query.py::test_no_file_configured_is_a_clear_error",
                "tests/test_jq_recipes.py::test_recipe[Errors in the last hour]",
                "tests/test_discovery.py::test_the_socket_rule_step_by_step"]


def test_tests_do_not_see_the_users_daemon_config_or_variables(tmp_path: Path, sock_dir: Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    config = session / "agentflow.toml"  # the user's, in the folder they run `make test` from
    config.write_text('[logging]\nfile = "logs/agent.log"\n')
    user_socket = sock_dir / "logd" / "logd.sock"
    daemon = DaemonProcess(config, user_socket, session, env={"XDG_RUNTIME_DIR": str(sock_dir)}).start()
    try:
        send_records(user_socket, [{"level": "error", "message": "the user's own record", "agent": "planner"}])
        wait_for(lambda: b"the user's own record" in (session / "logs" / "agent.log").read_bytes()
                 if (session / "logs" / "agent.log").exists() else False, what="the user's record in their file")
        env = {**os.environ, "XDG_RUNTIME_DIR": str(sock_dir), "LOGD_SOCKET": str(user_socket),
               "LOGD_CONFIG": str(config), "LOGD_DAEMON_USER": "root"}
        inner = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                                *(str(ROOT / test) for test in ONCE_FAILING)],
                               cwd=session, env=env, capture_output=True, text=True, timeout=300)
        assert inner.returncode == 0, inner.stdout[-4000:] + inner.stderr[-2000:]
        assert f"{len(ONCE_FAILING)} passed" in inner.stdout
    finally:
        assert daemon.stop() == 0
    # and nothing of the suite reached the user's daemon
    assert [line for line in (session / "logs" / "agent.log").read_text().splitlines()
            if '"agent":"logd"' not in line and "the user's own record" not in line] == []
