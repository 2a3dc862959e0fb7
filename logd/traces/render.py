"""Sessions as text (agentcli's table, flow, sequence and route; the analysis with a
Gantt-style timeline) and as data (JSON, CSV, Chrome trace JSON for Perfetto)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from logd.timestamps import format_epoch
from logd.traces.analysis import agent_stats, critical_path, flow, route, slowest
from logd.traces.model import Event, Session, Span
from logd.traces.tokens import token_usage

ARROW = "→"
GANTT_WIDTH = 50
GANTT_ROWS = 40


# --- small formatting helpers ---

# Short times are local, as agentcli prints them; ``logd trace --utc`` sets this. Full
# (verbose) timestamps and every data format stay RFC 3339 UTC.
SHORT_TIMES_UTC = False


def clock_time(t: float, verbose: bool = False, offset: float | None = None) -> str:
    """``offset`` (seconds east of UTC): the zone the producer wrote its times in, which
    agentcli prints them in (AgenticGoKit sessions); otherwise the reader's local time."""
    if verbose:
        return format_epoch(t)
    if SHORT_TIMES_UTC:
        dt = datetime.fromtimestamp(t, timezone.utc)
    elif offset is not None:
        dt = datetime.fromtimestamp(t, timezone(timedelta(seconds=offset)))
    else:
        dt = datetime.fromtimestamp(t)
    return dt.strftime("%H:%M:%S.%f")[:-3]


def fmt_duration(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{rest:04.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes):02d}m"


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def summarize_state(event: Event, verbose: bool = False, width: int = 40) -> str:
    """agentcli's state column: the first key and value, ``{message:"hi", ...}``."""
    state = event.state
    if event.shape == "span":
        data = state if isinstance(state, dict) else {}
        name = data.get("name") or data.get("model") or (
            f"{data.get('from_agent')} {ARROW} {data.get('to_agent')}" if data.get("to_agent") else "")
        text = f"{name} ({fmt_duration(event.duration)})" if event.duration is not None else str(name)
        if data.get("type") == "guardrail" and data.get("triggered") is True:
            text += " ⚑ tripped"
        return orjson.dumps(state, default=str).decode() if verbose else cut(text, width)
    if event.shape == "agk" and event.meta is not None:
        return agentcli_state(state, verbose, width)
    if state in (None, {}, ""):
        return "-"
    if verbose:
        return orjson.dumps(state, default=str).decode()
    if isinstance(state, dict):
        key, value = next(iter(state.items()))
        shown = orjson.dumps(value, default=str).decode()
        text = "{" + f"{key}:{cut(shown, 24)}" + (", ...}" if len(state) > 1 else "}")
    else:
        text = orjson.dumps(state, default=str).decode()
    return cut(text, width)


def agentcli_state(data: dict, verbose: bool = False, width: int = 40) -> str:
    """agentcli's state column (stateSummary/formatStateValue): sorted keys, the first three."""
    if not data:
        return "{}"
    keys = sorted(data)
    if verbose:
        return "{" + ", ".join(f"{k}:{_go_value(data[k])}" for k in keys) + "}"
    parts = ", ".join(f"{k}:{_state_value(data[k])}" for k in keys[:3])
    return cut("{" + parts + (", ..." if len(keys) > 3 else "") + "}", width)


def _state_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value[:30]}"... ({len(value)} chars)' if len(value) > 30 else f'"{value}"'
    if isinstance(value, dict):
        return f"{{...}} ({len(value)} keys)"
    if isinstance(value, list):
        return f"[...] ({len(value)} items)"
    text = _go_value(value)
    return f"{text[:30]}... ({len(text)} chars)" if len(text) > 30 else text


def _go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode() if isinstance(value, (dict, list)) else str(value)


def _box(headers: list[str], rows: list[list[str]], max_width: int | None = 48) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if max_width:
        widths = [min(w, max_width) for w in widths]

    def line(cells: Iterable[str]) -> str:
        return "│ " + " │ ".join(cut(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)) + " │"

    rule = lambda left, mid, right: left + mid.join("─" * (w + 2) for w in widths) + right
    return ([rule("┌", "┬", "┐"), line(headers), rule("├", "┼", "┤")] + [line(r) for r in rows]
            + [rule("└", "┴", "┘")])


# --- agentcli views ---

TABLE_HEADERS = ["TIMESTAMP", "HOOK", "AGENT", "STATE", "ERROR"]


def event_row(event: Event, verbose: bool = False, offset: float | None = None) -> list[str]:
    return [clock_time(event.time, verbose, offset), event.hook, event.agent or "-",
            summarize_state(event, verbose), event.error or "-"]


def render_table(session: Session, verbose: bool = False) -> str:
    rows = [event_row(e, verbose, session.utc_offset) for e in session.events]
    lines = [f"Trace for session {session.id}:", ""]
    lines += _box(TABLE_HEADERS, rows, None if verbose else 48)
    return "\n".join(lines) + "\n"


def render_flow(session: Session, verbose: bool = False) -> str:
    steps = flow(session)
    lines = [f"Agent request flow for session {session.id}:", ""]
    lines.append(f"{'TIME':<16} {'AGENT':<16} {'NEXT':<16} {'HOOK':<22} EVENT ID")
    for s in steps:
        event_id = s.event_id or "-"
        when = clock_time(s.time, offset=session.utc_offset)
        lines.append(f"{when:<16} {cut(s.agent, 16):<16} {cut(s.next, 16):<16} "
                     f"{cut(s.hook, 22):<22} {event_id if verbose else cut(event_id, 12)}")
    lines += ["", "Sequence diagram:", "-" * 16]
    lines += [f"{i}. {s.agent} {ARROW} {s.next}" for i, s in enumerate(steps, 1)]
    lines += ["", "Condensed route:", f" {ARROW} ".join(route(steps)) or "(no agents)"]
    return "\n".join(lines) + "\n"


# --- analysis ---

def render_analysis(session: Session, verbose: bool = False) -> str:
    start, end = session.start or 0.0, session.end or 0.0
    total = end - start
    lines = [f"Analysis of session {session.id}: {len(session.events)} events, {len(session.spans)} spans, "
             f"{fmt_duration(total)} from {clock_time(start, True)}", ""]
    stats = agent_stats(session)
    lines.append(f"{'AGENT':<20} {'COUNT':>5} {'TOTAL':>10} {'MEAN':>10} {'P95':>10} {'MAX':>10} {'ERRORS':>6}")
    for a in stats:
        lines.append(f"{cut(a.agent, 20):<20} {a.count:>5} {fmt_duration(a.total):>10} {fmt_duration(a.mean):>10} "
                     f"{fmt_duration(a.p95):>10} {fmt_duration(a.max):>10} {a.errors:>6}")
    tokens = token_usage(session)
    if tokens:
        lines += ["", f"{'TOKENS BY AGENT':<20} {'MODEL':<24} {'CALLS':>5} {'INPUT':>10} {'OUTPUT':>10} {'TOTAL':>10}"]
        lines += [f"{cut(t.agent, 20):<20} {cut(t.model, 24):<24} {t.calls:>5} {t.input:>10} "
                  f"{t.output:>10} {t.total:>10}" for t in tokens]
    lines += ["", "Slowest spans:"]
    for s in slowest(session, 10 if verbose else 5):
        lines.append(f"  {fmt_duration(s.duration):>10}  {s.kind:<10} {_span_label(s)}"
                     + (f"  ✗ {s.error}" if s.error else "") + ("  ⚑ tripped" if s.tripped else "")
                     + ("  (unfinished)" if s.unfinished else ""))
    tripped = [g for g in session.guardrails if g.tripped]
    if session.guardrails:
        lines += ["", f"Guardrails: {len(session.guardrails)} checked, {len(tripped)} tripped"
                  + "".join(f"\n  ⚑ {_span_label(g)} at {clock_time(g.start)}" for g in tripped)]
    errs = session.errors
    lines += ["", f"Errors ({len(errs)}):" if errs else "Errors: none"]
    for e in errs:
        lines.append(f"  {clock_time(e.time, offset=session.utc_offset)}  {e.agent or '-':<16} {e.hook:<22} {e.error}")
    path = critical_path(session)
    covered = sum(s.duration for d, s in path if d == 0)
    lines += ["", f"Critical path ({fmt_duration(covered)} of {fmt_duration(total)}):"]
    for depth, s in path:
        lines.append(f"  {'  ' * depth}{_span_label(s)}  {fmt_duration(s.duration)}" + ("  ✗" if s.error else ""))
    lines += ["", "Timeline:"] + gantt(session, verbose)
    return "\n".join(lines) + "\n"


def _span_label(span: Span) -> str:
    return span.name if not span.agent or span.name == span.agent else f"{span.agent}: {span.name}"


def gantt(session: Session, verbose: bool = False, width: int = GANTT_WIDTH) -> list[str]:
    """One row per span: a bar placed on the session's time axis, errors marked ✗."""
    spans = session.spans
    if not spans:
        return ["  (no spans)"]
    start = min(s.start for s in spans)
    total = max(s.end for s in spans) - start or 1e-9
    shown = spans if verbose else spans[:GANTT_ROWS]
    label_w = min(28, max(len(_span_label(s)) for s in shown))
    lines = []
    for s in shown:
        a = min(width - 1, int((s.start - start) / total * width))
        b = max(a + 1, min(width, math.ceil((s.end - start) / total * width)))
        bar = " " * a + ("█" * (b - a)) + " " * (width - b)
        lines.append(f"  {cut(_span_label(s), label_w):<{label_w}} │{bar}│ {fmt_duration(s.duration)}"
                     + (" ✗" if s.error else ""))
    if len(spans) > len(shown):
        lines.append(f"  … {len(spans) - len(shown)} more spans (--verbose shows all)")
    lines.append(f"  {'':<{label_w}} 0{'':<{width - 1}}{fmt_duration(total)}")
    return lines


# --- data formats ---

def event_dict(e: Event) -> dict[str, Any]:
    return {"time": clock_time(e.time, True), "session": e.session, "shape": e.shape, "hook": e.hook,
            "agent": e.agent, "event_id": e.event_id, "span_id": e.span_id, "parent_id": e.parent_id,
            "source": e.source, "target": e.target,
            "duration_ms": round(e.duration * 1e3, 3) if e.duration is not None else None,
            "error": e.error, "state": e.state,
            **({"agent_result": e.record["agent_result"]} if "agent_result" in e.record else {})}


def span_dict(s: Span) -> dict[str, Any]:
    return {"id": s.id, "parent": s.parent, "agent": s.agent, "name": s.name, "kind": s.kind,
            "start": clock_time(s.start, True), "end": clock_time(s.end, True),
            "duration_ms": round(s.duration * 1e3, 3), "error": s.error, "unfinished": s.unfinished,
            **({"tripped": s.tripped} if s.kind == "guardrail" else {})}


def to_json(session: Session, analyze: bool = False) -> dict[str, Any]:
    steps = flow(session)
    out: dict[str, Any] = {
        "session": session.id, "events": [event_dict(e) for e in session.events],
        "spans": [span_dict(s) for s in session.spans],
        "flow": [{"time": clock_time(s.time, True), "agent": s.agent, "next": s.next, "hook": s.hook,
                  "event_id": s.event_id} for s in steps],
        "route": route(steps)}
    if analyze:
        out["analysis"] = {
            "agents": [{"agent": a.agent, "count": a.count, "total_ms": _ms(a.total), "mean_ms": _ms(a.mean),
                        "p95_ms": _ms(a.p95), "max_ms": _ms(a.max), "errors": a.errors} for a in agent_stats(session)],
            "tokens": [vars(t) for t in token_usage(session)],
            "tool_calls": [{"time": clock_time(e.time, True), "agent": e.agent, "tool": t.name, "failed": t.failed}
                           for e, t in session.tool_calls],
            "guardrails": [{"name": g.name, "agent": g.agent, "tripped": g.tripped} for g in session.guardrails],
            "slowest": [span_dict(s) for s in slowest(session)],
            "errors": [event_dict(e) for e in session.errors],
            "critical_path": [{"depth": d, **span_dict(s)} for d, s in critical_path(session)]}
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


CSV_COLUMNS = ["time", "session", "shape", "hook", "agent", "event_id", "span_id", "parent_id", "source",
               "target", "duration_ms", "error", "state"]


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(CSV_COLUMNS)
    return buf.getvalue()


def csv_rows(events: Iterable[Event]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for e in events:
        d = event_dict(e)
        d["state"] = orjson.dumps(d["state"], default=str).decode() if d["state"] is not None else ""
        writer.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def to_chrome(session: Session) -> dict[str, Any]:
    """Chrome trace JSON (``ph: X`` complete events, µs): opens in Perfetto and chrome://tracing.

    One thread row per agent, named by ``thread_name`` metadata; errors become instant events.
    """
    tids: dict[str, int] = {}
    events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                                     "args": {"name": f"session {session.id}"}}]
    for s in session.spans:
        tid = tids.setdefault(s.agent or "-", len(tids) + 1)
        args: dict[str, Any] = {"id": s.id, "kind": s.kind}
        if s.parent:
            args["parent"] = s.parent
        if s.error:
            args["error"] = s.error
        if s.unfinished:
            args["unfinished"] = True
        if s.tripped:
            args["tripped"] = True
        events.append({"name": s.name, "cat": s.kind, "ph": "X", "ts": round(s.start * 1e6),
                       "dur": max(0, round(s.duration * 1e6)), "pid": 1, "tid": tid, "args": args})
    for e in session.errors:
        tid = tids.setdefault(e.agent or "-", len(tids) + 1)
        events.append({"name": f"error: {e.error}", "cat": "error", "ph": "i", "s": "t",
                       "ts": round(e.time * 1e6), "pid": 1, "tid": tid, "args": {"hook": e.hook}})
    for agent, tid in tids.items():
        events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": agent}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
