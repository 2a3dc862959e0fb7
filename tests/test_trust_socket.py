"""Issue 18, finding 2: nobody takes over the socket. Another, real local user (made with
``useradd``) pre-creates the socket folder 0777 or serves their own socket; logd refuses
to start there, and ``logd send`` and the client library refuse to send to it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logd.client.sender import Sender

from support import DaemonProcess, account_name, accounts, wait_for, write_config

OTHER = account_name("logdtrust")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a second user (useradd)")

# the other user's listener: accepts one client and keeps every byte it receives
ATTACKER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
open(sys.argv[2] + ".ready", "w").close()
s.settimeout(30)
got = b""
try:
    while True:
        c, _ = s.accept(); c.settimeout(5)
        while True:
            d = c.recv(65536)
            if not d: break
            got += d
            open(sys.argv[2], "wb").write(got)
        c.close()
except OSError:
    pass
"""


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd]:
    with accounts() as add:
        add("user", OTHER, "--no-create-home", "--shell", "/usr/sbin/nologin")
        yield pwd.getpwnam(OTHER)


@pytest.fixture
def their_folder(other_user: pwd.struct_passwd) -> Iterator[Path]:
    """A folder the other user made first, open to everyone (mode 0777)."""
    base = Path(tempfile.mkdtemp(prefix="logd-u-", dir="/tmp"))
    os.chmod(base, 0o755)
    folder = base / "run"
    folder.mkdir()
    os.chown(folder, other_user.pw_uid, other_user.pw_gid)
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(base, ignore_errors=True)


_started: list[DaemonProcess] = []


@pytest.fixture(autouse=True)
def _stop_daemons() -> Iterator[None]:
    """A logd that started where it should have refused is not left running."""
    yield
    while _started:
        _started.pop().kill()


def run_logd(folder: Path, tmp_path: Path, extra: str = "") -> DaemonProcess:
    config = write_config(tmp_path, folder / "logd.sock", 'file = "agent.log"', extra)
    d = DaemonProcess(config, folder / "logd.sock", tmp_path).start(wait=False)
    _started.append(d)
    return d


def test_logd_refuses_a_socket_folder_another_user_owns(their_folder, tmp_path, other_user):
    d = run_logd(their_folder, tmp_path)
    assert d.proc.wait(15) == 1
    lines = d.stderr().strip().splitlines()
    assert lines == [f"logd: error: socket folder {their_folder} belongs to uid {other_user.pw_uid}, not to "
                     "logd's user (uid 0) or root: another user could replace the socket; remove it or "
                     "choose another [logging.socket] path"]
    assert not (their_folder / "logd.sock").exists()


def test_logd_refuses_its_own_folder_when_others_or_the_group_may_write_to_it(tmp_path, sock_dir):
    folder = sock_dir / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    d = run_logd(folder, tmp_path)
    assert d.proc.wait(15) == 1
    assert d.stderr().strip() == (f"logd: error: socket folder {folder} (mode 0777) is writable by others, "
                                  f"who could replace the socket: chmod go-w {folder}")
    os.chmod(folder, 0o770)
    d = run_logd(folder, tmp_path)
    assert d.proc.wait(15) == 1
    assert "shared_folder = true" in d.stderr().splitlines()[-1]
    d = run_logd(folder, tmp_path, extra="shared_folder = true\n")  # configured: a shared group runs agents
    wait_for(lambda: (folder / "logd.sock").exists(), what="logd to listen")
    assert d.stop() == 0


def start_attacker(folder: Path, out: Path, user: pwd.struct_passwd) -> subprocess.Popen:
    proc = subprocess.Popen(["/usr/bin/python3", "-c", ATTACKER, str(folder / "logd.sock"), str(out)],
                            user=user.pw_uid, group=user.pw_gid, cwd="/")
    wait_for(lambda: Path(str(out) + ".ready").exists(), what="the other user's socket")
    return proc


def test_logd_send_refuses_a_socket_served_by_another_user(their_folder, other_user):
    out = their_folder / "got"
    attacker = start_attacker(their_folder, out, other_user)
    try:
        sent = subprocess.run([sys.executable, "-m", "logd", "send", "--socket", str(their_folder / "logd.sock"),
                               "login ok", "--field", "password=hunter2"],
                              capture_output=True, text=True, timeout=30, env={**os.environ, "NO_COLOR": "1"})
        assert sent.returncode == 1
        assert sent.stderr.startswith(f"logd: error: refusing to send to {their_folder / 'logd.sock'}: it is served "
                                      f"by pid {attacker.pid} running as uid {other_user.pw_uid} ({OTHER})")
        # the client library too: records stay buffered, nothing reaches the other user
        sender = Sender(their_folder / "logd.sock", io_timeout=0.2, backoff_initial=0.01, backoff_cap=0.05)
        sender.put({"time": time.time(), "level": "info", "message": "login ok", "password": "hunter2"})
        assert sender.flush(timeout=0.5) is False and sender.connects == 0
        sender.close(timeout=0.1)
    finally:
        attacker.kill()
        attacker.wait(10)
    assert not out.exists() or out.read_bytes() == b""


def test_a_client_sends_when_logd_runs_as_the_named_daemon_user(their_folder, other_user, monkeypatch):
    """LOGD_DAEMON_USER names a service account: its socket is trusted."""
    out = their_folder / "got"
    attacker = start_attacker(their_folder, out, other_user)
    try:
        sent = subprocess.run([sys.executable, "-m", "logd", "send", "--socket", str(their_folder / "logd.sock"),
                               "hello"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "LOGD_DAEMON_USER": OTHER})
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: out.exists() and b"hello" in out.read_bytes(), what="the record")
    finally:
        attacker.kill()
        attacker.wait(10)
