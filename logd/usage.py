"""Tokens, tool calls and model-call latency, from fields the records already carry.

:class:`UsageMetrics` is a pipeline step next to :class:`logd.metrics.AgentMetrics` (before
any filter, so sampled-out records still count). Most records carry none of these
fields: the hot path is one loop with a handful of ``in`` tests per record; only a
record that has one of the trigger keys is looked at further.

Field mappings (documented in docs/monitoring.md):

tokens, by agent, model and direction (``input``/``output``; ``total`` only when a
record gives nothing else):
  * ``usage``: ``input_tokens``/``output_tokens`` (OpenAI Responses, Agents SDK
    ``generation``/``response`` spans, where ``usage`` sits in ``span_data``) or
    ``prompt_tokens``/``completion_tokens`` (Chat Completions), else ``total_tokens``;
  * ``tokens``: a number (total) or a dict with ``input``/``output`` or
    ``prompt``/``completion`` (zerolog-style flat records);
  * ``gen_ai.usage.input_tokens``/``gen_ai.usage.output_tokens`` (OpenTelemetry GenAI
    semantic conventions), top level or in an OTel span's ``attributes``.
  * Koog ``LLMCallCompletedEvent``: ``responses[].metaInfo`` (``ResponseMetaInfo``), once
    per event.

tool calls, by agent, tool and outcome (``ok``/``error``):
  * a ``tool`` field (string): error when the record is at error level or has ``error``;
  * OpenAI Agents SDK ``function`` spans: ``span_data.name``, error when ``error`` is set;
  * Koog tool events (``eventType`` ``ToolCallCompletedEvent``/``ToolCallFailedEvent``/
    ``ToolValidationFailedEvent``): ``toolName``;
  * GenAI ``execute_tool`` spans: ``gen_ai.tool.name``, error on ``error.type`` or an
    ERROR status.

model-call latency, by model: Agents SDK ``generation``/``response`` spans
(``ended_at - started_at``), GenAI ``chat``/``text_completion``/``generate_content``
spans (``end_time - start_time``), Koog ``LLMCallStartingEvent`` ->
``LLMCallCompletedEvent`` pairs (same ``runId`` and ``model``), and records with
``model`` and ``latency_ms``.

Labels are capped like the agent label: past ``max_models``/``max_tools`` names, new
ones are counted under ``_other``, and a name is cut at 128 characters (with a checksum of
the whole, so two long names stay two labels). The step runs after the redactor, so a name
or an error shown in ``logd status``, ``logd top`` or ``/metrics`` is the redacted one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily

from logd.isolation import StepFailures
from logd.levels import ERROR_LEVELS
from logd.metrics import histogram
from logd.record import MAX_KEY_CHARS, Record, bounded_key
from logd.spec import (
    STEP,
    Context,
    CountNames,
    ObserveNumber,
    QuietEntries,
    ReadsRecords,
    RecordsAtLevels,
    Spec,
    SumFields,
)
from logd.steps.agents import agents_of
from logd.timestamps import epoch_seconds
from logd.traces import semantics
from logd.traces.live import Fact, LiveTraces
from logd.traces.semantics import error_text
from logd.traces.shapes import AGK, AGK_HOOKS, KOOG, SPAN, Shapes, classify
from logd.traces.shapes import TRIGGER_KEYS as SHAPE_KEYS

OTHER = "_other"
NO_MODEL = "unknown"
# model calls: from a cached completion (tens of ms) to a long reasoning call (minutes)
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_LAST_ERROR_CHARS = 200

# GenAI attribute names (OpenTelemetry semantic conventions, gen-ai-spans.md)
GENAI_INPUT, GENAI_OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
GENAI_OPERATION, GENAI_TOOL = "gen_ai.operation.name", "gen_ai.tool.name"
GENAI_RESPONSE_MODEL, GENAI_REQUEST_MODEL = "gen_ai.response.model", "gen_ai.request.model"
GENAI_AGENT = "gen_ai.agent.name"
_GENAI_MODEL_CALLS = frozenset(("chat", "text_completion", "generate_content"))
_KOOG_LLM_EVENTS = frozenset(("LLMCallStartingEvent", "LLMCallCompletedEvent"))
# keys that make UsageMetrics read more of a record than its level, agent, model, tokens, tool, error
# and latency_ms (__call__; the compiled path counts those itself: _hot)
TRIGGER_KEYS = frozenset(("usage", "span_data", "attributes", "eventType", GENAI_INPUT, GENAI_OPERATION))
# token field names -> direction (0 input, 1 output, 2 total)
DIRECTIONS = {"input_tokens": 0, "prompt_tokens": 0, "input": 0, "prompt": 0, "in": 0,
               "output_tokens": 1, "completion_tokens": 1, "output": 1, "completion": 1, "out": 1,
               "total_tokens": 2, "total": 2,
               # Koog's ResponseMetaInfo (prompt-model/.../message/Message.kt)
               "inputTokensCount": 0, "outputTokensCount": 1, "totalTokensCount": 2}
_MAX_KEYS = 10_000  # (agent, model) pairs remembered; forgotten all at once past this


def _number(value: Any) -> float | None:
    cls = value.__class__
    if (cls is int or cls is float) and value >= 0:
        return value
    return None


def _koog_model(value: object) -> str | None:
    """Koog's model: a name, or the model object its events carry (``ModelInfo.model``,
    ``LLModel.id``)."""
    if value.__class__ is dict:
        value = value.get("model") or value.get("id")
    return value if value.__class__ is str else None


class _Capped:
    """Label values, kept as sent (up to MAX_KEY_CHARS: longer ones are cut, see
    :func:`~logd.record.bounded_key`) until ``limit`` distinct ones are known, then ``_other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: dict[str, str] = {}

    def __call__(self, value: object, missing: str) -> str:
        name = value if value.__class__ is str and value else (missing if value is None else str(value))
        if len(name) > MAX_KEY_CHARS:
            name = bounded_key(name)
        label = self.known.get(name)
        if label is None:
            if len(self.known) >= self.limit:
                return OTHER
            label = self.known[name] = name
        return label


class UsageMetrics:
    """Pipeline step: tokens, tool calls and model latency; also each agent's last error.

    ``agent_label`` is :meth:`AgentMetrics.label`, so agents share one cap.
    """

    def __init__(self, agent_label: Callable[[object], str], *, max_models: int = 100, max_tools: int = 200,
                 buckets: Iterable[float] = LATENCY_BUCKETS, live: LiveTraces | None = None,
                 shapes: Shapes | None = None) -> None:
        self.agent_label = agent_label
        self.model_label = _Capped(max_models)
        self.tool_label = _Capped(max_tools)
        self.buckets = tuple(buckets)
        self.tokens: dict[tuple[str, str, str], float] = {}  # (agent, model, direction) -> tokens
        self.tool_calls: dict[tuple[str, str, str], int] = {}  # (agent, tool, outcome) -> calls
        # model -> [count per bucket (not cumulative; the last is +Inf)..., sum of seconds]
        self.latency: dict[str, list[float]] = {}
        self.last_error: dict[str, dict[str, Any]] = {}  # agent -> {"time", "message"}
        self.errors: dict[str, int] = {}  # agent -> failed spans and trace events (trace records only)
        # trace records: the trace model's rules as they arrive (agent of a span whose parent
        # comes later, usage of a run total and of its calls counted once)
        self.live = live if live is not None else LiveTraces()
        self.shapes = shapes if shapes is not None else Shapes()  # shared with the trace branch (classified once)
        self._keys: dict[tuple, tuple] = {}  # (agent, model) as sent -> their three token keys
        self._open_llm_calls: dict[tuple, float] = {}  # Koog (runId, model) -> call start

    def __call__(self, records: list[Record]) -> list[Record]:
        flat, shaped = self._flat, self._shaped
        live, may_report = self.live, semantics.may_report
        waiting = live.waiting  # truthy while spans wait for their agent (LiveTraces.feed expires them)
        shaped_as = self.shapes.start(records).append  # for the trace branch (Shapes)
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                # a few membership tests per record: ordinary log lines stop here
                if ("span_data" in record or "hook" in record or "eventType" in record or "type" in record
                        or "trace_id" in record or "object" in record):
                    shape = classify(record)
                    shaped_as(shape)
                    if shape is not None:
                        # most AgenticGoKit entries report nothing, and no latency: nothing to do
                        # unless spans wait (LiveTraces.feed expires them as records arrive)
                        if shape[0] != AGK or waiting or may_report(record):
                            self._trace(record, shape)
                        continue
                else:
                    shaped_as(None)
                if record["level"] in ERROR_LEVELS:
                    self.keep_last_error(record)
                if "tokens" in record or "usage" in record or "tool" in record or "latency_ms" in record:
                    if "span_data" in record or "eventType" in record:
                        shaped(record)
                    else:
                        flat(record)
                elif ("span_data" in record or "attributes" in record or "eventType" in record
                      or GENAI_INPUT in record or GENAI_OPERATION in record):
                    shaped(record)
            except Exception as exc:  # isolation (issue 18): counted once, flagged by the pipeline
                failed.append((record, exc))
        if failed:
            raise StepFailures(records, failed)
        return records

    # --- what the compiled path (logd/hotpath.py) counted of a run of flat records, one key at a
    # time in the order the keys first appeared (capped labels get their places as in _flat) ---

    def add_tokens(self, agent: object, model: object, *sums: int | None) -> None:
        """Tokens summed per (agent, model): input, output, total, None where a record gave
        nothing, as :meth:`_flat` adds them (integers only: sums of floats depend on their
        order, so those records come through :meth:`__call__`)."""
        tokens = self.tokens
        for key, n in zip(self._token_keys(agent, model), sums, strict=True):
            if n is not None:
                tokens[key] = tokens.get(key, 0) + n

    def add_tool_calls(self, agent: object, tool: str, failed: bool, n: int) -> None:
        key = (self.agent_label(agent), self.tool_label(tool, "unknown"), "error" if failed else "ok")
        self.tool_calls[key] = self.tool_calls.get(key, 0) + n

    def add_latency(self, model: object, per_bucket: list[int], seconds: list[float]) -> None:
        name = self.model_label(model, NO_MODEL)
        row = self.latency.get(name)
        if row is None:
            row = self.latency[name] = [0] * (len(self.buckets) + 1) + [0.0]
        for i, n in enumerate(per_bucket):
            row[i] += n
        total = row[-1]
        for s in seconds:  # in order: the float sum is the same
            total += s
        row[-1] = total

    # --- trace records: one model (logd.traces.semantics, logd.traces.live) ---

    def _trace(self, record: Record, shape: tuple[str, str]) -> None:
        for fact in self.live.feed(record, shape):
            self._count(fact)
        if shape[0] == SPAN:
            if semantics.is_model_call(record):
                when = semantics.interval(record)
                if when is not None:
                    self.observe_latency(semantics.model_name(semantics.span_data(record).get("model")),
                                         when[1] - when[0])
        elif shape[0] == KOOG:
            event = semantics.koog_event(record)
            if event in _KOOG_LLM_EVENTS:
                self._koog_llm_call(record, event)

    def _count(self, fact: Fact) -> None:
        agent = self.agent_label(fact.agent)
        if fact.usage is not None:
            found = fact.usage
            model = self.model_label(found.model, NO_MODEL)
            tokens = self.tokens
            if found.input or found.output:
                for direction, n in (("input", found.input), ("output", found.output)):
                    if n:
                        key = (agent, model, direction)
                        tokens[key] = tokens.get(key, 0) + n
            elif found.total:
                key = (agent, model, "total")
                tokens[key] = tokens.get(key, 0) + found.total
        if fact.tool is not None:
            self._tool(agent, fact.tool.name, "error" if fact.tool.failed else "ok")
        if fact.error is not None:
            self.errors[agent] = self.errors.get(agent, 0) + 1
            self.last_error[agent] = {"time": fact.time, "message": fact.error[:_LAST_ERROR_CHARS]}

    # --- per shape ---

    def _flat(self, record: Record) -> None:
        """zerolog-style fields: ``tokens``/``usage``, ``tool``, ``model`` + ``latency_ms``."""
        agent, model = record.get("agent"), record.get("model")
        tokens = record.get("tokens")
        if tokens is not None:
            cls = tokens.__class__
            if cls is dict:
                self._usage(agent, model, tokens)
            elif (cls is int or cls is float) and tokens >= 0:
                self._add_tokens(agent, model, 2, tokens)
        usage = record.get("usage")
        if usage.__class__ is dict:
            self._usage(agent, model, usage)
        tool = record.get("tool")
        if tool.__class__ is str and tool:
            failed = record["level"] in ERROR_LEVELS or bool(record.get("error"))
            self._tool(agent, tool, "error" if failed else "ok")
        ms = record.get("latency_ms")
        if ms is not None and model is not None:
            ms = _number(ms)
            if ms is not None:
                self.observe_latency(model, ms / 1000)

    def _shaped(self, record: Record) -> None:
        """Records that are no trace record but carry OTel GenAI attributes (flat or in
        ``attributes``: a span's fields copied onto a log line)."""
        attributes = record.get("attributes")
        if attributes.__class__ is dict and (GENAI_OPERATION in attributes or GENAI_INPUT in attributes):
            self._genai_span(record, attributes)
            return
        if GENAI_OPERATION in record or GENAI_INPUT in record:
            self._genai_span(record, record)
            return
        self._flat(record)

    def _genai_span(self, record: Record, attrs: dict) -> None:
        """A span following the OTel GenAI conventions, attributes flat or in ``attributes``."""
        agent = attrs.get(GENAI_AGENT) or record.get("agent")
        model = attrs.get(GENAI_RESPONSE_MODEL) or attrs.get(GENAI_REQUEST_MODEL)
        self._add_direction(agent, model, 0, _number(attrs.get(GENAI_INPUT)))
        self._add_direction(agent, model, 1, _number(attrs.get(GENAI_OUTPUT)))
        operation = attrs.get(GENAI_OPERATION)
        if operation == "execute_tool":
            status = record.get("status")
            failed = bool(attrs.get("error.type")) or (
                status.__class__ is dict and status.get("status_code") in ("ERROR", "STATUS_CODE_ERROR"))
            self._tool(agent, attrs.get(GENAI_TOOL), "error" if failed else "ok")
        elif operation in _GENAI_MODEL_CALLS:
            start, end = epoch_seconds(record.get("start_time")), epoch_seconds(record.get("end_time"))
            if start is not None and end is not None and end >= start:
                self.observe_latency(model, end - start)

    def _koog_llm_call(self, record: Record, event: str) -> None:
        """Koog LLMCallStartingEvent -> LLMCallCompletedEvent of the same run and model: one call,
        whose tokens are in each response's ``metaInfo`` (the call's totals, repeated in every
        response of the call by Koog's clients: counted once)."""
        model = _koog_model(record.get("model"))
        key = (record.get("runId"), model)
        if key[0] is None:
            return
        at = epoch_seconds(record.get("time"))
        if event == "LLMCallStartingEvent":
            if len(self._open_llm_calls) >= _MAX_KEYS:
                self._open_llm_calls.clear()  # calls that never completed: forget rather than grow
            if at is not None:
                self._open_llm_calls[key] = at
            return
        started = self._open_llm_calls.pop(key, None)
        if started is not None and at is not None and at >= started:
            self.observe_latency(key[1], at - started)

    # --- counting ---

    def _usage(self, agent: object, model: object, usage: dict) -> None:
        # runs for every record that reports tokens: kept to local names and one pass
        found: list[int | float | None] = [None, None, None]
        get = DIRECTIONS.get
        for key, value in usage.items():
            d = get(key)
            if d is not None and found[d] is None and (value.__class__ is int or value.__class__ is float) \
                    and value >= 0:
                found[d] = value
        keys, tokens = self._token_keys(agent, model), self.tokens
        n_in, n_out, total = found
        if n_in is None and n_out is None:
            if total is not None:
                key = keys[2]
                tokens[key] = tokens.get(key, 0) + total
            return
        if n_in is not None:
            key = keys[0]
            tokens[key] = tokens.get(key, 0) + n_in
        if n_out is not None:
            key = keys[1]
            tokens[key] = tokens.get(key, 0) + n_out

    def _add_direction(self, agent: object, model: object, direction: int, n: float | None) -> None:
        if n is not None:
            self._add_tokens(agent, model, direction, n)

    def _add_tokens(self, agent: object, model: object, direction: int, n: float) -> None:
        """``direction``: 0 input, 1 output, 2 total."""
        key = self._token_keys(agent, model)[direction]
        self.tokens[key] = self.tokens.get(key, 0) + n

    def _token_keys(self, agent: object, model: object) -> tuple:
        """The three token keys of an (agent, model) pair, made once: a busy agent's records
        all carry the same pair."""
        pair = (agent, model) if agent.__class__ is str and (model is None or model.__class__ is str) else None
        keys = self._keys.get(pair) if pair is not None else None
        if keys is None:
            a, m = self.agent_label(agent), self.model_label(model, NO_MODEL)
            keys = ((a, m, "input"), (a, m, "output"), (a, m, "total"))
            if pair is not None:
                if len(self._keys) >= _MAX_KEYS:
                    self._keys.clear()
                self._keys[pair] = keys
        return keys

    def _tool(self, agent: object, tool: object, outcome: str) -> None:
        if tool is None or tool == "":
            return
        key = (self.agent_label(agent), self.tool_label(tool, "unknown"), outcome)
        self.tool_calls[key] = self.tool_calls.get(key, 0) + 1

    def observe_latency(self, model: object, seconds: float) -> None:
        name = self.model_label(model, NO_MODEL)
        row = self.latency.get(name)
        if row is None:
            row = self.latency[name] = [0] * (len(self.buckets) + 1) + [0.0]
        row[bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def keep_last_error(self, record: Record) -> None:
        message = record.get("message")
        text = message if isinstance(message, str) else ""
        error = error_text(record.get("error"))  # one line, never a Python repr
        if error and error != text:
            text = f"{text}: {error}" if text else error
        self.last_error[self.agent_label(record.get("agent"))] = {
            "time": record.get("time"), "message": text[:_LAST_ERROR_CHARS]}

    # --- reading ---

    def snapshot(self) -> dict[str, Any]:
        """Plain copies (taken on the event loop), for /metrics, ``logd status`` and ``logd top``."""
        return {
            "tokens": [[a, m, d, n] for (a, m, d), n in self.tokens.items()],
            "tool_calls": [[a, t, o, n] for (a, t, o), n in self.tool_calls.items()],
            "latency": {model: list(row) for model, row in self.latency.items()},
            "latency_buckets": list(self.buckets),
            "last_error": {agent: dict(e) for agent, e in self.last_error.items()},
            "errors": [[a, n] for a, n in self.errors.items()],
            "pending_spans": self.live.pending, "pending_expired": self.live.pending_expired,
            "duplicate_spans": self.live.duplicates,
        }


def usage_families(u: dict[str, Any] | None) -> Iterable:
    """The usage snapshot as Prometheus families (for :class:`logd.metrics.LogdCollector`)."""
    if not u:
        return
    tokens = CounterMetricFamily("logd_agent_tokens", "LLM tokens reported by records, by agent, model and direction",
                                 labels=["agent", "model", "direction"])
    for agent, model, direction, n in sorted(u["tokens"]):
        tokens.add_metric([agent, model, direction], n)
    tools = CounterMetricFamily("logd_agent_tool_calls", "Tool calls reported by records, by agent, tool and outcome",
                                labels=["agent", "tool", "outcome"])
    for agent, tool, outcome, n in sorted(u["tool_calls"]):
        tools.add_metric([agent, tool, outcome], n)
    latency = histogram("logd_model_call_duration_seconds",
                        "Model (LLM) call latency from generation/chat spans and latency_ms fields", "model",
                        u["latency"], u["latency_buckets"])
    errors = CounterMetricFamily("logd_agent_trace_errors",
                                 "Failed spans and trace events (hooks, Koog events), by the agent they ran under",
                                 labels=["agent"])
    for agent, n in sorted(u.get("errors", [])):
        errors.add_metric([agent], n)
    yield from (tokens, tools, latency, errors)


def usage_view(u: dict[str, Any]) -> dict[str, Any]:
    """The usage snapshot as ``logd status`` shows it: per agent tokens and tool calls, per model latency."""
    agents: dict[str, dict[str, Any]] = {}
    for agent, model, direction, n in sorted(u["tokens"]):
        by_model = agents.setdefault(agent, {}).setdefault("tokens", {}).setdefault(model, {})
        by_model[direction] = n
    for agent, tool, outcome, n in sorted(u["tool_calls"]):
        agents.setdefault(agent, {}).setdefault("tool_calls", {}).setdefault(tool, {})[outcome] = n
    for agent, e in u["last_error"].items():
        agents.setdefault(agent, {})["last_error"] = e
    for agent, n in sorted(u.get("errors", [])):
        agents.setdefault(agent, {})["errors"] = n
    models = {}
    for model, row in sorted(u["latency"].items()):
        count = int(sum(row[:-1]))
        models[model] = {"calls": count, "seconds_mean": round(row[-1] / count, 3) if count else 0,
                         "seconds_p95": quantile(0.95, row, u["latency_buckets"])}
    return {"agents": dict(sorted(agents.items())), "models": models,
            # spans waiting for the agent span above them, those counted without it, and those sent
            # again and counted once (docs/traces.md)
            "pending_spans": u.get("pending_spans", 0), "pending_expired": u.get("pending_expired", 0),
            "duplicate_spans": u.get("duplicate_spans", 0)}


def quantile(q: float, row: list[float], buckets: list[float] | tuple[float, ...]) -> float | None:
    """The q-quantile of a bucket row (as histogram_quantile does: linear within the bucket)."""
    counts = row[:-1]
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0.0, 0.0
    for i, n in enumerate(counts):
        if seen + n >= rank and n > 0:
            if i >= len(buckets):  # in +Inf: the highest finite bound, as Prometheus answers
                return float(buckets[-1]) if buckets else None
            upper = float(buckets[i])
            return round(lower + (upper - lower) * (rank - seen) / n, 3)
        seen += n
        lower = float(buckets[i]) if i < len(buckets) else lower
    return float(buckets[-1]) if buckets else None


def _usage_metrics(settings: None, ctx: Context) -> UsageMetrics:
    return ctx.keep("usage", lambda: UsageMetrics(agents_of(ctx).label, shapes=ctx.keep("shapes", Shapes)))


def _hot(usage: UsageMetrics) -> tuple[SumFields, CountNames, ObserveNumber, RecordsAtLevels, ReadsRecords,
                                      QuietEntries]:
    # what _flat counts of an ordinary record: integer tokens by (agent, model), tool calls by
    # (agent, tool, outcome), latency_ms by model; a record at an error level is handed over too
    # (its agent's last error is kept from the whole record); the records it reads (trace and
    # usage shapes) it only counts, and an AgenticGoKit entry that reports no usage, tool call or
    # error (semantics) it skips, unless spans wait for their agent (__call__)
    live = usage.live
    return (SumFields("tokens", ("agent", "model"), DIRECTIONS, usage.add_tokens),
            CountNames("tool", "agent", "error", ERROR_LEVELS, usage.add_tool_calls),
            ObserveNumber("latency_ms", "model", 1000.0, usage.buckets, usage.add_latency),
            RecordsAtLevels(ERROR_LEVELS, usage.keep_last_error), ReadsRecords(),
            QuietEntries(AGK, "hook", tuple(sorted(AGK_HOOKS)), "session_id",
                         semantics.REPORTING_KEYS - {semantics.AGK_RESULT}, "state", semantics.STATE_USAGE,
                         "type", semantics.KOOG_PREFIX, semantics.AGK_RESULT, "error", lambda: not live.waiting))


def _view(s: dict[str, Any], view: dict[str, Any]) -> None:
    view["usage"] = usage_view(s["usage"])


# every other key it reads makes it look at the whole record (trace shapes, usage shapes)
SPEC = Spec(STEP, "usage", _usage_metrics, reads=TRIGGER_KEYS | SHAPE_KEYS, hot=_hot,
            figures=lambda usage: {"usage": usage.snapshot()}, families=lambda s: usage_families(s.get("usage")),
            view=_view)
