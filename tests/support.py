"""Helpers for tests that drive a real ``logd run`` subprocess over a real Unix socket."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from logd.config import ConfigError, load_config


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def can_connect(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


# two suites may run on one machine at once: users and groups a test makes are this process's alone
RUN_ID = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"


def account_name(base: str) -> str:
    """``base`` made unique to this test process, within useradd's and groupadd's 32 characters."""
    name = f"{base}-{RUN_ID}"
    assert len(name) <= 32, f"account name {name!r} is longer than useradd allows"
    return name


@contextmanager
def accounts() -> Iterator[Callable[..., None]]:
    """``add("user"|"group", name, *options)`` makes a real account (useradd/groupadd, as root);
    every account made is deleted on leaving, also when a test or a later ``add`` failed."""
    made: list[tuple[str, str]] = []

    def add(kind: str, name: str, *options: str) -> None:
        result = subprocess.run([f"{kind}add", *options, name], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{kind}add {name} failed: {result.stderr}"
        made.append((kind, name))

    try:
        yield add
    finally:
        for kind, name in reversed(made):  # users before the groups they are in
            subprocess.run([f"{kind}del", name], capture_output=True, timeout=60)


def write_config(folder: Path, socket_path: Path, logging: str = "", extra: str = "") -> Path:
    """An agentflow.toml with a [logging] section (``logging`` is its body) and the socket path."""
    path = folder / "agentflow.toml"
    path.write_text(
        '[agent_flow]\nname = "test"\n\n[logging]\n'
        + logging.strip() + "\n\n"
        + f'[logging.socket]\npath = "{socket_path}"\n'
        + extra
    )
    return path


class DaemonProcess:
    """A ``logd run`` subprocess; stdout and stderr are captured to files for assertions."""

    def __init__(self, config: Path | None, socket_path: Path, workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.socket_path = socket_path
        self.workdir = workdir
        self.stdout_path = workdir / "daemon.stdout"
        self.stderr_path = workdir / "daemon.stderr"
        # LOGD_OTLP_LISTEN="": daemons under test do not race for the OTLP port 4318 unless
        # their config asks for a listener ([logging.otlp] listen)
        self.env = {**os.environ, "NO_COLOR": "1", "LOGD_SOCKET": str(socket_path), "LOGD_OTLP_LISTEN": "",
                    **(env or {})}
        self.env.pop("LOGD_CONFIG", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> DaemonProcess:
        cmd = [sys.executable, "-m", "logd", "run"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=self.workdir, env=self.env)
        if wait:
            # connectable, not only there: a daemon killed before this one leaves its socket files
            control = self.socket_path.with_name(self.socket_path.stem + ".ctl")
            wait_for(lambda: self._alive_or_fail() and can_connect(self.socket_path) and can_connect(control), 15,
                     what=f"logd to listen on {self.socket_path}")
        return self

    def _alive_or_fail(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"logd exited with {self.proc.returncode}: {self.stderr()}")
        return True

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def send(path: Path, data: bytes) -> None:
    """Connect, send ``data``, and wait until the daemon has read it all and closed its side."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.fspath(path))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def send_records(path: Path, records: Iterable[dict]) -> None:
    send(path, b"".join(orjson.dumps(r) + b"\n" for r in records))


class LineSocket:
    """What a Go or Node client does: a Unix socket, write lines, read lines (ack answers)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(os.fspath(path))
        self.inbox = b""

    def send_lines(self, *lines: bytes) -> None:
        self.sock.sendall(b"".join(line + b"\n" for line in lines))

    def send(self, *objects: object) -> None:
        self.send_lines(*(orjson.dumps(o) for o in objects))

    def read(self) -> dict:
        while b"\n" not in self.inbox:
            chunk = self.sock.recv(4096)
            assert chunk, "logd closed the connection"
            self.inbox += chunk
        line, _, self.inbox = self.inbox.partition(b"\n")
        return orjson.loads(line)

    def close(self) -> None:
        self.sock.close()


def read_records(path: Path) -> list[dict]:
    """Complete JSON lines of a file (a line still being written is left for the next read)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in data.splitlines() if line]


def agent_records(path: Path) -> list[dict]:
    """Records in a JSON-lines file, without logd's own start/stop records."""
    return [r for r in read_records(path) if r.get("agent") != "logd"]


def write_toml(folder: Path, text: str) -> Path:
    """``text`` as ``folder/agentflow.toml``."""
    path = folder / "agentflow.toml"
    path.write_text(text)
    return path


def config_error(folder: Path, text: str) -> ConfigError:
    """The ConfigError that loading ``text`` raises (fails the test when it loads)."""
    with pytest.raises(ConfigError) as info:
        load_config(write_toml(folder, text))
    return info.value


@dataclass
class Receiver:
    daemon: DaemonProcess
    url: str
    log: Path
    config: Path

    def records(self, **match: object) -> list[dict]:
        return [r for r in read_records(self.log) if all(r.get(k) == v for k, v in match.items())]

    def session(self, session: str) -> list[dict]:
        """The span records of the traces ``session`` names (the session is named by the span
        that declares it; its trace's other spans carry only the trace id)."""
        records = read_records(self.log)
        traces = {r["trace_id"] for r in records if r.get("session_id") == session and "trace_id" in r}
        return [r for r in records if r.get("trace_id") in traces and "span_data" in r]

    def logd(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "logd", *args, "--config", str(self.config)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def post(self, path: str, body: bytes, content_type: str = "application/x-protobuf",
             **headers: str) -> tuple[int, dict[str, str], bytes]:
        address = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type, **headers})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


def start_receiver(folder: Path, sock: Path, logging_body: str = 'file = "agent.log"', otlp: str = "") -> Receiver:
    """A ``logd run`` whose HTTP ingest listener is on an ephemeral port; ``otlp``: more
    lines of ``[logging.otlp]``."""
    config = write_config(folder, sock / "logd.sock", logging_body,
                          '[logging.otlp]\nlisten = "127.0.0.1:0"\n' + otlp)
    daemon = DaemonProcess(config, sock / "logd.sock", folder).start()
    started = wait_for(lambda: next((r for r in read_records(folder / "agent.log")
                                     if r.get("event") == "otlp" and "url" in r), None), what="the OTLP receiver")
    return Receiver(daemon, started["url"], folder / "agent.log", config)


def rss_peak_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


class Follower:
    """The new complete records of a JSON-lines file logd writes, across size rotations with
    numbered backups (the rest of the file rotated away is then ``<name>.1``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None

    def records(self) -> list[dict]:
        """Records written since the last call; raises if a line logd wrote is not JSON."""
        out: list[dict] = []
        inode = os.stat(self.path).st_ino
        if self.inode is not None and inode != self.inode:
            out += self._read(self.path.with_name(self.path.name + ".1"))
            self.offset = 0
        self.inode = inode
        return out + self._read(self.path)

    def _read(self, path: Path) -> list[dict]:
        with open(path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        data = data[: data.rfind(b"\n") + 1]
        self.offset += len(data)
        return [orjson.loads(line) for line in data.splitlines()]


def protobuf_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (hostile OTLP bodies are built from these)."""
    size, length = len(payload), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        length.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([number << 3 | 2]) + bytes(length) + payload
