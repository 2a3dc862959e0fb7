"""`logd top`: driven in a real terminal (tmux) against a real `logd run`, `--once` for scripts,
and the frame arithmetic (rates, p95, tokens/min, sorting) on two snapshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from usage_samples import zerolog_records

from logd.cli.top import make_frame, sort_rows

from support import agent_records, send_records, wait_for

TMUX = shutil.which("tmux") or "/usr/bin/tmux"


@pytest.fixture
def tmux(sock_dir: Path) -> Iterator[Callable[..., str]]:
    """A private tmux server (its own socket), killed at teardown with everything in it."""
    server = str(sock_dir / "tmux")
    env = {**os.environ, "TERM": "xterm-256color"}

    def run(*args: str) -> str:
        return subprocess.run([TMUX, "-S", server, *args], capture_output=True, text=True, check=True,
                              env=env).stdout

    yield run
    subprocess.run([TMUX, "-S", server, "kill-server"], capture_output=True)


def row(screen: str, agent: str) -> list[str] | None:
    """The cells of an agent's row on the screen (split on blanks), None while it is not shown."""
    for line in screen.splitlines():
        cells = line.split()
        if cells and cells[0] == agent:
            return cells
    return None


def test_top_in_a_terminal_shows_agent_rows_change_as_records_arrive(daemon, tmp_path, tmux):
    d = daemon()
    send_records(d.socket_path, [{"level": "info", "message": "hello", "agent": "alpha"}])
    wait_for(lambda: agent_records(tmp_path / "agent.log"), what="alpha's record")
    command = (f"{sys.executable} -m logd top --interval 1 --socket {d.socket_path}; "
               "echo top-exited-$?; sleep 600")
    tmux("new-session", "-d", "-x", "160", "-y", "30", "-s", "top", command)
    screen = lambda: tmux("capture-pane", "-p", "-t", "top")  # noqa: E731

    wait_for(lambda: row(screen(), "alpha"), timeout=20, what="alpha's row")
    first = screen()
    assert "AGENT" in first and "TOK/MIN" in first and "sinks: console ok" in first and "file ok" in first
    assert row(first, "beta") is None

    # beta arrives: 20 x (4 zerolog records, one an error, with 420 tokens)
    send_records(d.socket_path, zerolog_records("beta") * 20)
    # a frame with beta's rates: records/s, errors/s and tokens/min above zero
    busy = wait_for(lambda: (r := row(screen(), "beta")) and float(r[1].replace(",", "")) > 0 and r,
                    timeout=20, what="beta's row with a rate")
    assert float(busy[2]) > 0  # errors/s
    assert float(busy[4].replace(",", "")) > 0  # tokens/min
    assert "tool failed: HTTP 429" in screen()

    tmux("send-keys", "-t", "top", "e")
    wait_for(lambda: "sort: errors" in screen(), what="sorted by errors")
    tmux("send-keys", "-t", "top", "q")
    wait_for(lambda: "top-exited-0" in screen(), what="top to quit on q")


def test_top_says_so_when_the_daemon_goes_away(daemon, tmux):
    d = daemon()
    tmux("new-session", "-d", "-x", "160", "-y", "30", "-s", "top",
         f"{sys.executable} -m logd top --interval 0.5 --socket {d.socket_path}; echo top-exited-$?; sleep 600")
    screen = lambda: tmux("capture-pane", "-p", "-t", "top")  # noqa: E731
    wait_for(lambda: "AGENT" in screen(), timeout=20, what="the first frame")
    assert d.stop() == 0
    wait_for(lambda: "top-exited-1" in screen(), timeout=20, what="top to exit")
    # printed after leaving the alternate screen, so it is still there to read
    assert f"logd: error: no logd is running for {d.socket_path}" in screen()


def test_top_once_prints_one_frame_for_scripts(daemon, tmp_path):
    d = daemon()
    records = zerolog_records("planner") + [{"level": "info", "message": "x", "agent": "writer", "duration_ms": 1200}]
    send_records(d.socket_path, records)
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) >= len(records), what="records in the file")
    out = subprocess.run([sys.executable, "-m", "logd", "top", "--once", "--interval", "0.1", "--width", "140",
                          "--socket", str(d.socket_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "\x1b[" not in out.stdout  # no terminal: plain text
    assert out.stdout.startswith("logd ") and " ready " in out.stdout.splitlines()[0]
    assert " ".join(row(out.stdout, "planner")[-4:]) == "tool failed: HTTP 429"
    # p95 of one 1.2 s run in bucket (1, 2.5], interpolated as histogram_quantile does: 1 + 1.5 * 0.95
    assert row(out.stdout, "writer")[3] == "2.42s"


def test_top_without_rich_says_which_extra_to_install(daemon):
    d = daemon()
    code = ("import sys; sys.modules['rich'] = None; from logd.cli import main; "
            f"sys.exit(main(['top', '--once', '--socket', {str(d.socket_path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == "logd: error: logd top needs rich: pip install 'logd[tui]'"


def snap(now: float, agents: dict, tokens: list, durations: dict | None = None, received: int = 0) -> dict:
    return {"now": now, "version": "t", "uptime_s": now, "ready": True, "paused": False, "received": received,
            "dropped": {"below_level": 0}, "queue_depth": 0, "connections": 1, "sinks": {}, "agents": agents,
            "durations": durations or {}, "duration_buckets": [1.0, 2.5, 5.0],
            "usage": {"tokens": tokens, "last_error": {"b": {"time": "t", "message": "boom"}}}}


def test_frame_rates_are_per_second_of_the_daemons_clock():
    prev = snap(100.0, {"a": {"info": 10}}, [["a", "m", "input", 1000]], received=10)
    cur = snap(102.0, {"a": {"info": 30}, "b": {"info": 4, "error": 2}},
               [["a", "m", "input", 1600], ["a", "m", "output", 200], ["b", "m", "total", 50]],
               durations={"b": [0, 4, 0, 0, 2.0 * 4]}, received=36)
    frame = make_frame(prev, cur)
    rows = {r.agent: r for r in frame.agents}
    assert frame.received_per_s == 13
    assert rows["a"].records_per_s == 10 and rows["a"].errors_per_s == 0
    assert rows["a"].tokens_per_min == (600 + 200) / 2 * 60
    assert rows["b"].records_per_s == 3 and rows["b"].errors_per_s == 1 and rows["b"].last_error == "boom"
    assert rows["b"].p95_run_s == pytest.approx(1 + 1.5 * 0.95)
    assert [r.agent for r in sort_rows(frame.agents, "errors")] == ["b", "a"]
    assert [r.agent for r in sort_rows(frame.agents, "tokens")] == ["a", "b"]
    assert [r.agent for r in sort_rows(frame.agents, "p95")] == ["b", "a"]
