"""Makes docs/trace-report.png: the HTML report of a small support workflow, shot in
Debian's headless Chromium (Playwright drives /usr/bin/chromium; nothing is downloaded).

    .venv/bin/python docs/trace_report_screenshot.py docs/trace-report.png

The session is OpenAI-Agents-style spans (the shape of tests/trace_samples.py::span_trace,
with token usage on the generations as the SDK's GenerationSpanData exports it).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from playwright.sync_api import sync_playwright

from logd.traces.html import report
from logd.traces.model import build_session

T0 = 1_795_000_000.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars"]


def iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, timezone.utc).isoformat().replace("+00:00", "Z")


def span(sid: str, parent: str | None, a: float, b: float, data: dict, error: dict | None = None) -> dict:
    return {"object": "trace.span", "trace_id": "trace_7f3a", "group_id": "conv-1842", "span_id": sid,
            "parent_id": parent, "started_at": iso(a), "ended_at": iso(b), "span_data": data, "error": error}


def records() -> list[dict]:
    def gen(sid: str, parent: str, a: float, b: float, model: str, i: int, o: int) -> dict:
        return span(sid, parent, a, b, {"type": "generation", "model": model,
                                        "usage": {"input_tokens": i, "output_tokens": o}})

    return [
        span("root", None, 0.0, 6.4, {"type": "custom", "name": "support workflow"}),
        span("triage", "root", 0.02, 1.35, {"type": "agent", "name": "triage"}),
        gen("g1", "triage", 0.05, 1.10, "gpt-4o-mini", 812, 64),
        span("h1", "triage", 1.12, 1.15, {"type": "handoff", "from_agent": "triage", "to_agent": "billing"}),
        span("billing", "root", 1.36, 4.9, {"type": "agent", "name": "billing"}),
        span("guard", "billing", 1.38, 1.52, {"type": "guardrail", "name": "pii", "triggered": False}),
        gen("g2", "billing", 1.55, 2.60, "gpt-4o", 1430, 212),
        span("t1", "billing", 2.62, 3.70, {"type": "function", "name": "lookup_invoice", "input": '{"id": 7}'},
             error={"message": "invoice 7 not found", "data": {"status": 404}}),
        span("t2", "billing", 3.72, 4.30, {"type": "function", "name": "search_invoices", "input": '{"customer": 42}'}),
        gen("g3", "billing", 4.32, 4.85, "gpt-4o", 1710, 98),
        span("h2", "billing", 4.86, 4.88, {"type": "handoff", "from_agent": "billing", "to_agent": "triage"}),
        span("triage2", "root", 4.9, 6.35, {"type": "agent", "name": "triage"}),
        gen("g4", "triage2", 4.95, 6.30, "gpt-4o-mini", 1020, 180),
    ]


def main(out: Path) -> None:
    page_html = report(build_session("conv-1842", [{**r, "time": r["started_at"]} for r in records()]))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "report.html"
        path.write_text(page_html, encoding="utf-8")
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1280})
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-ready='1']", state="attached")
        page.screenshot(path=str(out), full_page=False)
        browser.close()
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/trace-report.png"))
