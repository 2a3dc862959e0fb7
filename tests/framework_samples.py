"""Trace output of AgenticGoKit, Koog and the OpenAI Agents SDK, built field for field from
each framework's own source (the file each builder follows is named on it)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

T0 = datetime(2026, 11, 29, 18, 2, 3, 123456, tzinfo=timezone(timedelta(hours=1)))  # 17:02:03.123456Z


def go_time(offset_s: float) -> str:
    """Go's time.Time JSON (RFC 3339 with nanoseconds, local offset), as the agent's machine writes it."""
    t = T0 + timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789+01:00"


# --- AgenticGoKit ---------------------------------------------------------------------
# internal/core/trace.go: TraceEntry (field order and omitempty), createTraceCallback
# (target/source agent ids on every hook, agent_result on AfterAgentRun and AgentError),
# FileTraceLogger.Log ("[\n" first, ",\n" before each later entry, json.Encoder with
# SetIndent("", "  ") so each entry ends with "\n") and Close ("\n]").
# internal/core/state.go: SimpleState marshals as {"data": {...}, "meta": {...}}.
# internal/core/result.go: AgentResult.MarshalJSON is a map (keys sorted by Go):
# duration_ms, end_time, error (omitted when empty), output_state, start_time.
# core/factory.go: RegisterTraceHooks records the state on the event hooks.

def _state(data: dict, meta: dict | None = None) -> dict:
    return {"data": data, "meta": meta or {}}


def _result(start: float, end: float, output: dict | None, error: str = "") -> dict:
    out = {"duration_ms": round((end - start) * 1000), "end_time": go_time(end)}
    if error:
        out["error"] = error
    out.update(output_state=output, start_time=go_time(start))
    return out


def agk_entries(session: str = "req-17461596") -> list[dict]:
    """planner routes to researcher (meta.route), researcher fails once (AgentError), retries,
    routes back to planner, which finishes. Every hook carries target/source agent ids."""
    entries: list[dict] = []

    def entry(t: float, hook: str, event: str, agent: str, target: str, source: str, **extra) -> None:
        e = {"timestamp": go_time(t), "type": "", "event_id": event, "session_id": session}
        if agent:
            e["agent_id"] = agent
        for key in ("state", "error"):
            if key in extra:
                e[key] = extra.pop(key)
        e["hook"] = hook
        e["target_agent_id"] = target
        if source:
            e["source_agent_id"] = source
        e.update(extra)
        entries.append(e)

    ask = _state({"message": "Analyze this data"}, {"session_id": session})
    entry(0.000, "BeforeEventHandling", "req-17461596-1", "", "planner", "user", state=ask)
    entry(0.001, "BeforeAgentRun", "req-17461596-1", "planner", "planner", "user")
    plan = _state({"message": "Analyze this data", "plan": "research then write"}, {"route": "researcher"})
    entry(0.400, "AfterAgentRun", "req-17461596-1", "planner", "planner", "user",
          agent_result=_result(0.001, 0.400, plan))
    entry(0.401, "AfterEventHandling", "req-17461596-1", "planner", "planner", "user", state=plan)
    entry(0.402, "BeforeEventHandling", "req-17461596-2", "", "researcher", "planner", state=plan)
    entry(0.403, "BeforeAgentRun", "req-17461596-2", "researcher", "researcher", "planner")
    entry(0.700, "AgentError", "req-17461596-2", "researcher", "researcher", "planner",
          error="LLM timeout after 300ms", agent_result=_result(0.403, 0.700, None, "LLM timeout after 300ms"))
    entry(0.701, "BeforeAgentRun", "req-17461596-2", "researcher", "researcher", "planner")
    found = _state({"findings": "trend up", "message": "Analyze this data", "plan": "research then write",
                    "sources": ["a", "b"]}, {"route": "planner"})
    entry(1.900, "AfterAgentRun", "req-17461596-2", "researcher", "researcher", "planner",
          agent_result=_result(0.701, 1.900, found))
    entry(1.901, "AfterEventHandling", "req-17461596-2", "researcher", "researcher", "planner", state=found)
    entry(1.902, "BeforeEventHandling", "req-17461596-3", "", "planner", "researcher", state=found)
    entry(1.903, "BeforeAgentRun", "req-17461596-3", "planner", "planner", "researcher")
    done = _state({"summary": "Key findings: up"})
    entry(2.500, "AfterAgentRun", "req-17461596-3", "planner", "planner", "researcher",
          agent_result=_result(1.903, 2.500, done))
    entry(2.501, "AfterEventHandling", "req-17461596-3", "planner", "planner", "researcher", state=done)
    return entries


def go_indent(entry: dict) -> str:
    """json.Encoder with SetIndent("", "  ") (HTML characters escaped like Go does)."""
    text = json.dumps(entry, indent=2, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def agk_trace_json(entries: list[dict], closed: bool = False) -> str:
    """The bytes FileTraceLogger leaves in <session>.trace.json: never closed unless Close() ran."""
    out = "[\n"
    for i, e in enumerate(entries):
        if i:
            out += ",\n"
        out += go_indent(e) + "\n"
    return out + ("\n]" if closed else "")


# --- Koog -----------------------------------------------------------------------------
# agents/agents-core/.../feature/model/events/{agentEvents,strategyEvents,nodeExecutionEvents,
# subgraphExecutionEvents,llmCallEvents,llmStreamingEvents,toolExecutionEvents}.kt: the fields;
# feature/model/AIAgentError: {message, stackTrace, cause}; kotlinx polymorphic serialisation:
# "type" = the class's fully qualified name. Timestamps: epoch milliseconds.

KOOG = "ai.koog.agents.core.feature.model.events."
K0 = 1_795_000_000_000  # ms


def koog_events(run: str = "run-7f3c", agent: str = "weather-agent", fail: bool = False) -> list[dict]:
    events: list[dict] = []

    def ev(ms: int, name: str, **fields) -> None:
        events.append({"type": KOOG + name, "eventId": name,
                       "executionInfo": {"parent": None, "partName": name}, **fields, "timestamp": K0 + ms})

    err = {"message": "HTTP 503 from weather service", "stackTrace": "java.io.IOException: HTTP 503\n\tat ...",
           "cause": None}
    model = {"provider": "openai", "model": "gpt-4o-mini", "displayName": "GPT-4o mini"}
    prompt = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "id": "p1", "params": {}}
    ev(0, "AgentStartingEvent", agentId=agent, runId=run)
    ev(5, "StrategyStartingEvent", runId=run, strategyName="weather-strategy")
    ev(10, "NodeExecutionStartingEvent", runId=run, nodeName="ask-llm", input="Weather in Oslo?")
    ev(20, "LLMCallStartingEvent", runId=run, prompt=prompt, model=model, tools=["weather"])
    # Message.Response's metaInfo (prompt-model/.../message/Message.kt, ResponseMetaInfo): the call's counts
    meta = {"timestamp": "2026-11-29T17:02:03.643Z", "totalTokensCount": 190, "inputTokensCount": 150,
            "outputTokensCount": 40, "additionalInfo": {}}
    ev(520, "LLMCallCompletedEvent", runId=run, prompt=prompt, model=model,
       responses=[{"role": "tool_call", "tool": "weather", "content": "{\"city\":\"Oslo\"}", "metaInfo": meta}],
       moderationResponse=None)
    ev(530, "NodeExecutionCompletedEvent", runId=run, nodeName="ask-llm", input="Weather in Oslo?", output="call")
    ev(540, "SubgraphExecutionStartingEvent", runId=run, subgraphName="tools", input="call")
    ev(550, "ToolCallStartingEvent", runId=run, toolCallId="tc-1", toolName="weather", toolArgs={"city": "Oslo"})
    ev(850, "ToolCallFailedEvent", runId=run, toolCallId="tc-1", toolName="weather", toolArgs={"city": "Oslo"},
       toolDescription="Current weather", error=err)
    ev(860, "ToolCallStartingEvent", runId=run, toolCallId="tc-2", toolName="weather", toolArgs={"city": "Oslo"})
    ev(870, "ToolValidationFailedEvent", runId=run, toolCallId="tc-2", toolName="weather", toolArgs={"city": "Oslo"},
       toolDescription="Current weather", message="city must be a code",
       error={"message": "city must be a code", "stackTrace": "", "cause": None})
    ev(880, "ToolCallStartingEvent", runId=run, toolCallId="tc-3", toolName="weather", toolArgs={"city": "OSL"})
    ev(1180, "ToolCallCompletedEvent", runId=run, toolCallId="tc-3", toolName="weather", toolArgs={"city": "OSL"},
       toolDescription="Current weather", result="-3°C, snow")
    ev(1190, "SubgraphExecutionCompletedEvent", runId=run, subgraphName="tools", input="call", output="-3°C, snow")
    ev(1200, "LLMStreamingStartingEvent", runId=run, prompt=prompt, model=model, tools=[])
    ev(1250, "LLMStreamingFrameReceivedEvent", runId=run, prompt=prompt, model=model,
       frame={"type": "append", "text": "It is -3°C"})
    if fail:
        ev(1300, "LLMStreamingFailedEvent", runId=run, prompt=prompt, model=model,
           error={"message": "stream reset", "stackTrace": "", "cause": None})
        ev(1310, "NodeExecutionFailedEvent", runId=run, nodeName="answer",
           error={"message": "stream reset", "stackTrace": "", "cause": None})
        ev(1320, "SubgraphExecutionFailedEvent", runId=run, subgraphName="answer-graph",
           error={"message": "stream reset", "stackTrace": "", "cause": None})
        ev(1330, "AgentExecutionFailedEvent", agentId=agent, runId=run,
           error={"message": "stream reset", "stackTrace": "", "cause": {"message": "socket closed"}})
    else:
        ev(1400, "LLMStreamingCompletedEvent", runId=run, prompt=prompt, model=model, tools=[])
        ev(1410, "StrategyCompletedEvent", runId=run, strategyName="weather-strategy", result="-3°C, snow")
        ev(1420, "AgentCompletedEvent", agentId=agent, runId=run, result="It is -3°C and snowing in Oslo")
    ev(1500, "AgentClosingEvent", agentId=agent)
    return events


def koog_pretty(events: list[dict]) -> str:
    """Json { prettyPrint = true }: four-space indents, one document after another."""
    return "\n".join(json.dumps(e, indent=4, ensure_ascii=False) for e in events) + "\n"


# agents-features-trace, tracing/writer message formats ("${this::class.simpleName} (run id: ...)").
def koog_line(e: dict) -> str:
    name = e["type"].rsplit(".", 1)[1]
    model = e.get("model", {})
    prompt = "Weather in Oslo?"
    args = json.dumps(e.get("toolArgs"), separators=(",", ":"))  # JsonObject.toString()
    err = (e.get("error") or {}).get("message")
    body = {
        "AgentStartingEvent": f"agent id: {e.get('agentId')}, run id: {e.get('runId')}",
        "AgentCompletedEvent": f"agent id: {e.get('agentId')}, run id: {e.get('runId')}, result: {e.get('result')}",
        "AgentExecutionFailedEvent": f"agent id: {e.get('agentId')}, run id: {e.get('runId')}, error: {err}",
        "AgentClosingEvent": f"agent id: {e.get('agentId')}",
        "StrategyStartingEvent": f"run id: {e.get('runId')}, strategy: {e.get('strategyName')}",
        "StrategyCompletedEvent": f"run id: {e.get('runId')}, strategy: {e.get('strategyName')}, "
                                  f"result: {e.get('result')}",
        "NodeExecutionStartingEvent": f"run id: {e.get('runId')}, node: {e.get('nodeName')}, input: {e.get('input')}",
        "NodeExecutionCompletedEvent": f"run id: {e.get('runId')}, node: {e.get('nodeName')}, input: {e.get('input')}, "
                                       f"output: {e.get('output')}",
        "NodeExecutionFailedEvent": f"run id: {e.get('runId')}, node: {e.get('nodeName')}, error: {err}",
        "SubgraphExecutionStartingEvent": f"run id: {e.get('runId')}, subgraph: {e.get('subgraphName')}, "
                                          f"input: {e.get('input')}",
        "SubgraphExecutionCompletedEvent": f"run id: {e.get('runId')}, subgraph: {e.get('subgraphName')}, "
                                           f"input: {e.get('input')}, output: {e.get('output')}",
        "SubgraphExecutionFailedEvent": f"run id: {e.get('runId')}, subgraph: {e.get('subgraphName')}, error: {err}",
        "LLMCallStartingEvent": f"run id: {e.get('runId')}, prompt: {prompt}, model: openai:{model.get('model')}, "
                                "tools: [weather]",
        "LLMCallCompletedEvent": f"run id: {e.get('runId')}, prompt: {prompt}, model: openai:{model.get('model')}, "
                                 "responses: [{tool_call: weather}]",
        "LLMStreamingStartingEvent": f"run id: {e.get('runId')}, prompt: {prompt}, "
                                     f"model: openai:{model.get('model')}, tools: []",
        "LLMStreamingFrameReceivedEvent": f"run id: {e.get('runId')}, prompt: {prompt}, "
                                          f"model: openai:{model.get('model')}, frame: Append(text=It is -3°C)",
        "LLMStreamingCompletedEvent": f"run id: {e.get('runId')}, prompt: {prompt}, "
                                      f"model: openai:{model.get('model')}, tools: []",
        "LLMStreamingFailedEvent": f"run id: {e.get('runId')}, prompt: {prompt}, "
                                   f"model: openai:{model.get('model')}, error: {err}",
        "ToolCallStartingEvent": f"run id: {e.get('runId')}, tool: {e.get('toolName')}, tool args: {args}",
        "ToolValidationFailedEvent": f"run id: {e.get('runId')}, tool: {e.get('toolName')}, tool args: {args}, "
                                     f"validation error: {err}",
        "ToolCallFailedEvent": f"run id: {e.get('runId')}, tool: {e.get('toolName')}, tool args: {args}, error: {err}",
        "ToolCallCompletedEvent": f"run id: {e.get('runId')}, tool: {e.get('toolName')}, tool args: {args}, "
                                  f"result: {e.get('result')}",
    }[name]
    return f"{name} ({body})"


def koog_log_line(e: dict) -> str:
    """FeatureMessageLogWriter through a logback pattern: the writer's prefix after the logger's own."""
    return f"18:02:03.456 [DefaultDispatcher-worker-1] INFO  ai.koog.agents.features.tracing - " \
           f"Received feature message [event]: {koog_line(e)}"


# --- OpenAI Agents SDK -----------------------------------------------------------------
# src/agents/tracing/traces.py (Trace.export), spans.py (SpanImpl.export, SpanError),
# span_data.py (every SpanData.export: the "type" of each), processors.py
# (BackendSpanExporter posts {"data": [...]}).

def _iso(offset_s: float) -> str:
    return (datetime(2026, 11, 29, 17, 5, 0, tzinfo=timezone.utc) + timedelta(seconds=offset_s)).isoformat()


def openai_items(trace_id: str = "trace_" + "a1" * 16, group_id: str | None = "conv-42") -> list[dict]:
    items: list[dict] = [{"object": "trace", "id": trace_id, "workflow_name": "Customer support",
                          "group_id": group_id, "metadata": {"tier": "gold"}}]

    def span(n: int, parent: int | None, a: float, b: float | None, data: dict, error: dict | None = None) -> None:
        items.append({"object": "trace.span", "id": f"span_{n:024x}", "trace_id": trace_id,
                      "parent_id": f"span_{parent:024x}" if parent is not None else None,
                      "started_at": _iso(a), "ended_at": _iso(b) if b is not None else None,
                      "span_data": data, "error": error})

    span(1, None, 0.0, 3.0, {"type": "task", "name": "Customer support", "usage": None})
    span(2, 1, 0.01, 0.02, {"type": "turn", "turn": 1, "agent_name": "triage", "usage": None})
    span(3, 1, 0.0, 1.0, {"type": "agent", "name": "triage", "handoffs": ["billing"], "tools": [],
                          "output_type": "str"})
    span(4, 3, 0.05, 0.1, {"type": "guardrail", "name": "pii_check", "triggered": False})
    span(5, 3, 0.1, 0.6, {"type": "generation", "input": [{"role": "user", "content": "Refund?"}],
                          "output": [{"role": "assistant", "content": "handoff"}], "model": "gpt-4o",
                          "model_config": {}, "usage": {"input_tokens": 12, "output_tokens": 3}})
    span(6, 3, 0.6, 0.9, {"type": "response", "response_id": "resp_1", "usage": None})
    span(7, 3, 0.9, 0.95, {"type": "handoff", "from_agent": "triage", "to_agent": "billing"})
    span(8, 1, 1.0, 2.8, {"type": "agent", "name": "billing", "handoffs": [], "tools": ["lookup_invoice"],
                          "output_type": "str"},
         error={"message": "Error running tool", "data": {"tool_name": "lookup_invoice", "error": "not found"}})
    span(9, 8, 1.1, 1.5, {"type": "function", "name": "lookup_invoice", "input": "{\"id\": 7}", "output": None,
                          "mcp_data": None},
         error={"message": "Error running tool (non-fatal)",
                "data": {"tool_name": "lookup_invoice", "error": "not found"}})
    span(10, 8, 1.5, 1.6, {"type": "mcp_tools", "server": "billing-mcp", "result": ["lookup_invoice"]})
    span(11, 8, 1.6, 2.0, {"type": "custom", "name": "fraud score", "data": {"score": 0.1}})
    span(12, 8, 2.0, 2.2, {"type": "transcription", "input": {"data": "", "format": "pcm"}, "output": "refund",
                           "model": "whisper-1", "model_config": {}})
    span(13, 8, 2.2, 2.5, {"type": "speech_group", "input": "Your refund is on its way"})
    span(14, 13, 2.2, 2.4, {"type": "speech", "input": "Your refund", "output": {"data": "", "format": "pcm"},
                            "model": "tts-1", "model_config": {}, "first_content_at": None})
    span(15, 99, 2.5, 2.6, {"type": "function", "name": "late_audit", "input": "", "output": "ok", "mcp_data": None})
    return items
