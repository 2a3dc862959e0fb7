"""The OpenAI Agents SDK's own backend exporter (`BackendSpanExporter`, agents/tracing/processors.py
of openai-agents) pointed at logd's `POST /v1/traces/ingest`: traces and spans land as a session,
no model call, no network beyond loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import orjson

from support import read_records, wait_for

SCRIPT = textwrap.dedent('''
    import sys
    import agents
    from agents import agent_span, function_span, generation_span, trace
    from agents.tracing import SpanError
    from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor

    exporter = BackendSpanExporter(api_key="not-used-by-logd", endpoint=sys.argv[1])
    processor = BatchTraceProcessor(exporter, schedule_delay=0.1)
    agents.set_trace_processors([processor])
    with trace("Support", group_id="conv-ingest"):
        with agent_span(name="triage"):
            with generation_span(model="gpt-4o", usage={"input_tokens": 12, "output_tokens": 3}):
                pass
        with agent_span(name="billing"):
            with function_span(name="lookup_invoice", input="{}") as tool:
                tool.set_error(SpanError(message="Error running tool", data={"error": "not found"}))
    processor.force_flush()
    processor.shutdown()
''')


def logd(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_the_sdk_backend_exporter_posts_to_logd_and_the_session_is_shown(daemon, tmp_path):
    d = daemon('file = "agent.log"', extra='[logging.otlp]\nlisten = "127.0.0.1:0"\n')
    url = wait_for(lambda: [r["url"] for r in read_records(tmp_path / "agent.log") if r.get("event") == "otlp"
                            and r.get("url")], what="the ingest listener's address")[0]
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    ran = subprocess.run([sys.executable, str(script), f"{url}/v1/traces/ingest"], capture_output=True, text=True,
                         timeout=60, env={**env, "OPENAI_AGENTS_DISABLE_TRACING": "0"}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Error" not in ran.stderr, ran.stderr  # the exporter logs non-2xx answers
    cfg = str(d.config)
    wait_for(lambda: "conv-ingest" in logd("list", "--config", cfg, cwd=tmp_path).stdout, what="the session")
    shown = orjson.loads(logd("trace", "conv-ingest", "--format", "json", "--config", cfg, cwd=tmp_path).stdout)
    assert sorted(s["name"] for s in shown["spans"]) == ["billing", "gpt-4o", "lookup_invoice", "triage"]
    tool = next(s for s in shown["spans"] if s["name"] == "lookup_invoice")
    assert tool["agent"] == "billing" and tool["error"].startswith("Error running tool")
    assert d.stop() == 0
    logged = [r for r in read_records(tmp_path / "agent.log") if r.get("object") in ("trace", "trace.span")]
    assert {r.get("group_id") for r in logged} == {"conv-ingest"}


def test_a_body_that_is_not_an_export_gets_a_clear_400(daemon, tmp_path):
    import urllib.error
    import urllib.request

    daemon('file = "agent.log"', extra='[logging.otlp]\nlisten = "127.0.0.1:0"\n')
    url = wait_for(lambda: [r["url"] for r in read_records(tmp_path / "agent.log") if r.get("event") == "otlp"
                            and r.get("url")], what="the ingest listener's address")[0]
    request = urllib.request.Request(f"{url}/v1/traces/ingest", data=b'{"spans": []}',
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("accepted a body that is not {\"data\": [...]}")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        assert b'expected a JSON object {\\"data\\": [trace or span objects]}' in exc.read()


def test_a_large_ingest_body_is_converted_in_turns() -> None:
    """The SDK's exporter sends its whole batch in one request (max_batch_size; users raise it):
    converted in one go, a body of thousands of spans held the event loop, so every other
    client waited. The route now gives the loop back after each item and each record made, and
    hands on what the one-go conversion makes, in order."""
    import asyncio

    from framework_samples import openai_items

    from logd.components import Batch, SinkBase
    from logd.events import Events
    from logd.pipeline import Pipeline
    from logd.sources.http import Request, records_route
    from logd.traces.formats import TraceMeta
    from logd.traces.openai import ingest_records, records_from_ingest
    from logd.turns import Turns

    items = [item for n in range(100) for item in openai_items(f"trace_{n:032x}", f"conv-{n}")]
    taken: list[dict] = []

    class Memory(SinkBase):
        name = "memory"

        def write(self, batch: Batch) -> None:
            taken.extend(batch.records)

    async def post() -> tuple[int, int]:
        pipeline = Pipeline([], [Memory()], events=Events(stderr=lambda line: None))
        turns = Turns(turn=0.0)  # the loop given back after every unit of work
        route = records_route(pipeline, lambda payload, request: ingest_records(payload, meta=TraceMeta(),
                                                                                admit=request.admit), turns)
        body = orjson.dumps({"data": items})
        request = Request("POST", "/v1/traces/ingest", {"content-type": "application/json"}, body, "peer",
                          max_items=len(items))
        return (await route(request)).status, turns.yields

    status, yields = asyncio.run(post())
    one_go = records_from_ingest({"data": items}, meta=TraceMeta())
    assert status == 200 and yields >= 2 * len(items)
    assert [(r.get("object"), r.get("id"), r.get("session_id")) for r in taken] == \
        [(r.get("object"), r.get("id"), r.get("session_id")) for r in one_go]
