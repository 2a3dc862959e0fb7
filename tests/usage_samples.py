"""Records that carry tokens, tool calls and model latency, in the shapes their producers write.

Each builder names the source file its shape follows.
"""

from __future__ import annotations

from trace_samples import T0, iso


def zerolog_records(agent: str = "planner") -> list[dict]:
    """A Go agent logging with zerolog: zerolog's own field names are ``time``, ``level``,
    ``message`` and ``error`` (rs/zerolog globals.go: TimestampFieldName, LevelFieldName,
    MessageFieldName, ErrorFieldName); ``agent``, ``model``, ``tokens``, ``usage``, ``tool``
    and ``latency_ms`` are the application's ``.Str()``/``.Int()``/``.Dict()`` fields."""
    t = iso(T0)
    return [
        # .Dict("usage", zerolog.Dict().Int("prompt_tokens", 900).Int("completion_tokens", 120))
        {"time": t, "level": "info", "agent": agent, "model": "gpt-4o", "latency_ms": 812,
         "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020},
         "message": "llm call done"},
        # .Int("tokens", 300): only a total is known
        {"time": t, "level": "info", "agent": agent, "model": "gpt-4o", "tokens": 300, "message": "summarised"},
        {"time": t, "level": "info", "agent": agent, "tool": "web_search", "message": "tool ok"},
        {"time": t, "level": "error", "agent": agent, "tool": "web_search", "error": "HTTP 429",
         "message": "tool failed"},
    ]


def agents_sdk_spans(trace_id: str = "trace_5d1c9e0f2a3b4c5d6e7f8a9b0c1d2e3f") -> list[dict]:
    """OpenAI Agents SDK spans as a TracingProcessor receives them: Span.export()
    (src/agents/tracing/spans.py: object, id, trace_id, parent_id, started_at, ended_at,
    span_data, error) around span_data.export() (src/agents/tracing/span_data.py:
    GenerationSpanData: type, input, output, model, model_config, usage;
    FunctionSpanData: type, name, input, output, mcp_data; AgentSpanData: type, name, handoffs,
    tools, output_type). The SDK names no agent on a generation or function span: it is the
    enclosing agent span's, which ends (and is exported) after them."""
    base = T0 + 10

    def span(sid: str, a: float, b: float, data: dict, error: dict | None = None) -> dict:
        return {"object": "trace.span", "id": sid, "trace_id": trace_id, "parent_id": "span_agent",
                "started_at": iso(base + a), "ended_at": iso(base + b), "span_data": data, "error": error}

    return [
        span("span_gen1", 0.0, 1.5, {"type": "generation", "input": [{"role": "user", "content": "hi"}],
                                     "output": [{"role": "assistant", "content": "hello"}],
                                     "model": "gpt-4.1", "model_config": {"temperature": 0.2},
                                     "usage": {"input_tokens": 1200, "output_tokens": 80}}),
        span("span_fn1", 1.6, 1.9, {"type": "function", "name": "lookup_invoice", "input": '{"id": 7}',
                                    "output": "not found", "mcp_data": None},
             error={"message": "Error running tool", "data": {"tool_name": "lookup_invoice"}}),
        span("span_fn2", 2.0, 2.1, {"type": "function", "name": "lookup_invoice", "input": '{"id": 8}',
                                    "output": "ok", "mcp_data": None}),
        {**span("span_agent", 0.0, 2.2, {"type": "agent", "name": "billing", "handoffs": [],
                                         "tools": ["lookup_invoice"], "output_type": "str"}), "parent_id": None},
    ]


def genai_spans() -> list[dict]:
    """OpenTelemetry spans following the GenAI semantic conventions (docs/gen-ai/gen-ai-spans.md:
    ``chat {model}`` with gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model,
    gen_ai.usage.input_tokens/output_tokens; ``execute_tool {gen_ai.tool.name}``, error.type),
    as the OTel Python SDK prints them: ReadableSpan.to_json()
    (opentelemetry-sdk trace/__init__.py: name, context, kind, parent_id, start_time,
    end_time, status.status_code, attributes, events, links, resource)."""
    def span(name: str, a: float, b: float, attributes: dict, status: str = "UNSET") -> dict:
        return {"name": name, "context": {"trace_id": "0x5b8aa5a2d2c872e8321cf37308d69df2",
                                          "span_id": "0x051581bf3cb55c13", "trace_state": "[]"},
                "kind": "SpanKind.CLIENT", "parent_id": None,
                "start_time": iso(T0 + 20 + a), "end_time": iso(T0 + 20 + b),
                "status": {"status_code": status}, "attributes": attributes, "events": [], "links": [],
                "resource": {"attributes": {"service.name": "research-crew"}, "schema_url": ""}}

    return [
        span("chat claude-sonnet-4", 0.0, 3.0,
             {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
              "gen_ai.agent.name": "researcher", "gen_ai.request.model": "claude-sonnet-4",
              "gen_ai.response.model": "claude-sonnet-4-20250514",
              "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 500}),
        span("execute_tool get_weather", 3.1, 3.4,
             {"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "researcher",
              "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_mszuSIzqtI65i1wAUOE8w5H4",
              "error.type": "TimeoutError"}, status="ERROR"),
        span("execute_tool get_weather", 3.5, 3.6,
             {"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "researcher",
              "gen_ai.tool.name": "get_weather"}),
    ]


def koog_llm_call(run_id: str = "run-koog-2", agent: str = "koog-writer") -> list[dict]:
    """One Koog LLM call that answered with two tool calls, as its events carry it: ``model`` is
    the model object (``{"provider", "model", "displayName"}``, as in framework_samples), and each
    response is a ``Message.Tool.Call`` whose ``metaInfo`` is the call's ``ResponseMetaInfo``
    (prompt/prompt-model/.../message/Message.kt: timestamp, totalTokensCount, inputTokensCount,
    outputTokensCount). Koog's OpenAI client builds one ResponseMetaInfo per provider answer and
    gives it to every message of that answer (OpenAILLMClient.processOpenAIResponse)."""
    model = {"provider": "openai", "model": "gpt-4.1-mini", "displayName": "GPT-4.1 mini"}
    meta = {"timestamp": iso(T0 + 301.2), "totalTokensCount": 71, "inputTokensCount": 52, "outputTokensCount": 19}

    def ev(t: float, kind: str, **extra: object) -> dict:
        return {"eventType": kind, "runId": run_id, "timestamp": int((T0 + 300 + t) * 1000), "agentId": agent,
                **extra}
    return [
        ev(0.0, "LLMCallStartingEvent", model=model, prompt="write it", tools=["lookup", "save"]),
        ev(1.2, "LLMCallCompletedEvent", model=model, responses=[
            {"id": "call_1", "tool": "lookup", "content": "{\"q\":\"Oslo\"}", "metaInfo": meta},
            {"id": "call_2", "tool": "save", "content": "{\"doc\":1}", "metaInfo": meta}]),
    ]
