"""What ``logd list`` and ``logd trace`` do: find sessions in the trace folder, build
them, render them, and follow one live. The CLI only parses arguments and calls here."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson

from logd.timeparse import TimeError, parse_time
from logd.timestamps import epoch_seconds
from logd.traces import agk, importer, render
from logd.traces.index import LIST_HEADER, IndexBusy, SessionIndex, Summary, list_line
from logd.traces.model import Notes, Session, build_session, to_event, trace_sessions
from logd.traces.names import UnsafeSessionId, session_path
from logd.traces.shapes import AGK_HOOKS, SPAN, classify
from logd.traces.store import read_lines

FORMATS = ("table", "json", "csv", "chrome", "agk")


class TraceError(Exception):
    """A session that cannot be shown; ``str()`` is the one line for the user."""


@dataclass
class Located:
    """A session and the files that hold it (several: one per trace; a framework's own file)."""

    session: str
    files: list[Path]
    foreign: bool = False  # a framework's own file read in place (--dir), not logd's session files


def session_records(files: Iterable[Path], session: str) -> list[dict]:
    """The records of ``session`` in logd's session files: every record of its traces
    (whichever file the daemon put them in), its AgenticGoKit entries or Koog events."""
    records: list[dict] = []
    for path in files:
        try:
            found, _ = read_lines(path)
        except FileNotFoundError:
            continue  # removed by retention while we looked
        records.extend(found)
    traces = trace_sessions(records)
    out = []
    for record in records:
        shape = classify(record)
        if shape is None:
            continue
        if (traces.get(shape[1]) if shape[0] == SPAN else shape[1]) == session:
            out.append(record)
    return out


def load(located: Located) -> Session:
    """The session ``located`` names, built from all its files."""
    if located.foreign:
        found = importer.read_file(located.files[0]).sessions
        return build_session(located.session, found.get(located.session, []))
    return build_session(located.session, session_records(located.files, located.session))


def _foreign_sessions(folder: Path, files: list[Path] | None = None) -> list[tuple[Path, Session]]:
    out = []
    for path in importer.foreign_files(folder) if files is None else files:
        try:
            sessions = importer.read_file(path).sessions
        except OSError:
            continue
        out += [(path, build_session(sid, records)) for sid, records in sessions.items()]
    return out


def _index(folder: Path) -> tuple[SessionIndex, bool] | None:
    """The folder's session index, brought up to date unless another reader is doing so now
    (then as it last committed it: False); None when there is no folder."""
    if not folder.is_dir():
        return None
    try:
        index = SessionIndex(folder)
    except IndexBusy as exc:
        raise TraceError(str(exc)) from None
    try:
        current = index.refresh(wait=False) is not None
    except IndexBusy as exc:
        index.close()
        raise TraceError(str(exc)) from None
    except BaseException:
        index.close()
        raise
    return index, current


def summaries(folder: Path, since: float | None = None) -> Iterator[Summary]:
    """Every session ending at or after ``since``, oldest first: logd's session files (through
    the session index, streamed) and the frameworks' own files (AgenticGoKit ``.trace.json``,
    Koog and OpenAI exports) in ``folder``."""
    opened = _index(folder)
    if opened is None:
        return
    with opened[0] as index:
        foreign = []
        for path, session in _foreign_sessions(folder, index.foreign_files()):
            if since is not None and (session.end is None or session.end < since):
                continue
            foreign.append(Summary(session.id, session.start, session.end, len(session.events), len(session.errors),
                                   session.agents, sorted({e.shape for e in session.events}), path.parent,
                                   [path.name]))
        foreign.sort(key=_order)
        stored = index.rows(since)
        yield from heapq.merge(stored, foreign, key=_order) if foreign else stored


def _order(s: Summary) -> tuple[float, str]:
    return (s.start or 0.0, s.session)


def render_list(items: Iterable[Summary], verbose: bool = False, out: TextIO | None = None) -> str:
    """The table; written to ``out`` as it goes when given (100,000 sessions stream, each
    row as the index keeps it)."""
    chunks: list[str] = []
    write = out.write if out is not None else chunks.append
    any_rows = False
    for s in items:
        if not any_rows:
            write(LIST_HEADER + "\n")
            any_rows = True
        write((s.line if s.line is not None and not verbose else list_line(s, verbose)) + "\n")
        if verbose:
            files = ", ".join(str(p) for p in s.files)
            write(f"{'':<4}files {files} ({s.size} bytes), shapes: {', '.join(s.shapes)}, "
                  f"ended {render.clock_time(s.end, True) if s.end else '-'}\n")
    if not any_rows:
        write("No trace sessions.\n")
    return "".join(chunks)


def list_json(items: Iterable[Summary], out: TextIO | None = None) -> str:
    """A JSON array of the sessions; written to ``out`` as it goes when given."""
    chunks: list[str] = []
    write = out.write if out is not None else chunks.append
    first = True
    for s in items:
        start = s.start_text or (render.clock_time(s.start, True) if s.start else None)
        item = orjson.dumps({"session": s.session, "start": start,
                             "duration_ms": round(s.duration * 1e3, 3), "agents": s.agents, "events": s.events,
                             "errors": s.errors, "shapes": s.shapes, "files": [str(p) for p in s.files]},
                            option=orjson.OPT_INDENT_2).decode()
        write(("[\n  " if first else ",\n  ") + item.replace("\n", "\n  "))
        first = False
    write("[]\n" if first else "\n]\n")
    return "".join(chunks)


def parse_since(text: str, now: float) -> float:
    """``--since`` as ``logd query`` and journalctl read it: ``30m``, ``2h ago``, ``yesterday``,
    ``@EPOCH``, ``2026-11-29 15:00`` (local) or RFC 3339; seconds since the epoch."""
    try:
        moment = epoch_seconds(parse_time(text, now))
    except TimeError as exc:
        raise TraceError(f"--since: {exc}") from None
    assert moment is not None  # parse_time returns canonical times only
    return moment


def find(folder: Path, session: str, must_exist: bool = True) -> Located:
    """The session ``session`` names: its exact id, else a unique id prefix, among stored
    sessions (the session index), then among the frameworks' own files in the folder."""
    try:
        session_path(folder, session)  # an id that names no file is refused
    except UnsafeSessionId as exc:
        raise TraceError(str(exc)) from None
    opened = _index(folder)
    ids: list[str] = []
    if opened is not None:
        with opened[0] as index:
            ids = index.sessions_like(session)
            if not ids and not opened[1]:  # another reader is refreshing it: a new session may be in it next
                try:
                    index.refresh()
                except IndexBusy as exc:
                    raise TraceError(str(exc)) from None
                ids = index.sessions_like(session)
            if len(ids) == 1:
                return Located(ids[0], index.files_of(ids[0]))
    if len(ids) > 1:
        raise TraceError(f"session {session!r} is ambiguous: "
                         + ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""))
    foreign = [(path, s.id) for path, s in _foreign_sessions(folder) if s.id.startswith(session)]
    foreign = [f for f in foreign if f[1] == session] or foreign
    if len(foreign) == 1:
        return Located(foreign[0][1], [foreign[0][0]], foreign=True)
    if len(foreign) > 1:
        raise TraceError(f"session {session!r} is ambiguous: " + ", ".join(sorted({f[1] for f in foreign})[:5]))
    if not must_exist:
        return Located(session, [])
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


def follow(folder: Path, located: Located, out: TextIO, *, fmt: str = "table", agent: str | None = None,
           verbose: bool = False, stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """Print the session's events so far, then each new one as it is stored, until ``stop()``:
    from every file of the session, including traces found to belong to it later (a span
    that arrives last and names the session brings its trace's earlier spans along).

    Rows only (no closing border): table rows, JSON lines or CSV rows.
    """
    if fmt in ("chrome", "agk"):
        raise TraceError("--follow prints events as they come: use --format table, json or csv")
    if located.foreign:
        raise TraceError(f"--follow reads the daemon's session files; {located.files[0]} is a framework's own "
                         "file (show it without --follow, or import it with `logd trace import`)")
    offsets: dict[Path, int] = {}
    if fmt == "csv":
        out.write(render.csv_header())
    elif fmt == "table":
        header = "  ".join(f"{h:<{w}}" for h, w in zip(render.TABLE_HEADERS, _FOLLOW_WIDTHS, strict=True))
        out.write(header.rstrip() + "\n")
    out.flush()
    session = located.session
    while not stop():
        files = located.files
        opened = _index(folder)  # when another reader is refreshing it, as committed: the next look has the rest
        if opened is not None:
            with opened[0] as index:
                files = index.files_of(session) or files
        records: list[dict] = []
        for path in files:
            try:
                found, offsets[path] = read_lines(path, offsets.get(path, 0))
            except FileNotFoundError:
                continue
            records += found
        events = sorted((e for e in (to_event(r, session) for r in records) if e is not None), key=lambda e: e.time)
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


def debug_records(located: Located) -> list[dict]:
    """Each stored record of a session with its shape and why it was or was not paired into a span."""
    records: list[dict] = []
    for path in located.files:
        try:
            records += read_lines(path)[0]
        except FileNotFoundError:
            continue
    notes: Notes = {}
    traces = trace_sessions(records)
    build_session(located.session, records, notes)
    line_of = {id(r): n for n, r in enumerate(records, 1)}
    out = []
    for n, record in enumerate(records, 1):
        found = classify(record)
        if found is None:
            why, other = f"not a trace record: {why_not_a_trace_record(record)}", None
        else:
            why, other = notes.get(id(record), ("an event on the timeline; not part of any span", None))
        session = (traces.get(found[1]) if found[0] == SPAN else found[1]) if found else None
        out.append({"line": n, "shape": found[0] if found else None, "session": session,
                    "trace": found[1] if found and found[0] == SPAN else None,
                    "paired": why, "with_line": line_of.get(id(other)) if other is not None else None,
                    "record": record})
    return out


def show_debug(located: Located, fmt: str = "table", verbose: bool = False) -> str:
    """``logd trace --debug``: the raw records, one block each, with the pairing explained."""
    items = debug_records(located)
    if fmt == "json":
        return orjson.dumps(items, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    lines = [f"{', '.join(str(p) for p in located.files)} ({len(items)} records)"]
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
