"""Tokens per agent and model: the one sum every view shows (``--analyze``, ``--format
json``, the HTML report).

Which usage counts is decided once, by :func:`logd.traces.model.calls` from
:func:`logd.traces.semantics.usage`: each model call's own counts, and a span's only
when no span below it reports any (a run's total is never added to its calls). The live
metrics apply the same rule as spans arrive (:mod:`logd.traces.live`).
"""

from __future__ import annotations

from dataclasses import dataclass

from logd.traces.model import Session


@dataclass
class TokenRow:
    agent: str
    model: str
    calls: int = 0
    input: int = 0
    output: int = 0
    total: int = 0


def token_usage(session: Session) -> list[TokenRow]:
    """Summed per (agent, model), most tokens first; empty when no record carries counts."""
    rows: dict[tuple[str, str], TokenRow] = {}
    for call in session.calls:
        model = call.usage.model or "-"
        row = rows.setdefault((call.agent, model), TokenRow(call.agent, model))
        row.calls += 1
        row.input += call.usage.input
        row.output += call.usage.output
        row.total += call.usage.total
    return sorted(rows.values(), key=lambda r: (-r.total, r.agent, r.model))
