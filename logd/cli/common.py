"""What every command shares: exit codes, error lines, finding the config and the socket."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logd.config import Config, ConfigError, find_config, load_config
from logd.levels import canonical_level
from logd.paths import FoundSocket, find_socket

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CONFIG_HELP = ("agentflow.toml to use (default: $LOGD_CONFIG, then ./agentflow.toml, then "
               "/etc/logd/agentflow.toml, then built-in defaults)")
SOCKET_HELP = ("socket path (default: the config's [logging.socket] path, then $LOGD_SOCKET, then the "
               "per-user socket, then /run/logd/logd.sock)")


def error(message: str) -> None:
    print(f"logd: error: {message}", file=sys.stderr)


def config_error(exc: ConfigError) -> None:
    """Every error of a config file, one line each (file:line:col: key: what was expected)."""
    for one in getattr(exc, "errors", [exc]):
        error(str(one))
    for message in getattr(exc, "warnings", []):
        warn(message)


def warn(message: str) -> None:
    print(f"logd: warning: {message}", file=sys.stderr)


def load(args: argparse.Namespace) -> Config:
    return load_config(find_config(args.config).path)


def found_socket(args: argparse.Namespace) -> FoundSocket:
    """The socket a client command talks to, and why (the rule of logd/paths.py). A config the
    rule read is validated first, so its errors are shown, except by commands that must reach
    the daemon after a bad edit (``lenient_config``: reload, rotate)."""
    found = find_socket(getattr(args, "socket", None), args.config)
    if found.config is not None and not getattr(args, "lenient_config", False):
        load_config(found.config)
    return found


def resolve_socket(args: argparse.Namespace) -> Path:
    return found_socket(args).path


def ask_daemon(args: argparse.Namespace, command: str, found: FoundSocket | None = None,
               **fields: Any) -> dict | None:
    """Send a control command to the running daemon; None (error already printed) when it fails."""
    from logd.control import ControlError, request

    try:
        return request((found or found_socket(args)).path, command, **fields)
    except (ConfigError, ControlError) as exc:
        error(str(exc))
        return None


def level_arg(text: str) -> str:
    level = canonical_level(text)
    if level is None:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (use trace, debug, info, warn, error, fatal)")
    return level


def daemon_files(args: argparse.Namespace) -> tuple[dict | None, str]:
    """Ask the running daemon where its config, log file and traces are (``config`` command).

    Returns the reply, or None and why not (for an error naming what was tried); quiet: a
    daemon that is not running is not an error here, the caller falls back to the search order."""
    from logd.control import ControlError, request

    try:
        sock = resolve_socket(args)
    except ConfigError as exc:
        return None, f"no daemon socket ({exc})"
    try:
        return request(sock, "config", timeout=5.0), ""
    except ControlError as exc:
        return None, f"a running daemon ({exc})"
