"""What Python agents import to send to logd: one line of set-up, never slowed or broken by it.

    import logging, logd.client
    logging.getLogger().addHandler(logd.client.LogdHandler())        # stdlib logging

    from loguru import logger
    logger.add(logd.client.loguru_sink())                            # loguru

    logd.client.bind(session_id="s-42", agent="planner")             # context for every record

    with logd.client.trace("workflow"), logd.client.span("planner", kind="agent"):  # spans (logd.client.tracing)
        ...

    agents.add_trace_processor(logd.client.OpenAITracingProcessor())  # OpenAI Agents SDK (logd.client.openai)

The socket is found like the daemon finds it (``$LOGD_SOCKET``, then
``$XDG_RUNTIME_DIR/logd/logd.sock``, then ``/tmp/logd-$UID/logd.sock``), or pass a path.
"""

from logd.client.context import Bound, bind, bound, correlation_id, new_correlation_id
from logd.client.handlers import LogdHandler, LoguruSink, loguru_sink
from logd.client.sender import Reconnect, Sender
from logd.client.tracing import current_span, propagate, span, trace  # tracing API (logd/tracing.py)


def __getattr__(name: str) -> object:
    # loaded on first use: keeps ``import logd.client`` light (the processor never imports ``agents``)
    if name == "OpenAITracingProcessor":
        from logd.client.openai import OpenAITracingProcessor

        return OpenAITracingProcessor
    raise AttributeError(f"module 'logd.client' has no attribute {name!r}")


__all__ = ["Bound", "LogdHandler", "LoguruSink", "Reconnect", "Sender", "bind", "bound", "correlation_id",
           "loguru_sink", "new_correlation_id", "current_span", "propagate", "span", "trace",
           "OpenAITracingProcessor"]
