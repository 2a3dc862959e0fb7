"""NATS subjects from a template such as ``logs.{agent}``: the rules, in one place.

A subject is tokens separated by ``.``; a token that is ``*`` or ``>`` is a wildcard,
whitespace ends the subject, and an empty token is an error. Values from a record
become tokens only after :func:`token` has made them safe, so no agent name can add
a token, leave one empty or turn into a wildcard: ``"a.b"`` and ``"*"`` both become
plain tokens (``a_b``, ``_``). ``logd check`` validates templates with
:func:`template_problem`; the nats target renders them with :class:`Template`.
"""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

FIELDS = ("agent", "level", "host")  # what a template may name; {session} too with signal = "traces"
TRACE_FIELDS = (*FIELDS, "session")
TOKEN_MAX = 64  # characters of a value kept in its token
MISSING = "unknown"  # the token of a field the record does not have (or has empty)
_NOT_TOKEN = re.compile(r"[^\w-]")  # letters and digits of any script, '_' and '-' stay


def token(value: Any) -> str:
    """A record's value as one safe subject token (never empty, never a wildcard)."""
    if value is None or value == "":
        return MISSING
    text = value if isinstance(value, str) else str(value)
    return _NOT_TOKEN.sub("_", text[:TOKEN_MAX])


def default_subject(signal: str) -> str:
    return "traces.{session}" if signal == "traces" else "logs.{agent}"


def template_problem(template: str, signal: str = "logs") -> str | None:
    """What is wrong with a subject template, in the words of a config error; None when it is fine."""
    allowed = TRACE_FIELDS if signal == "traces" else FIELDS
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        return f'a subject template such as "logs.{{agent}}" ({exc})'
    sample = []
    for literal, name, spec, conversion in parts:
        sample.append(literal)
        if name is None:
            continue
        if name not in allowed:
            fields = ", ".join("{" + f + "}" for f in allowed)
            extra = "" if signal == "traces" else ' ({session} needs signal = "traces")'
            return f"a subject template naming only {fields}{extra}; found {{{name}}}"
        if spec or conversion:
            return f"plain fields such as {{{name}}}, without a format or conversion"
        sample.append("x")
    for part in "".join(sample).split("."):
        if not part:
            return "a subject without empty tokens (no leading, trailing or double dots)"
        if part in ("*", ">") or re.search(r"\s", part):
            return f'a subject without wildcards or whitespace; found token "{part}"'
    return None


class Template:
    """Renders a (valid) template for a record; subjects of recurring (agent, level) pairs are kept."""

    def __init__(self, template: str, host: str) -> None:
        self.parts = [(literal, name) for literal, name, _, _ in Formatter().parse(template)]
        self.host = token(host)
        self.uses_session = any(name == "session" for _, name in self.parts)
        self._cache: dict[tuple[Any, Any], str] = {}

    def subject(self, record: dict[str, Any], session: str | None = None) -> str:
        if self.uses_session:
            return self._render(record.get("agent"), record.get("level"), session)
        key = (record.get("agent"), record.get("level"))
        try:
            return self._cache[key]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list for an agent)
            pass
        subject = self._render(*key, None)
        if len(self._cache) >= 4096:
            self._cache.clear()
        try:
            self._cache[key] = subject
        except TypeError:
            pass
        return subject

    def _render(self, agent: Any, level: Any, session: str | None) -> str:
        values = {"agent": agent, "level": level if level is not None else "info", "session": session}
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name == "host":
                out.append(self.host)
            elif name is not None:
                out.append(token(values[name]))
        return "".join(out)
