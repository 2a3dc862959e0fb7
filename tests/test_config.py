"""The [logging] section: defaults, validation errors that name file/line/key, `logd check`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from logd.config import ConfigError, default_socket_path, load_config

from support import config_error, write_toml

ROOT = Path(__file__).resolve().parent.parent


write = write_toml
error_of = config_error


def test_agenticgokit_keys_are_read_and_other_sections_ignored(tmp_path):
    config = load_config(write(tmp_path, """
[agent_flow]
name = "x"
[llm]
provider = "openai"
[logging]
level = "warning"
format = "json"
file = "logs/agent.log"
file_only = true
max_size = 0.5
max_backups = 3
max_age = 7
compress = true
"""))
    assert (config.level, config.format, config.file_only, config.max_backups, config.max_age, config.compress) == (
        "warn", "json", True, 3, 7, True)
    assert config.file == tmp_path.resolve() / "logs" / "agent.log"  # relative to the config's folder
    assert config.max_size_bytes == 512 * 1024
    assert not config.console_enabled


def test_defaults_without_a_logging_section(tmp_path):
    config = load_config(write(tmp_path, "[agent_flow]\nname = 'x'\n"))
    assert (config.level, config.format, config.file, config.file_only) == ("info", "console", None, False)
    assert (config.max_size, config.max_backups, config.max_age, config.compress) == (100, 0, 0, False)
    assert (config.socket.mode, config.socket.max_record_bytes, config.socket.max_connections) == (0o660, 262144, 1024)


def test_socket_subtable(tmp_path):
    config = load_config(write(tmp_path, """
[logging.socket]
path = "run/l.sock"
mode = "0600"
group = "adm"
max_record_bytes = 1024
max_connections = 5
"""))
    s = config.socket
    assert (s.path, s.mode, s.group, s.max_record_bytes, s.max_connections) == (
        tmp_path.resolve() / "run" / "l.sock", 0o600, "adm", 1024, 5)


def test_toml_syntax_error_gives_file_line_and_column(tmp_path):
    err = error_of(tmp_path, '[logging]\nlevel = "info"\nmax_size = = 3\n')
    assert (err.file, err.line) == (tmp_path / "agentflow.toml", 3)
    assert err.column is not None
    assert str(err).startswith(f"{tmp_path / 'agentflow.toml'}:3:")
    assert "TOML syntax error" in str(err)


def test_unknown_key_suggests_the_closest_valid_one(tmp_path):
    err = error_of(tmp_path, '[logging]\nlevel = "info"\nmax_sise = 10\n')
    assert err.key == "logging.max_sise" and err.line == 3
    assert 'did you mean "max_size"?' in str(err)


def test_unknown_key_in_a_subtable(tmp_path):
    err = error_of(tmp_path, '[logging.socket]\nmax_conections = 10\n')
    assert err.key == "logging.socket.max_conections" and err.line == 2
    assert 'did you mean "max_connections"?' in str(err)


def test_unknown_subtable_lists_what_is_valid(tmp_path):
    err = error_of(tmp_path, '[logging.sokcet]\npath = "x"\n')
    assert err.key == "logging.sokcet" and 'did you mean "socket"?' in str(err)


@pytest.mark.parametrize("body,key,fragment", [
    ('max_size = "100 bananas"', "logging.max_size",
     'expected a positive number of megabytes (integer or float), or a size such as "100MB", "1.5GB", "512KB", '
     'found string "100 bananas"'),
    ("max_size = 0", "logging.max_size", "found integer 0"),
    ('level = "loud"', "logging.level", 'expected one of "debug", "info", "warn", "error", found string "loud"'),
    ('compress = "yes"', "logging.compress", 'expected true or false, found string "yes"'),
    ("max_backups = -1", "logging.max_backups", "found integer -1"),
    ("max_backups = 2.5", "logging.max_backups", "found float 2.5"),
    ('format = "xml"', "logging.format", 'found string "xml"'),
    ("file = 3", "logging.file", "expected a non-empty string, found integer 3"),
])
def test_wrong_type_or_value_names_key_expected_and_found(tmp_path, body, key, fragment):
    err = error_of(tmp_path, f"[logging]\n{body}\n")
    assert err.key == key and err.line == 2
    assert fragment in str(err)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_default_socket_path_rule():
    assert default_socket_path({"LOGD_SOCKET": "/x/s.sock", "XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/x/s.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/run/user/1/logd/logd.sock")
    import os
    assert default_socket_path({}) == Path(f"/tmp/logd-{os.getuid()}/logd.sock")


def run_check(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", "check", *args], capture_output=True, text=True, cwd=cwd)


def test_logd_check_prints_effective_config_and_exits_0(tmp_path):
    path = write(tmp_path, '[logging]\nlevel = "warning"\nfile = "a.log"\n')
    result = run_check("--config", str(path))
    assert result.returncode == 0, result.stderr
    assert 'level = "warn"' in result.stdout
    assert f'file = "{tmp_path.resolve() / "a.log"}"' in result.stdout
    assert "[logging.socket]" in result.stdout and "mode = 0o660" in result.stdout


def test_logd_check_exits_2_with_one_clear_line_on_error(tmp_path):
    path = write(tmp_path, "[logging]\nmax_sise = 10\n")
    result = run_check("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f'logd: error: {path}:2:1: logging.max_sise: unknown key (did you mean "max_size"?)')
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example", sorted((ROOT / "config").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(example):
    result = run_check("--config", str(example))
    assert result.returncode == 0, result.stderr
