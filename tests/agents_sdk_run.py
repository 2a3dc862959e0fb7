"""One customer-support run of the real OpenAI Agents SDK with a scripted model (no network),
for the tests that trace it three ways: logd's own processor, OpenInference's and
OpenLLMetry's instrumentations.

triage looks an order up, hands off to billing, whose refund tool fails; a second run
hands off to tech; a third is stopped by triage's input guardrail. The model records each
call as the SDK's own chat completions model does (src/agents/models/openai_chatcompletions.py:
a generation span whose ``span_data.usage`` is the call's usage); the Runner adds its task
and turn spans, which carry the run's and the turn's totals (run_internal/run_loop.py).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import agents
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    Runner,
    function_tool,
    input_guardrail,
    trace,
)
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.tracing import generation_span
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from trace_facts import Facts, add_tokens, route_of

SCRIPT = [{"call": "lookup_order", "args": {"order": 42}}, {"call": "transfer_to_billing"},
          {"call": "refund", "args": {"order": 42}}, {"say": "the refund failed, sorry"},
          {"call": "transfer_to_tech"}, {"say": "restart the router"}]
ASKS = ["refund order 42", "my router is down", "abuse!"]


class Collect(agents.TracingProcessor):
    """The SDK's own record of the run: every trace and span as its exporter exports them."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def on_trace_start(self, trace: Any) -> None:
        self.items.append(trace.export())

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        self.items.append(span.export())

    def force_flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class Scripted(Model):
    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script, self.n = list(script), 0

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None):
        step = self.script.pop(0)
        self.n += 1
        usage = Usage(requests=1, input_tokens=100 * self.n, output_tokens=10 * self.n, total_tokens=110 * self.n)
        with generation_span(model="fake-4o", input=[], model_config={}) as span:
            span.span_data.usage = {"requests": 1, "input_tokens": usage.input_tokens,
                                    "output_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}
        if "call" in step:
            output: list[Any] = [ResponseFunctionToolCall(
                id=f"fc{self.n}", call_id=f"call{self.n}", name=step["call"],
                arguments=json.dumps(step.get("args", {})), type="function_call", status="completed")]
        else:
            output = [ResponseOutputMessage(id=f"m{self.n}", role="assistant", status="completed", type="message",
                                            content=[ResponseOutputText(text=step["say"], type="output_text",
                                                                        annotations=[])])]
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool
def lookup_order(order: int) -> str:
    """Look an order up."""
    return f"order {order}: shipped"


@function_tool
def refund(order: int) -> str:
    """Refund an order."""
    raise RuntimeError("payment gateway down")


@input_guardrail
async def no_abuse(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={}, tripwire_triggered="abuse" in str(text))


async def support_run(group_id: str | None = None) -> list[Usage]:
    """The three runs, each its own SDK trace (of one group when given); their usage as the
    SDK counted it (RunContextWrapper.usage)."""
    model = Scripted(SCRIPT)
    billing = Agent(name="billing", model=model, tools=[refund])
    tech = Agent(name="tech", model=model)
    triage = Agent(name="triage", model=model, tools=[lookup_order], handoffs=[billing, tech],
                   input_guardrails=[no_abuse])
    usages = []
    for ask in ASKS:
        with trace("Support", group_id=group_id):
            try:
                result = await Runner.run(triage, ask)
                usages.append(result.context_wrapper.usage)
            except InputGuardrailTripwireTriggered:
                pass
    return usages


def sdk_facts(items: list[dict[str, Any]]) -> dict[str, Facts]:
    """Facts per session (the trace's group_id, else its id) from the SDK's own exports."""
    groups = {i["id"]: i.get("group_id") or i["id"] for i in items if i.get("object") == "trace"}
    spans = [i for i in items if i.get("object") == "trace.span"]
    by_id = {s["id"]: s for s in spans}

    def agent_above(span: dict) -> str | None:
        at: dict | None = span
        while at is not None:
            if at["span_data"]["type"] == "agent":
                return at["span_data"]["name"]
            at = by_id.get(at["parent_id"])
        return None

    out: dict[str, Facts] = {}
    firsts: dict[str, tuple[str, str]] = {}
    handoffs: dict[str, list[tuple[str, tuple[str, str]]]] = {}
    for s in spans:
        session = groups[s["trace_id"]]
        facts = out.setdefault(session, Facts())
        data = s["span_data"]
        facts.errors += s.get("error") is not None
        if data["type"] == "agent":
            facts.agents.add(data["name"])
            if session not in firsts or s["started_at"] < firsts[session][0]:
                firsts[session] = (s["started_at"], data["name"])
        elif data["type"] == "function":
            facts.tools[(agent_above(s), data["name"], s.get("error") is not None)] += 1
        elif data["type"] == "generation":
            add_tokens(facts, agent_above(s) or "-", data["usage"]["input_tokens"], data["usage"]["output_tokens"])
        elif data["type"] == "guardrail":
            facts.guardrails[(data["name"], data["triggered"])] += 1
        elif data["type"] == "handoff":
            handoffs.setdefault(session, []).append((s["started_at"], (data["from_agent"], data["to_agent"])))
    for session, facts in out.items():
        facts.route = route_of(firsts[session][1], (h for _, h in sorted(handoffs.get(session, []))))
    return out


def expected_route() -> list[str]:
    return ["triage", "billing", "tech"]


def tool_names(facts: Facts) -> Counter:
    return Counter({(tool, failed): n for (_, tool, failed), n in facts.tools.items()})
