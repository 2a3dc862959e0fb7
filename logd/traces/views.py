"""What ``logd list`` and ``logd trace`` do: find sessions in the trace folder, build
them, render them, and follow one live. The CLI only parses arguments and calls here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson

from logd.timeparse import TimeError, parse_time
from logd.timestamps import epoch_seconds
from logd.traces import agk, importer, render
from logd.traces.model import Notes, Session, build_session, to_event
from logd.traces.names import SUFFIX, UnsafeSessionId, session_path
from logd.traces.shapes import AGK_HOOKS, classify
from logd.traces.store import read_lines, session_files

FORMATS = ("table", "json", "csv", "chrome", "agk")


class TraceError(Exception):
    """A session that cannot be shown; ``str()`` is the one line for the user."""


@dataclass
class Summary:
    session: str
    path: Path
    start: float | None
    end: float | None
    agents: list[str]
    events: int
    errors: int
    shapes: list[str]
    size: int

    @property
    def duration(self) -> float:
        return (self.end - self.start) if self.start is not None and self.end is not None else 0.0


def session_id_of(records: list[dict]) -> str | None:
    for record in records:
        found = classify(record)
        if found is not None:
            return found[1]
    return None


def load(path: Path, session: str | None = None) -> Session:
    """The session in ``path``: a session file of logd's, or a framework's own file read in
    place (which may hold several sessions: ``session`` picks one, by id or unique prefix)."""
    if path.name.endswith(SUFFIX):
        records, _ = read_lines(path)
        return build_session(session_id_of(records) or path.name, records)
    found = importer.read_file(path).sessions
    ids = [s for s in found if s == session] or [s for s in found if session is None or s.startswith(session)]
    if not ids:
        raise TraceError(f"no trace session {session!r} in {path}")
    return build_session(ids[0], found[ids[0]])


def _sessions_in(path: Path) -> list[Session]:
    if path.name.endswith(SUFFIX):
        return [load(path)]
    return [build_session(sid, records) for sid, records in importer.read_file(path).sessions.items()]


def summaries(folder: Path, since: float | None = None) -> list[Summary]:
    """Every session ending at or after ``since``, oldest first: logd's session files and the
    frameworks' own files (AgenticGoKit ``.trace.json``, Koog and OpenAI exports) in ``folder``."""
    out = []
    for path in session_files(folder) + importer.foreign_files(folder):
        try:
            sessions = _sessions_in(path)
            size = path.stat().st_size
        except OSError:
            continue  # removed by retention while we looked
        for session in sessions:
            if since is not None and (session.end is None or session.end < since):
                continue
            out.append(Summary(session.id, path, session.start, session.end, session.agents, len(session.events),
                               len(session.errors), sorted({e.shape for e in session.events}), size))
    out.sort(key=lambda s: (s.start or 0.0, s.session))
    return out


def render_list(items: list[Summary], verbose: bool = False) -> str:
    if not items:
        return "No trace sessions.\n"
    header = f"{'SESSION':<36} {'START':<24} {'DURATION':>9} {'EVENTS':>6} {'ERRORS':>6}  AGENTS"
    lines = [header]
    for s in items:
        agents = ", ".join(s.agents)
        lines.append(f"{s.session if verbose else render._cut(s.session, 36):<36} "
                     f"{render.clock_time(s.start, True) if s.start else '-':<24} {render.fmt_duration(s.duration):>9} "
                     f"{s.events:>6} {s.errors:>6}  {agents if verbose else render._cut(agents, 40)}")
        if verbose:
            lines.append(f"{'':<4}file {s.path} ({s.size} bytes), shapes: {', '.join(s.shapes)}, "
                         f"ended {render.clock_time(s.end, True) if s.end else '-'}")
    return "\n".join(lines) + "\n"


def list_json(items: list[Summary]) -> str:
    return orjson.dumps([{"session": s.session, "start": render.clock_time(s.start, True) if s.start else None,
                          "duration_ms": round(s.duration * 1e3, 3), "agents": s.agents, "events": s.events,
                          "errors": s.errors, "shapes": s.shapes, "file": str(s.path)} for s in items],
                        option=orjson.OPT_INDENT_2).decode() + "\n"


def parse_since(text: str, now: float) -> float:
    """``--since`` as ``logd query`` and journalctl read it: ``30m``, ``2h ago``, ``yesterday``,
    ``@EPOCH``, ``2026-11-29 15:00`` (local) or RFC 3339; seconds since the epoch."""
    try:
        moment = epoch_seconds(parse_time(text, now))
    except TimeError as exc:
        raise TraceError(f"--since: {exc}") from None
    assert moment is not None  # parse_time returns canonical times only
    return moment


def find(folder: Path, session: str, must_exist: bool = True) -> Path:
    """The file of ``session``: its exact id, else a unique id prefix among stored sessions."""
    try:
        path = session_path(folder, session)
    except UnsafeSessionId as exc:
        raise TraceError(str(exc)) from None
    if path.exists():
        return path
    matches = [s for s in summaries(folder) if s.session.startswith(session)]
    matches = [s for s in matches if s.session == session] or matches
    if len(matches) == 1:
        return matches[0].path
    if len(matches) > 1:
        raise TraceError(f"session {session!r} is ambiguous: "
                         + ", ".join(m.session for m in matches[:5]) + (" ..." if len(matches) > 5 else ""))
    if not must_exist:
        return path
    raise TraceError(f"no trace session {session!r} in {folder} (see `logd list`)")


def only_agent(session: Session, agent: str) -> Session:
    return Session(session.id, [e for e in session.events if e.agent == agent or e.source == agent
                                or e.target == agent], [s for s in session.spans if s.agent == agent])


def show(session: Session, *, fmt: str = "table", flow_only: bool = False, analyze: bool = False,
         verbose: bool = False) -> str:
    if fmt == "json":
        return orjson.dumps(render.to_json(session, analyze), default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return render.csv_header() + render.csv_rows(session.events)
    if fmt == "chrome":
        return orjson.dumps(render.to_chrome(session)).decode() + "\n"
    if fmt == "agk":
        return agk.to_trace_json(session)
    parts = [] if flow_only else [render.render_table(session, verbose)]
    parts.append(render.render_flow(session, verbose))
    if analyze:
        parts.append(render.render_analysis(session, verbose))
    return "\n".join(parts)


def follow(path: Path, out: TextIO, *, fmt: str = "table", agent: str | None = None, verbose: bool = False,
           stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """Print the session's events so far, then each new one as it is stored, until ``stop()``.

    Rows only (no closing border): table rows, JSON lines or CSV rows.
    """
    if fmt in ("chrome", "agk"):
        raise TraceError("--follow prints events as they come: use --format table, json or csv")
    if path.exists() and not path.name.endswith(SUFFIX):
        raise TraceError(f"--follow reads the daemon's session files; {path} is a framework's own file "
                         "(show it without --follow, or import it with `logd trace import`)")
    offset = 0
    if fmt == "csv":
        out.write(render.csv_header())
    elif fmt == "table":
        header = "  ".join(f"{h:<{w}}" for h, w in zip(render.TABLE_HEADERS, _FOLLOW_WIDTHS, strict=True))
        out.write(header.rstrip() + "\n")
    out.flush()
    while not stop():
        try:
            records, offset = read_lines(path, offset)
        except FileNotFoundError:
            records = []
        events = [e for e in (to_event(r) for r in records) if e is not None]
        if agent is not None:
            events = [e for e in events if agent in (e.agent, e.source, e.target)]
        for e in events:
            if fmt == "json":
                out.write(orjson.dumps(render.event_dict(e), default=str).decode() + "\n")
            elif fmt == "csv":
                out.write(render.csv_rows([e]))
            else:
                cells = render.event_row(e, verbose)
                out.write("  ".join(f"{c:<{w}}" for c, w in zip(cells, _FOLLOW_WIDTHS, strict=True)).rstrip() + "\n")
        if events:
            out.flush()
        sleep(poll_s)


_FOLLOW_WIDTHS = (12, 22, 16, 40, 0)


# --- logd trace --debug ---

_RAW_CHARS = 300  # a record's JSON shown per line without --verbose


def why_not_a_trace_record(record: dict) -> str:
    """Why :func:`logd.traces.shapes.classify` does not take ``record`` as a trace record."""
    if "hook" in record:
        if record.get("hook") not in AGK_HOOKS:
            return f"hook {record.get('hook')!r} is not an AgenticGoKit hook ({', '.join(sorted(AGK_HOOKS))})"
        return "an AgenticGoKit hook without a session_id"
    if "eventType" in record:
        return "a Koog event without a runId" if not isinstance(record.get("runId"), (str, int)) else \
            "a Koog event whose eventType is not a string"
    if "trace_id" in record and "span_id" not in record:
        hint = " (the OpenAI Agents SDK's Span.export() calls it 'id')" if "id" in record else ""
        return f"has trace_id but no span_id{hint}"
    if "span_id" in record:
        return "has span_id but no trace_id"
    return "none of hook+session_id, eventType+runId or trace_id+span_id"


def debug_records(path: Path) -> list[dict]:
    """Each stored record of a session with its shape and why it was or was not paired into a span."""
    records, _ = read_lines(path)
    notes: Notes = {}
    build_session(session_id_of(records) or path.name, records, notes)
    line_of = {id(r): n for n, r in enumerate(records, 1)}
    out = []
    for n, record in enumerate(records, 1):
        found = classify(record)
        if found is None:
            why, other = f"not a trace record: {why_not_a_trace_record(record)}", None
        else:
            why, other = notes.get(id(record), ("an event on the timeline; not part of any span", None))
        out.append({"line": n, "shape": found[0] if found else None, "session": found[1] if found else None,
                    "paired": why, "with_line": line_of.get(id(other)) if other is not None else None,
                    "record": record})
    return out


def show_debug(path: Path, fmt: str = "table", verbose: bool = False) -> str:
    """``logd trace --debug``: the raw records, one block each, with the pairing explained."""
    items = debug_records(path)
    if fmt == "json":
        return orjson.dumps(items, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    lines = [f"{path} ({len(items)} records)"]
    for item in items:
        raw = orjson.dumps(item["record"], default=str).decode()
        if not verbose and len(raw) > _RAW_CHARS:
            raw = raw[:_RAW_CHARS - 3] + "..."
        where = f"{item['shape']} session {item['session']}" if item["shape"] else "-"
        lines.append(f"#{item['line']} {where}")
        lines.append(f"  record: {raw}")
        with_line = f" (line {item['with_line']})" if item["with_line"] else ""
        lines.append(f"  span:   {item['paired']}{with_line}")
    return "\n".join(lines) + "\n"
