"""The Unix stream socket source: lines in, parsed records out to the pipeline.

Each newline-terminated line is one record. Peer credentials come from the
kernel (SO_PEERCRED), never from the record. Reading is paused on every
connection while the pipeline reports pressure, so a slow sink slows clients
instead of growing memory. At shutdown each connection's read side is shut
down: the client's next write fails (it knows), and everything already in the
socket buffer is still read and written.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import os
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from logd.components import Pressure, StartupError, Tables
from logd.events import Events
from logd.paths import default_socket_path
from logd.pipeline import BATCH_RECORDS, Peer, Pipeline, Rids
from logd.protocol import hello_line, parse_hello
from logd.record import Record, parse_line
from logd.settings import (
    boolean,
    file_mode,
    group_name,
    integer,
    number,
    seconds,
    setting,
    shown_mode,
    string,
    world_writable,
)
from logd.sources.ack import AckReader
from logd.sources.framing import LineFramer
from logd.spec import SOURCE, Context, Spec
from logd.timestamps import format_epoch

_PEERCRED = struct.Struct("3i")
MAX_UNIX_PATH = 107


@dataclass(frozen=True)
class SocketSettings:
    """``[logging.socket]``: the socket agents send to, and the bounds each client is held to."""

    path: Path = setting(doc="the socket agents send to", check=string, path="socket", factory=default_socket_path)
    mode: int = setting(0o660, doc="socket permissions: owner and group may send", check=file_mode, shown=shown_mode)
    group: str | int | None = setting(None, doc="group owning the socket (agents' users join it); default: the "
                                                "daemon's", check=group_name)
    max_record_bytes: int = setting(256 * 1024, doc="longer lines are cut to this and flagged _truncated",
                                    check=integer(64, "a whole number of bytes >= 64"))
    max_connections: int = setting(1024, doc="more concurrent clients are refused, counted and reported",
                                   check=integer(1, "a whole number >= 1"))
    allow_world_writable: bool = setting(False, doc="a mode with o+w is refused unless this is set", check=boolean)
    control_group: str | int | None = setting(None, doc="members may run the read-only control commands "
                                                        "(logd status)", check=group_name)
    # issue 18 (security/bounds): see docs/security.md
    shared_folder: bool = setting(False, doc="the socket's folder may be group-writable (agents' shared group)",
                                  check=boolean)
    idle_timeout: float = setting(300.0, doc="seconds a connection may send nothing before it is closed (0: never)",
                                  check=number(0, "a number of seconds >= 0 (0: never)"))
    ack_timeout: float = setting(60.0, doc="seconds an ack client may leave its acks unread before it is dropped",
                                 check=seconds)


def create_listener(settings: SocketSettings, backlog: int = 1024) -> socket.socket:
    """Bind the listening socket with restrictive permissions, replacing a stale one."""
    path = settings.path
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise StartupError(f"socket path {path} is {len(os.fsencode(path))} bytes; "
                           f"Unix sockets allow at most {MAX_UNIX_PATH}: choose a shorter [logging.socket] path")
    if not path.parent.exists():
        # a folder we create holds only our socket: nobody else needs to list it
        path.parent.mkdir(parents=True, mode=0o700)
    check_folder(path.parent, shared=settings.shared_folder)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # never visible with looser permissions, even for a moment
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"another logd is already listening on {path}") from None
        raise StartupError(f"cannot create socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    try:
        if settings.group is not None:
            gid = settings.group if isinstance(settings.group, int) else grp.getgrnam(settings.group).gr_gid
            os.chown(path, -1, gid)
        os.chmod(path, settings.mode)
    except (KeyError, OSError) as exc:
        sock.close()
        path.unlink(missing_ok=True)
        what = f"group {settings.group!r} does not exist" if isinstance(exc, KeyError) else str(exc)
        raise StartupError(f"cannot set owner/mode of socket {path}: {what}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def check_folder(folder: Path, *, shared: bool = False, uid: int | None = None) -> None:
    """Refuse a socket folder another user controls: whoever can write to it can replace our
    socket with theirs and read every client's records (``/tmp/logd-$UID`` can be made by
    anyone first). It must be owned by us (or root) and not writable by others; group-writable
    only with ``shared_folder = true``. A sticky folder such as /tmp is fine: there nobody
    can remove or rename an entry they do not own."""
    uid = os.getuid() if uid is None else uid
    try:
        st = os.stat(folder)
    except OSError as exc:
        raise StartupError(f"cannot check socket folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"socket folder {folder} is not a folder")
    mode = stat.S_IMODE(st.st_mode)
    sticky = bool(mode & stat.S_ISVTX)
    if st.st_uid not in (uid, 0):
        raise StartupError(f"socket folder {folder} belongs to uid {st.st_uid}, not to logd's user (uid {uid}) "
                           "or root: another user could replace the socket; remove it or choose another "
                           "[logging.socket] path")
    writable = mode & (stat.S_IWOTH | (0 if shared else stat.S_IWGRP))
    if writable and not sticky:
        who = "others" if mode & stat.S_IWOTH else "its group"
        raise StartupError(f"socket folder {folder} (mode {mode:04o}) is writable by {who}, who could replace "
                           f"the socket: chmod go-w {folder}"
                           + ("" if mode & stat.S_IWOTH else ", or set [logging.socket] shared_folder = true"))


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # left behind by a logd that did not exit cleanly
        return
    except OSError as exc:
        raise StartupError(f"cannot check existing socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise StartupError(f"another logd is already listening on {path}; stop it first, "
                       "or give this one another [logging.socket] path")


def peer_credentials(sock: socket.socket) -> Record:
    """The connecting process as the kernel reports it."""
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    trusted: Record = {"_pid": pid, "_uid": uid, "_gid": gid}
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            trusted["_comm"] = f.read().strip().decode("utf-8", "replace")
    except OSError:
        pass  # /proc hidden (hidepid) or the process already gone
    return trusted


class Connection(asyncio.Protocol):
    """One client: splits its byte stream into lines, in order, and parses them."""

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.max_bytes = server.settings.max_record_bytes
        self.transport: asyncio.Transport | None = None
        self.trusted: Record = {}
        self.peer = Peer({})  # the trusted fields, as every line of this connection ends
        self.framer = LineFramer(self.max_bytes)
        self._first = b""  # the first line, until it is complete: it decides the mode
        # the first line decides: an ack hello hands the connection to an AckReader
        self._ack: AckReader | None = None
        self._plain = False  # known once the first line is complete
        self.last_active = 0.0  # loop time of the last data: idle connections are closed (idle_timeout)
        # an ack client that does not read its acks: reading stops while our answers to it pile
        # up, and it is dropped if they are still unread after ack_timeout
        self.write_blocked = False
        self._ack_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server.admit(self):
            transport.abort()
            return
        try:
            self.trusted = peer_credentials(transport.get_extra_info("socket"))
        except OSError:
            self.trusted = {}
        self.peer = Peer(self.trusted)
        self.last_active = self.server.loop_time()
        if self.server.pipeline.paused:
            transport.pause_reading()

    def pause_writing(self) -> None:
        """The transport's buffer of answers to this client is full: it does not read them."""
        self.write_blocked = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            timeout = self.server.settings.ack_timeout
            self._ack_deadline = asyncio.get_running_loop().call_later(timeout, self._drop_unread, timeout)

    def resume_writing(self) -> None:
        self.write_blocked = False
        if self._ack_deadline is not None:
            self._ack_deadline.cancel()
            self._ack_deadline = None
        if self.transport is not None and not self.transport.is_closing() and not self.server.pipeline.paused:
            self.transport.resume_reading()

    def _drop_unread(self, timeout: float) -> None:
        self._ack_deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.server.dropped_unread += 1
            self.server.events.emit("warn", "ack client dropped: it left its acks unread", event="ack_timeout",
                                      ack_timeout_s=timeout, client_pid=self.trusted.get("_pid"))
            self.transport.abort()  # what it sent is written; unacked batches are resent by a real client

    def data_received(self, data: bytes) -> None:
        self.server.bytes_received += len(data)
        self.last_active = self.server.loop_time()
        if not self._plain:  # once per chunk, not per line: the plain path stays as it was
            if self._ack is None:
                data = self._check_hello(data)
            if self._ack is not None:
                if data:
                    self._ack.data_received(data)
                return
            if not data:
                return
        lines, cuts = self.framer.feed(data)
        if lines:
            self.server.pipeline.take(lines, format_epoch(self.server.clock()), self.peer, cuts)

    # --- what an AckReader asks of its connection (logd.sources.ack.AckConnection) ---

    def put(self, records: list[Record], on_written: Callable[[], None] | None = None) -> None:
        self.server.pipeline.put(records, on_written)

    def take(self, lines: list[bytes], received: str, rids: Rids, truncated: dict[int, int] | None,
             on_written: Callable[[], None] | None) -> None:
        self.server.pipeline.take(lines, received, self.peer, truncated, rids, on_written)

    def drain(self) -> None:
        self.server.pipeline.drain()

    def now(self) -> float:
        return self.server.clock()

    def reply(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _check_hello(self, data: bytes) -> bytes:
        """Look at the first line; returns the data still to be read as ordinary (or ack) lines."""
        data = self._first + data
        self._first = b""
        end = data.find(b"\n")
        if end < 0 and len(data) <= self.max_bytes:
            self._first = data  # the first line is not complete yet
            return b""
        stream = parse_hello(data[:end]) if end >= 0 else None
        if stream is None:
            self._plain = True
            return data
        self._ack = AckReader(self, stream, BATCH_RECORDS)  # from now on every chunk goes to it
        if self.transport is not None:
            self.transport.write(hello_line(stream))  # the answer: ack mode is on
        return data[end + 1 :]

    def eof_received(self) -> bool:
        if self._ack is not None:
            self._ack.eof_received()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ack_deadline is not None:
            self._ack_deadline.cancel()
            self._ack_deadline = None
        if self._ack is not None:
            self._ack.connection_lost()
        else:
            if self._first:  # a first line that never ended
                self.framer.feed(self._first)
                self._first = b""
            rest = self.framer.close()
            if rest is not None:
                line, truncated = rest
                record = parse_line(line, format_epoch(self.server.clock()), self.trusted, truncated=truncated,
                                    partial=truncated is None)
                record["_partial"] = True
                self.server.pipeline.put([record])
        self.server.forget(self)

    def shutdown_read(self) -> None:
        """Refuse further data but keep reading what the client already sent."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.get_extra_info("socket").shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self.transport.resume_reading()


class SocketServer:
    """Accepts clients on the listening socket and feeds the pipeline."""

    def __init__(self, listener: socket.socket, settings: SocketSettings, pipeline: Pipeline, *,
                 events: Events, pressure: Pressure, path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``pressure``: the pipeline's back-pressure, which pauses and resumes every client."""
        self.listener = listener
        self.settings = settings
        self.pipeline = pipeline
        self.events = events
        self.path = path if path is not None else settings.path
        self.clock = clock
        self.connections: set[Connection] = set()
        self.rejected = 0
        self.bytes_received = 0
        self.closed_idle = 0  # connections closed by idle_timeout
        self.dropped_unread = 0  # ack clients dropped by ack_timeout
        self.aborted = 0  # connections still open at the shut-down deadline
        self._last_reject_report = 0.0
        self._server: asyncio.AbstractServer | None = None
        self._reaper: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        pressure.subscribe(self.set_paused)

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: Connection(self), sock=self.listener)
        self._reaper = loop.create_task(self._close_idle())

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    async def _close_idle(self) -> None:
        """Close connections that sent nothing for idle_timeout: idle clients cannot hold all
        max_connections slots. A client we stopped reading (backpressure) is not idle."""
        while True:
            timeout = self.settings.idle_timeout  # read each time: a reload may change it
            await asyncio.sleep(min(max(timeout / 4, 0.05), 5.0) if timeout > 0 else 5.0)
            if timeout <= 0 or self.pipeline.paused:
                continue
            now = self.loop_time()
            for conn in list(self.connections):
                if conn.write_blocked or now - conn.last_active <= timeout:
                    continue
                if conn.transport is not None and not conn.transport.is_closing():
                    self.closed_idle += 1
                    conn.transport.close()
    def admit(self, conn: Connection) -> bool:
        if len(self.connections) >= self.settings.max_connections:
            self.rejected += 1
            now = self.clock()
            if now - self._last_reject_report >= 10:
                self._last_reject_report = now
                self.events.emit("warn", "connection refused: max_connections reached",
                                 max_connections=self.settings.max_connections, refused_total=self.rejected)
            return False
        self.connections.add(conn)
        self._idle.clear()
        return True

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._idle.set()

    def set_paused(self, paused: bool) -> None:
        """Backpressure: stop (or resume) reading from every client."""
        for conn in self.connections:
            if conn.transport is not None and not conn.transport.is_closing():
                if paused:
                    conn.transport.pause_reading()
                else:
                    conn.last_active = self.loop_time()  # a client we did not read was not idle
                    if not conn.write_blocked:  # one leaving its acks unread stays paused
                        conn.transport.resume_reading()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, read what clients already sent, and wait for them to close.

        ``aborted``: how many connections were still open at the deadline (and then aborted).
        """
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for conn in list(self.connections):
            conn.shutdown_read()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        left = len(self.connections)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        self.aborted = left

    async def reload(self, config: Tables) -> None:
        """Bounds apply at once; where the socket is (path, mode, group) stays until a restart:
        the daemon kept those of the running socket in the new config."""
        self.settings = config.of(SocketSettings)

    def stats(self) -> dict[str, Any]:
        return {"listening": self.listening, "received_bytes": self.bytes_received,
                "connections": len(self.connections), "connections_refused": self.rejected,
                "connections_closed_idle": self.closed_idle,  # idle_timeout
                "ack_clients_dropped": self.dropped_unread}  # ack_timeout: acks left unread


def _families(s: dict[str, Any]) -> Iterable[Any]:
    yield CounterMetricFamily("logd_received_bytes", "Bytes read from client connections",
                              value=s.get("received_bytes", 0))
    yield GaugeMetricFamily("logd_connections", "Open client connections", value=s.get("connections", 0))
    yield CounterMetricFamily("logd_connections_refused", "Connections refused at max_connections",
                              value=s.get("connections_refused", 0))
    yield CounterMetricFamily("logd_connections_closed_idle", "Connections closed after idle_timeout",
                              value=s.get("connections_closed_idle", 0))
    yield CounterMetricFamily("logd_ack_clients_dropped", "Ack clients dropped for leaving acks unread",
                              value=s.get("ack_clients_dropped", 0))


def _build(settings: SocketSettings, ctx: Context) -> SocketServer:
    return SocketServer(ctx.listener, settings, ctx.pipeline, events=ctx.events, pressure=ctx.pressure,
                        path=Path(ctx.listener.getsockname()), clock=ctx.clock)


SPEC = Spec(SOURCE, "socket", _build, SocketSettings, table="socket", check=world_writable,
            figures=lambda server: server.stats(), families=_families)
