"""The trace model's rules applied as records arrive, for the live metrics.

``/metrics``, ``logd status`` and ``logd top`` count tokens, tool calls and failures per
agent while the views (:mod:`logd.traces.model`) read whole traces later. Both ask the
same functions of each record (:mod:`logd.traces.semantics`); what needs the rest of the
trace is settled here with bounded memory:

* **Agent.** A span's agent is its nearest enclosing agent span. Spans are exported when
  they end, so children arrive before their parents (OTLP ``SimpleSpanProcessor``;
  ``BatchSpanProcessor`` and the Agents SDK's exporter across batches): a span whose
  agent is not known yet waits, keyed by its parent, and is counted when an ancestor
  that settles it arrives (an agent span, or a span already settled), or when its trace's
  root arrives without an agent above it (then the span's own agent attribute, else the
  record's ``agent``). A span whose ancestors never come is counted that way after
  ``max_wait`` seconds, or when ``max_pending`` spans wait (oldest first): counted late,
  never lost (``pending_expired`` says how many).
* **Tokens.** A span's usage counts only if no descendant reports usage (the Agents SDK's
  task/turn spans, Strands' and Pydantic AI's agent spans carry their run's total on top
  of each call's). Children arriving first, a span that reports usage marks its parent,
  and a span that arrives marked passes the mark on and does not count its own. The marks
  are a bounded table (``max_marks`` spans; the oldest go first): a mark lost to that bound,
  or a parent that ends before its child, counts a run total as well; docs/traces.md says
  so.
* **Once.** A span sent again (an exporter retrying a batch whose answer it missed) is
  counted once while it is remembered (``max_known`` settled spans, and those waiting),
  as the views keep one copy per (trace id, span id).

AgenticGoKit entries and Koog events carry their agent (Koog's other events take their
run's, remembered from AgentStartingEvent in a bounded table) and are counted at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logd.traces import semantics
from logd.traces.semantics import Usage, text
from logd.traces.shapes import KOOG, SPAN

Key = tuple[str, str]  # (trace id, span id)


@dataclass
class Fact:
    """What one trace record adds to the counters, once its agent is known."""

    agent: object  # the agent label's value as the record gave it (None: unknown)
    usage: Usage | None
    tool: semantics.ToolCall | None
    error: str | None
    time: Any


class _Waiting:
    __slots__ = ("record", "usage", "since", "parent")

    def __init__(self, record: dict, usage: Usage | None, since: float, parent: Key) -> None:
        self.record, self.usage, self.since, self.parent = record, usage, since, parent


class LiveTraces:
    """``feed(record, shape)`` returns the facts that became countable."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_pending: int = 10_000,
                 max_wait: float = 600.0, max_marks: int = 100_000, max_known: int = 100_000) -> None:
        self.clock = clock
        self.max_pending, self.max_wait, self.max_marks, self.max_known = max_pending, max_wait, max_marks, max_known
        self.waiting: OrderedDict[Key, _Waiting] = OrderedDict()  # spans whose agent is not known yet
        self._children: dict[Key, list[Key]] = {}  # parent -> spans waiting for it
        self._agents: OrderedDict[Key, str | None] = OrderedDict()  # settled span -> agent for its children
        self._marks: OrderedDict[Key, bool] = OrderedDict()  # spans with a descendant that reported usage
        self._koog_runs: OrderedDict[str, str] = OrderedDict()
        self.pending_expired = 0
        self.duplicates = 0  # spans seen again while remembered (max_known settled, or waiting)

    @property
    def pending(self) -> int:
        return len(self.waiting)

    def feed(self, record: dict[str, Any], shape: tuple[str, str]) -> list[Fact]:
        kind, key = shape
        out: list[Fact] = []
        if kind == SPAN:
            if record.get("object") != "trace":
                self._span(record, key, out)
        else:  # most hooks and events carry nothing to count: no fact for them (told by their keys)
            if kind == KOOG and "agentId" in record:
                self._bounded(self._koog_runs, key, record["agentId"], self.max_known)
            if semantics.may_report(record):
                usage, tool, error = semantics.usage(record), semantics.tool_call(record), semantics.error(record)
                if usage is not None or tool is not None or error is not None:
                    agent = semantics.agent_name(record) or (self._koog_runs.get(key) if kind == KOOG else None)
                    out.append(Fact(agent, usage, tool, error, record.get("time")))
        if self.waiting:
            self._expire(out)
        return out

    # --- spans ---

    def _span(self, record: dict, trace: str, out: list[Fact]) -> None:
        span = semantics.span_id(record) or ""
        parent = text(record.get("parent_id"))
        me, up = (trace, span), (trace, parent) if parent else None
        if span and (me in self._agents or me in self.waiting):
            self.duplicates += 1  # sent again (an exporter's retry): the views keep one copy too
            return
        found = semantics.usage(record)
        marked = self._marks.pop(me, False)
        if up is not None and (found is not None or marked):
            self._bounded(self._marks, up, True, self.max_marks)
        counted = None if marked else found
        if semantics.kind(record) == "agent":
            self._settle(me, record, counted, semantics.agent_name(record), out)
        elif up is None:
            self._settle(me, record, counted, None, out)
        elif up in self._agents:
            self._settle(me, record, counted, self._agents[up], out)
        else:
            self.waiting[me] = _Waiting(record, counted, self.clock(), up)
            self._children.setdefault(up, []).append(me)

    def _settle(self, key: Key, record: dict, counted: Usage | None, agent: str | None, out: list[Fact]) -> None:
        """``key``'s agent is known (``agent``; None: no agent span above it): count it and
        every span that was waiting for it."""
        stack = [(key, record, counted)]
        while stack:
            at, rec, usage = stack.pop()
            own = agent or semantics.agent_name(rec) or rec.get("agent")
            out.append(self._fact(rec, own, usage))
            self._bounded(self._agents, at, agent if semantics.kind(rec) != "agent" else semantics.agent_name(rec),
                          self.max_known)
            for child in self._children.pop(at, ()):
                waiting = self.waiting.pop(child, None)
                if waiting is not None:
                    stack.append((child, waiting.record, waiting.usage))

    def _expire(self, out: list[Fact]) -> None:
        """Spans that waited too long, or too many: counted with what they say themselves."""
        now = self.clock()
        while self.waiting:
            key, waiting = next(iter(self.waiting.items()))
            if len(self.waiting) <= self.max_pending and now - waiting.since < self.max_wait:
                break
            del self.waiting[key]
            self.pending_expired += 1
            siblings = self._children.get(waiting.parent)
            if siblings is not None:
                if key in siblings:
                    siblings.remove(key)
                if not siblings:
                    del self._children[waiting.parent]
            self._children.pop(key, None)  # its own waiting children expire in their turn
            out.append(self._fact(waiting.record, semantics.agent_name(waiting.record) or waiting.record.get("agent"),
                                  waiting.usage))

    # --- shared ---

    def _fact(self, record: dict, agent: object, usage: Usage | None) -> Fact:
        return Fact(agent, usage, semantics.tool_call(record), semantics.error(record), record.get("time"))

    @staticmethod
    def _bounded(table: OrderedDict, key: Any, value: Any, limit: int) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > limit:
            table.popitem(last=False)
