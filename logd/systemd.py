"""The systemd service protocol, without libsystemd: sd_notify, socket activation, watchdog.

- ``notify("READY=1")`` sends a datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in
  the abstract namespace); a no-op when not run by systemd.
- ``activated_listener()`` takes the listening socket systemd passed as fd 3
  (``$LISTEN_FDS``, ``$LISTEN_PID``), so clients connect while logd restarts.
- ``watchdog_interval()`` is half of ``$WATCHDOG_USEC`` when the watchdog is meant for us.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

SD_LISTEN_FDS_START = 3


def notify(*states: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``states`` (e.g. ``READY=1``, ``STATUS=...``) to systemd; False when not under systemd."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall("\n".join(states).encode())
        return True
    except OSError:
        return False  # systemd gone or the socket not ours: never fatal for logging
    finally:
        sock.close()


def activated_listener(env: Mapping[str, str] | None = None) -> socket.socket | None:
    """The listening Unix stream socket systemd passed us, or None without socket activation."""
    env = os.environ if env is None else env
    if env.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    if count < 1:
        return None
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)  # not for our children
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(False)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(f"socket activation passed fd 3 of family {sock.family!r} type {sock.type!r}; "
                         "logd needs a Unix stream socket (ListenStream=/path)")
    sock.setblocking(False)
    return sock


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout), or None when no watchdog is set for us."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None
