"""The OpenAI Agents SDK's traces into logd, with one line in the agent:

    import agents, logd.client
    agents.add_trace_processor(logd.client.OpenAITracingProcessor())

A TracingProcessor (duck-typed: this module never imports ``agents``) that sends each
trace when it starts and each span when it ends, exported exactly as the SDK's own
backend exporter would post them (``trace.export()``/``span.export()``), through a
:class:`~logd.client.sender.Sender`: never blocking the agent, never raising into it.
Spans carry their trace's ``group_id`` and ``workflow_name``, so a conversation's
traces gather in one logd session, the agent they ran under (``agent``, learnt as spans
start) and a ``message`` saying what they were, so the log file answers
``logd query --agent billing``.
"""

from __future__ import annotations

import os
from typing import Any

from logd.client.sender import Sender
from logd.traces.formats import TraceMeta, expand


class OpenAITracingProcessor:
    """``agents.add_trace_processor(OpenAITracingProcessor())``; ``socket`` as for :class:`Sender`."""

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, sender: Sender | None = None) -> None:
        self.sender = sender if sender is not None else Sender(socket)
        self._meta = TraceMeta()

    def _send(self, item: Any) -> None:
        try:
            exported = item.export()
        except Exception:  # a processor must never break the agent's run
            return
        if isinstance(exported, dict):
            for record in expand(dict(exported), self._meta):
                self.sender.put(record)

    def on_trace_start(self, trace: Any) -> None:
        self._send(trace)

    def on_trace_end(self, trace: Any) -> None:
        pass  # sent when it started: its spans need its group before they end

    def on_span_start(self, span: Any) -> None:
        try:  # its place in the trace, so its children's records name their agent (TraceMeta)
            exported = span.export()
        except Exception:
            return
        if isinstance(exported, dict):
            self._meta.learn(exported)

    def on_span_end(self, span: Any) -> None:
        self._send(span)

    def force_flush(self) -> None:
        self.sender.flush()

    def shutdown(self) -> None:
        self.sender.flush()
