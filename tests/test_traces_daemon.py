"""End-to-end: trace records over a real socket into a real `logd run`, read back with
`logd list` / `logd trace` subprocesses."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from logd.bench.traces import write_sessions
from logd.traces.index import SessionIndex
from logd.traces.names import file_name
from logd.traces.store import JOURNAL

from support import agent_records, read_records, send, send_records, wait_for
from trace_samples import agk_session, koog_run, span_trace


def logd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "NO_COLOR": "1"})


def stored(folder: Path, session: str) -> list[dict]:
    return read_records(folder / file_name(session))


def test_three_shapes_go_to_their_session_files_and_still_to_the_log(daemon, tmp_path):
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "tr"')
    records = agk_session() + koog_run() + span_trace() + [{"msg": "ordinary"}]
    send_records(d.socket_path, records)
    assert d.stop() == 0
    folder = tmp_path / "tr"
    assert sorted(p.name for p in folder.glob("*.trace.jsonl")) == sorted(
        file_name(s) for s in ("req-17461596", "run-koog-1", "trace_abc123"))
    agk = stored(folder, "req-17461596")
    assert [r["hook"] for r in agk] == [r["hook"] for r in agk_session()]
    assert "timestamp" not in agk[0] and agk[0]["time"].endswith("Z")  # canonical time, as in the log
    assert stored(folder, "trace_abc123")[0]["started_at"] == span_trace()[0]["started_at"]  # kept as sent
    in_log = agent_records(tmp_path / "agent.log")
    assert len(in_log) == len(records) and in_log[-1]["message"] == "ordinary"


def test_hostile_session_ids_over_the_socket_stay_inside_the_folder(daemon, tmp_path):
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "tr"')
    hostile = ["../escape", "../../tmp/x", "/abs/path", "a/../../b", ".", "..", "", "x" * 3000]
    send_records(d.socket_path, [{"session_id": s, "hook": "AgentError", "agent_id": "a", "error": "e"}
                                 for s in hostile])

    def traces_status() -> dict:
        return orjson.loads(logd("status", "--json", "--socket", str(d.socket_path), cwd=tmp_path).stdout)["traces"]

    status = wait_for(lambda: (lambda t: t if t["stored"] == 5 else None)(traces_status()), what="5 stored")
    assert d.stop() == 0
    folder = tmp_path / "tr"
    names = sorted(p.name for p in folder.glob("*.trace.jsonl"))
    assert len(names) == 5 and all(p.parent == folder and p.is_file() for p in folder.iterdir())
    assert not (tmp_path / "escape").exists() and not Path("/abs/path").exists()
    assert sorted(tmp_path.iterdir()) == sorted(tmp_path / n for n in
                                                ("agent.log", "agentflow.toml", "daemon.stderr", "daemon.stdout", "tr"))
    assert status["refused"] == 2 and status["dropped"] == 0  # "." and ".."; "" is no session id at all
    listed = logd("list", "--format", "json", "--config", str(d.config), cwd=tmp_path)
    assert sorted(s["session"] for s in orjson.loads(listed.stdout)) == sorted(
        s for s in hostile if s not in (".", "..", ""))


def test_list_and_trace_commands_on_a_multi_agent_session_with_a_failure(daemon, tmp_path):
    d = daemon('file = "agent.log"')  # default trace folder: traces/ beside the log file
    send_records(d.socket_path, agk_session() + span_trace())
    assert d.stop() == 0
    assert (tmp_path / "traces" / file_name("req-17461596")).exists()
    cfg = str(d.config)

    listed = logd("list", "--config", cfg, cwd=tmp_path)
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("req-17461596"))
    assert "2.55s" in row and "planner, researcher, writer" in row and row.split()[3:5] == ["10", "1"]

    shown = logd("trace", "req-17461596", "--config", cfg, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "AgentError" in shown.stdout and "LLM timeout after 300ms" in shown.stdout
    assert "Condensed route:\nplanner → researcher → writer" in shown.stdout

    analyzed = logd("trace", "req-17", "--analyze", "--config", cfg, cwd=tmp_path)  # a unique prefix
    assert "Critical path" in analyzed.stdout and "Timeline:" in analyzed.stdout
    writer = next(line for line in analyzed.stdout.splitlines() if line.startswith("writer "))
    assert writer.split()[1:] == ["2", "900.0ms", "450.0ms", "600.0ms", "600.0ms", "1"]

    flow_only = logd("trace", "req-17461596", "--flow-only", "--filter", "agent=writer", "--config", cfg, cwd=tmp_path)
    assert "TIMESTAMP" not in flow_only.stdout and "writer" in flow_only.stdout

    missing = logd("trace", "no-such-session", "--config", cfg, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("logd: error: no trace session")
    bad_filter = logd("trace", "req-17461596", "--filter", "writer", "--config", cfg, cwd=tmp_path)
    assert bad_filter.returncode == 2 and "agent=NAME" in bad_filter.stderr


def test_every_output_format_from_the_command_line(daemon, tmp_path):
    d = daemon('file = "agent.log"')
    send_records(d.socket_path, span_trace(group_id="conv-7"))
    assert d.stop() == 0
    cfg = str(d.config)
    as_csv = logd("trace", "conv-7", "--format", "csv", "--config", cfg, cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 7 and {r["session"] for r in rows} == {"conv-7"}
    assert {r["hook"] for r in rows} >= {"span:agent", "span:function", "span:handoff"}
    chrome = orjson.loads(logd("trace", "conv-7", "--format", "chrome", "--config", cfg, cwd=tmp_path).stdout)
    spans = {e["name"]: e for e in chrome["traceEvents"] if e["ph"] == "X"}
    assert len(spans) == 7 and spans["lookup_invoice"]["dur"] == 800_000
    shown = logd("trace", "conv-7", "--format", "json", "--analyze", "--config", cfg, cwd=tmp_path)
    as_json = orjson.loads(shown.stdout)
    assert as_json["session"] == "conv-7" and as_json["route"] == ["triage", "billing"]
    assert as_json["analysis"]["critical_path"][0]["name"] == "support workflow"
    table = logd("trace", "conv-7", "--config", cfg, cwd=tmp_path).stdout
    assert "span:handoff" in table and "triage → billing" in table


def test_follow_prints_events_as_they_arrive(daemon, tmp_path):
    d = daemon('file = "agent.log"')
    session = agk_session(session="live-1")
    send_records(d.socket_path, session[:2])
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        follower = subprocess.Popen([sys.executable, "-m", "logd", "trace", "live-1", "--follow", "--config",
                                     str(d.config)], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: out_path.read_text().count("BeforeAgentRun") == 1, what="the events already stored")
        send_records(d.socket_path, session[2:5])
        wait_for(lambda: out_path.read_text().count("AfterAgentRun") == 2, what="new events while following")
        send_records(d.socket_path, session[5:])
        wait_for(lambda: "LLM timeout after 300ms" in out_path.read_text(), what="the failure while following")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
    lines = out_path.read_text().splitlines()
    assert lines[0].startswith("TIMESTAMP") and len(lines) == 1 + len(session)
    d.stop()


def test_follow_can_wait_for_a_session_that_has_not_started(daemon, tmp_path):
    d = daemon('file = "agent.log"')
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        follower = subprocess.Popen([sys.executable, "-m", "logd", "trace", "later", "--follow", "--format", "json",
                                     "--config", str(d.config)], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        send_records(d.socket_path, koog_run(run_id="later"))
        wait_for(lambda: out_path.read_text().count("\n") == len(koog_run()), what="json lines")
    finally:
        follower.terminate()
        assert follower.wait(10) == 0
    events = [orjson.loads(line) for line in out_path.read_text().splitlines()]
    assert [e["hook"] for e in events] == [r["eventType"] for r in koog_run()]
    d.stop()


def test_trace_folder_that_cannot_be_written_does_not_stop_logging(daemon, tmp_path):
    (tmp_path / "blocker").write_text("a file where the trace folder should be\n")
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "blocker/traces"')
    send_records(d.socket_path, agk_session() + [{"msg": "after"}])
    wait_for(lambda: any(r.get("sink") == "traces" for r in read_records(tmp_path / "agent.log")),
             what="logd's report about the trace folder")
    send(d.socket_path, b'{"msg":"still logging"}\n')
    assert d.stop() == 0
    messages = [r["message"] for r in agent_records(tmp_path / "agent.log")]
    assert "after" in messages and "still logging" in messages
    assert sum(1 for r in agent_records(tmp_path / "agent.log") if r.get("hook")) == len(agk_session())
    assert "logd: error: cannot write trace file" in d.stderr()


def test_trace_config_is_validated(tmp_path):
    cfg = tmp_path / "agentflow.toml"
    cfg.write_text('[logging.traces]\nmax_age = "a week"\n')
    result = logd("check", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f'logd: error: {cfg}:2:1: logging.traces.max_age: expected a number of days >= 0 '
                                     '(0 keeps every session), or a duration such as "10 days", "2 weeks", "12h", '
                                     'found string "a week"')
    cfg.write_text('[logging]\nfile = "logs/a.log"\n[logging.traces]\nmax_age = 7\n')
    shown = logd("check", "--config", str(cfg), cwd=tmp_path).stdout
    assert "max_age = 7" in shown and f"# traces: {tmp_path / 'logs' / 'traces'}" in shown


def test_reload_moves_the_trace_folder(daemon, tmp_path):
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "first"')
    send_records(d.socket_path, agk_session(session="before"))
    d.config.write_text(d.config.read_text().replace('dir = "first"', 'dir = "second"'))
    assert logd("reload", "--config", str(d.config), cwd=tmp_path).returncode == 0  # or the file watcher did
    wait_for(lambda: any(r.get("event") == "reload" and any("traces.dir" in c for c in r.get("changed", []))
                         for r in read_records(tmp_path / "agent.log")), what="the reload that moved the folder")
    send_records(d.socket_path, agk_session(session="after"))
    assert d.stop() == 0
    assert [p.name for p in (tmp_path / "first").glob("*.trace.jsonl")] == [file_name("before")]
    assert [p.name for p in (tmp_path / "second").glob("*.trace.jsonl")] == [file_name("after")]
    assert len(stored(tmp_path / "first", "before")) == len(agk_session())


def test_trace_records_reach_their_session_file_whatever_the_level_and_redacted(daemon, tmp_path):
    """level = "warn" keeps info chatter out of the log, not a session's hooks out of its trace."""
    d = daemon('file = "agent.log"\nlevel = "warn"\n[logging.traces]\ndir = "tr"')
    session = agk_session()
    session[0] = {**session[0], "api_key": "live-key-123", "state": {"note": "Bearer abcdefghijklmnop"}}
    send_records(d.socket_path, session + [{"level": "info", "msg": "ordinary chatter"}])
    assert d.stop() == 0
    kept = stored(tmp_path / "tr", "req-17461596")
    assert [r["hook"] for r in kept] == [r["hook"] for r in agk_session()]  # every hook, info included
    assert kept[0]["api_key"] == "[REDACTED]" and "abcdefghijklmnop" not in kept[0]["state"]["note"]
    in_log = agent_records(tmp_path / "agent.log")
    assert all(r["level"] in ("warn", "error", "fatal", "panic") for r in in_log)  # the log obeys the level
    assert b"live-key-123" not in (tmp_path / "tr" / file_name("req-17461596")).read_bytes()


def test_a_trace_folder_removed_and_made_again_under_the_daemon_gets_its_files_and_journal_back(daemon, tmp_path):
    """An operator's clean-up under a running daemon: the store notices within a second that its
    folder is not the one it has open, so a session under way and the journal go on in the new
    folder (not to deleted files), and `logd list` learns what changed from the journal, never by
    looking at every file (issue 27, the session index)."""
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "tr"')
    folder = tmp_path / "tr"
    cfg = str(d.config)

    def stored(*sessions: str) -> list[int]:
        return [len(read_records(folder / file_name(s))) for s in sessions]

    send_records(d.socket_path, agk_session(session="before") + agk_session(session="ongoing")[:4])
    wait_for(lambda: stored("before", "ongoing") == [10, 4], what="the first sessions stored")
    assert logd("list", "--config", cfg, cwd=tmp_path).stdout.count("\n") == 3  # header, before, ongoing
    shutil.rmtree(folder)
    folder.mkdir()
    sent: list[str] = []

    def journal_back() -> bool:  # each look sends a new session, until the journal names one in the new folder
        sent.append(f"after-{len(sent)}")
        send_records(d.socket_path, agk_session(session=sent[-1]))
        journal = folder / JOURNAL
        return journal.exists() and any(file_name(s).encode() in journal.read_bytes() for s in sent)

    wait_for(journal_back, interval=0.1, what="the journal in the new folder")
    send_records(d.socket_path, agk_session(session="ongoing")[4:])
    wait_for(lambda: stored("ongoing", *sent) == [6] + [10] * len(sent), what="every session stored")
    assert [r["hook"] for r in read_records(folder / file_name("ongoing"))] == [
        r["hook"] for r in agk_session()[4:]]  # written in the new folder, after it was made
    listed = logd("list", "--config", cfg, cwd=tmp_path)  # a new index: the old one went with the folder
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()[1:]) == sorted(sent + ["ongoing"])
    send_records(d.socket_path, agk_session(session="later"))
    wait_for(lambda: stored("later") == [10], what="a later session stored")
    listed = logd("list", "--config", cfg, cwd=tmp_path)
    assert "later" in {line.split()[0] for line in listed.stdout.splitlines()[1:]}
    with SessionIndex(folder) as index:
        learned = index.last_refresh()
    assert learned is not None and not learned.every_file and learned.read == 1  # from the journal: "later"'s file


def test_two_logd_list_at_once_neither_fails_and_a_reader_never_waits_for_a_refresh(tmp_path):
    """Two `logd list` at once over 2,000 sessions both answer whole, one of them building the
    index; while another reader is refreshing it (its write lock held), `logd list` answers at
    once from the index as last committed, never with "database is locked" (issue 27)."""
    folder = tmp_path / "tr"
    write_sessions(folder, 2000)
    command = [sys.executable, "-m", "logd", "list", "--dir", str(folder)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    answers = [(p.communicate(timeout=60), p.returncode) for p in both]
    assert [rc for _, rc in answers] == [0, 0] and [err for (_, err), _ in answers] == ["", ""]
    first = answers[0][0][0]
    assert answers[1][0][0] == first and first.count("\n") == 2001
    write_sessions(folder, 100, seed_time=1_900_000_000.0)  # 3 more spans in each of the first 100 traces
    with SessionIndex(folder) as writer:
        writer.db.execute("BEGIN IMMEDIATE")  # as a refresh under way holds it
        stale = logd("list", "--dir", str(folder), cwd=tmp_path)
        writer.db.execute("ROLLBACK")
    assert stale.returncode == 0 and stale.stderr == "" and stale.stdout == first
    fresh = logd("list", "--dir", str(folder), cwd=tmp_path)
    assert fresh.stdout.count("\n") == 2001
    assert fresh.stdout.splitlines()[1].split()[3] == "6" and first.splitlines()[1].split()[3] == "3"  # events

