"""[[logging.ship]]: an array of tables; each element validated, errors name logging.ship[N].key and its line."""

from __future__ import annotations

import subprocess
import sys

from logd.config import changes, load_config

from support import config_error, write_toml

write = write_toml
error_of = config_error


TWO = """[logging]
file = "logs/agent.log"

[[logging.ship]]
type = "syslog"
url = "tcp://logs.example:6514"
name = "central"

[[logging.ship]]
type = "otlp"
url = "http://collector:4318/v1/logs"
headers = { Authorization = "env:SHIP_TOKEN" }
match = { agent = ["planner", "writer"] }
level = "warning"
tls_ca = "certs/ca.pem"
"""


def test_targets_are_read_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIP_TOKEN", "Bearer x")
    config = load_config(write(tmp_path, TWO))
    syslog, otlp = config.ship
    assert (syslog.type, syslog.name, syslog.format, syslog.batch_size) == ("syslog", "central", "message", 500)
    assert (otlp.name, otlp.format, otlp.level) == ("otlp-1", "protobuf", "warn")
    assert otlp.headers == (("Authorization", "env:SHIP_TOKEN"),)  # resolved when sending, never stored
    assert otlp.match == (("agent", ("planner", "writer")),)
    assert otlp.tls_ca == tmp_path.resolve() / "certs" / "ca.pem"
    assert config.ship_state_dir == tmp_path.resolve() / "logs" / ".logd-state"


def test_errors_name_the_element_key_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIP_TOKEN", "x")
    err = error_of(tmp_path, TWO.replace('url = "http://collector:4318/v1/logs"', 'url = "tcp://collector:4318"'))
    assert err.key == "logging.ship[1].url" and err.line == 11
    assert 'expected an http:// or https:// URL for type "otlp", found "tcp://collector:4318"' in str(err)

    err = error_of(tmp_path, TWO.replace('url = "tcp://logs.example:6514"', 'url = "tcp://logs.example"'))
    assert (err.key, err.line) == ("logging.ship[0].url", 6) and "port is required" in str(err)

    err = error_of(tmp_path, TWO.replace('name = "central"', 'batch_size = 0'))
    assert (err.key, err.line) == ("logging.ship[0].batch_size", 7)

    err = error_of(tmp_path, TWO.replace('type = "otlp"', 'type = "kafka"'))
    assert err.key == "logging.ship[1].type" and '"syslog"' in str(err)

    err = error_of(tmp_path, TWO.replace('name = "central"', 'nmae = "central"'))
    assert err.key == "logging.ship[0].nmae" and 'did you mean "name"' in str(err)


def test_missing_env_secret_and_missing_url_and_duplicate_names(tmp_path, monkeypatch):
    monkeypatch.delenv("SHIP_TOKEN", raising=False)
    err = error_of(tmp_path, TWO)
    assert err.key == "logging.ship[1].headers.Authorization" and "SHIP_TOKEN is not set" in str(err)
    monkeypatch.setenv("SHIP_TOKEN", "x")
    err = error_of(tmp_path, TWO.replace('url = "tcp://logs.example:6514"\n', ""))
    assert err.key == "logging.ship[0].url" and "missing required key" in str(err) and err.line == 4
    err = error_of(tmp_path, TWO + 'name = "central"\n')
    assert err.key == "logging.ship[1].name" and "duplicate" in str(err)
    err = error_of(tmp_path, "[logging]\nship = 3\n")
    assert err.key == "logging.ship" and "array of tables" in str(err)
    err = error_of(tmp_path, TWO.replace('type = "otlp"', 'type = "otlp"\nformat = "xml"'))
    assert err.key == "logging.ship[1].format"
    err = error_of(tmp_path, TWO.replace('name = "central"', 'name = "../etc"'))
    assert err.key == "logging.ship[0].name"


def test_logd_check_shows_targets_without_secrets(tmp_path):
    path = write(tmp_path, TWO)
    result = subprocess.run([sys.executable, "-m", "logd", "check", "--config", str(path)], capture_output=True,
                            text=True, env={"SHIP_TOKEN": "Bearer top-secret", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[[logging.ship]]") == 2
    assert '"Authorization" = "env:SHIP_TOKEN"' in result.stdout and "top-secret" not in result.stdout


def test_changes_name_the_element(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIP_TOKEN", "x")
    old = load_config(write(tmp_path, TWO))
    new = load_config(write(tmp_path, TWO.replace("6514", "6515")))
    assert [c for c in changes(old, new) if c.startswith("ship")] == [
        'ship[0].url: "tcp://logs.example:6514" -> "tcp://logs.example:6515"']
