"""The service split by role, with real users: an agent (group logd-writers) may send but not read
the log; a reader (group logd-readers) may read it and run `logd status`, not `logd reload`.
The daemon runs as its own user with readers as its primary group and UMask 0027, as
systemd/logd.service runs it; logd is installed into a venv of Debian's python3 like a system
install, so the unprivileged users can run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support import account_name, accounts, can_connect, wait_for

ROOT = Path(__file__).resolve().parent.parent
WRITERS, READERS = account_name("logdt-writers"), account_name("logdt-readers")
SERVICE, AGENT, READER = account_name("logdt-svc"), account_name("logdt-agent"), account_name("logdt-reader")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def users():
    assert os.geteuid() == 0, "this test creates real users with useradd: CI runs it as root"
    with accounts() as add:
        for group in (WRITERS, READERS):
            add("group", group, "--system")
        for user, options in ((SERVICE, ["--gid", READERS]), (AGENT, ["--groups", WRITERS]),
                              (READER, ["--groups", READERS])):
            add("user", user, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", *options)
        yield


@pytest.fixture(scope="module")
def system_install(tmp_path_factory):
    """logd in a venv of /usr/bin/python3 under /tmp (readable by every user)."""
    base = Path(tempfile.mkdtemp(prefix="logd-roles-", dir="/tmp"))
    base.chmod(0o755)
    venv = base / "venv"
    _run("/usr/bin/python3", "-m", "venv", str(venv))
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                             str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    yield base, venv / "bin" / "logd"
    shutil.rmtree(base, ignore_errors=True)


def as_user(user: str, *cmd: str, group: str | None = None) -> subprocess.CompletedProcess[str]:
    ids = ["--reuid", user, "--regid", group or user, "--init-groups"] if group is None else \
        ["--reuid", user, "--regid", group, "--groups", WRITERS]
    return subprocess.run(["setpriv", *ids, "--", *cmd], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})


def test_agent_sends_but_cannot_read_reader_reads_and_asks_status(users, system_install):
    base, logd = system_install
    run_dir, log_dir = base / "run", base / "log"
    run_dir.mkdir()
    log_dir.mkdir()
    shutil.chown(run_dir, SERVICE, READERS)
    shutil.chown(log_dir, SERVICE, READERS)
    log_dir.chmod(0o750)
    sock = run_dir / "logd.sock"
    config = base / "agentflow.toml"
    config.write_text(f'[logging]\nfile = "{log_dir}/agent.log"\nfile_only = true\n\n'
                      f'[logging.socket]\npath = "{sock}"\nmode = 0o660\ngroup = "{WRITERS}"\n'
                      f'control_group = "{READERS}"\n')
    config.chmod(0o644)
    daemon = subprocess.Popen(["setpriv", "--reuid", SERVICE, "--regid", READERS, "--groups", WRITERS, "--",
                               "/bin/sh", "-c", f'umask 0027; exec "{logd}" run --config "{config}"'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: daemon.poll() is None and can_connect(sock) and can_connect(run_dir / "logd.ctl"), 20,
                 what="logd running as its own user")
        sent = as_user(AGENT, str(logd), "send", "--socket", str(sock), "hello from an agent")
        assert sent.returncode == 0, sent.stderr
        log = log_dir / "agent.log"
        wait_for(lambda: log.exists() and b"hello from an agent" in log.read_bytes(), what="the record")

        assert as_user(AGENT, "cat", str(log)).returncode != 0  # writers cannot read the log
        agent_status = as_user(AGENT, str(logd), "status", "--socket", str(sock))
        assert agent_status.returncode == 1 and "permission denied" in agent_status.stderr

        read = as_user(READER, "cat", str(log))
        assert read.returncode == 0 and "hello from an agent" in read.stdout
        status = as_user(READER, str(logd), "status", "--socket", str(sock))
        assert status.returncode == 0, status.stderr
        assert "received" in status.stdout
        reload = as_user(READER, str(logd), "reload", "--socket", str(sock))
        assert reload.returncode == 1 and "'reload' is for the daemon's user or root" in reload.stderr
        # and readers cannot send: the data socket is the writers' group
        assert as_user(READER, str(logd), "send", "--socket", str(sock), "x").returncode == 1
    finally:
        daemon.terminate()
        out, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, err


def test_install_script_creates_the_users_groups_units_and_docs(tmp_path):
    env = {**os.environ, "DESTDIR": str(tmp_path), "LOGD_BIN": "/usr/bin/logd"}
    subprocess.run(["sh", str(ROOT / "systemd" / "install.sh")], check=True, env=env, capture_output=True,
                   timeout=60)
    passwd = (tmp_path / "etc" / "passwd").read_text()
    groups = {line.split(":")[0]: line.split(":")[2] for line in (tmp_path / "etc" / "group").read_text().splitlines()}
    assert {"logd-writers", "logd-readers"} <= set(groups)
    logd_line = next(line for line in passwd.splitlines() if line.startswith("logd:"))
    assert logd_line.split(":")[3] == groups["logd-readers"]  # files it makes belong to readers
    service = (tmp_path / "etc" / "systemd" / "system" / "logd.service").read_text()
    assert "ExecStart=/usr/bin/logd run" in service and "Group=logd-readers" in service
    assert "SocketGroup=logd-writers" in (tmp_path / "etc" / "systemd" / "system" / "logd.socket").read_text()
    assert (tmp_path / "usr" / "share" / "doc" / "logd" / "README.md").exists()  # Documentation= points here
    assert 'control_group = "logd-readers"' in (tmp_path / "etc" / "logd" / "agentflow.toml").read_text()
