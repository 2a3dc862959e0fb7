"""AgenticGoKit, Koog and the OpenAI Agents SDK as they really emit traces (fixtures built from
their source: see tests/framework_samples.py), read by logd's trace model, importer and views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from framework_samples import (
    KOOG,
    agk_entries,
    agk_trace_json,
    koog_events,
    koog_line,
    koog_log_line,
    koog_pretty,
    openai_items,
)

from logd.record import normalize_object
from logd.traces import views
from logd.traces.agk import to_trace_json
from logd.traces.analysis import flow, route
from logd.traces.formats import Documents, koog_text
from logd.traces.importer import import_file, read_file
from logd.traces.model import build_session
from logd.traces.names import file_name
from logd.traces.openai import IngestError, records_from_ingest
from logd.traces.render import agentcli_state, render_table
from logd.traces.store import read_lines

RECEIVED = "2026-11-29T17:00:00.000000Z"


def session_of(path: Path, session: str | None = None):
    """A framework's own file read in place, as `logd trace --dir` does."""
    sid = session or next(iter(read_file(path).sessions))
    return views.load(views.Located(sid, [path], foreign=True))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- AgenticGoKit: internal/core/trace.go, cmd/agentcli/cmd/trace.go ---

def test_agk_unclosed_trace_json_gives_agentclis_flow_route_and_state(tmp_path):
    """FileTraceLogger never wrote "]" (no Close()): all 14 entries are read; the flow is
    agentcli's (After* hooks only, next from meta.route, then target_agent_id)."""
    path = write(tmp_path / "req-17461596.trace.json", agk_trace_json(agk_entries()))
    session = session_of(path)
    assert session.id == "req-17461596" and len(session.events) == 14
    steps = flow(session)
    assert [(s.agent, s.next, s.hook) for s in steps] == [
        ("planner", "researcher", "AfterAgentRun"), ("planner", "researcher", "AfterEventHandling"),
        ("researcher", "planner", "AfterAgentRun"), ("researcher", "planner", "AfterEventHandling"),
        ("planner", "planner", "AfterAgentRun"), ("planner", "planner", "AfterEventHandling")]
    assert route(steps) == ["planner", "researcher"]  # not planner -> researcher -> planner -> ...
    after = [e for e in session.events if e.hook == "AfterAgentRun"]
    assert after[0].state == {"message": "Analyze this data", "plan": "research then write"}  # output_state folded
    assert after[0].meta == {"route": "researcher"}
    assert [e.error for e in session.errors] == ["LLM timeout after 300ms"]
    # agentcli's stateSummary: sorted keys, the first three, strings quoted, ", ..." when more
    assert agentcli_state(after[1].state, width=200) == (
        '{findings:"trend up", message:"Analyze this data", plan:"research then write", ...}')
    assert agentcli_state({"n": 3, "long": "x" * 40, "list": [1, 2]}, width=200) == (
        '{list:[...] (2 items), long:"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... (40 chars), n:3}')
    table = render_table(session)
    assert '│ {message:"Analyze this data", plan:"res… │' in table  # cut to the column, like every cell


def test_agk_meta_route_wins_over_target_agent_id_and_target_is_the_fallback():
    entries = json.loads(json.dumps(agk_entries()))
    for e in entries:  # the route in meta says "critic", the event's target says otherwise
        if e["hook"] == "AfterEventHandling" and e["state"]["meta"].get("route") == "researcher":
            e["state"]["meta"]["route"] = "critic"
    session = build_session("s", [normalize_object(dict(e), RECEIVED) for e in entries])
    nexts = [(s.hook, s.next) for s in flow(session)]
    assert nexts[:2] == [("AfterAgentRun", "researcher"), ("AfterEventHandling", "critic")]
    assert nexts[-1] == ("AfterEventHandling", "planner")  # no route in meta: target_agent_id


def test_agk_closed_unclosed_and_truncated_files(tmp_path):
    entries = agk_entries()
    closed = read_file(write(tmp_path / "a.trace.json", agk_trace_json(entries, closed=True)))
    unclosed = read_file(write(tmp_path / "b.trace.json", agk_trace_json(entries)))
    assert closed.records == unclosed.records == 14 and not closed.problems and not unclosed.problems
    text = agk_trace_json(entries)
    cut = read_file(write(tmp_path / "c.trace.json", text[: text.rindex('"hook"')]))  # killed mid-entry
    assert cut.records == 13
    assert len(cut.problems) == 1 and "c.trace.json: line " in cut.problems[0] and "cut short" in cut.problems[0]


def test_agk_export_round_trips_through_the_importer(tmp_path):
    """--format agk writes FileTraceLogger's closed layout; reading it back gives the same session."""
    original = session_of(write(tmp_path / "req-17461596.trace.json", agk_trace_json(agk_entries())))
    exported = to_trace_json(original)
    assert exported.startswith("[\n{\n  \"timestamp\": ") and exported.endswith("}\n]\n") and "\n,\n{" in exported
    assert [e["hook"] for e in json.loads(exported)] == [e["hook"] for e in agk_entries()]
    again = session_of(write(tmp_path / "exported.trace.json", exported))
    assert [(e.hook, e.agent, e.state, e.error) for e in again.events] == [
        (e.hook, e.agent, e.state, e.error) for e in original.events]
    assert route(flow(again)) == ["planner", "researcher"]


def test_agk_export_of_a_span_session_gives_agent_runs(tmp_path):
    items = openai_items()
    session = build_session("conv-42", records_from_ingest({"data": items}, received=RECEIVED))
    entries = json.loads(to_trace_json(session))
    assert [(e["hook"], e["agent_id"]) for e in entries] == [
        ("BeforeAgentRun", "triage"), ("AfterAgentRun", "triage"), ("BeforeAgentRun", "billing"),
        ("AgentError", "billing")]
    assert entries[1]["target_agent_id"] == "billing"


# --- Koog: feature/model/events/*.kt, kotlinx polymorphic JSON, the trace writers' lines ---

ALL_KOOG = {"AgentStartingEvent", "AgentCompletedEvent", "AgentExecutionFailedEvent", "AgentClosingEvent",
            "StrategyStartingEvent", "StrategyCompletedEvent", "NodeExecutionStartingEvent",
            "NodeExecutionCompletedEvent", "NodeExecutionFailedEvent", "SubgraphExecutionStartingEvent",
            "SubgraphExecutionCompletedEvent", "SubgraphExecutionFailedEvent", "LLMCallStartingEvent",
            "LLMCallCompletedEvent", "LLMStreamingStartingEvent", "LLMStreamingFrameReceivedEvent",
            "LLMStreamingCompletedEvent", "LLMStreamingFailedEvent", "ToolCallStartingEvent",
            "ToolValidationFailedEvent", "ToolCallFailedEvent", "ToolCallCompletedEvent"}


def test_koog_pretty_printed_json_every_event_type(tmp_path):
    path = write(tmp_path / "koog.json", koog_pretty(koog_events()) + koog_pretty(koog_events("run-2", fail=True)))
    read = read_file(path)
    assert sorted(read.sessions) == ["run-2", "run-7f3c"] and not read.problems
    hooks = set()
    for run in read.sessions:
        session = session_of(path, run)
        hooks |= {e.hook for e in session.events}
        assert {e.agent for e in session.events} == {"weather-agent"}  # the run's agent, also on node/tool events
    assert hooks == ALL_KOOG
    ok = session_of(path, "run-7f3c")
    spans = {(s.kind, s.name): (round(s.duration, 3), s.error) for s in ok.spans}
    assert spans[("agent", "weather-agent")] == (1.42, None)
    assert spans[("strategy", "weather-strategy")] == (1.405, None)
    assert spans[("node", "ask-llm")] == (0.52, None)
    assert spans[("subgraph", "tools")] == (0.65, None)
    assert [round(s.duration, 3) for s in ok.spans if s.kind == "generation"] == [0.5, 0.2]  # call, streaming
    assert [(s.name, s.error) for s in ok.spans if s.kind == "function"] == [
        ("weather", "HTTP 503 from weather service"), ("weather", "city must be a code"), ("weather", None)]
    failed = session_of(path, "run-2")
    assert [(e.hook, e.error) for e in failed.errors][-1] == ("AgentExecutionFailedEvent", "stream reset")
    levels = {r["type"].rsplit(".", 1)[1]: r["level"] for r in read.sessions["run-2"]}
    assert levels["ToolCallFailedEvent"] == levels["AgentExecutionFailedEvent"] == "error"
    assert levels["ToolCallStartingEvent"] == "info"


def test_koog_text_lines_give_the_same_events_as_its_json(tmp_path):
    events = koog_events() + koog_events("run-2", fail=True)
    file_writer = write(tmp_path / "agent-traces.log", "\n".join(koog_line(e) for e in events) + "\n")
    log_writer = write(tmp_path / "app.log", "\n".join(koog_log_line(e) for e in events) + "\n")
    as_json = write(tmp_path / "koog.json", koog_pretty(events))
    for run in ("run-7f3c", "run-2"):
        want = [(e.hook, e.agent, e.error) for e in session_of(as_json, run).events]
        assert [(e.hook, e.agent, e.error) for e in session_of(file_writer, run).events] == want
        assert [(e.hook, e.agent, e.error) for e in session_of(log_writer, run).events] == want
    tool = koog_text(koog_line(koog_events()[8]))
    assert tool == {"type": KOOG + "ToolCallFailedEvent", "runId": "run-7f3c", "toolName": "weather",
                    "toolArgs": {"city": "Oslo"}, "error": {"message": "HTTP 503 from weather service"},
                    "message": koog_line(koog_events()[8])}


def test_koog_unknown_event_type_is_kept_as_an_event(tmp_path):
    lines = [koog_line(koog_events()[0]), "FancyNewEvent (run id: run-7f3c, gadget: 42)",
             json.dumps({"type": KOOG + "QuantumLeapEvent", "runId": "run-7f3c"})]
    session = session_of(write(tmp_path / "k.log", "\n".join(lines) + "\n"))
    assert [e.hook for e in session.events] == ["AgentStartingEvent", "FancyNewEvent", "QuantumLeapEvent"]


# --- OpenAI Agents SDK: tracing/{traces,spans,span_data,processors}.py ---

ALL_SPAN_TYPES = {"agent", "task", "turn", "function", "generation", "response", "handoff", "custom", "guardrail",
                  "transcription", "speech", "speech_group", "mcp_tools"}


def test_openai_ingest_body_gives_records_in_the_groups_session():
    records = records_from_ingest({"data": openai_items()}, received=RECEIVED)
    assert len(records) == 16 and records[0]["object"] == "trace"
    spans = records[1:]
    assert {r["group_id"] for r in spans} == {"conv-42"} and {r["workflow_name"] for r in spans} == {"Customer support"}
    session = build_session("conv-42", records)
    assert {e.hook for e in session.events} == {f"span:{t}" for t in ALL_SPAN_TYPES}
    billing = next(s for s in session.spans if s.name == "billing")
    assert billing.error == 'Error running tool {"tool_name":"lookup_invoice","error":"not found"}'  # error.data
    assert [r["level"] for r in spans if r["error"]] == ["error", "error"]
    orphan = next(s for s in session.spans if s.name == "late_audit")  # its parent never arrives
    assert orphan.parent == "span_" + "0" * 22 + "63" and orphan.agent == ""
    assert route(flow(session)) == ["triage", "billing"]


def test_openai_spans_in_a_later_batch_still_reach_their_group():
    items = openai_items(trace_id="trace_" + "b2" * 16, group_id="conv-later")
    from logd.traces.formats import TraceMeta

    meta = TraceMeta()
    records_from_ingest({"data": items[:1]}, meta=meta)
    later = records_from_ingest({"data": items[1:]}, meta=meta)
    assert {r["group_id"] for r in later} == {"conv-later"}


@pytest.mark.parametrize("body, says", [
    ([1, 2], 'expected a JSON object {"data": [trace or span objects]}'),
    ({"items": []}, 'expected a JSON object {"data"'),
    ({"data": [{"object": "trace"}, "x"]}, '"data"[1] is not an object'),
])
def test_openai_ingest_refuses_other_bodies_with_one_clear_line(body, says):
    with pytest.raises(IngestError, match=".*") as info:
        records_from_ingest(body)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_openai_exports_as_json_lines_or_batches_read_alike(tmp_path):
    items = openai_items()
    lines = write(tmp_path / "spans.jsonl", "\n".join(json.dumps(i) for i in items) + "\n")
    batch = write(tmp_path / "batch.json", json.dumps({"data": items}, indent=2))
    late_trace = write(tmp_path / "late.jsonl", "\n".join(json.dumps(i) for i in items[1:] + items[:1]) + "\n")
    for path in (lines, batch, late_trace):
        read = read_file(path)
        assert list(read.sessions) == ["conv-42"] and read.records == 16, path


# --- import ---

def test_import_twice_adds_nothing_the_second_time(tmp_path):
    folder = tmp_path / "traces"
    path = write(tmp_path / "req-17461596.trace.json", agk_trace_json(agk_entries()))
    first = import_file(path, folder)
    assert (first.records, first.added, first.already) == (14, 14, 0)
    later = dict(agk_entries()[-1], timestamp="2026-11-29T18:02:06.000000000+01:00")
    write(path, agk_trace_json(agk_entries() + [later]))
    second = import_file(path, folder)
    assert (second.records, second.added, second.already) == (15, 1, 14)
    stored, _ = read_lines(folder / file_name("req-17461596"))
    assert len(stored) == 15 and stored[0]["time"] == "2026-11-29T17:02:03.123456Z"


def test_a_session_id_that_is_a_path_stays_inside_the_trace_folder(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    entries = agk_entries(session="../../escape/evil")
    done = import_file(write(tmp_path / "evil.trace.json", agk_trace_json(entries)), folder)
    assert done.added == 14 and {p.parent for p in folder.iterdir()} == {folder}
    assert not (tmp_path / "escape").exists()
    dotdot = import_file(write(tmp_path / "dots.trace.json", agk_trace_json(agk_entries(session="..")[:2])), folder)
    assert dotdot.added == 0 and "session id '..' cannot name a trace file" in dotdot.problems[0]
    assert [s.session for s in views.summaries(folder)] == ["../../escape/evil"]


def test_entries_that_are_not_traces_are_counted_in_one_line(tmp_path):
    entries = agk_entries()[:3] + [dict(agk_entries()[3], hook="AfterEverything")]
    text = agk_trace_json(entries) + "\nplain text\n"
    read = read_file(write(tmp_path / "odd.trace.json", text))
    assert read.records == 3 and read.not_traces == 2
    line = text[: text.index("AfterEverything")].rindex("\n{") + 2  # where that entry's "{" is
    assert read.problems == [f"{tmp_path / 'odd.trace.json'}: 2 entries are not a trace record of AgenticGoKit, "
                             "Koog or the OpenAI Agents SDK, kept out "
                             f"(first at line {text.count(chr(10), 0, line) + 1})"]


# --- send --raw: stdin split into documents ---

def test_raw_stdin_sends_one_record_per_document_and_koog_line():
    docs = Documents()
    stdin = (agk_trace_json(agk_entries()[:2]) + koog_pretty(koog_events()[:2])
             + koog_log_line(koog_events()[8]) + "\n" + "a plain line\n" + json.dumps({"data": openai_items()[:2]})
             + "\n{ never closed\n")
    out = []
    for line in stdin.encode().splitlines(keepends=True):
        out += docs.feed(line)
    out += docs.finish()
    assert all(chunk.endswith(b"\n") for chunk in out)
    decoded = [orjson.loads(c) if c.startswith(b"{\"") else c for c in out]
    assert [d["hook"] for d in decoded[:2]] == ["BeforeEventHandling", "BeforeAgentRun"]
    assert [d["type"].rsplit(".", 1)[1] for d in decoded[2:5]] == [
        "AgentStartingEvent", "StrategyStartingEvent", "ToolCallFailedEvent"]
    assert decoded[4]["level"] == "error"
    assert decoded[5] == b"a plain line\n"
    assert [d["object"] for d in decoded[6:8]] == ["trace", "trace.span"] and decoded[7]["group_id"] == "conv-42"
    assert decoded[8:] == [b"{ never closed\n"]  # never completes: sent as it came


def test_agk_in_memory_tracer_entries_without_a_hook_are_read_by_their_type(tmp_path):
    """InMemoryTracer (internal/core/trace.go) logs Type event_start/agent_start/agent_end/event_end, no hook."""
    entries = [{"timestamp": "2026-11-29T18:02:03.000000000+01:00", "type": "event_start", "event_id": "e1",
                "session_id": "mem-1"},
               {"timestamp": "2026-11-29T18:02:03.100000000+01:00", "type": "agent_start", "event_id": "e1",
                "session_id": "mem-1", "agent_id": "planner", "state": {"data": {"q": "hi"}, "meta": {}}},
               {"timestamp": "2026-11-29T18:02:03.500000000+01:00", "type": "agent_end", "event_id": "e1",
                "session_id": "mem-1", "agent_id": "planner", "error": "boom",
                "agent_result": {"duration_ms": 400, "error": "boom", "output_state": None}},
               {"timestamp": "2026-11-29T18:02:03.600000000+01:00", "type": "event_end", "event_id": "e1",
                "session_id": "mem-1", "state": {"data": {"q": "hi"}, "meta": {}}}]
    session = session_of(write(tmp_path / "mem-1.trace.json", agk_trace_json(entries)))
    assert [e.hook for e in session.events] == ["BeforeEventHandling", "BeforeAgentRun", "AgentError",
                                                "AfterEventHandling"]
    assert [(s.agent, round(s.duration, 3), s.error) for s in session.spans] == [("planner", 0.4, "boom")]


def test_a_json_document_nested_beyond_reason_is_a_problem_not_a_crash(tmp_path):
    read = read_file(write(tmp_path / "deep.json", '{"a":' * 100_000 + "\n" + json.dumps(agk_entries()[0]) + "\n"))
    assert read.records == 1 and "nested too deeply" in read.problems[0]


def test_raw_stdin_leaves_ordinary_json_lines_as_they_came():
    docs = Documents()
    line = b'{"msg": "disk nearly full",  "error": "ENOSPC"}\n'
    assert docs.feed(line) == [line]  # not re-encoded, no level added: it is no trace record


def test_a_session_named_import_is_shown_with_the_session_option(tmp_path):
    """`logd trace import` imports files; a session that happens to be called "import" is still reachable."""
    folder = tmp_path / "traces"
    import_file(write(tmp_path / "i.trace.json", agk_trace_json(agk_entries(session="import"))), folder)

    def trace(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "logd", "trace", *args, "--dir", str(folder)],
                              capture_output=True, text=True, timeout=60)

    shown = trace("--session", "import", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["session"] == "import"
    bare = trace("import")
    assert bare.returncode == 2 and "logd trace --session import" in bare.stderr
    both = trace("x", "--session", "import")
    assert both.returncode == 2 and "give the session once" in both.stderr


def test_agk_after_event_handling_without_an_agent_is_no_blank_step():
    """core/runner.go passes the invoked agent to AfterEventHandling, and TraceEntry leaves
    agent_id out when it is empty (omitempty): such an entry is the step of the agent that ran
    its event, not a step of agent ''."""
    entries = json.loads(json.dumps(agk_entries()))
    for e in entries:
        if e["hook"] == "AfterEventHandling":
            e.pop("agent_id", None)
    entries.append({**entries[0], "event_id": "req-17461596-9", "hook": "AfterEventHandling"})  # nobody ran it
    steps = flow(build_session("s", [normalize_object(dict(e), RECEIVED) for e in entries]))
    assert "" not in {s.agent for s in steps}
    assert [(s.agent, s.hook) for s in steps] == [
        ("planner", "AfterAgentRun"), ("planner", "AfterEventHandling"), ("researcher", "AfterAgentRun"),
        ("researcher", "AfterEventHandling"), ("planner", "AfterAgentRun"), ("planner", "AfterEventHandling")]


def test_trace_import_takes_its_options_before_or_after_the_files(tmp_path):
    """`logd trace import --dir D FILE` and `logd trace import FILE --dir D` (issue 27: `import`
    was read as a session id, and options before the files were refused)."""
    path = write(tmp_path / "req-17461596.trace.json", agk_trace_json(agk_entries()))
    for n, args in enumerate((["--dir", str(tmp_path / "a"), str(path)], [str(path), "--dir", str(tmp_path / "b")])):
        done = subprocess.run([sys.executable, "-m", "logd", "trace", "import", *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "14 trace records in 1 session(s): 14 imported" in done.stdout
        folder = tmp_path / "ab"[n]
        assert [s.session for s in views.summaries(folder)] == ["req-17461596"]
