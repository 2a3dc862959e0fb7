from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import DaemonProcess, write_config

# The suite runs beside the user's own logd (README's quick start has `make run` up while
# `make test` runs): nothing of that session may reach a test. Every test and every process it
# starts sees a login session of its own: no LOGD_* variable (but the suite's own knobs), a
# per-user runtime folder and state folder of its own (so no per-user daemon is found), the
# system paths /etc/logd and /run/logd looked for under a folder of its own, and a working
# folder without an agentflow.toml. A test that wants any of them sets it.
SUITE_KNOBS = ("LOGD_FUZZ_EXAMPLES", "LOGD_FUZZ_SEED", "LOGD_HTTP_FUZZ_EXAMPLES", "LOGD_HTTP_FUZZ_SECONDS",
               "LOGD_HTTP_FUZZ_SEED")
SESSION = Path(tempfile.mkdtemp(prefix="logd-suite-"))


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module is imported (pytest has found its test paths by now)."""
    for name in [n for n in os.environ if n.startswith("LOGD_") and n not in SUITE_KNOBS]:
        del os.environ[name]
    for name, folder in (("XDG_RUNTIME_DIR", "run"), ("XDG_STATE_HOME", "state"), ("LOGD_SYSTEM_ROOT", "system")):
        (SESSION / folder).mkdir(mode=0o700)
        os.environ[name] = str(SESSION / folder)
    (SESSION / "cwd").mkdir()


@pytest.fixture(autouse=True, scope="session")
def _working_folder_of_its_own() -> None:
    """After collection (pytest-xdist's workers find the test files from the working folder)."""
    os.chdir(SESSION / "cwd")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SESSION, ignore_errors=True)


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
