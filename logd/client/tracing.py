"""Tracing API for agents: ``with trace("workflow")`` and ``with span("planner", kind="agent")``.

Each finished span is one record on logd's socket, in the span shape logd's trace
store recognises (``trace_id``, ``span_id``, ``parent_id``, ``started_at``,
``ended_at``, ``span_data.type``, ``error``), so ``logd trace`` shows it::

    from logd.client import trace, span

    with trace("support", group_id=conversation_id):      # the session is group_id, else trace_id
        with span("triage", kind="agent"):
            with span("gpt-4o", kind="generation", model="gpt-4o") as s:
                s.set(usage={"input_tokens": 812})
        with span("handoff", kind="handoff", from_agent="triage", to_agent="billing"):
            pass

The current span lives in a :class:`contextvars.ContextVar`: asyncio tasks inherit
it (each task keeps its own child spans), and a thread inherits it when started
through :func:`propagate` (or ``asyncio.to_thread``, which copies the context).
An exception leaving a span is recorded as the span's error and re-raised.

Records are queued and sent by one background thread in batches (``batch_size``
records, or whatever is queued every ``flush_interval`` seconds); the queue is
bounded, and what it has to drop while logd is unreachable is counted
(:attr:`Tracer.dropped`). :func:`flush` waits until everything queued was sent.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from logd.timestamps import format_epoch

SPAN_KINDS = ("agent", "function", "generation", "response", "handoff", "custom", "guardrail")
F = TypeVar("F", bound=Callable[..., Any])


class Sender(Protocol):
    """Where finished span records go (:class:`BatchSender`, or anything with these two methods)."""

    def send(self, record: dict[str, Any]) -> None: ...

    def flush(self, timeout: float = ...) -> bool: ...


class Transport(Protocol):
    """What actually writes to logd: ``logd.client``'s sender (``put``/``flush``)."""

    def put(self, record: dict[str, Any]) -> None: ...

    def flush(self, timeout: float = ...) -> bool: ...


def client_transport() -> Transport | None:
    """The logging client's sender (its reconnects, partial-line handling and drop reports),
    when that module is installed; None means :class:`BatchSender` writes the socket itself."""
    try:
        from logd.client.sender import Sender as ClientSender
    except ImportError:
        return None
    return ClientSender()


class Span:
    """One timed unit of work; ``set()`` adds fields to its ``span_data``."""

    __slots__ = ("trace_id", "span_id", "parent_id", "group_id", "kind", "name", "agent", "data",
                 "started_at", "ended_at", "error")

    def __init__(self, name: str, kind: str, trace_id: str, parent: Span | None,
                 group_id: str | None, data: dict[str, Any]) -> None:
        if kind not in SPAN_KINDS:
            raise ValueError(f"span kind must be one of {', '.join(SPAN_KINDS)}; got {kind!r}")
        self.name, self.kind, self.trace_id = name, kind, trace_id
        self.span_id = "span_" + os.urandom(12).hex()
        self.parent_id = parent.span_id if parent is not None else None
        self.group_id = group_id
        self.agent: str | None = name if kind == "agent" else (parent.agent if parent is not None else None)
        self.data = data
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.error: dict[str, Any] | None = None

    def set(self, **data: Any) -> None:
        self.data.update(data)

    def record_error(self, error: BaseException | str, **data: Any) -> None:
        """Mark the span failed without raising (an exception leaving the ``with`` does this itself)."""
        if isinstance(error, BaseException):
            self.error = {"type": type(error).__name__, "message": str(error), **({"data": data} if data else {})}
        else:
            self.error = {"message": error, **({"data": data} if data else {})}

    def to_record(self) -> dict[str, Any]:
        ended = self.ended_at if self.ended_at is not None else time.time()
        record: dict[str, Any] = {
            "time": format_epoch(ended), "level": "error" if self.error else "info",
            "message": f"{self.kind} span {self.name}" + (" failed" if self.error else ""),
            "trace_id": self.trace_id, "span_id": self.span_id, "parent_id": self.parent_id,
            "started_at": format_epoch(self.started_at), "ended_at": format_epoch(ended),
            "span_data": {"type": self.kind, "name": self.name, **self.data}, "error": self.error,
        }
        if self.group_id is not None:
            record["group_id"] = self.group_id
        if self.agent is not None:
            record["agent"] = self.agent
        return record


_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("logd_current_span", default=None)


def current_span() -> Span | None:
    return _current.get()


@contextmanager
def _run(span_: Span, sender: Sender | None) -> Iterator[Span]:
    token = _current.set(span_)
    try:
        yield span_
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            span_.record_error(exc)
        raise
    finally:
        _current.reset(token)
        span_.ended_at = time.time()
        record = span_.to_record()
        for key, value in _bound_fields().items():  # logd.client.bind(session_id=...) applies to spans too
            record.setdefault(key, value)
        (sender or get_sender()).send(record)


def _bound_fields() -> dict[str, Any]:
    try:
        from logd.client.context import bound
    except ImportError:
        return {}
    return bound()


def trace(workflow: str, *, group_id: str | None = None, trace_id: str | None = None,
          sender: Sender | None = None, **metadata: Any):
    """Start a trace: a root span (type ``custom``) that every span inside it belongs to.

    ``group_id`` ties several traces of one conversation into one logd session.
    """
    tid = trace_id or "trace_" + os.urandom(16).hex()
    root = Span(workflow, "custom", tid, None, group_id, {"workflow": True, **metadata})
    return _run(root, sender)


def span(name: str, *, kind: str = "custom", sender: Sender | None = None, **data: Any):
    """A child of the current span; outside any trace it starts a trace of its own."""
    parent = _current.get()
    if parent is None:
        return _run(Span(name, kind, "trace_" + os.urandom(16).hex(), None, None, data), sender)
    return _run(Span(name, kind, parent.trace_id, parent, parent.group_id, data), sender)


def propagate(fn: F) -> F:
    """``fn`` bound to the caller's context, so a thread it runs in continues the current span."""
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        return context.run(fn, *args, **kwargs)

    return inner  # type: ignore[return-value]


class BatchSender:
    """A bounded queue and one thread that sends records in batches: ``batch_size``
    records at once, or whatever is queued every ``flush_interval`` seconds.

    A batch goes to ``transport`` (the logging client's sender) when one is given;
    otherwise this thread writes to logd's socket itself, keeping the connection open
    and re-making it after an error. Records that could not be sent stay queued
    (oldest dropped, and counted, once ``max_queue`` is reached).
    """

    def __init__(self, socket_path: Path | str | None = None, *, batch_size: int = 64,
                 flush_interval: float = 0.2, max_queue: int = 10_000,
                 transport: Transport | None = None) -> None:
        self.transport = transport
        if socket_path is None:
            from logd.paths import client_socket_path

            socket_path = client_socket_path()
        self.socket_path = os.fspath(socket_path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.sent = 0
        self.dropped = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closed = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._loop, name="logd-tracing", daemon=True)
        self._thread.start()

    def send(self, record: dict[str, Any]) -> None:
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(record)
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now; True when the queue emptied within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
                self._cond.notify_all()
        if self.transport is not None:
            return self.transport.flush(max(0.0, deadline - time.monotonic()))
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._closed and len(self._queue) < self.batch_size:
                    self._cond.wait(self.flush_interval)
                if self._closed and not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            sent = self._send(batch) if batch else True
            with self._cond:
                if not sent:  # keep order: put the batch back in front
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > self.max_queue:
                        self._queue.pop()
                        self.dropped += 1
                else:
                    self.sent += len(batch)
                self._in_flight = 0
                self._cond.notify_all()
                if not sent:
                    self._cond.wait(self.flush_interval)  # logd unreachable: retry later
                    if self._closed:
                        return

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        if self.transport is not None:
            for record in batch:
                self.transport.put(record)
            return True
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.socket_path)
                self._sock = sock
            self._sock.sendall(b"".join(orjson.dumps(r, default=str, option=orjson.OPT_APPEND_NEWLINE)
                                        for r in batch))
            return True
        except OSError:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return False


_sender: Sender | None = None
_sender_lock = threading.Lock()


def get_sender() -> Sender:
    """The process-wide sender, made on first use (flushed at exit)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = BatchSender(transport=client_transport())
            atexit.register(_sender.flush)
        return _sender


def set_sender(sender: Sender | None) -> None:
    """Use ``sender`` for spans that name none (None: make a default one on next use)."""
    global _sender
    with _sender_lock:
        _sender = sender


def flush(timeout: float = 5.0) -> bool:
    return get_sender().flush(timeout)
