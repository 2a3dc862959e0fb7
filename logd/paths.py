"""Where logd is: the one discovery rule the daemon, the CLI and every client share.

The config (daemon and CLI): ``--config FILE``, ``$LOGD_CONFIG``, ``./agentflow.toml``,
``/etc/logd/agentflow.toml``, else built-in defaults.

The socket a client sends to (CLI, Python client, the Go example of docs/clients.md):

1. ``--socket PATH`` (the Python client's ``path`` argument);
2. ``[logging.socket] path`` of ``--config FILE``, else of ``$LOGD_CONFIG``, else of
   ``./agentflow.toml`` (the daemon started on that config listens there);
3. ``$LOGD_SOCKET``;
4. the per-user socket when it exists: ``$XDG_RUNTIME_DIR/logd/logd.sock``, else
   ``/tmp/logd-$UID/logd.sock`` (where ``make run`` and ``logd run`` listen by default);
5. ``/run/logd/logd.sock`` when it exists (logd as a system service);
6. the per-user path (nothing runs yet: errors name it).

``/etc/logd/agentflow.toml`` is the system service's config: clients reach that service at
step 5, so a per-user daemon the user started is never passed over for it.

Kept free of heavy imports (stdlib only): ``import logd.client`` reads it, and an
agent must not pay for the daemon's dependencies to learn a path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SOCKET_ENV = "LOGD_SOCKET"
CONFIG_ENV = "LOGD_CONFIG"
CONFIG_NAME = "agentflow.toml"
# Where the system paths (/etc/logd, /run/logd) are looked for: "/" but in the test suite,
# which points it at a folder of its own so a system-wide logd on the machine is never read.
SYSTEM_ROOT_ENV = "LOGD_SYSTEM_ROOT"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _system(path: str, env: Mapping[str, str] | None) -> Path:
    root = _env(env).get(SYSTEM_ROOT_ENV, "").rstrip("/")
    return Path(root + path)


def system_config(env: Mapping[str, str] | None = None) -> Path:
    """``/etc/logd/agentflow.toml``: where the systemd unit's daemon reads its config."""
    return _system("/etc/logd/agentflow.toml", env)


# What systemd/logd.service lets the daemon write (ReadWritePaths= under ProtectSystem=strict;
# tests/test_systemd.py holds the unit to this list): the service's config may put files,
# folders and sockets only below these.
SERVICE_WRITABLE = ("/var/log/logd", "/var/lib/logd", "/run/logd")


def service_writable(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders the system service may write to (:data:`SERVICE_WRITABLE`)."""
    return tuple(_system(p, env) for p in SERVICE_WRITABLE)


def system_socket(env: Mapping[str, str] | None = None) -> Path:
    """``/run/logd/logd.sock``: where the systemd units put the socket (systemd/logd.socket)."""
    return _system("/run/logd/logd.sock", env)


def default_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """``$LOGD_SOCKET``, else ``$XDG_RUNTIME_DIR/logd/logd.sock``, else ``/tmp/logd-$UID/logd.sock``:
    where a daemon whose config names no socket listens."""
    env = _env(env)
    if env.get(SOCKET_ENV):
        return Path(env[SOCKET_ENV])
    return user_socket_path(env)


def user_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """The per-user socket: ``$XDG_RUNTIME_DIR/logd/logd.sock``, else ``/tmp/logd-$UID/logd.sock``."""
    env = _env(env)
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "logd" / "logd.sock"
    return Path(f"/tmp/logd-{os.getuid()}") / "logd.sock"


@dataclass(frozen=True)
class Found:
    """A path the rule chose, and why (``logd status`` and ``logd send --verbose`` print it)."""

    path: Path | None
    why: str


def find_config(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                *, system: bool = True) -> Found:
    """The config: ``--config``, ``$LOGD_CONFIG``, ``./agentflow.toml``, ``/etc/logd/agentflow.toml``
    (``system=False``: not the system service's); ``path`` None means built-in defaults."""
    env = _env(env)
    if explicit:
        return Found(Path(explicit), "--config")
    if env.get(CONFIG_ENV):
        return Found(Path(env[CONFIG_ENV]), f"${CONFIG_ENV}")
    if Path(CONFIG_NAME).is_file():
        return Found(Path(CONFIG_NAME), f"./{CONFIG_NAME}")
    if system and system_config(env).is_file():
        return Found(system_config(env), "the system config")
    return Found(None, "none found: built-in defaults")


def config_search_text(env: Mapping[str, str] | None = None) -> str:
    """The config search as tried, for an error message when no config was found."""
    env = _env(env)
    system = system_config(env)
    return (f"${CONFIG_ENV} ({env.get(CONFIG_ENV) or 'unset'}), ./{CONFIG_NAME} (none in {os.getcwd()}), "
            f"{system} ({'present' if system.is_file() else 'absent'})")


def socket_in_config(path: Path) -> Path | None:
    """``[logging.socket] path`` of a config, read leniently (None when it names none or cannot be
    read): a client must find the daemon even while the file holds an error the daemon refused."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("logging", {})
        raw = section.get("socket", {}).get("path")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    if isinstance(raw, str) and raw:
        return Path(os.path.normpath(path.resolve().parent / Path(raw).expanduser()))
    return None


@dataclass(frozen=True)
class FoundSocket(Found):
    path: Path
    config: Path | None = None  # the config consulted at step 2, if any


def find_socket(explicit: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> FoundSocket:
    """The socket a client sends to, by the rule in this module's docstring."""
    env = _env(env)
    if explicit:
        return FoundSocket(Path(explicit), "--socket")
    consulted = find_config(config, env, system=False).path
    if consulted is not None:
        named = socket_in_config(consulted)
        if named is not None:
            return FoundSocket(named, f"[logging.socket] path of {consulted}", consulted)
    if env.get(SOCKET_ENV):
        return FoundSocket(Path(env[SOCKET_ENV]), f"${SOCKET_ENV}", consulted)
    user, system = user_socket_path(env), system_socket(env)
    if user.exists():
        return FoundSocket(user, "the per-user socket", consulted)
    if system.exists():
        return FoundSocket(system, "the system socket (no per-user one)", consulted)
    return FoundSocket(user, f"the per-user path (no socket there, none at {system})", consulted)


def client_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """Where a client sends when nothing names a socket: :func:`find_socket`'s path."""
    return find_socket(env=env).path
