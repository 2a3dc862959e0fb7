"""logd run the way systemd runs it: notify socket, socket activation on fd 3, watchdog, units."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from logd import paths

from support import agent_records, wait_for, write_config

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"

# Starts logd exactly as systemd would: the listening socket on fd 3, LISTEN_PID = our pid.
ACTIVATE = r"""
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "logd.socket"
os.execv(sys.executable, [sys.executable, "-m", "logd", "run", "--config", sys.argv[2]])
"""


class NotifySocket:
    """A stand-in for systemd's notify socket that records every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def states(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(sock_dir):
    n = NotifySocket(sock_dir / "notify.sock")
    yield n
    n.close()


def test_readiness_reload_and_stopping_are_reported(daemon, notify):
    d = daemon(env={"NOTIFY_SOCKET": str(notify.path)})
    wait_for(lambda: "READY=1" in notify.states(), what="READY=1")
    assert f"MAINPID={d.proc.pid}" in notify.states()
    assert f"STATUS=listening on {d.socket_path}" in notify.states()
    d.signal(signal.SIGHUP)
    wait_for(lambda: notify.states().count("READY=1") == 2, what="READY=1 after the reload")
    states = notify.states()
    reloading = states.index("RELOADING=1")
    assert any(s.startswith("MONOTONIC_USEC=") for s in states[reloading:])
    assert states.index("READY=1", reloading) > reloading
    assert d.stop() == 0
    assert "STOPPING=1" in notify.states()


def test_abstract_notify_socket_is_supported(daemon):
    name = f"logd-test-{os.getpid()}-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(10)
    try:
        daemon(env={"NOTIFY_SOCKET": "@" + name})
        assert b"READY=1" in s.recv(4096)
    finally:
        s.close()


def test_watchdog_pings_when_watchdog_usec_is_set(daemon, notify):
    daemon(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})  # 0.2 s: ping every 0.1 s
    wait_for(lambda: notify.states().count("WATCHDOG=1") >= 3, what="three watchdog pings")


def test_no_watchdog_pings_for_another_process(daemon, notify):
    d = daemon(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    wait_for(lambda: "READY=1" in notify.states(), what="READY=1")
    d.stop()
    assert "WATCHDOG=1" not in notify.states()


def _listening_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    os.chmod(path, 0o660)
    s.listen(128)
    return s


def _start_activated(listener: socket.socket, config: Path, workdir: Path, log_name: str) -> subprocess.Popen:
    with open(workdir / log_name, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", ACTIVATE, str(listener.fileno()), str(config)],
                                pass_fds=(listener.fileno(),), stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_COLOR": "1"})


class ReconnectingSender(threading.Thread):
    """A client that, like logd's own client library, resends a line whose write failed."""

    def __init__(self, path: Path, client: int, count: int) -> None:
        super().__init__()
        self.path, self.client, self.count = path, client, count
        self.reconnects = 0

    def _connect(self) -> socket.socket:
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.path))
                return s
            except OSError:
                s.close()
                time.sleep(0.01)

    def run(self) -> None:
        s = self._connect()
        i = 0
        while i < self.count:
            line = orjson.dumps({"msg": "m", "client": self.client, "seq": i}) + b"\n"
            try:
                s.sendall(line)
                i += 1
                if i % 100 == 0:
                    time.sleep(0.001)
            except OSError:  # logd shut our connection's read side: this line was not taken
                s.close()
                self.reconnects += 1
                s = self._connect()
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()


def test_socket_activation_and_restart_lose_nothing(tmp_path, sock_dir):
    path = sock_dir / "logd.sock"
    listener = _listening_socket(path)
    config = write_config(tmp_path, sock_dir / "ignored.sock", 'file = "agent.log"')
    first = _start_activated(listener, config, tmp_path, "first.out")
    senders = [ReconnectingSender(path, c, 20_000) for c in range(4)]
    for s in senders:
        s.start()
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) > 5_000, 30, what="records through the first logd")
    first.send_signal(signal.SIGTERM)  # a restart: systemd keeps the listening socket open meanwhile
    assert first.wait(30) == 0
    assert path.exists()  # an activated socket belongs to systemd; logd must not remove it
    second = _start_activated(listener, config, tmp_path, "second.out")
    try:
        for s in senders:
            s.join(60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
        listener.close()
    recs = agent_records(tmp_path / "agent.log")
    for s in senders:
        seqs = [r["seq"] for r in recs if r.get("client") == s.client and not r.get("_partial")]
        assert seqs == list(range(s.count))  # every line exactly once, in order, across the restart
    assert any(s.reconnects for s in senders)  # the restart really happened under load
    own = [line for line in (tmp_path / "agent.log").read_bytes().splitlines() if b'"event":"start"' in line]
    assert len(own) == 2 and all(orjson.loads(line)["socket_activated"] for line in own)


def test_service_unit_has_the_promised_settings():
    service = (UNITS / "logd.service").read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec=",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "RuntimeDirectory=logd", "RuntimeDirectoryPreserve=yes", "StateDirectory=logd",
                 "LogsDirectory=logd", "ReadWritePaths=", "User=logd"):
        assert line in service, line
    writable = [line.split("=", 1)[1].split() for line in service.splitlines() if line.startswith("ReadWritePaths=")]
    assert writable == [list(paths.SERVICE_WRITABLE)]  # what `logd check` holds the system config to
    socket_unit = (UNITS / "logd.socket").read_text()
    assert "ListenStream=/run/logd/logd.sock" in socket_unit and "SocketMode=0660" in socket_unit


def test_a_read_only_folder_fails_the_start_with_the_services_writable_folders(tmp_path, sock_dir):
    """Read-only to logd (as ProtectSystem=strict makes every folder but logd.service's own): the
    start fails naming the file, the reason and where the service may write. A real read-only
    mount, in a mount namespace of the test's own."""
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, sock_dir / "logd.sock", f'file = "{logs}/agent.log"')
    script = f'mount -t tmpfs -o ro tmpfs {logs} && exec {sys.executable} -m logd run --config {config}'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert (f"cannot open {logs}/agent.log: Read-only file system (logd.service may write only below "
            "/var/log/logd, /var/lib/logd, /run/logd; `logd check` names the drop-in") in result.stderr
    assert "Traceback" not in result.stderr
