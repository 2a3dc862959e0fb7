"""Exceptions from structlog, python-json-logger and loguru, produced by the real libraries, arrive
as logd's `error` and `stack` and print on the console as a readable stack (issue 29, item 7)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import orjson
import pytest
import structlog
from loguru import logger as loguru_logger
from pythonjsonlogger.json import JsonFormatter

from logd.record import parse_line
from logd.tracebacks import normalise

from support import agent_records, send, wait_for

RECEIVED = "2026-12-01T10:00:00.000000Z"


def failing() -> None:
    try:
        {}["user_id"]
    except KeyError as exc:
        raise ValueError("tool failed: no user") from exc


def logged(emit: Callable[[], None]) -> None:
    try:
        failing()
    except ValueError:
        emit()


@pytest.fixture
def stdlib_stream() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """A stdlib handler writing to a string, on the root logger for the test only."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers, root.level = [handler], logging.INFO
    yield stream, handler
    root.handlers, root.level = saved
    structlog.reset_defaults()


def structlog_dict_tracebacks() -> str:
    out = io.StringIO()
    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                                    structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(out))
    try:
        logged(lambda: structlog.get_logger().exception("lookup failed", agent="planner",
                                                        token="sk-abcdefghijklmnopqrstuvwx"))
    finally:
        structlog.reset_defaults()
    return out.getvalue()


def structlog_text() -> str:
    out = io.StringIO()
    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.format_exc_info,
                                    structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(out))
    try:
        logged(lambda: structlog.get_logger().exception("lookup failed", agent="planner"))
    finally:
        structlog.reset_defaults()
    return out.getvalue()


def test_structlog_dict_tracebacks_become_error_and_a_python_traceback_with_locals():
    line = structlog_dict_tracebacks().strip()
    assert isinstance(orjson.loads(line)["exception"], list)  # what structlog sends
    rec = parse_line(line.encode(), RECEIVED)
    assert "exception" not in rec
    assert rec["error"] == "ValueError: tool failed: no user"
    stack = rec["stack"].splitlines()
    assert stack[0] == "Traceback (most recent call last):" and stack[-1] == "ValueError: tool failed: no user"
    assert "KeyError: \"'user_id'\"" in stack or "KeyError: 'user_id'" in stack
    assert "The above exception was the direct cause of the following exception:" in stack
    assert any(line.startswith('  File "') and line.endswith(", in failing") for line in stack)
    assert any(line.startswith("    emit = <function") for line in stack)  # the frames' locals are kept


def test_structlog_format_exc_info_text_becomes_error_and_stack():
    rec = parse_line(structlog_text().strip().encode(), RECEIVED)
    assert "exception" not in rec and rec["error"] == "ValueError: tool failed: no user"
    assert rec["stack"].startswith("Traceback (most recent call last):") and '{}["user_id"]' in rec["stack"]


def test_python_json_logger_exc_info_and_stack_info(stdlib_stream):
    stream, handler = stdlib_stream
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logged(lambda: logging.getLogger("planner").exception("lookup failed", extra={"agent": "planner"}))
    logging.getLogger("planner").warning("slow", stack_info=True)
    failed, slow = (parse_line(line.encode(), RECEIVED) for line in stream.getvalue().splitlines())
    assert "exc_info" not in failed and failed["error"] == "ValueError: tool failed: no user"
    assert failed["stack"].startswith("Traceback (most recent call last):") and failed["level"] == "error"
    assert "stack_info" not in slow and slow["stack"].startswith("Stack (most recent call last):")


def test_structlog_through_stdlib_to_python_json_logger_keeps_one_stack(stdlib_stream):
    """render_to_log_kwargs hands stdlib the exception too: the line holds it twice
    (structlog's `exception` and python-json-logger's `exc_info`); one stack is kept."""
    stream, handler = stdlib_stream
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for shape in (structlog.processors.format_exc_info, structlog.processors.dict_tracebacks):
        stream.seek(0)
        stream.truncate()
        structlog.configure(processors=[structlog.stdlib.add_log_level, shape, structlog.stdlib.render_to_log_kwargs],
                            logger_factory=structlog.stdlib.LoggerFactory(), wrapper_class=structlog.stdlib.BoundLogger)
        logged(lambda: structlog.get_logger("planner").exception("lookup failed"))
        sent = orjson.loads(stream.getvalue())
        assert "exception" in sent and "exc_info" in sent  # twice, as the libraries send it
        rec = parse_line(stream.getvalue().strip().encode(), RECEIVED)
        assert "exception" not in rec and "exc_info" not in rec, shape
        assert rec["error"] == "ValueError: tool failed: no user" and rec["stack"].count("ValueError: tool failed") == 1


def test_fields_already_set_are_kept_and_unrelated_exception_fields_left_alone():
    record = {"error": "timeout", "exception": "timeout after 30s"}  # not a traceback: the agent's own field
    normalise(record)
    assert record == {"error": "timeout", "exception": "timeout after 30s"}
    other = {"error": "RuntimeError: first", "exc_info": "Traceback (most recent call last):\nKeyError: 'x'\n"}
    normalise(other)
    assert other["stack"].endswith("KeyError: 'x'") and "exc_info" in other  # another exception than `error`


def test_every_library_prints_a_readable_stack_on_the_console_of_a_real_daemon(daemon, tmp_path, stdlib_stream):
    stream, handler = stdlib_stream
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logged(lambda: logging.getLogger("pjl").exception("from python-json-logger"))
    loguru_out = io.StringIO()
    sink = loguru_logger.add(loguru_out, serialize=True)
    try:
        logged(lambda: loguru_logger.bind(agent="writer").exception("from loguru"))
    finally:
        loguru_logger.remove(sink)
    lines = structlog_dict_tracebacks() + structlog_text() + stream.getvalue() + loguru_out.getvalue()
    d = daemon('file = "agent.log"')
    send(d.socket_path, lines.encode())
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 4, what="the four records in the file")
    assert d.stop() == 0
    records = agent_records(tmp_path / "agent.log")
    for rec in records:
        assert rec["error"] == "ValueError: tool failed: no user", rec
        assert not {"exception", "exc_info"} & set(rec), rec
    assert "sk-abcdefghijklmnopqrstuvwx" not in (tmp_path / "agent.log").read_text()  # locals are redacted too
    console = d.stdout()
    assert console.count("    Traceback (most recent call last):") >= 4  # a block under each line
    assert console.count('error="ValueError: tool failed: no user"') == 4
    assert "Traceback (most recent call last):\\n" not in console  # no escaped one-line blob
