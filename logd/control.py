"""The control socket: how ``logd status``, ``logd rotate`` and friends talk to a running daemon.

It sits next to the data socket (``logd.sock`` -> ``logd.ctl``), is owner-only
(0600), and accepts only the daemon's own user or root (kernel peer
credentials). One JSON request line in, one JSON reply line out:
``{"command": "status"}`` -> ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import grp
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REQUEST = 64 * 1024
_PEERCRED = struct.Struct("3i")


class ControlError(Exception):
    """The daemon could not be reached, or it refused the request; ``str()`` says which."""


def control_path(data_socket: Path) -> Path:
    return data_socket.with_name(data_socket.stem + ".ctl")


class ControlServer:
    """The control socket. The daemon's user and root may send every command; with a
    ``group`` (``[logging.socket] control_group``), its members may also connect and send the
    read-only commands (``logd status``, ``list``, ``trace``...), never ``reload`` or ``rotate``."""

    def __init__(self, path: Path, group: str | int | None = None) -> None:
        self.path = path
        self.group = group
        try:
            self.gid = None if group is None else group if isinstance(group, int) else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"[logging.socket] control_group {group!r} does not exist") from None
        self.handlers: dict[str, Handler] = {}
        self.read_only: set[str] = set()
        self._server: asyncio.AbstractServer | None = None

    def register(self, command: str, handler: Handler, *, read_only: bool = False) -> None:
        self.handlers[command] = handler
        if read_only:
            self.read_only.add(command)

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)  # the data socket's liveness check already ran
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=os.fspath(self.path))
        finally:
            os.umask(old_umask)
        if self.gid is not None:  # readers connect through the group's permission bits
            os.chown(self.path, -1, self.gid)
            os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._handle(reader, writer)
            writer.write(orjson.dumps(reply, default=str, option=orjson.OPT_APPEND_NEWLINE))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        sock = writer.get_extra_info("socket")
        _, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        owner = uid in (0, os.getuid())
        if not owner and self.group is None:
            return {"ok": False, "error": "permission denied: only the daemon's user or root may control it"}
        try:
            line = await reader.readuntil(b"\n")
            request = orjson.loads(line[:MAX_REQUEST])
            command = request["command"]
        except (asyncio.LimitOverrunError, orjson.JSONDecodeError, KeyError, TypeError):
            return {"ok": False, "error": 'bad request: expected one JSON line {"command": ...}'}
        if not isinstance(command, str):  # a dict or list here would make the lookup below raise
            return {"ok": False, "error": f'bad request: "command" must be a string, not {type(command).__name__}',
                    "commands": sorted(self.handlers)}
        handler = self.handlers.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}",
                    "commands": sorted(self.handlers)}
        if not owner and command not in self.read_only:
            return {"ok": False, "error": f"permission denied: {command!r} is for the daemon's user or root; "
                                          f"members of the control group may only {', '.join(sorted(self.read_only))}"}
        try:
            return {"ok": True, **await handler(request)}
        except Exception as exc:  # a failing command must not take the daemon down
            return {"ok": False, "error": f"{command} failed: {exc}"}


def request(data_socket: Path, command: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
    """Send one command to the daemon that owns ``data_socket`` and return its reply."""
    path = control_path(data_socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
        sock.sendall(orjson.dumps({"command": command, **args}) + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"no logd is running for {data_socket} (no control socket at {path})") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run as the daemon's user or root") from None
    except TimeoutError:
        raise ControlError(f"logd did not answer {command!r} within {timeout:g}s") from None
    finally:
        sock.close()
    try:
        reply = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ControlError(f"logd sent an unreadable reply to {command!r}") from None
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "request failed"))
    return reply
