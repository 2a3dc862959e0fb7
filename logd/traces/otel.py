"""OpenTelemetry spans -> logd span records: what each instrumentation's attributes mean.

:mod:`logd.sources.otlp` decodes the protocol (protobuf or OTLP JSON) into
:class:`OtelSpan`; this module maps one span at a time, by its own attributes only, to
the span record :mod:`logd.traces.semantics` reads (``span_data.type``, ``name``,
``model``, ``usage``, hand-off ``from_agent``/``to_agent``, ``triggered``) and keeps the
attributes as sent. Nothing here waits for another span: a span's session and agent are
settled when its trace is read (:mod:`logd.traces.model`, :mod:`logd.traces.index`), so
children exported before their parent (always, with ``SimpleSpanProcessor``; across
requests with ``BatchSpanProcessor``) end up where the parent says.

Read from each producer's own source (docs/traces.md has the table):

* GenAI semantic conventions (``gen_ai.operation.name``): ``invoke_agent``/``create_agent``
  -> agent (``gen_ai.agent.name``), ``chat``/``text_completion``/``generate_content``/
  ``embeddings`` -> generation, ``execute_tool`` -> function (``gen_ai.tool.name``);
  ``gen_ai.usage.input_tokens``/``output_tokens``; session ``gen_ai.conversation.id``.
  Pydantic AI and Strands write these (both put the run's total usage on the agent span
  as well as each call's on its chat span).
* OpenLLMetry's OpenAI Agents instrumentation also writes ``gen_ai.operation.name=handoff``
  with ``gen_ai.handoff.from_agent``/``to_agent``.
* OpenInference (``openinference.span.kind``): AGENT with ``agent.name`` -> agent (its
  trace's root span is AGENT too, named after the workflow, without ``agent.name``: not an
  agent), LLM/EMBEDDING -> generation (``llm.token_count.prompt``/``completion``), TOOL ->
  function (``tool.name``), except the OpenAI Agents SDK's hand-offs, which it exports as
  TOOL spans named ``handoff to X`` with the agents in ``input.value``/``output.value``;
  GUARDRAIL -> guardrail; session ``session.id``.
* Strands' Swarm (``strands/multiagent/swarm.py``) passes control with a tool it gives every
  node's agent, ``handoff_to_agent(agent_name, message, context)``: its ``execute_tool``
  span (``telemetry/tracer.py`` start_tool_call_span) is the hand-off, from the agent it
  ran under to ``agent_name`` of the call's arguments (``gen_ai.tool.call.arguments`` with
  ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, else the ``content`` of its
  ``gen_ai.tool.message`` event). A call that failed (status ERROR: no such agent in the
  swarm) passed nothing on: a hand-off span without a target. The swarm's ``invoke_swarm``
  span (and a Graph's ``invoke_graph``) holds its nodes' ``invoke_agent`` spans; a Graph
  exports no edges, so no hand-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from logd.traces import semantics
from logd.traces.semantics import text
from logd.turns import Work

# gen_ai.operation.name -> logd span kind (span_data.type)
KINDS = {"invoke_agent": "agent", "create_agent": "agent", "chat": "generation", "text_completion": "generation",
         "generate_content": "generation", "embeddings": "generation", "execute_tool": "function",
         "handoff": "handoff"}
# OpenInference's span kinds, for instrumentations that set no gen_ai.operation.name
OPENINFERENCE_KINDS = {"AGENT": "agent", "LLM": "generation", "TOOL": "function", "EMBEDDING": "generation",
                       "GUARDRAIL": "guardrail"}
_HANDOFF_TOOL = "handoff to "  # OpenInference's name for the SDK's handoff spans
STRANDS_HANDOFF = "handoff_to_agent"  # the tool Strands' Swarm gives each node's agent
SESSION_KEYS = ("gen_ai.conversation.id", "session.id")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
USAGE_KEYS = (("input_tokens", ("gen_ai.usage.input_tokens", "llm.token_count.prompt")),
              ("output_tokens", ("gen_ai.usage.output_tokens", "llm.token_count.completion")),
              ("total_tokens", ("gen_ai.usage.total_tokens", "llm.token_count.total")))


@dataclass
class OtelSpan:
    """One span as the protocol gave it (ids in hex, times as canonical UTC text)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: str
    end: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    span_kind: str = "SPAN_KIND_UNSPECIFIED"
    status: str | None = None  # the status code's name when set
    status_message: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None


def span_kind(span: OtelSpan) -> str:
    attrs = span.attributes
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in KINDS:
        if operation == "execute_tool" and _strands_handoff(attrs):
            return "handoff"
        return KINDS[operation]
    oi = attrs.get("openinference.span.kind")
    if isinstance(oi, str):
        kind = OPENINFERENCE_KINDS.get(oi.upper())
        if kind == "agent" and not text(attrs.get("agent.name")):
            return "custom"  # the trace's root, named after the workflow
        if kind == "function" and not text(attrs.get("tool.name")) and span.name.startswith(_HANDOFF_TOOL):
            return "handoff"
        if kind is not None:
            return kind
    if "gen_ai.tool.name" in attrs:
        return "function"
    return "custom"


def agent_name(span: OtelSpan) -> str:
    attrs = span.attributes
    name = text(attrs.get("gen_ai.agent.name")) or text(attrs.get("agent.name")) or text(attrs.get("agent_name"))
    if name:
        return name
    return span.name.removeprefix("invoke_agent ").strip() or span.name


def _strands_handoff(attrs: dict[str, Any]) -> bool:
    return attrs.get("gen_ai.tool.name") == STRANDS_HANDOFF and "strands-agents" in (
        attrs.get("gen_ai.provider.name"), attrs.get("gen_ai.system"))


def _strands_target(span: OtelSpan) -> str | None:
    """``agent_name`` of a Swarm's ``handoff_to_agent`` call that succeeded."""
    if span.error is not None:
        return None  # the swarm has no such agent: control stayed where it was
    arguments = span.attributes.get("gen_ai.tool.call.arguments")
    if arguments is None:
        arguments = next((event.get("attributes", {}).get("content") for event in span.events
                          if event.get("name") == "gen_ai.tool.message"), None)
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        return None  # redacted (Strands' gen_ai_unredacted_attributes opt-in) or cut
    return text(parsed.get("agent_name")) if isinstance(parsed, dict) else None


def _handoff(span: OtelSpan) -> tuple[str | None, str | None]:
    attrs = span.attributes
    if _strands_handoff(attrs):
        return None, _strands_target(span)  # from the agent the tool ran under (resolved when read)
    source = text(attrs.get("gen_ai.handoff.from_agent")) or text(attrs.get("input.value"))
    target = text(attrs.get("gen_ai.handoff.to_agent")) or text(attrs.get("output.value"))
    if target is None and span.name.startswith(_HANDOFF_TOOL):
        target = span.name[len(_HANDOFF_TOOL):].strip() or None
    return source, target


def span_data(span: OtelSpan) -> dict[str, Any]:
    """The span's meaning as logd's ``span_data`` (what :mod:`logd.traces.semantics` reads)."""
    attrs = span.attributes
    kind = span_kind(span)
    data: dict[str, Any] = {"type": kind}
    if kind == "agent":
        data["name"] = agent_name(span)
    elif kind == "function" or _strands_handoff(attrs):
        data["name"] = text(attrs.get("gen_ai.tool.name")) or text(attrs.get("tool.name")) or span.name
    else:
        data["name"] = span.name
    if kind == "handoff":
        source, target = _handoff(span)
        if source:
            data["from_agent"] = source
        if target:
            data["to_agent"] = target
    if kind == "guardrail" and isinstance(attrs.get("guardrail.triggered"), bool):
        data["triggered"] = attrs["guardrail.triggered"]
    model = next((text(attrs[k]) for k in MODEL_KEYS if text(attrs.get(k))), None)
    if model:
        data["model"] = model
    usage = {}
    for name, keys in USAGE_KEYS:
        found = next((attrs[k] for k in keys if k in attrs), None)
        if found is not None:
            usage[name] = found
    if usage:
        data["usage"] = usage
    for key, name in (("gen_ai.operation.name", "operation"), ("gen_ai.tool.call.id", "tool_call_id"),
                      ("gen_ai.provider.name", "provider"), ("gen_ai.system", "system")):
        if key in attrs:
            data[name] = attrs[key]
    return data


def declared_session(span: OtelSpan) -> str | None:
    """The session this span names: a GenAI conversation id or OpenInference's session.id
    (on the span, else on its resource)."""
    for place in (span.attributes, span.resource):
        for key in SESSION_KEYS:
            found = text(place.get(key))
            if found:
                return found
    return None


class AgentsAbove:
    """The nearest agent span at or above a span of one request, each span's answer kept, so
    a long chain (10,000 spans under no agent) costs one walk, not one per span."""

    def __init__(self, agents: dict[str, str], parents: dict[str, str | None]) -> None:
        self.agents, self.parents = agents, parents
        self.known: dict[str, str | None] = {}

    def nearest(self, at: str | None) -> str | None:
        path: dict[str, None] = {}
        found = None
        while at is not None and at not in path:  # a cycle of parents ends the walk
            if at in self.known:
                found = self.known[at]
                break
            if at in self.agents:
                found = self.agents[at]
                break
            path[at] = None
            at = self.parents.get(at)
        for span_id in path:
            self.known[span_id] = found
        return found


def records(spans: list[OtelSpan]) -> Work[list[dict[str, Any]]]:
    """Span records for one request's spans, in the order given, as work that yields after
    each span (:mod:`logd.turns`).

    ``agent`` on each record is for the log line (``logd query --agent``): the span's own
    agent, else the nearest agent span above it *in this request*, else the service; the
    views resolve it again over the whole trace."""
    datas = []
    for span in spans:
        datas.append(span_data(span))
        yield
    above = AgentsAbove({s.span_id: d["name"] for s, d in zip(spans, datas, strict=True) if d["type"] == "agent"},
                         {s.span_id: s.parent_id for s in spans})
    out = []
    for span, data in zip(spans, datas, strict=True):
        agent = above.agents.get(span.span_id) or text(span.attributes.get("gen_ai.agent.name"))
        if agent is None:
            agent = above.nearest(span.parent_id)
        record: dict[str, Any] = {
            "time": span.end, "level": "error" if span.error else "info",
            "trace_id": span.trace_id, "span_id": span.span_id, "parent_id": span.parent_id,
            "started_at": span.start, "ended_at": span.end, "span_data": data, "error": span.error,
        }
        session = declared_session(span)
        if session:
            record["session_id"] = session
        record["message"] = semantics.summary(record)
        service = text(span.resource.get("service.name"))
        if agent or service:
            record["agent"] = agent or service
        record["otel"] = {"name": span.name, "kind": span.span_kind, **({"scope": span.scope} if span.scope else {}),
                          **({"status": span.status} if span.status else {}),
                          **({"events": span.events} if span.events else {})}
        if span.attributes:
            record["attributes"] = span.attributes
        if span.resource:
            record["resource"] = span.resource
        out.append(record)
        yield
    return out
