"""A session as one self-contained HTML page, and an index page linking to many.

The page is data + a renderer: the session (spans, events with their stored,
already-redacted records, the flow and the ``--analyze`` analysis from
:mod:`logd.traces.analysis`, tokens from :mod:`logd.traces.tokens`) is embedded once
as JSON in a ``<script type="application/json">``, and a small inline script
draws the timeline, flow graph, tables and details from it with ``textContent``
and ``createElement`` only, never ``innerHTML``. That keeps a 10,000-event session
to a few MB and puts every untrusted string in exactly one place, escaped once.

Nothing is fetched: the Content-Security-Policy allows no source at all except the
page's own inline style and script, pinned by their SHA-256, so even a string that
slipped through the escaping could neither run nor load anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from logd.traces import render
from logd.traces.analysis import agent_stats, critical_path, flow, route, slowest
from logd.traces.html_assets import INDEX_CSS, REPORT_CSS, REPORT_JS
from logd.traces.model import Session
from logd.traces.names import SUFFIX, file_name
from logd.traces.tokens import token_usage

SUMMARY_WIDTH = 80
_MS = 1e3


def _csp(script: str | None, style: str) -> str:
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return (f"default-src 'none'; style-src {digest(style)}; "
            f"script-src {digest(script) if script is not None else chr(39) + 'none' + chr(39)}; "
            "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")


def script_json(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` can close the element or open a comment, and U+2028/2029 stay escaped."""
    text = orjson.dumps(value, default=str).decode()
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _ms(seconds: float) -> float:
    return round(seconds * _MS, 3)


def report_data(session: Session) -> dict[str, Any]:
    """The page's data: compact rows (arrays) indexed into shared lists of agents and hooks."""
    start = session.start or 0.0
    agents: dict[str, int] = {}
    hooks: dict[str, int] = {}

    def agent_index(name: str) -> int:
        return agents.setdefault(name or "", len(agents))

    for name in session.agents:
        agent_index(name)
    span_index = {s.id: i for i, s in enumerate(session.spans)}
    path = critical_path(session)
    on_path = {s.id for _, s in path}
    spans = [[s.id, agent_index(s.agent), s.name, s.kind, _ms(s.start - start), _ms(s.duration),
              span_index.get(s.parent, -1) if s.parent else -1, s.error, (1 if s.unfinished else 0)
              | (2 if s.id in on_path else 0) | (4 if s.tripped else 0)] for s in session.spans]
    event_index = {id(e): i for i, e in enumerate(session.events)}
    events = [[_ms(e.time - start), agent_index(e.agent), hooks.setdefault(e.hook, len(hooks)),
               render.summarize_state(e, width=SUMMARY_WIDTH), e.error,
               span_index.get(e.span_id, -1) if e.span_id else -1] for e in session.events]
    steps = flow(session)
    edges: dict[tuple[str, str], int] = {}
    for step in steps:
        edges[(step.agent, step.next)] = edges.get((step.agent, step.next), 0) + 1
    return {
        "session": session.id, "start": render.clock_time(start, True) if session.start is not None else None,
        "duration_ms": _ms((session.end or start) - start), "agents": list(agents), "hooks": list(hooks),
        "spans": spans, "events": events, "records": [e.record for e in session.events],
        "flow": {"steps": [[_ms(s.time - start), s.agent, s.next, s.hook] for s in steps],
                 "edges": [[a, b, n] for (a, b), n in edges.items()], "route": route(steps)},
        "analysis": {
            "agents": [[a.agent, a.count, _ms(a.total), _ms(a.mean), _ms(a.p95), _ms(a.max), a.errors]
                       for a in agent_stats(session)],
            "slowest": [span_index[s.id] for s in slowest(session, 10)],
            "errors": [event_index[id(e)] for e in session.errors],
            "critical": [[depth, span_index[s.id]] for depth, s in path]},
        "tokens": [[t.agent, t.model, t.calls, t.input, t.output, t.total] for t in token_usage(session)],
    }


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="logd">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""

# A backslash at a line's end joins it to the next: the page has no line break there.
_REPORT_BODY = """<header>
<p class="crumbs">{back}logd trace report</p>
<h1>Session <span id="session-id">{session}</span></h1>
<p id="summary" class="summary"></p>
</header>
<noscript><p>This report draws its timeline and tables with JavaScript; \
the raw data is in the page source.</p></noscript>
<main>
<section aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>
<p class="hint">One bar per span, one lane per agent. Hover or focus a bar for its duration; \
arrow keys move between bars, Enter opens one.</p>
<p class="controls"><label><input type="checkbox" id="only-critical"> dim everything off the critical path</label>
<label>zoom <input type="range" id="zoom" min="1" max="200" value="1" aria-label="Timeline zoom"></label></p>
<div id="legend" class="legend"></div>
<div id="timeline" class="timeline" role="group" aria-label="Timeline of spans by agent"></div>
</section>
<section aria-labelledby="h-flow"><h2 id="h-flow">Agent flow</h2>
<p id="route" class="route"></p>
<div id="flow" class="flow"></div>
<table id="handoffs" class="data"><caption>Hand-offs</caption><thead><tr>\
<th scope="col">From</th><th scope="col">To</th><th scope="col">Count</th>\
</tr></thead><tbody></tbody></table>
</section>
<section aria-labelledby="h-analysis"><h2 id="h-analysis">Analysis</h2>
<div class="grid">
<table id="agent-stats" class="data"><caption>Per agent</caption><thead><tr>\
<th scope="col">Agent</th><th scope="col">Runs</th><th scope="col">Total</th><th scope="col">Mean</th>\
<th scope="col">p95</th><th scope="col">Max</th><th scope="col">Errors</th>\
</tr></thead><tbody></tbody></table>
<table id="tokens" class="data"><caption>Tokens per agent and model</caption><thead><tr>\
<th scope="col">Agent</th><th scope="col">Model</th><th scope="col">Calls</th>\
<th scope="col">Input</th><th scope="col">Output</th><th scope="col">Total</th>\
</tr></thead><tbody></tbody></table>
</div>
<div class="grid">
<div><h3>Critical path <span id="critical-total"></span></h3><ol id="critical" class="links"></ol></div>
<div><h3>Slowest spans</h3><ol id="slowest" class="links"></ol></div>
<div><h3>Errors <span id="error-count"></span></h3><ol id="errors" class="links"></ol></div>
</div>
</section>
<section aria-labelledby="h-events"><h2 id="h-events">Events</h2>
<form id="filters" class="filters" role="search" aria-label="Filter events">
<label>Agent <select id="f-agent"><option value="">all</option></select></label>
<label>Kind <select id="f-kind"><option value="">all</option></select></label>
<label>Text <input id="f-text" type="search" placeholder="in any field"></label>
<label><input id="f-errors" type="checkbox"> errors only</label>
<output id="f-count" aria-live="polite"></output>
</form>
<table id="events" class="data events"><thead><tr>\
<th scope="col">#</th><th scope="col">Time</th><th scope="col">+s</th><th scope="col">Agent</th>\
<th scope="col">Kind</th><th scope="col">State</th><th scope="col">Error</th>\
</tr></thead><tbody></tbody></table>
<p><button type="button" id="more" hidden>Show more events</button></p>
</section>
</main>
<dialog id="details" aria-labelledby="details-title">
<form method="dialog"><h2 id="details-title">Details</h2>\
<button class="close" aria-label="Close details">Close</button></form>
<dl id="details-facts"></dl>
<pre id="details-json" tabindex="0" aria-label="Full record"></pre>
</dialog>
<script type="application/json" id="logd-data">{data}</script>
<script>{js}</script>"""


def report(session: Session, back_href: str | None = None) -> str:
    """The session's self-contained HTML report; ``back_href`` links to an index page."""
    back = f'<a href="{html.escape(back_href)}">All sessions</a> · ' if back_href else ""
    body = _REPORT_BODY.format(back=back, session=html.escape(session.id), data=script_json(report_data(session)),
                               js=REPORT_JS)
    return _PAGE.format(csp=html.escape(_csp(REPORT_JS, REPORT_CSS)), css=REPORT_CSS,
                        title=html.escape(f"logd trace: {session.id}"), body=body)


def report_name(session_id: str) -> str:
    """The report's file name beside the index: the session's trace file name (sanitised,
    with a hash of the id, so unique) with ``.html`` for ``.trace.jsonl``."""
    return file_name(session_id).removesuffix(SUFFIX) + ".html"


@dataclass
class IndexRow:
    session: str
    href: str
    start: float | None
    duration: float
    agents: list[str]
    events: int
    spans: int
    errors: int


def index(rows: Iterable[IndexRow], title: str = "logd trace sessions") -> str:
    """A plain table of sessions, each linking to its report; no script at all."""
    cells = []
    for r in rows:
        mark = ' class="failed"' if r.errors else ""
        cells.append(
            f'<tr{mark}><td><a href="{html.escape(r.href)}">{html.escape(r.session)}</a></td>'
            f"<td>{html.escape(render.clock_time(r.start, True)) if r.start is not None else '-'}</td>"
            f'<td class="num">{html.escape(render.fmt_duration(r.duration))}</td><td class="num">{r.events}</td>'
            f'<td class="num">{r.spans}</td><td class="num">{r.errors}</td>'
            f'<td>{html.escape(", ".join(r.agents))}</td></tr>')
    body = (f"<header><h1>{html.escape(title)}</h1><p>{len(cells)} session(s); each links to its report.</p></header>"
            '<main><table class="data"><thead><tr><th scope="col">Session</th><th scope="col">Start</th>'
            '<th scope="col">Duration</th><th scope="col">Events</th><th scope="col">Spans</th>'
            '<th scope="col">Errors</th><th scope="col">Agents</th></tr></thead><tbody>'
            + "".join(cells) + "</tbody></table></main>")
    return _PAGE.format(csp=html.escape(_csp(None, INDEX_CSS)), css=INDEX_CSS, title=html.escape(title), body=body)


def write_site(sessions: Iterable[Session], index_path: Path) -> list[Path]:
    """``index_path`` plus one report per session beside it (linked by relative name);
    returns the files written, index first."""
    folder = index_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    rows, written = [], []
    for session in sessions:
        name = report_name(session.id)
        path = folder / name
        path.write_text(report(session, back_href=index_path.name), encoding="utf-8")
        written.append(path)
        start, end = session.start, session.end
        rows.append(IndexRow(session.id, name, start, (end - start) if start is not None and end is not None else 0.0,
                             session.agents, len(session.events), len(session.spans), len(session.errors)))
    index_path.write_text(index(rows), encoding="utf-8")
    return [index_path] + written
