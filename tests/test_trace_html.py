"""The HTML trace report (logd.traces.html) opened in a real headless Chromium: Debian's
/usr/bin/chromium driven by Playwright, never a browser download. Every page must load
with no console error and no network request, draw one timeline bar per span, mark the
critical path, and show an event's full state on click. One browser serves the file.

Fixture shapes: tests/trace_samples.py (AgenticGoKit hooks, Koog events, OpenAI Agents
spans) and logd's own client tracing through a real ``logd run``. Token counts follow
openai-agents-python ``src/agents/tracing/span_data.py`` (GenerationSpanData ``usage``:
``input_tokens``/``output_tokens``; task/turn custom spans repeat totals) and Koog's
prompt ``Message.kt`` (``ResponseMetaInfo``: ``inputTokensCount``/``outputTokensCount``/
``totalTokensCount`` on each of ``LLMCallCompletedEvent.responses``); OTLP spans, the
OpenTelemetry GenAI conventions (``gen_ai.usage.input_tokens``/``output_tokens``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from logd.record import normalize_object
from logd.traces import views
from logd.traces.analysis import critical_path, flow
from logd.traces.html import report, report_name, script_json, write_site
from logd.traces.model import Session, build_session
from logd.traces.names import file_name
from logd.traces.tokens import token_usage

from support import read_records, send_records, wait_for
from trace_samples import T0, TRACING_CLIENT, agk_session, iso, koog_run, span_trace

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
RECEIVED = "2026-11-23T12:00:00.000000Z"
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""
CELL_TEXTS = "rows => rows.map(r => [...r.cells].map(c => c.textContent))"  # a table's rows as lists of cell texts


def parsed(records: list[dict]) -> list[dict]:
    """As the daemon stores them (``timestamp`` renamed to the canonical ``time``)."""
    return [normalize_object(dict(r), RECEIVED) for r in records]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run .ci/setup --test"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@dataclass
class Opened:
    page: Page
    requests: list[str]
    problems: list[str]

    def clean(self, *allowed: Path) -> None:
        """No console error or warning, no script error, no blocked load, no request but the pages."""
        assert self.problems == []
        assert self.page.evaluate("window.__violations") == []
        assert set(self.requests) <= {p.as_uri() for p in allowed}


def open_page(browser: Browser, path: Path, ready: bool = True, dark: bool = False) -> Opened:
    page = browser.new_context(color_scheme="dark" if dark else "light").new_page()
    opened = Opened(page, [], [])
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("console", lambda m: opened.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))
    page.add_init_script(WATCH)
    page.goto(path.as_uri())
    if ready:
        page.wait_for_selector("html[data-ready='1']", state="attached", timeout=30_000)
    return opened


def bars_and_critical(page: Page) -> tuple[list[int], list[int]]:
    bars = page.eval_on_selector_all(".bar", "els => els.map(e => +e.dataset.i)")
    crit = page.eval_on_selector_all(".bar.crit", "els => els.map(e => +e.dataset.i)")
    return bars, crit


def check_report(page: Page, session: Session) -> None:
    """One bar per span, the critical path marked, the hand-offs of analysis.flow, and the
    full stored record of an event with state shown when its row is clicked."""
    bars, crit = bars_and_critical(page)
    assert sorted(bars) == list(range(len(session.spans)))
    assert sorted(crit) == sorted(session.spans.index(s) for _, s in critical_path(session))
    assert all("on the critical path" in label for label in
               page.eval_on_selector_all(".bar.crit", "els => els.map(e => e.getAttribute('aria-label'))"))
    counts: dict[tuple[str, str], int] = {}
    for step in flow(session):
        counts[(step.agent, step.next)] = counts.get((step.agent, step.next), 0) + 1
    rows = page.eval_on_selector_all("#handoffs tbody tr", CELL_TEXTS)
    assert rows == [[a, b, str(n)] for (a, b), n in counts.items()]
    i = next(i for i, e in enumerate(session.events) if e.state)
    page.click(f"#events tbody tr[data-i='{i}']")
    assert page.is_visible("#details")
    assert orjson.loads(page.text_content("#details-json")) == orjson.loads(orjson.dumps(session.events[i].record))
    page.keyboard.press("Escape")
    assert not page.is_visible("#details")


def test_index_and_reports_from_a_real_logd_run_open_cleanly_in_chromium(daemon, tmp_path, browser):
    d = daemon('file = "agent.log"')
    send_records(d.socket_path, agk_session() + koog_run() + span_trace())
    subprocess.run([sys.executable, "-c", TRACING_CLIENT], check=True, timeout=30,
                   env={**os.environ, "LOGD_SOCKET": str(d.socket_path)})
    folder = tmp_path / "traces"
    expected = len(agk_session()) + len(koog_run()) + len(span_trace()) + 6
    wait_for(lambda: sum(len(read_records(p)) for p in folder.glob("*.jsonl")) == expected, what="every record stored")
    assert d.stop() == 0

    out = subprocess.run([sys.executable, "-m", "logd", "list", "--format", "html", "-o", "site", "--config",
                          str(d.config)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    sessions = {s.session: views.load(views.Located(s.session, s.files)) for s in views.summaries(folder)}
    assert set(sessions) == {"req-17461596", "run-koog-1", "trace_abc123", "conv-42"}
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html"] + [report_name(s) for s in sessions])

    index = open_page(browser, site / "index.html", ready=False)
    links = index.page.eval_on_selector_all("a", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
    assert sorted(links) == sorted([s, report_name(s)] for s in sessions)
    index.page.click("text=conv-42")  # the relative link resolves to the report beside the index
    index.page.wait_for_selector("html[data-ready='1']", state="attached")
    assert index.page.text_content("#session-id") == "conv-42"
    index.clean(site / "index.html", site / report_name("conv-42"))

    for sid, session in sessions.items():
        opened = open_page(browser, site / report_name(sid))
        check_report(opened.page, session)
        errors = opened.page.eval_on_selector_all("#errors li", "lis => lis.map(li => li.textContent)")
        assert len([e for e in session.events if e.error]) == (0 if errors == ["none"] else len(errors))
        opened.clean(site / report_name(sid))
        opened.page.context.close()
    client = open_page(browser, site / report_name("conv-42"))
    tokens = client.page.eval_on_selector_all("#tokens tbody tr", CELL_TEXTS)
    assert sorted(tokens) == [["planner", "gpt-4o", "1", "812", "64", "876"],
                              ["writer", "gpt-4o", "1", "812", "64", "876"]]
    assert "RuntimeError: tool broke" in client.page.text_content("#errors")
    assert client.page.text_content("#route") == "Route: planner \u2192 writer"
    client.page.context.close()


def big_session(events: int = 10_000) -> Session:
    """AgenticGoKit hook cycles of trace_samples.agk_session, one after another (every
    seventh with the writer's error and retry), cut at ``events`` records."""
    records: list[dict] = []
    cycle = 0
    while len(records) < events:
        for r in agk_session(fail=cycle % 7 == 0):
            t = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
            records.append({**r, "timestamp": iso(t + cycle * 2.6), "event_id": f"{r['event_id']}-{cycle}"})
        cycle += 1
    return build_session("req-big", parsed(records[:events]))


def test_a_10000_event_session_stays_small_and_opens_whole(browser, tmp_path):
    session = big_session()
    assert len(session.events) == 10_000
    path = tmp_path / "big.html"
    path.write_text(report(session), encoding="utf-8")
    assert path.stat().st_size < 5_000_000  # measured 3.4 MB: the records are most of it

    opened = open_page(browser, path)
    page = opened.page
    check_report(page, session)
    assert page.text_content("#f-count") == "10000 events"
    assert page.locator("#events tbody tr").count() == 500 and page.is_visible("#more")
    page.click("#more")
    assert page.locator("#events tbody tr").count() == 1000
    failures = [i for i, e in enumerate(session.events) if e.hook == "AgentError"]
    page.select_option("#f-kind", label="AgentError")
    assert page.text_content("#f-count") == f"{len(failures)} of 10000 events"
    page.select_option("#f-kind", label="all")
    page.fill("#f-text", "ev-3-700")  # any field of the stored record, not only the shown columns
    found = [e for e in session.events if "ev-3-700" in orjson.dumps(e.record).decode()]
    expect(page.locator("#f-count")).to_have_text(f"{len(found)} of 10000 events")
    page.click("#events tbody tr:last-child")
    assert '"event_id": "ev-3-700"' in page.text_content("#details-json")
    opened.clean(path)
    page.context.close()


HOSTILE_ID = "evil</script><script>window.__pwned=1</script>\"'&<!-- \u4f1a\u8bdd-\u00df-\U0001f680\u2028x"
HOSTILE_AGENT = '<img src=x onerror="window.__pwned=2">'
QUOTED_AGENT = "\"quoted\" & 'single' \u202etxt"
HOSTILE_STATE = {"html": "</script><script>window.__pwned=3</script>",
                 "u": "na\u00efve \u2603 \u2028 \u2029 \U0001f600",
                 "q": "\"'`", "comment": "<!-- <script>"}


def hostile_session() -> Session:
    records = [{"timestamp": iso(T0), "type": "trace", "session_id": HOSTILE_ID, "event_id": "e1",
                "agent_id": HOSTILE_AGENT, "hook": "BeforeAgentRun", "state": HOSTILE_STATE},
               {"timestamp": iso(T0 + 0.5), "type": "trace", "session_id": HOSTILE_ID, "event_id": "e1",
                "agent_id": HOSTILE_AGENT, "hook": "AfterAgentRun", "target_agent_id": QUOTED_AGENT,
                "source_agent_id": HOSTILE_AGENT, "state": HOSTILE_STATE},
               {"timestamp": iso(T0 + 0.6), "type": "trace", "session_id": HOSTILE_ID, "event_id": "e2",
                "agent_id": QUOTED_AGENT, "hook": "BeforeAgentRun"},
               {"timestamp": iso(T0 + 0.9), "type": "trace", "session_id": HOSTILE_ID, "event_id": "e2",
                "agent_id": QUOTED_AGENT, "hook": "AgentError", "error": "<b onmouseover=alert(1)>boom</b>"}]
    return build_session(HOSTILE_ID, parsed(records))


def test_hostile_ids_names_and_state_are_shown_as_text_and_never_run(browser, tmp_path):
    session = hostile_session()
    site = tmp_path / "site"
    written = write_site([session], site / "index.html")
    page_path = site / report_name(HOSTILE_ID)
    assert written == [site / "index.html", page_path] and "/" not in page_path.name
    raw = page_path.read_text(encoding="utf-8")
    assert raw.count("<script") == raw.count("</script") == 2 and "<!--" not in raw and "<img" not in raw

    opened = open_page(browser, page_path)
    page = opened.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 2 and page.locator("img").count() == 0
    assert page.text_content("#session-id") == HOSTILE_ID
    assert page.title() == f"logd trace: {HOSTILE_ID}"
    labels = page.eval_on_selector_all(".lane-label", "els => els.map(e => e.textContent)")
    assert labels == [HOSTILE_AGENT, QUOTED_AGENT]
    page.click("#events tbody tr[data-i='0']")
    shown = orjson.loads(page.text_content("#details-json"))
    assert shown["state"] == HOSTILE_STATE and shown["session_id"] == HOSTILE_ID
    page.keyboard.press("Escape")
    assert "<b onmouseover=alert(1)>boom</b>" in page.text_content("#errors")
    check_report(page, session)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    opened.clean(page_path)
    page.context.close()

    index = open_page(browser, site / "index.html", ready=False)
    assert index.page.evaluate("document.scripts.length") == 0 and index.page.locator("img").count() == 0
    assert index.page.eval_on_selector_all("a", "as => as.map(a => [a.textContent, a.getAttribute('href')])") == [
        [HOSTILE_ID, report_name(HOSTILE_ID)]]
    index.clean(site / "index.html")
    index.page.context.close()


def test_keyboard_reaches_bars_and_rows_and_dark_mode_changes_the_colours(browser, tmp_path):
    session = build_session("trace_abc123", parsed(span_trace()))
    path = tmp_path / "spans.html"
    path.write_text(report(session), encoding="utf-8")
    opened = open_page(browser, path)
    page = opened.page
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.focus(".bar[tabindex='0']")
    assert page.evaluate("document.activeElement.dataset.i") == "0"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == "1"
    page.keyboard.press("Enter")
    assert page.is_visible("#details")
    assert page.text_content("#details-title") == f"Span: {session.spans[1].name}"
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.dataset.i") == "1"  # focus goes back where it was
    page.focus("#events tbody tr[data-i='0']")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.text_content("#details-title") == f"Event #2: {session.events[1].hook}"
    page.keyboard.press("Escape")
    width = page.evaluate("document.querySelector('.lane').offsetWidth")
    page.fill("#zoom", "4")  # a long session's short spans get room; the lane names stay in view
    assert page.evaluate("document.querySelector('.lane').offsetWidth") == pytest.approx(4 * width, abs=2)
    opened.clean(path)
    page.context.close()

    dark = open_page(browser, path, dark=True)
    assert dark.page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"
    dark.clean(path)
    dark.page.context.close()


def test_tokens_per_agent_and_model_from_each_source():
    spans = span_trace()
    spans[0]["span_data"]["usage"] = {"input_tokens": 300, "output_tokens": 40}  # triage's gpt-4o generation
    # the SDK's task span is the root of the run and repeats its total (span_data.data.usage)
    spans.append({**spans[-1], "span_id": "s-task", "span_data": {"type": "custom", "name": "task",
                                                                   "data": {"usage": {"input_tokens": 300}}}})
    spans[-2]["parent_id"] = "s-task"
    usage = token_usage(build_session("t", parsed(spans)))
    # the task total is not added again: a span below it reports usage
    assert [(t.agent, t.model, t.calls, t.input, t.output, t.total) for t in usage] == [
        ("triage", "gpt-4o", 1, 300, 40, 340)]

    koog = koog_run()
    meta = {"timestamp": "2026-11-18T00:00:00Z", "totalTokensCount": 150, "inputTokensCount": 120,
            "outputTokensCount": 30}
    # two tool calls of one answer share the call's metaInfo (Koog's clients): counted once
    koog[3]["responses"] = [{"tool": "weather", "metaInfo": meta}, {"tool": "news", "metaInfo": meta}]
    assert [(t.agent, t.model, t.calls, t.input, t.output, t.total) for t in token_usage(
        build_session("run-koog-1", parsed(koog)))] == [("koog-agent", "gpt-4o-mini", 1, 120, 30, 150)]

    agk = agk_session(fail=False)
    agk[2]["state"] = {"plan": "p", "model": "gpt-4o-mini", "usage": {"prompt_tokens": 50, "completion_tokens": 5}}
    agk[4]["state"] = {"findings": "f", "model": "gpt-4o-mini", "usage": {"prompt_tokens": 70, "completion_tokens": 7}}
    usage = token_usage(build_session("req", parsed(agk)))
    assert [(t.agent, t.model, t.input, t.output, t.total) for t in usage] == [
        ("researcher", "gpt-4o-mini", 70, 7, 77), ("planner", "gpt-4o-mini", 50, 5, 55)]
    assert token_usage(build_session("req", parsed(agk_session()))) == []

    # OpenTelemetry GenAI semantic conventions (semantic-conventions docs/gen-ai/gen-ai-spans.md)
    otel = span_trace()[:1]
    otel[0]["span_data"] = {"type": "custom", "name": "chat", "attributes": {
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}}
    assert [(t.model, t.input, t.output, t.total) for t in token_usage(build_session("o", parsed(otel)))] == [
        ("gpt-4o", 10, 2, 12)]


def test_script_json_cannot_close_its_element_or_break_a_line():
    value = {"a": "</script><!-- & -->", "b": "\u2028\u2029", "c": ["<", ">", "&"]}
    text = script_json(value)
    assert not any(c in text for c in "<>&\u2028\u2029")
    assert orjson.loads(text) == value


def logd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logd", *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_cli_writes_a_report_file_and_refuses_html_it_cannot_make(tmp_path):
    folder = tmp_path / "tr"
    folder.mkdir()
    (folder / file_name("req-17461596")).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in parsed(agk_session())))
    done = logd("trace", "req-1746", "--dir", str(folder), "--format", "html", "-o", "out/report.html", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == ""
    text = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "req-17461596" in text

    no_output = logd("list", "--dir", str(folder), "--format", "html", cwd=tmp_path)
    assert no_output.returncode == 2
    assert no_output.stderr == ("logd: error: logd list --format html writes an index and one report per session: "
                                "give -o DIR (or -o NAME.html)\n")
    follow = logd("trace", "req-1746", "--dir", str(folder), "--format", "html", "--follow", cwd=tmp_path)
    assert follow.returncode == 2 and follow.stderr.count("\n") == 1 and "--follow" in follow.stderr
    named = logd("list", "--dir", str(folder), "--format", "html", "-o", "pages/all.html", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["all.html", report_name("req-17461596")]
    assert 'href="all.html"' in (tmp_path / "pages" / report_name("req-17461596")).read_text(encoding="utf-8")


def test_bench_times_the_html_export_of_one_session(tmp_path):
    from logd.bench.traces import bench_html_export

    row, note = bench_html_export(tmp_path / "report.html", events=700)
    assert row.records == 700 and row.bytes == (tmp_path / "report.html").stat().st_size > 0
    assert note.startswith("html report of 700 events, ")


def test_fast_critical_path_matches_the_plain_definition_on_random_spans():
    """analysis.critical_path was made O(n log n) for 10,000-event reports; it must pick the
    same containers and chains as the plain scans it replaced (kept here as the reference)."""
    import random

    from logd.traces import analysis
    from logd.traces.model import Span

    def container(span: Span, spans: list[Span]) -> str | None:
        best = None
        for s in spans:
            if (s is not span and s.start <= span.start + 1e-6 and s.end >= span.end - 1e-6
                    and s.duration > span.duration and (best is None or s.duration < best.duration)):
                best = s
        return None if span.parent or best is None else best.id

    def chain(group: list[Span]) -> list[Span]:
        path = [max(group, key=lambda s: (s.end, s.duration))] if group else []
        while path:
            before = [s for s in group if s.end <= path[-1].start + 1e-6 and all(s is not p for p in path)]
            if not before:
                break
            path.append(max(before, key=lambda s: (s.end, s.duration)))
        return path[::-1]

    rnd = random.Random(7)
    for _ in range(1500):
        n = rnd.randint(0, 12)
        spans = []
        for i in range(n):
            a = rnd.randint(0, 6) * 0.5
            spans.append(Span(id=f"s{i}", session="x", agent="a", name="n", kind="agent", start=a,
                              end=a + rnd.choice([0, 0, 0.5, 1, 1.5, 2, 3]),
                              parent=f"s{rnd.randint(0, n)}" if rnd.random() < 0.2 else None))
        spans.sort(key=lambda s: (s.start, -s.end))
        found = analysis._Containers(spans)
        assert [found.of(s) for s in spans] == [container(s, spans) for s in spans]
        assert [s.id for s in analysis._chain(spans)] == [s.id for s in chain(spans)]
