"""The core install is light (`pip install .` in a fresh venv), the client imports there, and a
feature whose extra is missing says which extra to install."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A fresh venv with `pip install .` (no extras), and the packages pip installed."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(out for out in result.stdout.splitlines() if out.startswith("Successfully installed"))
    return python, line.split()[2:]


def test_pip_install_gives_at_most_six_packages(core_venv):
    _, installed = core_venv
    names = sorted(re.sub(r"-[0-9][^-]*$", "", p) for p in installed)
    assert len(installed) <= 6, names
    assert "logd" in names and not {"httpx", "loguru", "opentelemetry-proto", "protobuf"} & set(names)


def test_client_imports_in_the_core_install(core_venv):
    python, _ = core_venv
    result = subprocess.run([str(python), "-c", "import logd.client; print(logd.client.Sender.__name__)"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "Sender", result.stderr


def test_a_ship_target_without_the_ship_extra_names_the_extra(core_venv, tmp_path):
    python, _ = core_venv
    config = tmp_path / "agentflow.toml"
    config.write_text('[logging]\nfile = "agent.log"\n\n[[logging.ship]]\ntype = "otlp"\n'
                      'url = "http://127.0.0.1:4318/v1/logs"\n')
    result = subprocess.run([str(python), "-m", "logd", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert (f"logd: error: {config}:5:1: logging.ship[0].type: ship target type \"otlp\" needs httpx, "
            "which is not installed: pip install 'logd[ship]'") in result.stderr
    syslog = tmp_path / "syslog.toml"
    syslog.write_text('[logging]\nfile = "agent.log"\n\n[[logging.ship]]\ntype = "syslog"\nurl = "tcp://127.0.0.1:514"\n')
    ok = subprocess.run([str(python), "-m", "logd", "check", "--config", str(syslog)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr  # syslog needs nothing beyond the core


def test_an_otlp_receiver_without_the_otlp_extra_names_the_extra(core_venv, tmp_path):
    python, _ = core_venv
    config = tmp_path / "agentflow.toml"
    config.write_text('[logging.otlp]\nlisten = "127.0.0.1:4318"\n')
    result = subprocess.run([str(python), "-m", "logd", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "logging.otlp.listen: the OTLP receiver needs h11 and opentelemetry-proto" in result.stderr
    assert "pip install 'logd[otlp]'" in result.stderr
