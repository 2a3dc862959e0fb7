"""`logd check` lists every error of a file at once, refuses a misspelt [logging] and unknown keys
with the nearest name at every level, hints at quoting, checks that logd could create its paths,
reads size and retention strings; refuses a world-writable socket, and logd's own records are
never filtered out by the level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from logd.config import ConfigErrors, load_config

from support import read_records, send_records, wait_for, write_toml


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
        '(integer or float), or a size such as "100MB", "1.5GB", "512KB", found integer -1',
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


def test_misspelt_logging_table_fails_the_check(tmp_path):
    """README's `logd check ... && echo "config is good"` must not say good for a file whose
    whole [logging] would be ignored."""
    path = write_toml(tmp_path, '[loging]\nlevel = "debug"\n')
    result = check(path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"logd: error: {path}:1: [loging] is not read by logd (did you mean [logging]?); "
                             "its settings would be ignored\n")
    unrelated = check(write_toml(tmp_path, '[agent_flow]\nname = "x"\n[runtime]\nmax_concurrent_agents = 4\n'
                                           '[logging]\nlevel = "warn"\n'))
    assert unrelated.returncode == 0 and unrelated.stderr == ""  # AgenticGoKit's own tables are its business


def test_an_unquoted_word_gets_the_hint_to_quote_it(tmp_path):
    for word in ("info", "debug"):
        path = write_toml(tmp_path, f"[logging]\nlevel = {word}\n")
        result = check(path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"logd: error: {path}:2:")
        assert result.stderr.endswith(f'; text is quoted in TOML: level = "{word}"\n'), result.stderr


def test_near_names_are_suggested_at_every_level(tmp_path):
    path = write_toml(tmp_path, '[logging]\nlevl = "info"\n\n[logging.rotaton]\nmax_size = 5\nmax_backups = 3\n\n'
                                '[logging.sampling]\nlisten = "127.0.0.1:9464"\nbrust = 10\n\n'
                                '[[logging.ship]]\ntype = "syslog"\nurl = "tcp://x:514"\nbatch = 5\n')
    result = check(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'logd: error: {path}:2:1: logging.levl: unknown key (did you mean "level"?)',
        f"logd: error: {path}:4:10: logging.rotaton: unknown table (max_size, max_backups are keys of [logging])",
        f"logd: error: {path}:9:1: logging.sampling.listen: unknown key here; listen is a key of [logging.metrics]",
        f'logd: error: {path}:10:1: logging.sampling.brust: unknown key (did you mean "burst"?)',
        f'logd: error: {path}:15:1: logging.ship[0].batch: unknown key (did you mean "batch_size"?)',
    ]


def test_a_path_logd_could_not_create_fails_the_check(tmp_path, sock_dir):
    """Caught by `logd check`, not at `logd run`: a file under something that is not a folder,
    a folder that is a file, and (as another user) a folder that user may not write."""
    (tmp_path / "notes.txt").write_text("x")
    path = write_toml(tmp_path, '[logging]\nfile = "notes.txt/agent.log"\nstate_dir = "notes.txt"\n')
    result = check(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"logd: error: {path}:2:1: logging.file: cannot create {tmp_path}/notes.txt/agent.log: "
        f"{tmp_path}/notes.txt is not a folder",
        f"logd: error: {path}:3:1: logging.state_dir: {tmp_path}/notes.txt exists and is not a folder",
    ]
    os.chmod(sock_dir, 0o755)  # a folder user nobody may read but not write (tmp_path is root's alone)
    closed = sock_dir
    config = write_toml(closed, '[logging]\nfile = "logs/agent.log"\n[logging.socket]\npath = "/tmp/x.sock"\n')
    # nobody may read everything (CAP_DAC_READ_SEARCH: the checkout may be in a 0700 folder, as
    # mktemp -d makes it) but write only what nobody may write
    reader = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *reader, sys.executable,
                                "-m", "logd", "check", "--config", str(config)],
                               capture_output=True, text=True, timeout=30)
    assert as_nobody.returncode == 2
    assert as_nobody.stderr == (f"logd: error: {config}:2:1: logging.file: cannot create {closed}/logs/agent.log: "
                                f"{closed} is not writable by user nobody\n")
    assert check(config).returncode == 0  # its owner may


def test_size_and_retention_strings_are_read_where_unambiguous(tmp_path):
    path = write_toml(tmp_path, '[logging]\nmax_size = "100MB"\nmax_age = "2 weeks"\n'
                                '[logging.traces]\nmax_age = "36h"\n')
    config = load_config(path)
    assert (config.max_size, config.max_age, config.traces.max_age) == (100, 14, 1.5)
    assert load_config(write_toml(tmp_path, '[logging]\nmax_size = "1.5 GiB"\nmax_age = "10 days"\n')).max_size == 1536
    result = check(write_toml(tmp_path, '[logging]\nmax_size = "100"\nmax_age = "1 month"\n'))
    assert result.returncode == 2
    assert 'found string "100"' in result.stderr and "(a size in a string needs its unit)" in result.stderr
    assert "(a month has no fixed number of days: write days)" in result.stderr


def test_logd_run_reads_the_same_size_strings(daemon, tmp_path):
    """One parser: the daemon rotates at max_size = "2KB"."""
    d = daemon('file = "agent.log"\nmax_size = "2KB"\nmax_age = "10 days"\ncompress = false')
    send_records(d.socket_path, [{"message": "x" * 200, "seq": i} for i in range(40)])
    wait_for(lambda: len(list(tmp_path.glob("agent-*.log"))) >= 2, what="backups of a 2 KB file")
    assert d.stop() == 0
    assert all(p.stat().st_size <= 2048 for p in tmp_path.glob("agent-*.log"))


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


def test_the_system_config_may_name_only_paths_the_service_may_write(request):
    """/etc/logd/agentflow.toml is read by logd.service, to which the system is read-only but
    for its own folders (ProtectSystem=strict, ReadWritePaths=): `logd check` says so, with the
    drop-in that would allow a path, though root could create the path here. The shipped
    production config passes. (The suite's system paths live under $LOGD_SYSTEM_ROOT.)"""
    root = os.environ["LOGD_SYSTEM_ROOT"]
    system = Path(root, "etc/logd/agentflow.toml")
    system.parent.mkdir(parents=True, exist_ok=True)
    request.addfinalizer(lambda: system.unlink(missing_ok=True))  # else every later test here would read it
    production = (Path(__file__).parent.parent / "config/production.toml").read_text()
    system.write_text(production.replace('"/var/log/logd/', f'"{root}/var/log/logd/')
                      .replace('"/run/logd/', f'"{root}/run/logd/'))
    assert check(system).returncode == 0, check(system).stderr
    system.write_text(production.replace('"/var/log/logd/agent.log"', f'"{root}/srv/logs/agent.log"')
                      .replace('"/run/logd/', f'"{root}/run/logd/'))
    result = check(system)
    assert result.returncode == 2
    assert result.stderr == (
        f"logd: error: {system}:7:1: logging.file: logd.service may write only below {root}/var/log/logd, "
        f"{root}/var/lib/logd, {root}/run/logd (ProtectSystem=strict), not {root}/srv/logs/agent.log: put it "
        f"there, or allow it with `systemctl edit logd` ([Service] ReadWritePaths={root}/srv/logs)\n")
    other = system.parent / "elsewhere.toml"  # the same file anywhere else is not the service's
    other.write_text(system.read_text())
    assert check(other).returncode == 0, check(other).stderr
