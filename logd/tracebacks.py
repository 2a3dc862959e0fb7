"""Exceptions as other libraries send them -> logd's ``error`` and ``stack`` fields.

logd's own clients send an exception as ``error`` (``"KeyError: 'x'"``) and ``stack`` (the
traceback text), which the console prints as a readable block under the line. Others send:

- structlog ``format_exc_info``: ``exception``, the traceback text;
- structlog ``dict_tracebacks``: ``exception``, a list of dicts, outermost exception first
  (``exc_type``, ``exc_value``, ``exc_notes``, ``is_cause``, ``frames`` with ``locals``,
  ``syntax_error``, ``exceptions`` of a group): rendered as Python prints a traceback with
  locals, so nothing of it is lost;
- python-json-logger (and stdlib formatters): ``exc_info``, the traceback text, and
  ``stack_info`` for ``stack_info=True``;
- through structlog *and* stdlib (``render_to_log_kwargs`` to python-json-logger): both
  ``exception`` and ``exc_info`` for the same exception: one stack is kept, structlog's
  (its list has the locals; the text only adds source lines, which the code still has).

loguru's ``serialize=True`` envelope is flattened by :mod:`logd.record` into the same fields.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]

KEYS = frozenset(("exception", "exc_info", "stack_info"))  # a record holding one is normalised here
_TRACEBACK = "Traceback (most recent call last):"
_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def normalise(obj: Record) -> None:
    """Move an exception sent in another library's shape into ``error`` and ``stack``, in place.
    Fields that are already set are kept; a carrier that says the same as ``stack`` is dropped;
    anything else is left as it was sent."""
    for key in ("exception", "exc_info"):
        value = obj.get(key)
        if isinstance(value, str) and _TRACEBACK in value:
            text, error = value.rstrip("\n"), _last_line(value)
        elif isinstance(value, list) and value and all(isinstance(s, dict) and "exc_type" in s for s in value):
            text, error = _render(value), _exception_line(value[0])
        else:
            continue
        if "stack" not in obj:
            obj["stack"] = text
        if "error" not in obj:
            obj["error"] = error
        if obj["error"] == error:  # the same exception as the record's: nothing of it is lost
            del obj[key]
    info = obj.get("stack_info")
    if isinstance(info, str) and "stack" not in obj:
        obj["stack"] = obj.pop("stack_info").rstrip("\n")


def _last_line(text: str) -> str:
    """The exception line of a traceback text: its last line that is not indented."""
    for line in reversed(text.rstrip("\n").splitlines()):
        if line.strip() and not line[0].isspace():
            return line
    return text.strip().splitlines()[-1] if text.strip() else ""


def _exception_line(stack: dict) -> str:
    value = stack.get("exc_value")
    return f"{stack.get('exc_type')}: {value}" if value not in (None, "") else str(stack.get("exc_type"))


def _render(stacks: list[dict]) -> str:
    """structlog's list (outermost first) as Python prints it (oldest first, locals as
    ``traceback.TracebackException(capture_locals=True)`` shows them)."""
    parts: list[str] = []
    for i in range(len(stacks) - 1, -1, -1):
        stack = stacks[i]
        lines = [_TRACEBACK]
        for frame in stack.get("frames") or ():
            lines.append(f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}')
            for name, value in (frame.get("locals") or {}).items():
                lines.append(f"    {name} = {value}")
        syntax = stack.get("syntax_error")
        if isinstance(syntax, dict):
            lines.append(f'  File "{syntax.get("filename")}", line {syntax.get("lineno")}')
            if syntax.get("line"):
                lines.append(f"    {str(syntax['line']).strip()}")
            if isinstance(syntax.get("offset"), int):
                lines.append("    " + " " * max(syntax["offset"] - 1, 0) + "^")
        lines.append(_exception_line(stack))
        lines.extend(str(note) for note in stack.get("exc_notes") or ())
        for number, group in enumerate(stack.get("exceptions") or (), start=1):
            if isinstance(group, list) and group:
                lines.append(f"+---------------- {number} ----------------")
                lines.extend("| " + line for line in _render(group).splitlines())
        parts.append("\n".join(lines))
        if i > 0:
            parts.append("\n" + (_CAUSE if stacks[i].get("is_cause") else _CONTEXT) + "\n")
    return "\n".join(parts)
