"""`make install` on Debian 12 (PEP 668: no pip into the system Python) puts logd in a venv of
its own, /opt/logd, linked as /usr/local/bin/logd, with units pointing there; staged into a
throwaway root (DESTDIR) and checked with systemd-analyze verify. The venv holds the core
install (`LOGD_EXTRAS=""`: `pip install .`), so the same venv shows the core install is light,
the client imports there, and a feature whose extra is missing says which extra to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = "/opt/logd"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make install` into a throwaway root, with the core install in its venv; returns the root."""
    root = tmp_path_factory.mktemp("root")
    env = {**os.environ, "DESTDIR": str(root), "LOGD_EXTRAS": ""}
    result = subprocess.run(["make", "--no-print-directory", "install"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture(scope="module")
def core_venv(installed: Path) -> tuple[Path, list[str]]:
    """The installed venv's python (run from where it is staged), and the packages pip put there."""
    python = installed / VENV.lstrip("/") / "bin" / "python"
    listed = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                             "print(*sorted(d.metadata['Name'].lower() for d in m.distributions()))"],
                            capture_output=True, text=True, check=True, timeout=60)
    return python, [name for name in listed.stdout.split() if name not in ("pip", "setuptools")]


def in_final_place(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` where the staged /opt/logd is at /opt/logd (a mount namespace of its own:
    nothing of the machine changes), as the service would find it."""
    script = ('mount -t tmpfs tmpfs /opt && mkdir /opt/logd && mount --bind "$1/opt/logd" /opt/logd && '
              'shift && exec "$@"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root),
                           *command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MANPATH": str(root / "usr" / "share" / "man")})


def test_make_install_puts_logd_in_its_own_venv_and_the_units_pass_verify(installed):
    link = installed / "usr" / "local" / "bin" / "logd"
    assert os.readlink(link) == f"{VENV}/bin/logd"
    assert (installed / VENV.lstrip("/") / "bin" / "logd").read_text().startswith(f"#!{VENV}/bin/python\n")
    service = installed / "etc" / "systemd" / "system" / "logd.service"
    assert f"ExecStart={VENV}/bin/logd run --config /etc/logd/agentflow.toml" in service.read_text()
    assert (installed / "usr" / "share" / "man" / "man1" / "logd.1").exists()
    version = in_final_place(installed, f"{VENV}/bin/logd", "--version")
    assert version.returncode == 0 and version.stdout.startswith("logd "), version.stderr
    # verify checks ExecStart's binary and Documentation=man:logd(1) (MANPATH: the installed page)
    verify = in_final_place(installed, shutil.which("systemd-analyze") or "systemd-analyze", "verify",
                            str(installed / "etc" / "systemd" / "system" / "logd.socket"), str(service))
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr


@pytest.mark.parametrize(("variables", "said"), [
    ({"LOGD_VENV": "/home/alice/logd"}, "refusing the venv /home/alice/logd: logd.service runs with ProtectHome=yes"),
    ({"LOGD_BIN": "/root/.local/bin/logd"},
     "refusing the logd binary /root/.local/bin/logd: logd.service runs with ProtectHome=yes"),
    ({"LOGD_VENV": "/tmp/venv"}, "refusing the venv /tmp/venv: logd.service runs with PrivateTmp=yes"),
    ({"LOGD_VENV": "/srv/closed/logd"},
     "refusing the venv /srv/closed/logd: logd.service runs as user logd, who cannot enter /srv/closed (mode 700)"),
])
def test_install_refuses_paths_the_units_sandbox_hides(tmp_path, variables, said):
    (tmp_path / "srv" / "closed").mkdir(parents=True, mode=0o700)
    env = {**os.environ, "DESTDIR": str(tmp_path), **variables}
    result = subprocess.run(["sh", str(ROOT / "systemd" / "install.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"install.sh: {said}") and result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["srv"]  # refused before anything was installed


def test_pip_install_gives_at_most_six_packages(core_venv):
    _, installed = core_venv
    assert len(installed) <= 6, installed
    assert "logd" in installed and not {"httpx", "loguru", "opentelemetry-proto", "protobuf"} & set(installed)


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
