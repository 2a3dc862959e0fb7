from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import DaemonProcess, write_config


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short folder for sockets: Unix socket paths must stay under ~108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="logd-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(tmp_path: Path, sock_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``logd run`` with a [logging] body; every daemon started is stopped at teardown."""
    started: list[DaemonProcess] = []

    def start(logging: str = 'file = "agent.log"', extra: str = "", wait: bool = True,
              env: dict[str, str] | None = None) -> DaemonProcess:
        config = write_config(tmp_path, sock_dir / "logd.sock", logging, extra)
        proc = DaemonProcess(config, sock_dir / "logd.sock", tmp_path, env=env).start(wait=wait)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
