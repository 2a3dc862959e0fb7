"""The three frameworks' trace output as they write it -> the trace records logd stores.

Shared by ``logd trace import``, ``logd list/trace --dir`` (reading files in place),
``logd send --raw`` (client side) and the OpenAI ingest (:mod:`logd.traces.openai`):

* :func:`scan` splits a file into JSON documents and text lines: JSON lines,
  pretty-printed objects one after another (Koog's JSON writer), an AgenticGoKit
  ``.trace.json`` array whether or not ``]`` was ever written (its FileTraceLogger
  writes ``]`` only on Close()), ``{"data": [...]}`` batches (OpenAI's exporter).
* :func:`koog_text` turns a line of Koog's trace file/log writer
  (``ToolCallFailedEvent (run id: r1, tool: t, tool args: {...}, error: ...)``, the log
  writer's ``Received feature message [event]: `` prefix) into the JSON shape Koog's
  kotlinx serialisation gives the same event.
* :class:`TraceMeta` carries an OpenAI trace's ``group_id``/``workflow_name`` to its
  spans, which carry only ``trace_id``.
* :class:`Documents` does the same splitting line by line for a stream (stdin).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from logd.traces import semantics
from logd.traces.semantics import text
from logd.traces.shapes import classify
from logd.turns import Work, finish

KOOG_PACKAGE = "ai.koog.agents.core.feature.model.events."

# Koog's trace writers: the fields each event's line shows, in order (agents-features-trace,
# tracing/writer message formats: "${this::class.simpleName} (run id: $runId, ...)").
_KOOG_LINE_KEYS: dict[str, tuple[str, ...]] = {
    "AgentStartingEvent": ("agent id", "run id"),
    "AgentCompletedEvent": ("agent id", "run id", "result"),
    "AgentExecutionFailedEvent": ("agent id", "run id", "error"),
    "AgentClosingEvent": ("agent id",),
    "StrategyStartingEvent": ("run id", "strategy"),
    "GraphStrategyStartingEvent": ("run id", "strategy"),
    "FunctionalStrategyStartingEvent": ("run id", "strategy"),
    "StrategyCompletedEvent": ("run id", "strategy", "result"),
    "GraphStrategyCompletedEvent": ("run id", "strategy", "result"),
    "FunctionalStrategyCompletedEvent": ("run id", "strategy", "result"),
    "NodeExecutionStartingEvent": ("run id", "node", "input"),
    "NodeExecutionCompletedEvent": ("run id", "node", "input", "output"),
    "NodeExecutionFailedEvent": ("run id", "node", "error"),
    "SubgraphExecutionStartingEvent": ("run id", "subgraph", "input"),
    "SubgraphExecutionCompletedEvent": ("run id", "subgraph", "input", "output"),
    "SubgraphExecutionFailedEvent": ("run id", "subgraph", "error"),
    "LLMCallStartingEvent": ("run id", "prompt", "model", "tools"),
    "LLMCallCompletedEvent": ("run id", "prompt", "model", "responses"),
    "LLMStreamingStartingEvent": ("run id", "prompt", "model", "tools"),
    "LLMStreamingFrameReceivedEvent": ("run id", "prompt", "model", "frame"),
    "LLMStreamingCompletedEvent": ("run id", "prompt", "model", "tools"),
    "LLMStreamingFailedEvent": ("run id", "prompt", "model", "error"),
    "ToolCallStartingEvent": ("run id", "tool", "tool args"),
    "ToolValidationFailedEvent": ("run id", "tool", "tool args", "validation error"),
    "ToolCallFailedEvent": ("run id", "tool", "tool args", "error"),
    "ToolCallCompletedEvent": ("run id", "tool", "tool args", "result"),
}
# the line's words -> the JSON field of the same event
_KOOG_FIELDS = {"agent id": "agentId", "run id": "runId", "strategy": "strategyName", "node": "nodeName",
                "subgraph": "subgraphName", "tool": "toolName", "tool args": "toolArgs",
                "validation error": "error"}
_KOOG_LINE = re.compile(r"(?:Received feature message \[[a-z_]+\]: )?([A-Z][A-Za-z]*Event) \((.*)\)\s*$")
_ANY_KEY = re.compile(r"(?:^|, )([a-z][a-z ]*?): ")


def koog_text(line: str) -> dict[str, Any] | None:
    """The Koog event a trace writer line shows, shaped as Koog's JSON; None if it is not one."""
    m = _KOOG_LINE.search(line)
    if m is None:
        return None
    name, body = m.group(1), m.group(2)
    keys = _KOOG_LINE_KEYS.get(name)
    values = _split_ordered(body, keys) if keys else _split_any(body)
    if values is None or ("run id" not in values and "agent id" not in values):
        return None
    event: dict[str, Any] = {"type": KOOG_PACKAGE + name}
    for key, value in values.items():
        field = _KOOG_FIELDS.get(key, key)
        if key in ("error", "validation error"):
            event["error"] = {"message": value}
        elif key == "tool args":
            event[field] = _json_or_text(value)
        else:
            event[field] = value
    event["message"] = line[m.start():].rstrip()
    return event


def _split_ordered(body: str, keys: tuple[str, ...]) -> dict[str, str] | None:
    if not body.startswith(keys[0] + ": "):
        return None
    out: dict[str, str] = {}
    pos = len(keys[0]) + 2
    for i, key in enumerate(keys):
        if i + 1 < len(keys):
            end = body.find(f", {keys[i + 1]}: ", pos)
            if end < 0:
                return None
            out[key] = body[pos:end]
            pos = end + len(keys[i + 1]) + 4
        else:
            out[key] = body[pos:]
    return out


def _split_any(body: str) -> dict[str, str] | None:
    marks = list(_ANY_KEY.finditer(body))
    if not marks or marks[0].start() != 0:
        return None
    return {m.group(1): body[m.end(): marks[i + 1].start() if i + 1 < len(marks) else len(body)]
            for i, m in enumerate(marks)}


def _json_or_text(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


# --- levels ---

def with_level(obj: dict[str, Any]) -> dict[str, Any]:
    """A failed event, an AgentError or a span with an error is logged as ``error``, unless it says otherwise."""
    if "level" in obj or "severity" in obj or "levelname" in obj:
        return obj
    kind = obj.get("type")
    failed = (isinstance(kind, str) and kind.startswith(KOOG_PACKAGE[:8]) and kind.endswith("FailedEvent")) or (
        isinstance(obj.get("eventType"), str) and obj["eventType"].endswith("FailedEvent"))
    result = obj.get("agent_result")
    if failed or obj.get("hook") == "AgentError" or obj.get("error") not in (None, "", {}) or (
            isinstance(result, dict) and result.get("error")):
        obj["level"] = "error"
    return obj


# --- OpenAI traces: their group, workflow and agent reach their spans ---

_OFFSET_TIME = re.compile(r"T\d\d:\d\d:\d\d(?:\.\d+)?([+-]\d\d:\d\d|Z)$")


class TraceMeta:
    """What an OpenAI Agents SDK span does not carry itself, remembered (bounded) from what
    came before it: its trace's ``group_id``/``workflow_name`` (a trace is exported when it
    starts), and the agent it runs under (the nearest agent span above it, learnt from
    spans as they start in the client's processor, or from the other spans of the same
    batch). Stamped on each span with a ``message`` saying what it was, so the log file's
    record answers ``logd query --agent billing``. The views resolve agents again over the
    whole trace (:mod:`logd.traces.model`): this is only what the log line can know."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._traces: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._koog_runs: dict[str, str] = {}  # Koog agentId -> its latest runId
        self._parents: OrderedDict[str, str | None] = OrderedDict()  # span id -> parent id
        self._agents: dict[str, str] = {}  # agent span id -> its agent

    def _bounded(self, table: OrderedDict, key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.limit:
            gone, _ = table.popitem(last=False)
            self._agents.pop(gone, None)

    def remember(self, trace: dict[str, Any]) -> None:
        trace_id = trace.get("id")
        if isinstance(trace_id, str) and trace_id:
            self._bounded(self._traces, trace_id,
                          {k: trace[k] for k in ("group_id", "workflow_name") if trace.get(k)})

    def learn(self, span: dict[str, Any]) -> None:
        """A span's place (its parent, and its name if it is an agent span): at its start in
        the client's processor, or for every span of a batch before any is stamped."""
        span_id = text(span.get("id")) or text(span.get("span_id"))
        if span_id is None:
            return
        self._bounded(self._parents, span_id, text(span.get("parent_id")))
        if semantics.kind(span) == "agent":
            name = semantics.agent_name(span)
            if name:
                self._agents[span_id] = name

    def agent_of(self, span: dict[str, Any]) -> str | None:
        at: str | None = text(span.get("id")) or text(span.get("span_id"))
        seen = set()
        while at is not None and at not in seen:
            seen.add(at)
            if at in self._agents:
                return self._agents[at]
            at = self._parents.get(at)
        return None

    def koog_run(self, event: dict[str, Any]) -> None:
        """AgentClosingEvent carries only ``agentId``: it belongs to that agent's latest run."""
        agent, run = event.get("agentId"), event.get("runId")
        if isinstance(agent, str):
            if isinstance(run, str):
                if len(self._koog_runs) >= self.limit:
                    self._koog_runs.clear()
                self._koog_runs[agent] = run
            elif agent in self._koog_runs:
                event["runId"] = self._koog_runs[agent]

    def stamp(self, span: dict[str, Any]) -> dict[str, Any]:
        known = self._traces.get(span.get("trace_id"))  # type: ignore[arg-type]
        if known:
            for key, value in known.items():
                span.setdefault(key, value)
        if "agent" not in span:
            agent = self.agent_of(span)
            if agent:
                span["agent"] = agent
        if "message" not in span:
            span["message"] = semantics.summary(span)
        return span


def expand_each(items: list[Any], meta: TraceMeta) -> Work[list[dict[str, Any]]]:
    """:func:`expand` of an array, yielding after each of its items (:mod:`logd.turns`)."""
    for item in items:  # every span first: a span's parent may come later in the array
        if isinstance(item, dict) and item.get("object") == "trace.span":
            meta.learn(item)
    out: list[dict[str, Any]] = []
    for item in items:
        out += expand(item, meta)
        yield
    return out


def expand(value: Any, meta: TraceMeta) -> list[dict[str, Any]]:
    """The records in one JSON document: an object, a ``{"data": [...]}`` batch or an array of them."""
    if isinstance(value, list):
        return finish(expand_each(value, meta))
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("data"), list) and set(value) <= {"data", "object"}:
        return expand(value["data"], meta)
    if "agentId" in value:
        meta.koog_run(value)
    if value.get("object") == "trace":
        meta.remember(value)
    elif value.get("object") == "trace.span":
        meta.learn(value)
        meta.stamp(value)
        if "time" not in value and isinstance(value.get("started_at") or value.get("ended_at"), str):
            value["time"] = value.get("ended_at") or value.get("started_at")
    elif "hook" in value and isinstance(value.get("timestamp"), str):
        found = _OFFSET_TIME.search(value["timestamp"])
        if found:  # agentcli prints the entry's own zone: keep it past normalisation to UTC
            value.setdefault("timestamp_offset", found.group(1))
    return [with_level(value) if classify(value) is not None else value]


# --- files ---

@dataclass
class Piece:
    line: int                 # 1-based line where it starts
    value: Any = None         # a decoded JSON document
    text: str | None = None   # or a text line
    problem: str | None = None


_DECODER = json.JSONDecoder()
_STRUCTURE = " \t\r\n,[]"
_DOCUMENT_START = re.compile(r"\n(?=[\[,\s]*\{)")


def scan(text: str) -> Iterator[Piece]:
    """JSON documents and text lines, in order. A JSON document cut short (a truncated
    file) is reported as a problem; what follows it is still read."""
    pos, n, line = 0, len(text), 1
    while pos < n:
        start = pos
        while pos < n and text[pos] in _STRUCTURE:
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= n:
            break
        if text[pos] == "{":
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except (json.JSONDecodeError, RecursionError) as exc:
                nl = _next_document(text, pos)
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                yield Piece(line, problem=f"line {line}: a JSON document cut short or malformed ({why}); skipped")
                line += text.count("\n", pos, nl)
                pos = nl
                continue
            yield Piece(line, value=value)
            line += text.count("\n", pos, end)
            pos = end
            continue
        end = text.find("\n", pos)
        end = n if end < 0 else end
        yield Piece(line, text=text[pos:end].rstrip("\r"))
        pos = end


def _next_document(text: str, pos: int) -> int:
    """Where to resume after a broken document: the next line that starts a new object."""
    m = _DOCUMENT_START.search(text, pos + 1)
    return m.start() + 1 if m else len(text)


class Documents:
    """``logd send --raw``: stdin lines -> one line per record.

    A pretty-printed JSON document (Koog's JSON writer, an AgenticGoKit ``.trace.json``)
    is gathered until it parses and sent as one compact line; ``{"data": [...]}`` batches
    send each item; Koog trace writer lines become Koog's JSON; every other line goes as
    it came. A document that never completes is sent as its lines, unchanged.
    """

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        self.max_bytes = max_bytes
        self.meta = TraceMeta()
        self._lines: list[bytes] = []
        self._size = 0

    def feed(self, line: bytes) -> list[bytes]:
        body = line.rstrip(b"\r\n")
        stripped = body.strip()
        if not self._lines:
            if stripped in (b"[", b"]", b",", b"],", b""):
                return []  # the punctuation of a JSON array written one entry at a time
            if not stripped.startswith(b"{"):
                return [self._text(body)]
        self._lines.append(body)
        self._size += len(body) + 1
        if stripped.endswith(b"}") or stripped.endswith(b"},") or stripped.endswith(b"]"):
            joined = b"\n".join(self._lines).strip().rstrip(b",")
            try:
                value = orjson.loads(joined)
            except orjson.JSONDecodeError:
                value = None
            if isinstance(value, (dict, list)):
                lines, self._lines, self._size = self._lines, [], 0
                if len(lines) == 1 and isinstance(value, dict) and "data" not in value and classify(value) is None:
                    return [body + b"\n"]  # an ordinary JSON line goes as it came
                return [orjson.dumps(r) + b"\n" for r in expand(value, self.meta)]
        if self._size > self.max_bytes:
            return self.finish()
        return []

    def finish(self) -> list[bytes]:
        lines, self._lines, self._size = self._lines, [], 0
        return [line + b"\n" for line in lines]

    def _text(self, body: bytes) -> bytes:
        text = body.decode("utf-8", "replace")
        event = koog_text(text) if "Event (" in text else None
        if event is not None:
            return b"".join(orjson.dumps(r) + b"\n" for r in expand(event, self.meta))
        return body + b"\n"
