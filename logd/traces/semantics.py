"""What one trace record means: one function per concept.

Every reader of trace records asks these, and nothing else decides the same things:
the session files' writer (:mod:`.shapes`), the trace model behind ``logd list``,
``logd trace`` and its formats (:mod:`.model`), the live metrics (:mod:`.live`, fed to
``/metrics``, ``logd status`` and ``logd top``) and the OTLP traces shipper
(:mod:`logd.ship.encoders`). So two views cannot disagree on what a span is, how many
tokens a call used, whether something failed or who handed off to whom.

They read logd's canonical trace records (docs/traces.md has the table per framework):

* spans: ``trace_id`` + ``span_id`` (logd.client, OTLP through :mod:`.otel`) or
  ``{"object": "trace.span", "id", "trace_id"}`` (OpenAI Agents SDK), with
  ``parent_id``, ``started_at``/``ended_at``, ``span_data`` (``type``, ``name``, ...)
  and ``error``;
* AgenticGoKit hook entries (``hook`` + ``session_id``) and Koog events (``type`` =
  ``ai.koog.…Event`` or ``eventType``, + ``runId``).

A record's own facts only: what needs the rest of its trace (a span's agent is its
nearest enclosing agent span; a span's usage counts only if no descendant reports
usage) is resolved by the model over the whole trace, and by :mod:`.live` as spans
arrive.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from logd.timestamps import epoch_seconds

AGK_HOOKS = frozenset({"BeforeEventHandling", "AfterEventHandling", "BeforeAgentRun", "AfterAgentRun", "AgentError"})
KOOG_PREFIX = "ai.koog."
AGK_RESULT = "agent_result"  # AgenticGoKit's AfterAgentRun result: of what it reports, only its error counts
# AgenticGoKit's hooks after which agentcli reads the next agent (cmd/agentcli/cmd/trace.go)
AGK_AFTER = ("AfterEventHandling", "AfterAgentRun")
# span kinds (span_data.type) that are a model call: their usage is the call's own
MODEL_CALLS = frozenset({"generation", "response"})
# Koog's tool events that end a call, and whether the call failed (toolExecutionEvents.kt)
KOOG_TOOL_ENDS = {"ToolCallCompletedEvent": False, "ToolCallResultEvent": False, "ToolCallFailedEvent": True,
                  "ToolCallFailureEvent": True, "ToolValidationFailedEvent": True, "ToolValidationErrorEvent": True}

_INPUT = ("input_tokens", "prompt_tokens", "inputTokensCount", "inputTokens", "promptTokens", "input", "prompt")
_OUTPUT = ("output_tokens", "completion_tokens", "outputTokensCount", "outputTokens", "completionTokens", "output",
           "completion")
_TOTAL = ("total_tokens", "totalTokensCount", "totalTokens", "total")
GENAI_INPUT, GENAI_OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"


def text(value: Any) -> str | None:
    """A non-empty string as it is, a number as its text, anything else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


# --- what a record is ---

def is_span(record: dict[str, Any]) -> bool:
    """A span: a trace id, a span id (``span_id``; the SDK's ``trace.span`` calls it ``id``)
    and its timing or ``span_data``. An OTLP log record carries the ids of the span it was
    written in (``severity_number`` marks it), and a log line may carry them for
    correlation: neither is a span."""
    if "severity_number" in record or text(record.get("trace_id")) is None:
        return False
    if "span_id" in record:
        if text(record["span_id"]) is None:
            return False
    elif record.get("object") != "trace.span" or text(record.get("id")) is None:
        return False
    return "span_data" in record or "started_at" in record or "ended_at" in record


def span_id(record: dict[str, Any]) -> str | None:
    return text(record.get("span_id")) or text(record.get("id"))


def span_data(record: dict[str, Any]) -> dict[str, Any]:
    data = record.get("span_data")
    return data if isinstance(data, dict) else {}


def kind(record: dict[str, Any]) -> str:
    """A span's kind (``span_data.type``): agent, generation, response, function, handoff,
    guardrail, custom, ...; OTLP spans got theirs from :func:`logd.traces.otel.span_kind`."""
    return text(span_data(record).get("type")) or "custom"


def koog_event(record: dict[str, Any]) -> str:
    """``ToolCallFailedEvent`` from ``type`` (fully qualified) or ``eventType``."""
    event_type = record.get("type")
    if isinstance(event_type, str) and event_type.startswith(KOOG_PREFIX):
        return event_type.rsplit(".", 1)[-1]
    return str(record.get("eventType") or "")


def declared_session(record: dict[str, Any]) -> str | None:
    """The session a span or trace object names itself (``session_id``, else the SDK's and
    logd.client's ``group_id``); the trace's session is the one its outermost declaring
    span names (:func:`outermost`)."""
    return text(record.get("session_id")) or text(record.get("group_id"))


def interval(record: dict[str, Any]) -> tuple[float, float] | None:
    """(start, end) in seconds: a span's ``started_at``/``ended_at``, else its ``time``."""
    start, end = epoch_seconds(record.get("started_at")), epoch_seconds(record.get("ended_at"))
    if start is None and end is None:
        at = epoch_seconds(record.get("time"))
        return (at, at) if at is not None else None
    if start is None:
        assert end is not None
        return (end, end)
    return (start, end if end is not None and end >= start else start)


def outermost(candidates: list[tuple[float, float, str]]) -> str | None:
    """Of (start, end, session) declared by spans of one trace, the outermost span's: the
    earliest start (a parent starts before its children), the longest on a tie."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], -c[1], c[2]))[2]


# --- who ---

def agent_name(record: dict[str, Any]) -> str | None:
    """The agent a record names itself: an agent span's name; an AgenticGoKit entry's
    ``agent_id``; a Koog event's ``agentId``; another span's own agent attribute
    (``gen_ai.agent.name`` for OTLP spans, whose ``agent`` field is a guess made on arrival;
    the producer's ``agent`` for the others). A span's agent in a view is its nearest
    enclosing agent span's, resolved over the whole trace (:mod:`.model`)."""
    data = record.get("span_data")
    if isinstance(data, dict):
        if data.get("type") == "agent":
            return text(data.get("name"))
        if "otel" in record:
            attributes = record.get("attributes")
            return text(attributes.get("gen_ai.agent.name")) if isinstance(attributes, dict) else None
        return text(record.get("agent"))
    if "hook" in record or "session_id" in record:
        return text(record.get("agent_id")) or text(record.get("agent"))
    return text(record.get("agentId")) or text(record.get("agent_id")) or text(record.get("agent"))


class Handoff(NamedTuple):
    source: str | None  # None: the agent the span ran under (a tool that hands off)
    target: str


def handoff(record: dict[str, Any]) -> Handoff | None:
    """Control passing from one agent to another: a handoff span (OpenAI Agents SDK and
    logd.client ``from_agent``/``to_agent``; OpenInference's ``handoff to X`` tool spans,
    OpenLLMetry's ``gen_ai.operation.name=handoff`` spans and Strands' Swarm
    ``handoff_to_agent`` tool spans mapped to the same by :mod:`.otel`), or an AgenticGoKit
    ``AfterAgentRun``/``AfterEventHandling`` entry whose next agent (``state.meta.route``,
    then ``agent_result.output_state.meta.route``, then ``target_agent_id``, as agentcli
    reads it) is another agent."""
    data = record.get("span_data")
    if isinstance(data, dict):
        if data.get("type") != "handoff":
            return None
        target = text(data.get("to_agent"))
        return Handoff(text(data.get("from_agent")), target) if target else None
    hook = record.get("hook")
    if hook in AGK_AFTER:
        target = agk_next(record)
        agent = text(record.get("agent_id"))
        if target and agent and target != agent:
            return Handoff(agent, target)
    return None


def agk_next(record: dict[str, Any]) -> str | None:
    """The next agent agentcli reads from an AgenticGoKit entry (displayAgentFlow)."""
    for holder in (record.get("state"), _output_state(record)):
        meta = holder.get("meta") if isinstance(holder, dict) else None
        route = text(meta.get("route")) if isinstance(meta, dict) else None
        if route:
            return route
    return text(record.get("target_agent_id"))


def _output_state(record: dict[str, Any]) -> Any:
    result = record.get("agent_result")
    return result.get("output_state") if isinstance(result, dict) else None


# --- what happened ---

def error_text(value: Any) -> str | None:
    """A one-line error from whatever a framework put in its error field (never a repr)."""
    if value in (None, "", False, {}, []):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        message = value.get("message") or value.get("error") or value.get("msg")
        error_type = value.get("type") or value.get("kind")
        if message:
            message = message if isinstance(message, str) else orjson.dumps(message, default=str).decode()
            return f"{error_type}: {message}" if isinstance(error_type, str) and error_type else message
    return orjson.dumps(value, default=str).decode()


def error(record: dict[str, Any]) -> str | None:
    """Why a record failed, one line; None when it did not. Spans: ``error`` (the SDK's
    ``{"message", "data"}``: the message, then the data as JSON). AgenticGoKit: ``error``,
    else ``agent_result.error``. Koog: ``error`` (``AIAgentError.message``); a
    ``*FailedEvent`` without one still failed."""
    value = record.get("error")
    if isinstance(value, dict) and value.get("message") and value.get("data") not in (None, {}, ""):
        return f"{error_text(value['message'])} {orjson.dumps(value['data'], default=str).decode()}"
    found = error_text(value)
    if found is not None:
        return found
    result = record.get(AGK_RESULT)
    if isinstance(result, dict):
        found = error_text(result.get("error"))
        if found is not None:
            return found
    if ("runId" in record or "eventType" in record or "type" in record) and koog_event(record).endswith("FailedEvent"):
        return error_text(record.get("message")) or "failed"
    return None


class ToolCall(NamedTuple):
    name: str
    failed: bool


def tool_call(record: dict[str, Any]) -> ToolCall | None:
    """A finished tool call: a ``function`` span (not a hand-off), or Koog's tool call
    Completed/Failed/ValidationFailed event (``toolName``)."""
    data = record.get("span_data")
    if isinstance(data, dict):
        if data.get("type") != "function":
            return None
        name = text(data.get("name"))
        return ToolCall(name, error(record) is not None) if name else None
    ends = KOOG_TOOL_ENDS.get(koog_event(record)) if "toolName" in record or "tool" in record else None
    if ends is not None:
        name = text(record.get("toolName")) or text(record.get("tool"))
        return ToolCall(name, ends) if name else None
    return None


# a record with none of these keys (and no usage, tokens or data in its state, no Koog type)
# reports no usage, tool call or error: see may_report
REPORTING_KEYS = frozenset(("span_data", "error", AGK_RESULT, "toolName", "tool", "usage", "tokens", "runId",
                            "eventType", "responses"))
# where usage() finds tokens in an AgenticGoKit state ("data.usage": under its data)
STATE_USAGE = ("usage", "tokens", "data.usage", "data.tokens")


def may_report(record: dict[str, Any]) -> bool:
    """False only when :func:`usage`, :func:`tool_call` and :func:`error` are all None for
    ``record``: decided from its keys (most hook entries and events report none of them),
    before asking those functions. Kept beside them: a key they start reading goes here."""
    if not REPORTING_KEYS.isdisjoint(record):
        return True
    state = record.get("state")
    if isinstance(state, dict) and ("usage" in state or "tokens" in state or "data" in state):
        return True
    kind_ = record.get("type")
    return isinstance(kind_, str) and kind_.startswith(KOOG_PREFIX)  # a Koog *FailedEvent


class Guardrail(NamedTuple):
    name: str
    tripped: bool


def guardrail(record: dict[str, Any]) -> Guardrail | None:
    """A guardrail check: the SDK's ``guardrail`` span and its ``triggered`` (the run's
    failure is recorded on the agent or turn span around it, as the SDK does)."""
    data = span_data(record)
    if data.get("type") != "guardrail":
        return None
    return Guardrail(text(data.get("name")) or "guardrail", data.get("triggered") is True)


# --- tokens ---

class Usage(NamedTuple):
    input: int
    output: int
    total: int
    model: str | None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():  # OTLP JSON writes int64 as strings
        return int(value)
    return None


def _first(place: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        found = _count(place.get(key))
        if found is not None:
            return found
    return None


def _from(place: Any, model: str | None) -> Usage | None:
    if not isinstance(place, dict):
        return None
    n_in, n_out, total = _first(place, _INPUT), _first(place, _OUTPUT), _first(place, _TOTAL)
    if n_in is None and n_out is None and total is None:
        return None
    n_in, n_out = n_in or 0, n_out or 0
    return Usage(n_in, n_out, total if total is not None else n_in + n_out, model)


def model_name(value: Any) -> str | None:
    """A model's name: a string, or Koog's model object (``ModelInfo.model``, ``LLModel.id``)."""
    if isinstance(value, dict):
        return text(value.get("model")) or text(value.get("id")) or text(value.get("modelIdentifierName"))
    return text(value)


def usage(record: dict[str, Any]) -> Usage | None:
    """The tokens one record reports, as it reports them (a run's total or a call's own).

    Spans: ``span_data.usage`` (SDK generation/response spans, logd.client, OTLP spans
    through :mod:`.otel`), the SDK's task/turn spans' ``span_data.data.usage``, OTLP
    ``gen_ai.usage.*`` attributes. Koog ``LLMCallCompletedEvent``: each response's
    ``metaInfo`` repeats the call's counts (its clients build one per answer): once.
    AgenticGoKit and others: ``usage`` or ``tokens`` in the state or the record.

    Whether it counts is the trace's business: a span's usage counts only if no descendant
    reports usage (:func:`logd.traces.model.calls`, :class:`logd.traces.live.LiveTraces`)."""
    data = record.get("span_data")
    if isinstance(data, dict):
        model = model_name(data.get("model"))
        found = _from(data.get("usage"), model)
        if found is None and isinstance(data.get("data"), dict):
            inner = data["data"]
            found = _from(inner.get("usage"), model_name(inner.get("model")) or model)
        for attributes in (record.get("attributes"), data.get("attributes")):  # OTLP, or a span's copy
            if found is None and isinstance(attributes, dict) and (GENAI_INPUT in attributes
                                                                   or GENAI_OUTPUT in attributes):
                found = _from({"input_tokens": attributes.get(GENAI_INPUT),
                               "output_tokens": attributes.get(GENAI_OUTPUT)},
                              model or model_name(attributes.get("gen_ai.response.model")
                                                  or attributes.get("gen_ai.request.model")))
        return found
    event = koog_event(record) if "runId" in record or "eventType" in record or "responses" in record else ""
    if event:
        model = model_name(record.get("model"))
        responses = record.get("responses")
        if isinstance(responses, list):
            for response in responses:
                found = _from(response.get("metaInfo"), model) if isinstance(response, dict) else None
                if found is not None:
                    return found
        return _from(record.get("usage"), model)
    state = record.get("state")
    holders = (state, state.get("data"), record) if isinstance(state, dict) else (record,)  # STATE_USAGE
    for holder in holders:
        if isinstance(holder, dict):
            for key in ("usage", "tokens"):
                place = holder.get(key)
                if isinstance(place, dict):
                    found = _from(place, model_name(holder.get("model")))
                    if found is not None:
                        return found
    return None


def is_model_call(record: dict[str, Any]) -> bool:
    """A model (LLM) call: a generation/response span, or Koog's LLM call completed."""
    if isinstance(record.get("span_data"), dict):
        return kind(record) in MODEL_CALLS
    return koog_event(record) == "LLMCallCompletedEvent"


def summary(record: dict[str, Any]) -> str:
    """A span as one line for the log's ``message``: ``function lookup_invoice failed: not
    found``, ``handoff triage -> billing``, ``guardrail pii_check tripped``."""
    data = span_data(record)
    span_kind = kind(record)
    moved = handoff(record)
    if moved is not None:
        line = f"handoff {moved.source or '?'} -> {moved.target}"
    else:
        name = text(data.get("name")) or model_name(data.get("model"))
        line = f"{span_kind} {name}" if name and name != span_kind else span_kind
        checked = guardrail(record)
        if checked is not None and checked.tripped:
            line += " tripped"
    failed = error(record)
    return f"{line} failed: {failed}" if failed else line
