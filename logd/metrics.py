"""What logd and its agents are doing, for Prometheus (``/metrics``) and ``logd status``.

- :class:`AgentMetrics` is the first pipeline step: it counts records by agent and
  level and collects agent run durations (``duration_ms`` fields, AgenticGoKit
  ``BeforeAgentRun``/``AfterAgentRun`` hook pairs, agent spans). It also holds the
  counts the other steps make (sampled, rate-limited, redacted), so they survive reloads.
- :func:`snapshot` gathers everything into one plain dict on the event loop: cheap
  (numbers only), consistent, and the single source for both ``/metrics`` and
  ``logd status``.
- :class:`MetricsServer` serves ``/metrics``, ``/health`` and ``/ready`` over HTTP on
  TCP or a Unix socket from its own threads: a slow scrape never blocks ingestion.
  Only taking the snapshot runs on the loop; formatting happens on the HTTP thread.

Every sink reports the same counters (:class:`logd.components.SinkStats`, read through
``Pipeline.sink_stats``); the trace store is one of them, as the pipeline's trace branch.
Shippers are read through their status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import os
import socket
import socketserver
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder

from logd import __version__
from logd.isolation import StepFailures
from logd.levels import ERROR_LEVELS, LEVELS
from logd.record import MAX_KEY_CHARS, Record, bounded_key
from logd.timestamps import epoch_seconds
from logd.usage import usage_families

if TYPE_CHECKING:
    from logd.pipeline import Pipeline
    from logd.sources.unix import SocketServer

OTHER_AGENTS = "_other"  # label for agents beyond max_agents: keeps the number of series bounded
NO_AGENT = "unknown"
# agent runs take from milliseconds (a cached tool call) to minutes (a long LLM chain)
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_MAX_OPEN_RUNS = 10_000  # BeforeAgentRun hooks waiting for their AfterAgentRun


_epoch = epoch_seconds


class AgentMetrics:
    """Pipeline step (first, before any filter): what the records say about their agents.

    One instance lives as long as the daemon, so counters never go back on reload.
    """

    TRACE_KEYS = frozenset({"hook", "span_data"})  # a record with one is looked at further (_trace_duration)

    def __init__(self, max_agents: int = 500, buckets: Iterable[float] = DURATION_BUCKETS) -> None:
        self.max_agents = max_agents
        self.buckets = tuple(buckets)
        self.records: dict[tuple[str, str], int] = {}  # (agent, level) -> records received
        # agent -> [count per bucket (not cumulative; the last is +Inf)..., sum of seconds]
        self.durations: dict[str, list[float]] = {}
        self.sampled: dict[str, int] = {}  # level -> records sampled out (sampling.Sampler)
        self.rate_limited: dict[str, int] = {}  # agent -> records suppressed (sampling.RateLimiter)
        self.redacted: dict[str, int] = {}  # rule ("key", "pattern") -> values redacted
        self._labels: dict[str, str] = {}
        self._open_runs: dict[tuple[str, str], float] = {}

    def label(self, agent: object) -> str:
        """The agent's label value: its name, until ``max_agents`` names are known."""
        name = agent if agent.__class__ is str else (NO_AGENT if agent is None else str(agent))
        if len(name) > MAX_KEY_CHARS:  # a label, and a key of every per-agent table: bounded (issue 18)
            name = bounded_key(name)
        known = self._labels.get(name)
        if known is None:
            known = name if len(self._labels) < self.max_agents else OTHER_AGENTS
            if known is not OTHER_AGENTS:
                self._labels[name] = known
        return known

    def __call__(self, records: list[Record]) -> list[Record]:
        # on every record: kept to local names, one tuple and a few dict operations
        counts, labels, label = self.records, self._labels, self.label
        durations, buckets = self.durations, self.buckets
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                agent = record.get("agent")
                name = labels.get(agent) if agent.__class__ is str else None
                if name is None:
                    name = label(agent)
                key = (name, record["level"])
                counts[key] = counts.get(key, 0) + 1
                ms = record.get("duration_ms")
                if ms is not None:
                    if (ms.__class__ is int or ms.__class__ is float) and ms >= 0:
                        row = durations.get(name)
                        if row is None:
                            row = durations[name] = [0] * (len(buckets) + 1) + [0.0]
                        seconds = ms / 1000
                        row[bisect_left(buckets, seconds)] += 1
                        row[-1] += seconds
                elif "hook" in record or "span_data" in record:
                    self._trace_duration(record, name)
            except Exception as exc:  # isolation (issue 18): counted once, flagged by the pipeline
                failed.append((record, exc))
        if failed:
            raise StepFailures(records, failed)
        return records

    def count_tally(self, rows: list[list[Any]]) -> None:
        """Counts the hot path (logd/hotpath.py) made per agent, in the order agents first
        appeared: ``[agent, records per level (rank order), per duration bucket, seconds]``,
        as :meth:`__call__` counts them record by record (the seconds are summed here, in
        order, so the float sum is the same)."""
        counts, durations = self.records, self.durations
        for agent, per_level, buckets, seconds in rows:
            name = self.label(agent)
            for level, n in zip(LEVELS, per_level, strict=True):
                if n:
                    key = (name, level)
                    counts[key] = counts.get(key, 0) + n
            if seconds:
                row = durations.get(name)
                if row is None:
                    row = durations[name] = [0] * (len(self.buckets) + 1) + [0.0]
                for i, n in enumerate(buckets):
                    row[i] += n
                total = row[-1]
                for s in seconds:
                    total += s
                row[-1] = total

    def observe_duration(self, agent: str, seconds: float) -> None:
        row = self.durations.get(agent)
        if row is None:
            row = self.durations[agent] = [0] * (len(self.buckets) + 1) + [0.0]
        row[bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def _trace_duration(self, record: Record, name: str) -> None:
        """Run durations from trace records: AgenticGoKit hook pairs and agent spans."""
        hook = record.get("hook")
        if hook == "BeforeAgentRun" or hook == "AfterAgentRun":
            agent = record.get("agent_id") or record.get("agent")
            key = (bounded_key(str(record.get("session_id"))), bounded_key(str(agent)))
            if hook == "BeforeAgentRun":
                if len(self._open_runs) >= _MAX_OPEN_RUNS:
                    self._open_runs.clear()  # runs that never ended: forget rather than grow
                started = _epoch(record.get("time"))
                if started is not None:
                    self._open_runs[key] = started
            else:
                started = self._open_runs.pop(key, None)
                ended = _epoch(record.get("time"))
                if started is not None and ended is not None and ended >= started:
                    self.observe_duration(self.label(agent), ended - started)
            return
        data = record.get("span_data")
        if isinstance(data, dict) and data.get("type") == "agent":
            start, end = _epoch(record.get("started_at")), _epoch(record.get("ended_at"))
            if start is not None and end is not None and end >= start:
                agent = data.get("name") if isinstance(data.get("name"), str) else record.get("agent")
                self.observe_duration(self.label(agent), end - start)


def snapshot(*, pipeline: Pipeline, server: SocketServer | None, agents: AgentMetrics, reloads: int,
             started: float, now: float) -> dict[str, Any]:
    """Every figure logd reports, as plain data (taken on the event loop: numbers only)."""
    stats = pipeline.stats
    sink_state = {}
    for name, sink in pipeline.sink_stats().items():
        sink_state[name] = {
            # records a disabled sink skipped (a console whose reader is gone) were not written
            "written": sink.sent_events,
            "dropped": sink.discarded_events,
            "errors": sink.errors,
            "writable": sink.writable,
            "pending_bytes": sink.buffer_bytes,
            "bytes_written": sink.sent_bytes,
            "rotations": sink.rotations,
            "compression_seconds": sink.compression_seconds,
            "retention_deleted": sink.retention_deleted,
            "rotation_stalls": sink.rotation_stalls,  # the writer's pause per rotation: how many measured
            "rotation_stall_ms": sink.rotation_stall_ms,  # and the latest few
        }
    listening = server is not None and server.listening
    per_agent: dict[str, dict[str, int]] = {}
    for (agent, level), n in agents.records.items():
        per_agent.setdefault(agent, {})[level] = n
    return {
        "version": __version__,
        "uptime_s": round(now - started, 3),
        "ready": listening and all(s["writable"] for s in sink_state.values()),
        "listening": listening,
        "paused": pipeline.paused,
        "received": stats.received,
        "received_bytes": server.bytes_received if server is not None else 0,
        "received_hot_path": stats.hot_path,
        "queue_depth": pipeline.queue_depth,
        "connections": len(server.connections) if server is not None else 0,
        "connections_refused": server.rejected if server is not None else 0,
        "connections_closed_idle": getattr(server, "closed_idle", 0),  # idle_timeout
        "ack_clients_dropped": getattr(server, "dropped_unread", 0),  # ack_timeout: acks left unread
        "reloads": reloads,
        "dropped": dict(stats.dropped),
        "record_errors": dict(getattr(stats, "step_errors", {})),  # records kept flagged, by failing step
        "sampled": dict(agents.sampled),
        "rate_limited": dict(agents.rate_limited),
        "redacted": dict(agents.redacted),
        "sinks": sink_state,
        "agents": per_agent,
        "durations": {agent: list(row) for agent, row in agents.durations.items()},
        "duration_buckets": list(agents.buckets),
    }


class LogdCollector:
    """prometheus-client collector over a snapshot function (called at every scrape)."""

    def __init__(self, take_snapshot: Callable[[], dict[str, Any]]) -> None:
        self.take_snapshot = take_snapshot

    def describe(self) -> list:
        return []  # nothing known ahead of a scrape; stops the registry calling collect() early

    def collect(self) -> Iterable:
        s = self.take_snapshot()
        yield InfoMetricFamily("logd", "logd build information", value={"version": s["version"]})
        yield GaugeMetricFamily("logd_ready", "1 when the socket listens and every sink is writable",
                                value=1 if s["ready"] else 0)
        yield GaugeMetricFamily("logd_paused", "1 while clients are paused (a sink is failing and holds records)",
                                value=1 if s["paused"] else 0)
        yield CounterMetricFamily("logd_records_received", "Records received from clients and logd itself",
                                  value=s["received"])
        yield CounterMetricFamily("logd_received_bytes", "Bytes read from client connections",
                                  value=s["received_bytes"])
        yield CounterMetricFamily("logd_records_hot_path", "Records received that took the compiled hot path",
                                  value=s["received_hot_path"])
        dropped = CounterMetricFamily("logd_records_dropped", "Records removed by the pipeline, by reason",
                                      labels=["reason"])
        for reason in sorted(set(s["dropped"]) | {"below_level", "sampled", "rate_limited"}):
            dropped.add_metric([reason], s["dropped"].get(reason, 0))
        yield dropped
        record_errors = CounterMetricFamily(
            "logd_record_errors", "Records a step could not handle, kept as flagged text (_error), by step",
            labels=["step"])
        for step, n in sorted(s.get("record_errors", {}).items()):
            record_errors.add_metric([step], n)
        yield record_errors
        yield GaugeMetricFamily("logd_queue_depth", "Records accepted and waiting for the pipeline",
                                value=s["queue_depth"])
        yield GaugeMetricFamily("logd_connections", "Open client connections", value=s["connections"])
        yield CounterMetricFamily("logd_connections_refused", "Connections refused at max_connections",
                                  value=s["connections_refused"])
        yield CounterMetricFamily("logd_connections_closed_idle", "Connections closed after idle_timeout",
                                  value=s.get("connections_closed_idle", 0))
        yield CounterMetricFamily("logd_ack_clients_dropped", "Ack clients dropped for leaving acks unread",
                                  value=s.get("ack_clients_dropped", 0))
        yield CounterMetricFamily("logd_config_reloads", "Configuration reloads applied", value=s["reloads"])

        written = CounterMetricFamily("logd_records_written", "Records handed to each sink", labels=["sink"])
        errors = CounterMetricFamily("logd_sink_errors", "Write failures per sink (each is retried)", labels=["sink"])
        writable = GaugeMetricFamily("logd_sink_writable", "1 when the sink is taking records", labels=["sink"])
        pending = GaugeMetricFamily("logd_sink_pending_bytes", "Bytes a failing sink holds for retry", labels=["sink"])
        written_bytes = CounterMetricFamily("logd_written_bytes", "Bytes written per sink", labels=["sink"])
        rotations = CounterMetricFamily("logd_rotations", "Log file rotations", labels=["sink"])
        compression = CounterMetricFamily("logd_compression_seconds", "Seconds spent compressing rotated files",
                                          labels=["sink"])
        retention = CounterMetricFamily("logd_retention_deleted_files", "Rotated files removed by retention",
                                        labels=["sink"])
        for name, sink in s["sinks"].items():
            written.add_metric([name], sink["written"])
            errors.add_metric([name], sink["errors"])
            writable.add_metric([name], 1 if sink["writable"] else 0)
            pending.add_metric([name], sink["pending_bytes"])
            if sink["bytes_written"] is not None:
                written_bytes.add_metric([name], sink["bytes_written"])
            if sink["rotations"] is not None:
                rotations.add_metric([name], sink["rotations"])
            if sink["compression_seconds"] is not None:
                compression.add_metric([name], sink["compression_seconds"])
            if sink["retention_deleted"] is not None:
                retention.add_metric([name], sink["retention_deleted"])
        yield from (written, errors, writable, pending, written_bytes, rotations, compression, retention)
        yield from _ship_families(s.get("ship", {}))

        sampled = CounterMetricFamily("logd_records_sampled", "Records sampled out, by level", labels=["level"])
        for level, n in sorted(s["sampled"].items()):
            sampled.add_metric([level], n)
        limited = CounterMetricFamily("logd_records_rate_limited", "Records suppressed by the per-agent rate limit",
                                      labels=["agent"])
        for agent, n in sorted(s["rate_limited"].items()):
            limited.add_metric([agent], n)
        redacted = CounterMetricFamily("logd_redactions", "Values redacted, by rule", labels=["rule"])
        for rule in ("key", "pattern"):
            redacted.add_metric([rule], s["redacted"].get(rule, 0))
        yield from (sampled, limited, redacted)

        by_level = CounterMetricFamily("logd_agent_records", "Records received, by agent and level",
                                       labels=["agent", "level"])
        agent_errors = CounterMetricFamily("logd_agent_errors", "Records at error level or above, by agent",
                                           labels=["agent"])
        for agent, levels in sorted(s["agents"].items()):
            for level, n in sorted(levels.items()):
                by_level.add_metric([agent, level], n)
            agent_errors.add_metric([agent], sum(levels.get(level, 0) for level in ERROR_LEVELS))
        yield from (by_level, agent_errors)

        runs = HistogramMetricFamily("logd_agent_run_duration_seconds",
                                     "Agent run durations (duration_ms fields, agent run hooks, agent spans)",
                                     labels=["agent"])
        bounds = [_bound(b) for b in s["duration_buckets"]] + ["+Inf"]
        for agent, row in sorted(s["durations"].items()):
            cumulative, total = [], 0
            for bound, n in zip(bounds, row[:-1], strict=True):  # a count per bucket and +Inf, then the sum
                total += int(n)
                cumulative.append((bound, total))
            runs.add_metric([agent], cumulative, sum_value=row[-1])
        yield runs
        yield from usage_families(s.get("usage"))  # tokens, tool calls, model latency (logd.usage)
        yield from _otlp_families(s.get("otlp") or {})


def _otlp_families(otlp: dict[str, Any]) -> Iterable:
    """The OTLP/HTTP receiver (``[logging.otlp]``), from its own stats; nothing while it is off."""
    if "url" not in otlp:
        return ()
    received = CounterMetricFamily("logd_otlp_received", "Spans and log records taken from OTLP requests",
                                   labels=["signal"])
    rejected = CounterMetricFamily("logd_otlp_rejected", "Spans and log records refused (partial success)",
                                   labels=["signal"])
    for signal in ("spans", "log_records"):
        received.add_metric([signal], otlp.get("received", {}).get(signal, 0))
        rejected.add_metric([signal], otlp.get("rejected", {}).get(signal, 0))
    responses = CounterMetricFamily("logd_otlp_responses", "HTTP answers of the ingest listener, by status code",
                                    labels=["code"])
    for code, n in sorted(otlp.get("responses", {}).items()):
        responses.add_metric([code], n)
    malformed = CounterMetricFamily("logd_otlp_malformed_requests", "OTLP requests refused as malformed (400)",
                                    value=otlp.get("malformed", 0))
    refused = CounterMetricFamily("logd_otlp_connections_refused", "Ingest connections refused at max_connections",
                                  value=otlp.get("connections_refused", 0))
    inflight = GaugeMetricFamily("logd_otlp_inflight_bytes", "Memory requests in flight hold (max_inflight_bytes)",
                                 value=otlp.get("inflight_bytes", 0))
    over = CounterMetricFamily("logd_otlp_over_budget_requests", "Requests answered 503 for max_inflight_bytes",
                               value=otlp.get("over_budget", 0))
    late = CounterMetricFamily("logd_otlp_timed_out_requests", "Requests closed at request_timeout (408)",
                               value=otlp.get("timed_out", 0))
    return (received, rejected, responses, malformed, refused, inflight, over, late)


def _ship_families(targets: dict[str, dict[str, Any]]) -> Iterable:
    """Per ship target (``[[logging.ship]]``), from logd.ship's own status."""
    lag_records = GaugeMetricFamily("logd_ship_lag_records", "Records in the log files not yet shipped",
                                    labels=["target"])
    lag_bytes = GaugeMetricFamily("logd_ship_lag_bytes", "Bytes of the log files not yet shipped", labels=["target"])
    failing = GaugeMetricFamily("logd_ship_failing", "1 while the target is being retried", labels=["target"])
    shipped = CounterMetricFamily("logd_ship_delivered_records", "Records the target accepted", labels=["target"])
    dead = CounterMetricFamily("logd_ship_dead_lettered_records", "Records the target refused, kept as dead letters",
                               labels=["target"])
    retries = CounterMetricFamily("logd_ship_retries", "Failed attempts, each retried", labels=["target"])
    full = GaugeMetricFamily("logd_ship_remote_full", "1 while the remote refuses records for its limits "
                             "(a full stream): records wait in the log", labels=["target"])
    duplicates = CounterMetricFamily("logd_ship_duplicate_records", "Records the remote acked as already stored "
                                     "(a resend it de-duplicated); counted in delivered too", labels=["target"])
    for name, t in sorted(targets.items()):
        if t.get("lag_records", -1) >= 0:  # -1: the files could not be read just now
            lag_records.add_metric([name], t["lag_records"])
            lag_bytes.add_metric([name], t["lag_bytes"])
        failing.add_metric([name], 1 if t.get("state") in ("retrying", "held") else 0)
        full.add_metric([name], 1 if t.get("remote_full") else 0)
        duplicates.add_metric([name], t.get("duplicates", 0))
        shipped.add_metric([name], t.get("delivered", 0))
        dead.add_metric([name], t.get("dead_lettered", 0))
        retries.add_metric([name], t.get("retries", 0))
    return (lag_records, lag_bytes, failing, shipped, dead, retries, full, duplicates)


def _bound(value: float) -> str:
    return repr(float(value))


def status_view(s: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as ``logd status`` shows it: same figures, durations summarised."""
    view = {k: v for k, v in s.items() if k not in ("durations", "duration_buckets", "version")}
    view["sinks"] = {name: {k: v for k, v in figures.items() if v is not None}
                     for name, figures in s["sinks"].items()}
    view["agents"] = {}
    for agent, levels in sorted(s["agents"].items()):
        entry: dict[str, Any] = {"records": dict(sorted(levels.items())),
                                 "errors": sum(levels.get(level, 0) for level in ERROR_LEVELS)}
        row = s["durations"].get(agent)
        if row:
            count = int(sum(row[:-1]))
            entry["runs"] = count
            entry["run_seconds_mean"] = round(row[-1] / count, 3) if count else 0
        if agent in s["rate_limited"]:
            entry["rate_limited"] = s["rate_limited"][agent]
        view["agents"][agent] = entry
    return view


# --- the HTTP side ---

class ListenError(Exception):
    """The metrics address cannot be used; the message says which and why."""


def parse_listen(listen: str) -> tuple[str, int] | Path:
    """``"host:port"`` / ``"[v6]:port"`` -> (host, port); ``"unix:/path"`` -> the path."""
    if listen.startswith("unix:"):
        return Path(listen[5:])
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServerMixin
    protocol_version = "HTTP/1.0"
    timeout = 10  # seconds: a scraper that stalls mid-request gives up its thread

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        if path == "/metrics":
            try:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body = encoder(owner.registry)
            except _LoopUnresponsive as exc:
                self._reply(503, f"logd: {exc}\n".encode())
                return
            self._reply(200, body, content_type)
        elif path == "/health":
            try:
                owner.take_snapshot()
            except _LoopUnresponsive as exc:
                self._reply(503, f"unhealthy: {exc}\n".encode())
                return
            self._reply(200, b"ok\n")
        elif path == "/ready":
            try:
                s = owner.take_snapshot()
            except _LoopUnresponsive as exc:
                self._reply(503, f"not ready: {exc}\n".encode())
                return
            if s["ready"]:
                self._reply(200, b"ready\n")
            else:
                why = [] if s["listening"] else ["the socket is not listening"]
                why += [f"sink {n} is not writable" for n, v in s["sinks"].items() if not v["writable"]]
                self._reply(503, ("not ready: " + "; ".join(why) + "\n").encode())
        else:
            self._reply(404, b"not found: try /metrics, /health or /ready\n")

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds are not worth a log line


class _HTTPServerMixin(socketserver.BaseServer):
    """Mixed into both servers: the handler finds the MetricsServer it serves for as ``owner``."""

    owner: MetricsServer
    daemon_threads = True  # a stuck scraper never holds up shutdown


class _TCPServer(_HTTPServerMixin, http.server.ThreadingHTTPServer):
    pass


class _TCP6Server(_TCPServer):
    address_family = socket.AF_INET6


class _UnixServer(_HTTPServerMixin, socketserver.ThreadingUnixStreamServer):
    pass


class _LoopUnresponsive(Exception):
    pass


class MetricsServer:
    """``/metrics``, ``/health``, ``/ready`` on threads; figures come from ``snapshot_on_loop``."""

    def __init__(self, listen: str, snapshot_on_loop: Callable[[], dict[str, Any]],
                 loop: asyncio.AbstractEventLoop, *, timeout: float = 5.0, mode: int = 0o660,
                 ship_status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.listen = listen
        self.address = parse_listen(listen)
        self._snapshot_on_loop = snapshot_on_loop
        # shippers' figures read their files (lag), so they are taken here, off the loop
        self._ship_status = ship_status
        self.loop = loop
        self.timeout = timeout
        self.mode = mode
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LogdCollector(self.scrape_snapshot))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._server: _HTTPServerMixin | None = None
        self._thread: threading.Thread | None = None

    def take_snapshot(self) -> dict[str, Any]:
        """Called on an HTTP thread: the snapshot is taken on the event loop, between batches."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

        def take() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self._snapshot_on_loop())
                except Exception as exc:  # a bug here must not kill the loop
                    future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(take)
            return future.result(self.timeout)
        except RuntimeError:
            raise _LoopUnresponsive("logd is shutting down") from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise _LoopUnresponsive(f"the event loop did not answer within {self.timeout:g}s") from None

    def scrape_snapshot(self) -> dict[str, Any]:
        s = self.take_snapshot()
        s["ship"] = self._ship_status() if self._ship_status is not None else {}
        return s

    def start(self) -> None:
        """Bind and serve; raises :class:`ListenError` when the address cannot be used."""
        address = self.address
        try:
            if isinstance(address, Path):
                self._server = self._bind_unix(address)
            else:
                cls = _TCP6Server if ":" in address[0] else _TCPServer
                self._server = cls(address, _Handler)
        except OSError as exc:
            raise ListenError(f"cannot serve metrics on {self.listen}: {exc.strerror or exc}") from None
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="logd-metrics", daemon=True)
        self._thread.start()

    def _bind_unix(self, path: Path) -> _UnixServer:
        if path.exists() or path.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(os.fspath(path))
                raise OSError(f"another process is serving on {path}")
            except (ConnectionRefusedError, FileNotFoundError):
                if not path.is_socket():
                    raise OSError(f"{path} exists and is not a socket") from None
                path.unlink()  # left behind by a logd that did not exit cleanly
            finally:
                probe.close()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        old_umask = os.umask(0o177)
        try:
            server = _UnixServer(os.fspath(path), _Handler)
        finally:
            os.umask(old_umask)
        os.chmod(path, self.mode)
        return server

    @property
    def url(self) -> str:
        """Where it serves, with the real port when 0 was asked for."""
        if self._server is None:
            return self.listen
        if isinstance(self.address, Path):
            return f"unix:{self.address}"
        address = self._server.server_address
        assert isinstance(address, tuple)  # a TCP server's (host, port, ...); a Unix one's is its path
        host, port = address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if isinstance(self.address, Path):
            try:
                self.address.unlink()
            except OSError:
                pass
        self._server = None
