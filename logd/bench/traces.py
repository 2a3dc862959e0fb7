"""``logd bench --traces``: what storing trace records per session costs the daemon.

The same number of records, from the same clients, twice: plain log records, then
AgenticGoKit trace entries spread over many sessions (each also written to its
session file). Reported as a ratio, the machine's noise cancels out.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from logd.bench.harness import (
    AGENTS,
    Report,
    Row,
    count_agent_lines,
    cpu_seconds,
    drive_clients,
    machine_line,
    start_logd,
)
from logd.control import request
from logd.traces.names import SUFFIX

HOOKS = ("BeforeAgentRun", "AfterAgentRun", "BeforeEventHandling", "AfterEventHandling")
SESSION_RECORDS = 200  # records per session: many sessions, so the LRU of open files is exercised


def make_trace_records(count: int, client: int, seed_time: float = 1_790_000_000.0) -> bytes:
    lines = []
    for i in range(count):
        lines.append(orjson.dumps({
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seed_time + i // 1000)) + f".{i % 1000:03d}Z",
            "type": "trace", "event_id": f"ev-{client}-{i // 4}", "session_id": f"sess-{client:02d}-{i // SESSION_RECORDS:05d}",
            "agent_id": AGENTS[(i // 4) % len(AGENTS)], "hook": HOOKS[i % len(HOOKS)],
            "state": {"message": "Analyze this data", "step": i}, "client": client, "seq": i}))
    return b"\n".join(lines) + b"\n"


AGK_ROUTE = ("planner", "researcher", "writer")
AGK_FAIL_EVERY = 20  # one agent run in 20 fails (AgentError, an AgentResult with its error)


def make_agk_records(count: int, client: int, seed_time: float = 1_790_000_000.0) -> bytes:
    """AgenticGoKit's entries as its trace logger writes them (internal/core/trace.go's TraceEntry:
    a SimpleState ``{"data", "meta"}`` on every hook, an AgentResult on every AfterAgentRun, target
    and source agents): per event planner -> researcher -> writer, one agent run in
    ``AGK_FAIL_EVERY`` failing, ``SESSION_RECORDS`` entries per session."""
    result = {"duration_ms": 400, "end_time": "2026-11-29T18:02:03.5+01:00",
              "output_state": {"data": {"summary": "done"}, "meta": {}}, "start_time": "2026-11-29T18:02:03.1+01:00"}
    failed = {"error": "LLM timeout after 300ms", "agent_result": {**result, "error": "LLM timeout after 300ms"}}
    steps: list[tuple[str, str, dict[str, Any]]] = [("BeforeEventHandling", "", {})]
    for agent in AGK_ROUTE:
        steps += [("BeforeAgentRun", agent, {}), ("AfterAgentRun", agent, {"agent_result": result})]
    steps.append(("AfterEventHandling", "", {}))
    lines: list[bytes] = []
    runs = 0
    while len(lines) < count:
        i = len(lines)
        session, event = f"agk-{client:02d}-{i // SESSION_RECORDS:05d}", f"ev-{client}-{i // len(steps)}"
        for hook, agent, extra in steps:
            if hook == "AfterAgentRun":
                runs += 1
                if runs % AGK_FAIL_EVERY == 0:
                    hook, extra = "AgentError", failed
            at = seed_time + len(lines) / 1000
            lines.append(orjson.dumps({
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1e9) % 10**9:09d}Z",
                "type": "", "event_id": event, "session_id": session, "agent_id": agent,
                "state": {"data": {"message": "Analyze this data", "step": len(lines)}, "meta": {"route": agent}},
                "hook": hook, "target_agent_id": agent, "source_agent_id": "user", **extra, "client": client}))
    return b"\n".join(lines[:count]) + b"\n"


def _stored_lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("*" + SUFFIX)) if folder.exists() else 0


def bench_traces(args: argparse.Namespace) -> Report:
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-traces-", dir="/tmp"))
    try:
        per_client = args.records // args.clients
        total = per_client * args.clients
        rows: list[Row] = []
        status: dict[str, dict[str, Any]] = {}  # each trace run's logd status, before it stops
        from logd.bench.harness import make_records

        scenarios = (("plain records -> file", make_records), ("trace records -> file + sessions", make_trace_records),
                     ("AgenticGoKit entries -> file + sessions", make_agk_records))
        for label, make in scenarios:
            traced = make is not make_records
            run = folder / label.split()[0]
            run.mkdir()
            blobs = []
            for c in range(args.clients):
                blob = run / f"client{c}.jsonl"
                blob.write_bytes(make(per_client, c))
                blobs.append(blob)
            size = sum(b.stat().st_size for b in blobs)
            out = run / "agent.log"
            proc, sock = start_logd(run, f'file = "{out}"\nfile_only = true\nmax_size = 100000\n'
                                         f'[logging.traces]\ndir = "{run / "traces"}"')
            seconds = drive_clients(sock, blobs, out, total)
            start = time.perf_counter()
            if traced:  # until every trace record is in its session file too
                deadline = start + 300
                while _stored_lines(run / "traces") < total and time.perf_counter() < deadline:
                    time.sleep(0.01)
                seconds += time.perf_counter() - start
                status[label] = request(sock, "status")
            cpu = cpu_seconds(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            lost = total - count_agent_lines(out)
            if traced:
                lost = max(lost, total - _stored_lines(run / "traces"))
            rows.append(Row(f"logd {label}", total, seconds, size, cpu, lost))
        plain, traces, agk = rows
        report = Report(
            title=f"logd bench --traces: {total:,} records, {args.clients} clients, "
                  f"{total // SESSION_RECORDS} sessions; {machine_line()}",
            rows=rows, ratios=[("trace records / plain records", traces.rate / plain.rate),
                               ("AgenticGoKit entries / plain records", agk.rate / plain.rate)],
            target="trace records >= 0.5x the plain rate, 0 lost")
        report.ok = traces.rate >= 0.5 * plain.rate and 0 == traces.lost == plain.lost == agk.lost
        report.notes += [f"{label.split(' ->')[0]}: {_sessions_note(figures)}" for label, figures in status.items()]
        report.notes.append(f"AgenticGoKit entries: trace.go's fields, one agent run in {AGK_FAIL_EVERY} failing; "
                            "their errors, and the few entries around them, go through the counters as records")
        html_row, html_note = bench_html_export(folder / "report.html")
        report.rows.append(html_row)
        report.notes.append(html_note)
        list_rows, list_note = bench_list(folder / "many")
        report.rows += list_rows
        report.notes.append(list_note)
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sessions_note(status: dict[str, Any]) -> str:
    """What the trace run's session files cost the file system (``logd status``): on ext4
    without a journal, creating a file next to many just deleted ones (a test suite's, or the
    last run's 100,000 sessions) scans them, 0.5-1 ms a file where it is otherwise ~20 us."""
    spares = status.get("traces", {}).get("spare_files", {})
    made, used, missed = spares.get("made", 0), spares.get("used", 0), spares.get("missed", 0)
    each = f", {spares.get('seconds', 0) / made * 1e6:,.0f} us each" if made else ""
    entries = status.get("hot_path", {}).get("trace_entries", 0)
    return (f"{entries:,} records filed as quiet entries (hot_path.trace_entries); session files: "
            f"{used:,} named from spares made ahead by a thread ({made:,} made in {spares.get('seconds', 0):.2f} s "
            f"of its CPU{each}), {missed:,} created on the event loop")


# --- the HTML report of one big session (logd trace S --format html) ---

HTML_EVENTS = 10_000
_CYCLE = (("planner", "BeforeAgentRun", 0.00), ("planner", "AfterAgentRun", 0.40), ("researcher", "BeforeAgentRun", 0.41),
          ("researcher", "AfterAgentRun", 1.61), ("writer", "BeforeAgentRun", 1.62), ("writer", "AfterAgentRun", 2.52))


def make_session_records(events: int = HTML_EVENTS, seed_time: float = 1_790_000_000.0) -> list[dict]:
    """One AgenticGoKit session as stored: planner -> researcher -> writer, cycle after
    cycle, every seventh writer run failing first; ``events`` records in all."""
    out: list[dict] = []
    cycle = 0
    while len(out) < events:
        base = seed_time + cycle * 2.6
        for agent, hook, at in _CYCLE:
            if cycle % 7 == 0 and agent == "writer" and hook == "AfterAgentRun":
                out.append(_hook(base + 1.90, "writer", "AgentError", f"ev-{cycle}-writer", error="LLM timeout"))
                out.append(_hook(base + 1.91, "writer", "BeforeAgentRun", f"ev-{cycle}-retry", state={"retry": 1}))
                out.append(_hook(base + at, agent, hook, f"ev-{cycle}-retry", state={"summary": f"cycle {cycle}"},
                                 target_agent_id="planner", source_agent_id="writer"))
                continue
            out.append(_hook(base + at, agent, hook, f"ev-{cycle}-{agent}", state={"message": "Analyze this data",
                                                                                  "cycle": cycle}))
        cycle += 1
    return out[:events]


def _hook(t: float, agent: str, hook: str, event_id: str, **extra: object) -> dict:
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z",
            "type": "trace", "session_id": "bench-html", "event_id": event_id, "agent_id": agent, "hook": hook, **extra}


def bench_html_export(path: Path, events: int = HTML_EVENTS) -> tuple[Row, str]:
    """Build the session from its stored records, render the HTML report, write it: one row
    (events per second; MB/s of the page) and a note with its size."""
    from logd.traces.html import report
    from logd.traces.model import build_session

    records = make_session_records(events)
    start = time.perf_counter()
    session = build_session("bench-html", records)
    path.write_text(report(session), encoding="utf-8")
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    note = (f"html report of {len(session.events):,} events, {len(session.spans):,} spans: "
            f"{size / 1e6:.2f} MB in {seconds:.2f} s")
    return Row(f"html export, {len(session.events):,} events", len(session.events), seconds, size), note


# --- logd list and logd trace over many sessions (the session index) ---

LIST_SESSIONS = 100_000


def write_sessions(folder: Path, sessions: int = LIST_SESSIONS, seed_time: float = 1_790_000_000.0) -> int:
    """``sessions`` OTLP-shaped agent runs as the daemon stores them (one file per trace,
    through the trace store and its journal): an agent span naming its conversation, a
    chat span and a failing tool span. Returns the bytes written."""
    from logd.pipeline import encode
    from logd.traces.names import file_name
    from logd.traces.store import TraceStore

    store = TraceStore(folder, max_open=32)
    size = 0
    try:
        for n in range(sessions):
            trace = f"{n:032x}"
            t = seed_time + n

            def when(dt: float, t: float = t) -> str:
                return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + dt)) + f".{int(dt * 1e6) % 1_000_000:06d}Z"

            spans: list[dict[str, Any]] = [
                {"span_id": f"{n:012x}0002", "parent_id": f"{n:012x}0001", "started_at": when(0.1),
                 "ended_at": when(0.5), "span_data": {"type": "generation", "name": "chat", "model": "gpt-4o",
                                                     "usage": {"input_tokens": 812, "output_tokens": 40}}},
                {"span_id": f"{n:012x}0003", "parent_id": f"{n:012x}0001", "started_at": when(0.6),
                 "ended_at": when(0.7), "span_data": {"type": "function", "name": "lookup_order"},
                 "error": {"message": "order not found"}},
                {"span_id": f"{n:012x}0001", "parent_id": None, "started_at": when(0.0), "ended_at": when(1.0),
                 "span_data": {"type": "agent", "name": AGENTS[n % len(AGENTS)]}, "session_id": f"conv-{n:06d}"},
            ]
            data = b"".join(encode({"time": s["ended_at"], "level": "info", "message": "span", "trace_id": trace,
                                    "otel": {}, **s}) for s in spans)
            store.append(file_name(trace), data)
            size += len(data)
    finally:
        store.close()
    return size


def _timed(*args: str) -> tuple[float, float, int]:
    """(seconds, CPU seconds, peak RSS in KB) of one ``logd`` command."""
    import resource
    import subprocess
    import sys

    # the command's own peak RSS: VmHWM of its own memory (RUSAGE_CHILDREN's would be that of the
    # daemons the bench ran before, and Linux carries ru_maxrss across exec: the forked bench's size)
    run = ("import sys\nfrom logd.cli import main\nrc = main(sys.argv[1:])\n"
           "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')), file=sys.stderr)\n"
           "sys.exit(rc)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", run, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=600)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"logd {' '.join(args)} failed: {done.stderr.decode(errors='replace')[-300:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, int(done.stderr.split()[-1])


def bench_list(folder: Path, sessions: int = LIST_SESSIONS) -> tuple[list[Row], str]:
    """``logd list`` over ``sessions`` sessions: the first (which builds the session index
    from every file), then with the index current, then after 100 more sessions were
    written; and ``logd trace S`` of one of them."""
    size = write_sessions(folder, sessions)
    rows = []
    peaks = []
    for label, prepare in (("first, builds the index", None), ("index current", None),
                           ("100 new sessions since", lambda: write_sessions(folder, 100, 1_900_000_000.0))):
        if prepare is not None:
            prepare()
        seconds, cpu, peak = _timed("list", "--dir", str(folder))
        peaks.append(peak)
        rows.append(Row(f"logd list, {sessions:,} sessions ({label})", sessions, seconds, size, cpu))
    seconds, cpu, peak = _timed("trace", f"conv-{sessions // 2:06d}", "--dir", str(folder), "--analyze")
    rows.append(Row("logd trace S --analyze, among them", 1, seconds, 0, cpu))
    note = (f"logd list over {sessions:,} sessions ({size / 1e6:.0f} MB of session files): peak RSS "
            + ", ".join(f"{p / 1024:.0f} MB" for p in peaks) + f"; logd trace S {peak / 1024:.0f} MB")
    return rows, note
