"""Where logd's socket is by default: the one rule the daemon, the CLI and every client share.

Kept free of heavy imports (stdlib only): ``import logd.client`` reads it, and an
agent must not pay for the daemon's dependencies to learn a path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_ENV = "LOGD_SOCKET"


def default_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """``$LOGD_SOCKET``, else ``$XDG_RUNTIME_DIR/logd/logd.sock``, else ``/tmp/logd-$UID/logd.sock``."""
    env = os.environ if env is None else env
    if env.get(SOCKET_ENV):
        return Path(env[SOCKET_ENV])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "logd" / "logd.sock"
    return Path(f"/tmp/logd-{os.getuid()}") / "logd.sock"


SYSTEM_SOCKET = Path("/run/logd/logd.sock")  # where the systemd units put it (systemd/logd.socket)


def client_socket_path(env: Mapping[str, str] | None = None, system: Path = SYSTEM_SOCKET) -> Path:
    """Where a client sends when nothing names a socket: ``$LOGD_SOCKET``; else the per-user
    socket of :func:`default_socket_path` when one is there; else the system socket
    ``/run/logd/logd.sock`` when a system-wide logd runs; else the per-user path."""
    env = os.environ if env is None else env
    user = default_socket_path(env)
    if env.get(SOCKET_ENV) or user.exists() or not system.exists():
        return user
    return system
