"""The trace package alone: recognising shapes, safe names, the store, the model and every view."""

from __future__ import annotations

import csv
import io
import os
import shutil
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logd.events import Events
from logd.pipeline import Batch
from logd.record import normalize_object
from logd.traces import semantics, views
from logd.traces.analysis import agent_stats, critical_path, flow, percentile, route
from logd.traces.model import build_session
from logd.traces.names import UnsafeSessionId, file_name, open_append, session_path
from logd.traces.render import to_chrome
from logd.traces.shapes import classify
from logd.traces.sink import TraceSink
from logd.traces.store import TraceStore, read_lines, session_files

from trace_samples import T0, agk_session, koog_run, span_trace

RECEIVED = "2026-11-23T12:00:00.000000Z"


def parsed(records: list[dict]) -> list[dict]:
    """As the daemon hands them to sinks (``timestamp`` renamed to the canonical ``time``)."""
    return [normalize_object(dict(r), RECEIVED) for r in records]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- shapes ---

def test_each_shape_is_recognised_with_its_session():
    assert classify(parsed(agk_session())[0]) == ("agk", "req-17461596")
    assert classify(parsed(koog_run())[0]) == ("koog", "run-koog-1")
    assert classify(parsed(span_trace())[0]) == ("span", "trace_abc123")
    # spans are filed under their trace, whatever session they name: the trace's session is
    # settled when it is read (a parent naming it may come last)
    assert classify(parsed(span_trace(group_id="conv-9"))[0]) == ("span", "trace_abc123")
    assert classify({"span_id": "s", "trace_id": "t", "session_id": "sess", "started_at": RECEIVED}) == ("span", "t")


def test_ordinary_records_are_not_traces():
    for record in ({"time": RECEIVED, "level": "info", "message": "hi"},
                   {"hook": "SomethingElse", "session_id": "x"},       # not an AgenticGoKit hook
                   {"hook": "AgentError"},                             # no session
                   {"eventType": "AgentStartingEvent"},                # no runId
                   {"span_id": "s1"},                                  # no trace id
                   {"span_id": "s1", "trace_id": "t1", "message": "hi"}):  # a log line naming its span
        assert classify(record) is None


# what a record reports (usage, tool call, error): every key those functions read, with
# values that report something and values that do not
_VALUES = st.one_of(st.none(), st.just(""), st.just("x"), st.integers(-1, 5), st.just([]),
                    st.just({"input_tokens": 3}), st.just({"message": "boom"}),
                    st.just({"type": "function", "name": "f"}),
                    st.sampled_from(["ai.koog.agents.ToolCallFailedEvent", "ToolCallCompletedEvent", "trace",
                                     "AgentError", "BeforeAgentRun"]))
_STATES = st.one_of(_VALUES, st.dictionaries(st.sampled_from(["usage", "tokens", "data", "model", "message"]),
                                             st.one_of(_VALUES, st.just({"usage": {"total_tokens": 9}}))))
_KEYS = ["span_data", "error", "agent_result", "toolName", "tool", "usage", "tokens", "runId", "eventType",
         "responses", "type", "hook", "session_id", "message", "model", "attributes", "metaInfo"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES), _STATES)
def test_a_record_may_report_nothing_only_when_it_reports_nothing(record, state):
    """may_report (the live counters' quick look at a record's keys) never hides a usage, tool call or error."""
    for candidate in (record, {**record, "state": state}):
        if not semantics.may_report(candidate):
            assert semantics.usage(candidate) is None
            assert semantics.tool_call(candidate) is None
            assert semantics.error(candidate) is None
    for sample in parsed(agk_session() + koog_run() + span_trace()):
        reports = (semantics.usage(sample), semantics.tool_call(sample), semantics.error(sample)) != (None,) * 3
        assert semantics.may_report(sample) or not reports


# --- names ---

@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../../b", "..\\..\\x", "x\x00y",
                                 ".hidden", "-rf", "a" * 5000, "ñ/日本"])
def test_hostile_session_ids_map_to_a_plain_file_inside_the_folder(tmp_path, bad):
    name = file_name(bad)
    assert "/" not in name and "\x00" not in name and not name.startswith(".")
    assert len(name) <= 80 + 1 + 8 + len(".trace.jsonl")
    assert session_path(tmp_path, bad).parent == tmp_path


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_ids_that_name_no_file_are_refused(tmp_path, bad):
    with pytest.raises(UnsafeSessionId):
        session_path(tmp_path, bad)


def test_ids_that_sanitise_alike_get_different_files():
    assert file_name("a/b") != file_name("a_b") != file_name("a:b")
    assert file_name("session-1") == file_name("session-1")


def test_a_planted_symlink_is_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / file_name("victim")).symlink_to(outside)
    with pytest.raises(OSError):
        open_append(folder, file_name("victim"))
    assert outside.read_text() == "keep\n"


# --- store and sink ---

def test_store_keeps_a_bounded_number_of_files_open_and_appends_in_order(tmp_path):
    store = TraceStore(tmp_path / "t", max_open=2)
    for round_ in range(3):
        for s in ("a", "b", "c"):
            store.append(file_name(s), orjson.dumps({"session_id": s, "n": round_}) + b"\n")
        assert store.open_files == 2
    store.close()
    for s in ("a", "b", "c"):
        records, _ = read_lines(session_path(tmp_path / "t", s))
        assert [r["n"] for r in records] == [0, 1, 2]


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.005)


def test_new_session_files_are_spares_made_ahead_off_the_loop_and_named_in_order(tmp_path):
    """The store's thread keeps unnamed files ready (O_TMPFILE, at most ``keep``); a new session's
    file is one of them given its name; a session that already has a file keeps it."""
    folder = tmp_path / "t"
    store = TraceStore(folder, max_open=2, spares=True)
    assert store.spares is not None
    kept = session_path(folder, "earlier")
    folder.mkdir()
    kept.write_bytes(b'{"n":-1}\n')  # a file from an earlier run: appended to, never replaced
    store.append(file_name("first"), b'{"n":0}\n')  # no spare yet: created here, the thread starts
    _until(lambda: store.spares.ready == store.spares.keep)
    assert sorted(os.listdir(folder)) == sorted([".journal", kept.name, file_name("first")])  # spares have no name
    for round_ in range(3):
        for s in ("a", "b", "c", "earlier"):
            store.append(file_name(s), orjson.dumps({"n": round_}) + b"\n")
        assert store.open_files == 2 and store.spares.ready <= store.spares.keep
    figures = store.spare_figures()
    assert figures["used"] >= 3  # a, b, c (evicted ones are opened again, not made anew)
    # every spare named or ready was made by the thread, and its CPU for them is counted
    assert figures["made"] == figures["used"] + figures["ready"] and figures["seconds"] > 0
    store.close()
    named = [file_name(s) for s in ("first", "a", "b", "c")]
    assert sorted(os.listdir(folder)) == sorted([".journal", kept.name, *named])
    for s in ("a", "b", "c"):
        path = session_path(folder, s)
        assert [r["n"] for r in read_lines(path)[0]] == [0, 1, 2]
        assert path.stat().st_mode & 0o777 == 0o640 and path.stat().st_nlink == 1
    assert [r["n"] for r in read_lines(kept)[0]] == [-1, 0, 1, 2]


def test_a_spare_never_takes_the_name_of_a_planted_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    folder = tmp_path / "t"
    store = TraceStore(folder, spares=True)
    store.append(file_name("warm"), b"{}\n")
    _until(lambda: store.spares.ready > 0)
    session_path(folder, "victim").symlink_to(outside)
    with pytest.raises(OSError):
        store.append(file_name("victim"), b'{"x":1}\n')
    store.close()
    assert outside.read_text() == "keep\n" and session_path(folder, "victim").is_symlink()


def test_closing_the_store_leaves_no_spare_and_no_descriptor(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    store = TraceStore(tmp_path / "t", spares=True)
    store.append(file_name("s"), b"{}\n")
    _until(lambda: store.spares.ready == store.spares.keep)
    store.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert sorted(os.listdir(tmp_path / "t")) == [".journal", file_name("s")]


def test_retention_removes_sessions_older_than_max_age_by_the_injected_clock(tmp_path):
    clock = Clock(T0)
    store = TraceStore(tmp_path, max_age_days=2, clock=clock)
    for s, age_days in (("old", 3), ("young", 1)):
        store.append(file_name(s), b'{"x":1}\n')
        os.utime(session_path(tmp_path, s), (T0 - age_days * 86400, T0 - age_days * 86400))
    assert store.prune() == [session_path(tmp_path, "old")]
    assert [p.name for p in session_files(tmp_path)] == [file_name("young")]
    clock.now += 2 * 86400
    assert store.prune() == [session_path(tmp_path, "young")]
    assert TraceStore(tmp_path, max_age_days=0, clock=clock).prune() == []


def test_sink_files_trace_records_by_session_and_ignores_the_rest(tmp_path):
    sink = TraceSink(tmp_path)
    sink.open()
    records = parsed(agk_session() + [{"msg": "plain"}] + koog_run() + span_trace()
                     + [{"hook": "AgentError", "session_id": ".."}])
    sink.write(Batch(records))
    sink.flush()
    sink.close()
    assert sink.stored == len(records) - 2 and sink.refused == 1 and sink.dropped == 0
    assert [s.session for s in views.summaries(tmp_path)] == ["req-17461596", "run-koog-1", "trace_abc123"]
    assert len(read_lines(session_path(tmp_path, "run-koog-1"))[0]) == len(koog_run())


def test_the_session_index_forgets_a_session_whose_file_was_removed(tmp_path):
    """Retention or an operator removing a file after the index was built: the next list
    drops its session (it used to fail there, summing sessions before it had started)."""
    store = TraceStore(tmp_path)
    for s in ("kept", "pruned"):
        store.append(file_name(s), b"".join(orjson.dumps(r) + b"\n" for r in parsed(agk_session(session=s))))
    store.close()
    assert [s.session for s in views.summaries(tmp_path)] == ["kept", "pruned"]
    session_path(tmp_path, "pruned").unlink()
    assert [s.session for s in views.summaries(tmp_path)] == ["kept"]


@pytest.mark.parametrize("lines", [True, False], ids=["written-as-encoded", "encoded-here"])
def test_sink_keeps_each_sessions_records_in_order_when_sessions_interleave(tmp_path, lines):
    order = ["a", "a", "b", None, "a", "b", "b", "a", None, "c"]
    records = parsed([{"hook": "BeforeEventHandling", "session_id": s, "n": n} if s else {"msg": "plain", "n": n}
                      for n, s in enumerate(order)])
    batch = Batch.decoded(records, b"".join(orjson.dumps(r) + b"\n" for r in records)) if lines else Batch(records)
    sink = TraceSink(tmp_path)
    sink.write(batch)
    for part in (records[:3], records[:2]):  # then one session's batch, written as it is
        sink.write(Batch.decoded(part, b"".join(orjson.dumps(r) + b"\n" for r in part)))
    sink.close()
    for s in ("a", "b", "c"):
        stored = [r["n"] for r in read_lines(session_path(tmp_path, s))[0]]
        assert stored == [n for part in (order, order[:3], order[:2]) for n, o in enumerate(part) if o == s]
    assert sink.stored == 8 + 3 + 2 and sink.refused == 0


def test_sink_counts_what_it_cannot_store_and_never_raises(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    reports: list[str] = []
    sink = TraceSink(blocker / "traces", events=Events(stderr=reports.append))  # logd's own error lines
    sink.open()
    sink.write(Batch(parsed(agk_session())))
    sink.flush()
    sink.close()
    assert sink.dropped == len(agk_session()) and sink.stored == 0
    assert len(reports) == 1 and "cannot write trace file" in reports[0]


def test_a_new_session_file_that_cannot_be_made_is_counted_reported_once_and_the_store_recovers(tmp_path):
    """With spares ready, the trace folder removed under the daemon: a new session's records are
    counted as dropped (still in the other sinks), one error says so, nothing raises; once the
    folder is back, new sessions get their files again."""
    folder = tmp_path / "traces"
    reports: list[str] = []
    sink = TraceSink(folder, events=Events(stderr=reports.append))
    sink.write(Batch(parsed(agk_session(session="first"))))
    _until(lambda: sink.store.spares is not None and sink.store.spares.ready > 0)
    shutil.rmtree(folder)
    for session in ("second", "third"):
        sink.write(Batch(parsed(agk_session(session=session))))
    assert sink.dropped == 2 * len(agk_session()) and len(reports) == 1 and "cannot write trace file" in reports[0]
    folder.mkdir()
    sink.write(Batch(parsed(agk_session(session="fourth"))))
    sink.close()
    assert len(read_lines(session_path(folder, "fourth"))[0]) == len(agk_session())
    assert sink.store_stats()["spare_files"]["used"] == 1  # the fourth's: spares were not given up on
    assert sink.stored == 2 * len(agk_session()) and session_files(folder) == [session_path(folder, "fourth")]


def test_sink_writes_each_batch_when_it_arrives_and_prunes_hourly_by_the_clock(tmp_path):
    """No writer thread to wait for (a full-speed burst left the daemon at 500+ MB behind one):
    a batch's lines are in their session files when write() returns."""
    clock = Clock(T0)
    old = session_path(tmp_path, "last-week")
    tmp_path.mkdir(exist_ok=True)
    old.write_bytes(b'{"x":1}\n')
    os.utime(old, (T0 - 8 * 86400, T0 - 8 * 86400))
    sink = TraceSink(tmp_path, max_age_days=7, clock=clock)
    sink.open()  # retention at start
    assert not old.exists() and sink.pruned == 1
    sink.write(Batch(parsed(agk_session())))
    assert sink.stored == len(agk_session())
    assert len(read_lines(session_path(tmp_path, "req-17461596"))[0]) == len(agk_session())
    os.utime(session_path(tmp_path, "req-17461596"), (T0, T0))
    clock.now += 8 * 86400
    sink.tick()  # an hour has passed: the session is now 8 days old
    assert sink.pruned == 2 and session_files(tmp_path) == []
    sink.tick()  # not again within the hour
    assert sink.pruned == 2
    sink.close()


# --- model and analysis: a multi-agent session with a failure ---

def agk() -> object:
    return build_session("req-17461596", parsed(agk_session()))


def test_agenticgokit_hooks_pair_into_agent_runs_with_the_failure_kept():
    session = agk()
    runs = [(s.agent, round(s.duration, 3), s.error) for s in session.spans]
    assert runs == [("planner", 0.4, None), ("researcher", 1.2, None), ("writer", 0.3, "LLM timeout after 300ms"),
                    ("writer", 0.6, None)]
    assert [e.agent for e in session.errors] == ["writer"]


def test_flow_sequence_and_route_follow_the_hand_offs():
    steps = flow(agk())
    # agentcli: one step per AfterAgentRun/AfterEventHandling entry (cmd/agentcli/cmd/trace.go)
    assert [(s.agent, s.next) for s in steps] == [("planner", "researcher"), ("researcher", "writer"),
                                                 ("writer", "(end)"), ("planner", "(end)")]
    assert route(steps) == ["planner", "researcher", "writer"]


def test_flow_without_explicit_hand_offs_invents_none():
    """As agentcli shows such a session: each run ends where it is; a later run of another
    agent is no hand-off to it (issue 27: the flow invented returns)."""
    records = [{k: v for k, v in r.items() if k not in ("target_agent_id", "source_agent_id")}
               for r in agk_session()]
    steps = flow(build_session("s", parsed(records)))
    assert [(s.agent, s.next) for s in steps] == [("planner", "(end)"), ("researcher", "(end)"),
                                                 ("writer", "(end)"), ("planner", "(end)")]
    assert route(steps) == ["planner"]


def test_agent_stats_count_total_mean_p95_max():
    stats = {a.agent: a for a in agent_stats(agk())}
    w = stats["writer"]
    assert (w.count, round(w.total, 3), round(w.mean, 3), round(w.p95, 3), round(w.max, 3), w.errors) == (
        2, 0.9, 0.45, 0.6, 0.6, 1)
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0


def test_critical_path_is_the_chain_that_decided_the_end():
    path = [(d, s.agent, round(s.duration, 2)) for d, s in critical_path(agk())]
    assert path == [(0, "planner", 0.4), (0, "researcher", 1.2), (0, "writer", 0.3), (0, "writer", 0.6)]
    spans = build_session("t", parsed(span_trace()))
    names = [(d, s.name) for d, s in critical_path(spans)]
    assert names[:2] == [(0, "support workflow"), (1, "triage")]
    assert (1, "billing") in names and (2, "lookup_invoice") in names


def test_koog_events_pair_per_family_and_nest_by_time():
    session = build_session("run-koog-1", parsed(koog_run()))
    kinds = {(s.kind, s.name): (round(s.duration, 2), s.error) for s in session.spans}
    assert kinds == {("agent", "koog-agent"): (1.0, None), ("node", "plan"): (0.83, None),
                     ("generation", "gpt-4o-mini"): (0.5, None), ("function", "weather"): (0.3, "HTTP 503")}
    assert [(d, s.name) for d, s in critical_path(session)][:2] == [(0, "koog-agent"), (1, "plan")]


def test_span_records_take_their_agent_from_the_enclosing_agent_span():
    session = build_session("t", parsed(span_trace()))
    by_name = {s.name: s for s in session.spans}
    assert by_name["lookup_invoice"].agent == "billing" and by_name["gpt-4o"].agent == "triage"
    assert by_name["billing"].error == 'invoice not found {"id":7}'  # the message, then error.data
    assert route(flow(session)) == ["triage", "billing"]


def test_an_unfinished_run_closes_at_the_last_event():
    records = agk_session(fail=False)[:-2]  # writer never finished
    session = build_session("s", parsed(records))
    writer = [s for s in session.spans if s.agent == "writer"][0]
    assert writer.unfinished and writer.end == max(e.time for e in session.events)


# --- views and formats ---

def test_table_view_shows_hooks_agents_state_and_errors():
    text = views.show(agk())
    assert "Trace for session req-17461596:" in text
    assert "│ BeforeEventHandling │ planner" in text and '{message:"Analyze this data"}' in text
    assert "LLM timeout after 300ms" in text
    assert "1. planner → researcher" in text and "Condensed route:\nplanner → researcher → writer" in text
    flow_only = views.show(agk(), flow_only=True)
    assert "TIMESTAMP" not in flow_only and "Agent request flow" in flow_only


def test_analyze_view_has_stats_slowest_errors_path_and_timeline():
    text = views.show(agk(), analyze=True)
    for part in ("AGENT", "P95", "Slowest spans:", "Errors (1):", "Critical path", "Timeline:"):
        assert part in text
    timeline = text.split("Timeline:")[1].splitlines()
    bars = [line for line in timeline if "│" in line]
    assert len(bars) == 4 and bars[2].endswith("✗")
    # researcher's bar starts where planner's ends: bars are placed on one time axis
    assert bars[1].index("█") >= bars[0].rindex("█")


def test_filter_keeps_one_agent():
    only = views.only_agent(agk(), "writer")
    assert {e.agent for e in only.events} <= {"writer", "researcher"}  # researcher hands off to writer
    assert {s.agent for s in only.spans} == {"writer"}


def test_csv_parses_back_to_every_event():
    text = views.show(agk(), fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(agk_session())
    assert rows[0]["hook"] == "BeforeEventHandling"
    assert orjson.loads(rows[0]["state"]) == {"message": "Analyze this data"}
    assert [r["error"] for r in rows if r["error"]] == ["LLM timeout after 300ms"]


def test_json_loads_back_with_flow_and_analysis():
    data = orjson.loads(views.show(agk(), fmt="json", analyze=True))
    assert data["route"] == ["planner", "researcher", "writer"]
    assert len(data["events"]) == len(agk_session()) and len(data["spans"]) == 4
    assert data["events"][2]["agent_result"] == {"route": "researcher"}
    writer = [a for a in data["analysis"]["agents"] if a["agent"] == "writer"][0]
    assert writer["p95_ms"] == 600.0 and writer["errors"] == 1


def test_chrome_trace_loads_back_with_the_right_spans():
    session = build_session("t", parsed(span_trace()))
    data = orjson.loads(views.show(session, fmt="chrome"))
    complete = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert {e["name"] for e in complete} == {"support workflow", "triage", "gpt-4o", "handoff triage -> billing",
                                             "billing", "pii", "lookup_invoice"}
    for e in complete:
        assert {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"} <= set(e)
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int)
    billing = next(e for e in complete if e["name"] == "billing")
    assert billing["dur"] == 1_100_000 and billing["ts"] == round((T0 + 200.5) * 1e6)
    assert billing["args"]["error"] == 'invoice not found {"id":7}'
    threads = {e["args"]["name"]: e["tid"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    assert next(e for e in complete if e["name"] == "lookup_invoice")["tid"] == threads["billing"]
    assert to_chrome(session) == data


def test_list_summaries_since_and_prefix_lookup(tmp_path):
    sink = TraceSink(tmp_path)
    sink.write(Batch(parsed(agk_session() + koog_run() + span_trace())))
    sink.close()
    items = list(views.summaries(tmp_path))
    assert [(s.session, s.events, s.errors) for s in items] == [
        ("req-17461596", 10, 1), ("run-koog-1", 8, 1), ("trace_abc123", 7, 1)]
    assert items[0].agents == ["planner", "researcher", "writer"] and round(items[0].duration, 2) == 2.55
    assert [s.session for s in views.summaries(tmp_path, since=T0 + 150)] == ["trace_abc123"]
    assert views.parse_since("2h", T0) == T0 - 7200
    assert views.parse_since("2026-11-18T11:00:00Z", T0) == 1_795_000_000.0 - 400
    # read as logd query and journalctl read --since (logd/timeparse.py)
    assert views.parse_since("1h30m ago", T0) == T0 - 5400
    assert views.parse_since("@1795000000", T0) == 1_795_000_000.0
    with pytest.raises(views.TraceError, match="--since: cannot read time 'yesterday-ish'"):
        views.parse_since("yesterday-ish", T0)
    assert views.find(tmp_path, "run-k").files == [tmp_path / file_name("run-koog-1")]
    with pytest.raises(views.TraceError, match="no trace session"):
        views.find(tmp_path, "nope")
    text = views.render_list(items, verbose=True)
    assert "req-17461596" in text and "planner, researcher, writer" in text and "shapes: agk" in text


def test_follow_prints_what_is_there_then_what_arrives(tmp_path):
    path = session_path(tmp_path, "live")
    records = parsed(agk_session(session="live"))
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[:2]))
    out = io.StringIO()
    polls = iter(range(4))

    def step(_: float) -> None:  # between polls, the writer appends (a partial line first)
        n = next(polls)
        with open(path, "ab") as f:
            if n == 0:
                f.write(orjson.dumps(records[2])[:10])
            elif n == 1:
                f.write(orjson.dumps(records[2])[10:] + b"\n")

    views.follow(tmp_path, views.Located("live", [path]), out, sleep=step,
                 stop=lambda: out.getvalue().count("\n") >= 4 or False)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("TIMESTAMP") and len(lines) == 4
    assert "BeforeEventHandling" in lines[1] and "AfterAgentRun" in lines[3]


def test_verbose_shows_full_times_whole_state_and_every_timeline_row():
    text = views.show(agk(), verbose=True, analyze=True)
    assert "2026-11-18T11:06:40.000000Z" in text
    assert '{"findings":"trend up","retry":1}' in text  # the whole state, not its first key
    rounds = [{**r, "event_id": f"{r['event_id']}-{i}"} for i in range(30) for r in agk_session("big", fail=False)]
    many = build_session("big", parsed(rounds))  # 120 agent runs: more than the timeline's 40 rows
    assert "more spans (--verbose shows all)" in views.show(many, analyze=True)
    assert "more spans" not in views.show(many, analyze=True, verbose=True)


def test_a_span_without_an_end_is_shown_as_unfinished():
    records = span_trace()
    del records[-1]["ended_at"]
    session = build_session("t", parsed(records))
    root = next(s for s in session.spans if s.name == "support workflow")
    assert root.unfinished and root.end == max(s.end for s in session.spans)
    chrome = orjson.loads(views.show(session, fmt="chrome"))["traceEvents"]
    assert next(e for e in chrome if e["name"] == "support workflow")["args"]["unfinished"] is True
