"""End-to-end: the three frameworks' traces through a real `logd run`, `logd send --raw`,
`logd trace import`, `logd list/trace --dir`, and the real `openai-agents` package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from framework_samples import (
    agk_entries,
    agk_trace_json,
    go_indent,
    koog_events,
    koog_log_line,
    koog_pretty,
    openai_items,
)

from support import agent_records, send_records, wait_for


def logd(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          input=stdin, env={**os.environ, "NO_COLOR": "1", **(env or {})})


def test_agentcli_users_read_their_trace_json_in_place_in_its_own_zone_or_utc(tmp_path):
    """agenticgokit's <session>.trace.json, never closed, read where it lies (--dir). Its times
    are shown as agentcli shows them: Go's time.Time keeps the offset it was written with
    (+01:00 here) and Format("15:04:05.000") prints in it, whatever the reader's zone."""
    agk = tmp_path / "agk"
    agk.mkdir()
    (agk / "req-17461596.trace.json").write_text(agk_trace_json(agk_entries()))
    listed = logd("list", "--dir", str(agk), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("req-17461596"))
    assert row.split()[2:5] == ["2.50s", "14", "1"] and row.endswith("planner, researcher")

    kolkata = logd("trace", "req-17461596", "--dir", str(agk), cwd=tmp_path, env={"TZ": "Asia/Kolkata"})
    assert kolkata.returncode == 0, kolkata.stderr
    assert "│ 18:02:03.123 │ BeforeEventHandling │" in kolkata.stdout  # the file's own +01:00, as agentcli
    assert "│ 18:02:03.823 │ AgentError          │ researcher │" in kolkata.stdout
    assert "LLM timeout after 300ms" in kolkata.stdout
    assert "Condensed route:\nplanner → researcher\n" in kolkata.stdout
    utc = logd("trace", "req-17461596", "--dir", str(agk), "--utc", "--flow-only", cwd=tmp_path,
               env={"TZ": "Asia/Kolkata"})
    assert utc.stdout.splitlines()[3].startswith("17:02:03.523     planner          researcher       AfterAgentRun")


def test_imported_session_is_the_same_as_the_one_sent_over_the_socket(daemon, tmp_path):
    d = daemon('file = "agent.log"')
    send_records(d.socket_path, agk_entries("req-socket"))
    assert d.stop() == 0
    cfg = str(d.config)
    path = tmp_path / "req-import.trace.json"
    path.write_text(agk_trace_json(agk_entries("req-import")))
    first = logd("trace", "import", str(path), "--config", cfg, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{path}: 14 trace records in 1 session(s): 14 imported, 0 already there")
    again = logd("trace", "import", str(path), "--config", cfg, cwd=tmp_path)
    assert "0 imported, 14 already there" in again.stdout

    def shown(session: str) -> dict:
        result = logd("trace", session, "--format", "json", "--analyze", "--config", cfg, cwd=tmp_path)
        out = orjson.loads(result.stdout)
        return json.loads(json.dumps(out).replace(session, "S"))

    assert shown("req-import") == shown("req-socket")
    listing = logd("list", "--format", "json", "--config", cfg, cwd=tmp_path)
    sessions = [s["session"] for s in orjson.loads(listing.stdout)]
    assert sorted(sessions) == ["req-import", "req-socket"]

    exported = logd("trace", "req-import", "--format", "agk", "--config", cfg, cwd=tmp_path).stdout
    back = tmp_path / "back" / "req-import.trace.json"
    back.parent.mkdir()
    back.write_text(exported)
    assert [e["hook"] for e in json.loads(exported)] == [e["hook"] for e in agk_entries()]
    assert logd("trace", "req-import", "--dir", str(back.parent), "--format", "json", cwd=tmp_path).stdout == \
        logd("trace", "req-import", "--format", "json", "--config", cfg, cwd=tmp_path).stdout


def test_import_reports_bad_files_in_one_line_each(tmp_path):
    folder = tmp_path / "traces"
    truncated = tmp_path / "cut.trace.json"
    text = agk_trace_json(agk_entries())
    truncated.write_text(text[: len(text) // 2])
    done = logd("trace", "import", str(truncated), str(tmp_path / "missing.json"), "--dir", str(folder), cwd=tmp_path)
    assert done.returncode == 1
    errors = done.stderr.splitlines()
    assert len(errors) == 2 and "Traceback" not in done.stderr
    assert errors[0].startswith(f"logd: warning: {truncated}: line ") and "cut short" in errors[0]
    assert errors[1] == f"logd: error: cannot import {tmp_path / 'missing.json'}: No such file or directory"
    whole = sum(1 for e in agk_entries() if text.index(go_indent(e)) + len(go_indent(e)) <= len(text) // 2)
    assert done.stdout.startswith(f"{truncated}: {whole} trace records in 1 session(s): {whole} imported")
    nothing = logd("trace", "import", "--dir", str(folder), cwd=tmp_path)
    assert nothing.returncode == 2 and nothing.stderr.startswith("logd: error: logd trace import: name at least one")


def test_koog_file_writer_output_piped_through_send_raw(daemon, tmp_path):
    """Koog's JSON writer (pretty-printed) and its log writer's lines, piped into `logd send --raw`."""
    d = daemon('file = "agent.log"')
    stdin = koog_pretty(koog_events()) + "\n".join(koog_log_line(e) for e in koog_events("run-text", fail=True)) + "\n"
    sent = logd("send", "--raw", "--socket", str(d.socket_path), cwd=tmp_path, stdin=stdin)
    assert sent.returncode == 0, sent.stderr
    assert d.stop() == 0
    logged = agent_records(tmp_path / "agent.log")
    assert len(logged) == len(koog_events()) + len(koog_events("run-text", fail=True))  # one record per event
    failed = [r for r in logged if str(r.get("type", "")).endswith("FailedEvent")]
    assert failed and {r["level"] for r in failed} == {"error"}
    cfg = str(d.config)
    listing = logd("list", "--format", "json", "--config", cfg, cwd=tmp_path)
    listed = {s["session"]: s for s in orjson.loads(listing.stdout)}
    assert set(listed) == {"run-7f3c", "run-text"}
    assert listed["run-7f3c"]["errors"] == 2 and listed["run-text"]["errors"] == 6
    shown = logd("trace", "run-text", "--analyze", "--config", cfg, cwd=tmp_path).stdout
    assert "AgentExecutionFailedEvent" in shown and "stream reset" in shown and "HTTP 503 from weather service" in shown


def test_openai_export_imported_and_listed_in_its_group(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"data": openai_items()}))
    folder = tmp_path / "traces"
    assert logd("trace", "import", str(export), "--dir", str(folder), cwd=tmp_path).returncode == 0
    shown = orjson.loads(logd("trace", "conv-42", "--format", "json", "--dir", str(folder), cwd=tmp_path).stdout)
    assert len(shown["spans"]) == 15 and shown["route"] == ["triage", "billing"]
    assert {e["hook"] for e in shown["events"]} >= {"span:speech_group", "span:mcp_tools", "span:transcription"}


SDK_SCRIPT = textwrap.dedent('''
    import sys
    import agents
    from agents import (agent_span, custom_span, function_span, generation_span, guardrail_span, handoff_span,
                        trace)
    from agents.tracing import SpanError
    import logd.client

    agents.add_trace_processor(logd.client.OpenAITracingProcessor(sys.argv[1]))
    with trace("Customer support", group_id="conv-sdk", metadata={"tier": "gold"}):
        with agent_span(name="triage", handoffs=["billing"]):
            with guardrail_span(name="pii_check", triggered=False):
                pass
            with generation_span(model="gpt-4o", input=[{"role": "user", "content": "Refund?"}]):
                pass
            with handoff_span(from_agent="triage", to_agent="billing"):
                pass
        with agent_span(name="billing", tools=["lookup_invoice"]) as billing:
            with function_span(name="lookup_invoice", input='{"id": 7}') as tool:
                tool.set_error(SpanError(message="Error running tool", data={"error": "not found"}))
            with custom_span(name="fraud score", data={"score": 0.1}):
                pass
    with trace("Second turn", group_id="conv-sdk"):
        with agent_span(name="billing"):
            pass
    logd.client.OpenAITracingProcessor  # the same class, already loaded
    agents.tracing.get_trace_provider().force_flush()
''')


def test_openai_agents_sdk_traces_reach_logd_through_the_processor(daemon, tmp_path):
    """The real openai-agents package: its trace/span API, no model call, no network."""
    d = daemon('file = "agent.log"')
    script = tmp_path / "agent.py"
    script.write_text(SDK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    ran = subprocess.run([sys.executable, str(script), str(d.socket_path)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**env, "OPENAI_AGENTS_DISABLE_TRACING": "0"})
    assert ran.returncode == 0, ran.stderr
    cfg = str(d.config)
    wait_for(lambda: "conv-sdk" in logd("list", "--config", cfg, cwd=tmp_path).stdout, what="the session")
    assert d.stop() == 0
    shown = orjson.loads(logd("trace", "conv-sdk", "--format", "json", "--config", cfg, cwd=tmp_path).stdout)
    names = sorted(s["name"] for s in shown["spans"])
    assert names == sorted(["triage", "pii_check", "gpt-4o", "handoff triage -> billing", "billing",
                            "lookup_invoice", "fraud score", "billing"])
    tool = next(s for s in shown["spans"] if s["name"] == "lookup_invoice")
    assert tool["error"] == 'Error running tool {"error":"not found"}' and tool["agent"] == "billing"
    assert shown["route"] == ["triage", "billing"]
    logged = agent_records(tmp_path / "agent.log")
    traces = [r for r in logged if r.get("object") == "trace"]
    assert [(t["workflow_name"], t["group_id"]) for t in traces] == [("Customer support", "conv-sdk"),
                                                                    ("Second turn", "conv-sdk")]
    spans = [r for r in logged if r.get("object") == "trace.span"]
    assert len(spans) == 8 and {r["group_id"] for r in spans} == {"conv-sdk"}
    assert {r["workflow_name"] for r in spans} == {"Customer support", "Second turn"}
    assert [r["level"] for r in spans if r["error"]] == ["error"]


def test_importing_logd_client_does_not_import_the_agents_sdk(tmp_path):
    code = ("import sys, logd.client; assert 'agents' not in sys.modules; "
            "p = logd.client.OpenAITracingProcessor('/nonexistent.sock'); assert 'agents' not in sys.modules; "
            "print(type(p).__name__)")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0 and ran.stdout == "OpenAITracingProcessor\n", ran.stderr
