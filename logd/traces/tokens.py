"""Tokens per agent and model, from whichever records of a session carry them.

Where each source puts its counts (read from their own code):

* OpenAI Agents SDK spans (``src/agents/tracing/span_data.py``): ``generation`` and
  ``response`` span data carry ``usage`` = ``{input_tokens, output_tokens}``; the
  ``custom`` task/turn spans repeat totals and are skipped so nothing counts twice.
  logd's own client spans (``span.set(usage=...)``) use the same shape.
* Koog ``LLMCallCompletedEvent``: each of ``responses`` has ``metaInfo`` =
  ``ResponseMetaInfo(inputTokensCount, outputTokensCount, totalTokensCount)``, the same for
  every response of one call (its clients build one per provider answer): counted once.
* OTLP spans under the GenAI conventions: ``gen_ai.usage.input_tokens`` /
  ``gen_ai.usage.output_tokens`` attributes, model in ``gen_ai.request.model``.
* Anything else (AgenticGoKit state, a framework's own fields): a ``usage`` or
  ``tokens`` object in the state or record with input/prompt and output/completion counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logd.traces.model import Event, Session
from logd.traces.shapes import KOOG, SPAN

_INPUT = ("input_tokens", "prompt_tokens", "inputTokensCount", "promptTokens", "inputTokens", "prompt", "input")
_OUTPUT = ("output_tokens", "completion_tokens", "outputTokensCount", "completionTokens", "outputTokens",
           "completion", "output")
_TOTAL = ("total_tokens", "totalTokensCount", "totalTokens", "total")
_MODEL = ("model", "gen_ai.response.model", "gen_ai.request.model", "modelId", "model_name")


@dataclass
class TokenRow:
    agent: str
    model: str
    calls: int = 0
    input: int = 0
    output: int = 0
    total: int = 0


def _count(usage: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def _model_name(*places: Any) -> str:
    places = places + tuple(p.get("attributes") for p in places if isinstance(p, dict))
    for place in places:
        if not isinstance(place, dict):
            continue
        for key in _MODEL:
            value = place.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):  # Koog may send an LLModel object
                name = value.get("id") or value.get("name")
                if isinstance(name, str) and name:
                    return name
    return "-"


def _usage(event: Event) -> list[tuple[int, int, int | None]]:
    """(input, output, total or None) for each model call this event reports."""
    state = event.state if isinstance(event.state, dict) else {}
    record = event.record
    for attrs in (state, state.get("attributes"), record.get("attributes")):
        if isinstance(attrs, dict) and ("gen_ai.usage.input_tokens" in attrs or "gen_ai.usage.output_tokens" in attrs):
            i, o = _count(attrs, ("gen_ai.usage.input_tokens",)), _count(attrs, ("gen_ai.usage.output_tokens",))
            return [(i or 0, o or 0, None)]
    if event.shape == SPAN:
        if event.hook not in ("span:generation", "span:response"):
            return []
        places = [state.get("usage")]
    elif event.shape == KOOG:
        responses = record.get("responses")
        metas = [r.get("metaInfo") for r in responses if isinstance(r, dict)] if isinstance(responses, list) else []
        places = metas or [record.get("usage")]
    else:
        places = [state.get("usage"), state.get("tokens"), record.get("usage"), record.get("tokens")]
    out = []
    for usage in places:
        if not isinstance(usage, dict):
            continue
        i, o, t = _count(usage, _INPUT), _count(usage, _OUTPUT), _count(usage, _TOTAL)
        if i is None and o is None and t is None:
            continue
        out.append((i or 0, o or 0, t))
        break  # the first place with counts; the others repeat it (Koog's responses share the call's)
    return out


def token_usage(session: Session) -> list[TokenRow]:
    """Summed per (agent, model), most tokens first; empty when no record carries counts."""
    rows: dict[tuple[str, str], TokenRow] = {}
    for e in session.events:
        calls = _usage(e)
        if not calls:
            continue
        state = e.state if isinstance(e.state, dict) else {}
        model = _model_name(state, e.record)
        row = rows.setdefault((e.agent or "-", model), TokenRow(e.agent or "-", model))
        for i, o, t in calls:
            row.calls += 1
            row.input += i
            row.output += o
            row.total += t if t is not None else i + o
    return sorted(rows.values(), key=lambda r: (-r.total, r.agent, r.model))
