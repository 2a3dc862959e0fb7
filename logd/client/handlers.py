"""stdlib ``logging`` handler and loguru sink: a log call becomes a small dict for the Sender.

Only the dict is built on the caller's thread (level, time, message, logger name,
bound context, extra fields, and the exception when there is one); encoding and
socket work happen on the Sender's thread.
"""

from __future__ import annotations

import logging
import os
import traceback
from itertools import islice
from typing import Any

from logd.client.context import current_fields
from logd.client.sender import Record, Sender

# stdlib level numbers -> logd levels; others go to the nearest level below
_STDLIB_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
                  logging.ERROR: "error", logging.CRITICAL: "fatal", logging.NOTSET: "trace"}
_LOGURU_LEVELS = {"TRACE": "trace", "DEBUG": "debug", "INFO": "info", "SUCCESS": "info",
                  "WARNING": "warn", "ERROR": "error", "CRITICAL": "fatal"}
# attributes every LogRecord has; anything else on a record came from ``extra=``. LogRecord's
# __init__ sets the first _INIT_ATTRS of them, so extras (added by makeRecord after it) come later.
_INIT_ATTRS = len(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _stdlib_level(levelno: int) -> str:
    level = _STDLIB_LEVELS.get(levelno)
    if level is None:
        below = [n for n in _STDLIB_LEVELS if n <= levelno]
        level = _STDLIB_LEVELS[max(below)] if below else "trace"
        _STDLIB_LEVELS[levelno] = level
    return level


def _error_fields(exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Record:
    if exc_type is None:
        return {}
    return {"error": f"{exc_type.__name__}: {exc}",
            "stack": "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")}


def _sender(sender: Sender | None, path: str | os.PathLike[str] | None, options: dict[str, Any]) -> Sender:
    return sender if sender is not None else Sender(path, **options)


class LogdHandler(logging.Handler):
    """Send stdlib log records to logd: ``logging.getLogger().addHandler(LogdHandler())``.

    ``fields`` are added to every record (e.g. ``{"agent": "planner"}``); options
    (``ack``, ``max_buffer``, ``batch_size``, ``exit_timeout``...) go to the :class:`Sender`,
    or pass a ``sender`` to share one connection between handlers.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, level: int = logging.NOTSET,
                 fields: dict[str, Any] | None = None, sender: Sender | None = None, **options: Any) -> None:
        super().__init__(level)
        self._owns_sender = sender is None
        self.sender = _sender(sender, path, options)
        self.fields = dict(fields or {})

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit without the handler lock: emit is thread-safe on its own."""
        result = self.filter(record)
        if result:
            if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace the record
                record = result
            self.emit(record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rec: Record = {"time": record.created,
                           "level": _STDLIB_LEVELS.get(record.levelno) or _stdlib_level(record.levelno),
                           "message": record.getMessage(), "logger": record.name}
            if self.fields:
                rec.update(self.fields)
            context = current_fields()
            if context:
                rec.update(context)
            attrs = record.__dict__
            if len(attrs) > _INIT_ATTRS:  # only the keys after __init__'s can be extras: no set arithmetic
                for key, value in islice(attrs.items(), _INIT_ATTRS, None):
                    if key not in _STANDARD_ATTRS:
                        rec[key] = value
            if record.exc_info:
                rec.update(_error_fields(*record.exc_info))
            if record.stack_info:
                rec["stack"] = (rec["stack"] + "\n" if "stack" in rec else "") + record.stack_info
            self.sender.put(rec)
        except Exception:  # never raise into the application
            self.handleError(record)

    def flush(self) -> None:
        self.sender.flush(self.sender.exit_timeout)

    def close(self) -> None:
        if self._owns_sender:
            self.sender.close()
        super().close()


class LoguruSink:
    """A loguru sink sending to logd; made by :func:`loguru_sink`."""

    def __init__(self, sender: Sender, owns_sender: bool, fields: dict[str, Any]) -> None:
        self.sender = sender
        self._owns_sender = owns_sender
        self.fields = fields

    def write(self, message: Any) -> None:
        try:
            r = message.record
            rec: Record = {"time": r["time"].timestamp(), "level": _LOGURU_LEVELS.get(r["level"].name) or
                           _stdlib_level(r["level"].no), "message": r["message"], "logger": r["name"]}
            if self.fields:
                rec.update(self.fields)
            context = current_fields()
            if context:
                rec.update(context)
            if r["extra"]:
                rec.update(r["extra"])
            exc = r["exception"]
            if exc is not None:
                rec.update(_error_fields(exc.type, exc.value, exc.traceback))
            self.sender.put(rec)
        except Exception as exc:  # never raise into the application
            self.sender.warn_once("sink", f"logd client: a loguru record could not be sent: {exc!r}")

    __call__ = write

    def stop(self) -> None:
        """Called by ``logger.remove()``: flush and close the sender this sink made."""
        if self._owns_sender:
            self.sender.close()


def loguru_sink(path: str | os.PathLike[str] | None = None, *, fields: dict[str, Any] | None = None,
                sender: Sender | None = None, **options: Any) -> LoguruSink:
    """A sink for ``loguru.logger.add(logd.client.loguru_sink())``; options as for :class:`LogdHandler`."""
    return LoguruSink(_sender(sender, path, options), sender is None, dict(fields or {}))
