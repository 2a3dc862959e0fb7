"""`logd check` lists every error of a file at once, warns about a misspelt [logging], refuses a
world-writable socket, and logd's own records are never filtered out by the level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from logd.config import ConfigErrors, load_config

from support import read_records, wait_for, write_toml


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logd", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)


def test_check_lists_every_error_with_line_column_key_and_suggestion(tmp_path):
    path = write_toml(tmp_path, '[logging]\nlevel = "loud"\nmax_size = -1\nfille = "x.log"\n\n'
                                '[[logging.ship]]\ntype = "loki"\nurl = "tcp://x:1"\n')
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f'logd: error: {path}:2:1: logging.level: '
        'expected one of "debug", "info", "warn", "error", found string "loud"',
        f"logd: error: {path}:3:1: logging.max_size: expected a positive number of megabytes "
        "(integer or float), found integer -1",
        f'logd: error: {path}:4:1: logging.fille: unknown key (did you mean "file"?)',
        f'logd: error: {path}:8:1: logging.ship[0].url: expected an http:// or https:// URL for type "loki", '
        'found "tcp://x:1"',
    ]
    assert result.stdout == ""  # nothing that looks like an effective config


def test_every_error_is_also_on_the_exception_for_reload(tmp_path):
    path = write_toml(tmp_path, '[logging]\nlevel = 3\ncompress = "yes"\n')
    try:
        load_config(path)
    except ConfigErrors as exc:
        assert [e.key for e in exc.errors] == ["logging.level", "logging.compress"]
    else:
        raise AssertionError("the config loaded")


def test_misspelt_logging_table_is_warned_about_not_silently_ignored(tmp_path):
    path = write_toml(tmp_path, '[loging]\nlevel = "debug"\n')
    result = check(path)
    assert result.returncode == 0  # still a usable config (the defaults), but the user is told
    assert f"logd: warning: {path}:1: [loging] is not read by logd (did you mean [logging]?)" in result.stderr
    unrelated = check(write_toml(tmp_path, '[agent_flow]\nname = "x"\n[logging]\nlevel = "warn"\n'))
    assert unrelated.returncode == 0 and "warning" not in unrelated.stderr


def test_world_writable_socket_mode_is_refused_unless_asked_for(tmp_path):
    path = write_toml(tmp_path, "[logging.socket]\nmode = 0o777\n")
    result = check(path)
    assert result.returncode == 2
    assert f"{path}:2:1: logging.socket.mode: mode 0o777 lets every local user write to the socket" in result.stderr
    allowed = check(write_toml(tmp_path, "[logging.socket]\nmode = 0o666\nallow_world_writable = true\n"))
    assert allowed.returncode == 0, allowed.stderr
    assert "mode = 0o666" in allowed.stdout


def test_raising_the_level_by_reload_is_announced(daemon, tmp_path):
    """The "config reloaded" record is logd's own: the old level (warn) does not filter it out."""
    d = daemon('file = "agent.log"\nlevel = "warn"')
    d.config.write_text(d.config.read_text().replace('level = "warn"', 'level = "debug"'))
    reloaded = subprocess.run([sys.executable, "-m", "logd", "reload", "--config", str(d.config)],
                              capture_output=True, text=True, timeout=30)
    assert reloaded.returncode == 0, reloaded.stderr
    wait_for(lambda: any(r.get("message") == "config reloaded" for r in read_records(tmp_path / "agent.log")),
             what="the reload record in the file")
    d.stop()
    own = [r for r in read_records(tmp_path / "agent.log") if r.get("agent") == "logd"]
    assert {r["message"] for r in own} >= {"config reloaded"}
