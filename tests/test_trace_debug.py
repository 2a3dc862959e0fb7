"""`logd trace --debug`: each stored record as stored, and why it was or was not paired into a
span; sessions stored by a real `logd run`, read by a `logd trace` subprocess."""

from __future__ import annotations

import orjson
from test_traces_daemon import logd
from usage_samples import agents_sdk_spans

from logd.traces.views import why_not_a_trace_record

from support import send_records
from trace_samples import T0, agk_session, iso, koog_run


def test_debug_explains_how_each_record_was_paired(daemon, tmp_path):
    d = daemon('file = "agent.log"\n[logging.traces]\ndir = "tr"')
    never_closed = {"timestamp": iso(T0 + 2.6), "type": "trace", "event_id": "ev-9", "session_id": "req-17461596",
                    "agent_id": "critic", "hook": "BeforeAgentRun"}
    send_records(d.socket_path, agk_session() + [never_closed] + koog_run())
    assert d.stop() == 0

    out = logd("trace", "req-17461596", "--debug", "--dir", "tr", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    blocks = text.split("\n#")[1:]
    assert len(blocks) == len(agk_session()) + 1
    first = blocks[0].splitlines()  # BeforeEventHandling of planner
    assert first[0] == "1 agk session req-17461596"
    assert first[1].startswith('  record: {"time":"') and '"hook":"BeforeEventHandling"' in first[1]
    assert first[2] == ("  span:   not paired: this session has agent-run hooks, so event-handling hooks "
                        "are shown as events only")
    assert blocks[1].splitlines()[2] == "  span:   opens a span closed by AfterAgentRun (0.400s) (line 3)"
    assert blocks[2].splitlines()[2] == ("  span:   closes the span opened by BeforeAgentRun: agent 'planner', "
                                         "event id 'ev-1' (line 2)")
    assert blocks[6].splitlines()[2] == ("  span:   closes the span opened by BeforeAgentRun: agent 'writer', "
                                         "event id 'ev-3' (line 6)")  # the AgentError
    assert blocks[-1].splitlines()[2] == ("  span:   never closed (no AfterAgentRun or AgentError of agent 'critic' "
                                          "with event id 'ev-9'): unfinished, closed at the session's last event")

    koog = orjson.loads(logd("trace", "run-koog-1", "--debug", "--format", "json", "--dir", "tr", cwd=tmp_path).stdout)
    by_type = {item["record"]["eventType"]: item for item in koog}
    assert by_type["LLMCallCompletedEvent"]["paired"] == "closes the LLMCall span opened by LLMCallStartingEvent"
    assert by_type["LLMCallCompletedEvent"]["with_line"] == by_type["LLMCallStartingEvent"]["line"]
    assert by_type["ToolCallFailedEvent"]["paired"] == "closes the ToolCall span opened by ToolCallStartingEvent"
    assert by_type["AgentStartingEvent"]["paired"] == "opens the Agent span closed by AgentCompletedEvent (1.000s)"
    assert by_type["ToolCallFailedEvent"]["record"]["error"] == {"message": "HTTP 503"}  # the record as stored


def test_debug_with_follow_or_csv_is_refused_in_one_line(tmp_path):
    (tmp_path / "tr").mkdir()
    out = logd("trace", "x", "--debug", "--follow", "--dir", "tr", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == "logd: error: --debug shows the stored records once: leave out --follow\n"


def test_why_a_record_is_not_a_trace_record():
    # the OpenAI Agents SDK's own Span.export() (src/agents/tracing/spans.py) names the span id "id"
    assert why_not_a_trace_record(agents_sdk_spans()[0]) == (
        "has trace_id but no span_id (the OpenAI Agents SDK's Span.export() calls it 'id')")
    assert why_not_a_trace_record({"hook": "BeforeAgentRun", "agent_id": "a"}) == (
        "an AgenticGoKit hook without a session_id")
    assert why_not_a_trace_record({"hook": "OnStart", "session_id": "s"}).startswith(
        "hook 'OnStart' is not an AgenticGoKit hook")
    assert why_not_a_trace_record({"message": "hi"}) == "none of hook+session_id, eventType+runId or trace_id+span_id"
