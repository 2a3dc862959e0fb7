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
