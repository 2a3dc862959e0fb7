"""What logd is doing, for Prometheus (``/metrics``) and ``logd status``.

- :func:`snapshot` gathers everything into one plain dict on the event loop: cheap
  (numbers only), consistent, and the single source for both ``/metrics`` and
  ``logd status``. It walks the registry: every sink's :class:`~logd.components.SinkStats`
  (one set of names; each counter declares its Prometheus family), and each component's
  own figures and families (``Spec.figures``, ``Spec.families``).
- :class:`MetricsServer` serves ``/metrics``, ``/health`` and ``/ready`` over HTTP on
  TCP or a Unix socket from its own threads: a slow scrape never blocks ingestion.
  Only taking the snapshot runs on the loop; formatting happens on the HTTP thread.
  :class:`MetricsService` is that server as the daemon runs it (``[logging.metrics]``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import os
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder

from logd import __version__, registry
from logd.components import Tables, stats_fields
from logd.events import Events
from logd.settings import Invalid, file_mode, integer, relative_to, setting, shown_mode, world_writable
from logd.spec import SERVICE, Context, Spec

if TYPE_CHECKING:
    from logd.pipeline import Pipeline


def _listen(value: Any) -> str:
    """``host:port`` (port 0-65535; ``[v6]:port``) or ``unix:PATH`` / a path with a slash."""
    if isinstance(value, str):
        if value == "":
            return value
        if value.startswith("unix:") and len(value) > 5:
            return value
        if "/" in value:
            return "unix:" + value
        m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]*):(\d{1,5})", value)
        if m and int(m.group(2)) <= 65535:
            return value
    raise Invalid('"host:port" (e.g. "127.0.0.1:9464"), "unix:/path/metrics.sock", or "" for no server')


def _unix_relative(value: str, folder: Path) -> str:
    return "unix:" + str(relative_to(folder, value[5:])) if value.startswith("unix:") else value


@dataclass(frozen=True)
class MetricsSettings:
    """``[logging.metrics]``: the /metrics, /health, /ready server (off while ``listen`` is empty)."""

    listen: str = setting("", doc='"host:port", "[::1]:port", or "unix:/path"', check=_listen,
                          resolve=_unix_relative)
    mode: int = setting(0o660, doc="of a Unix socket", check=file_mode, shown=shown_mode)
    max_agents: int = setting(500, doc='distinct agent label values; further agents count as "_other"',
                              check=integer(1, "a whole number >= 1"))


def snapshot(*, pipeline: Pipeline, parts: list[tuple[Spec, Any]], reloads: int, started: float,
             now: float) -> dict[str, Any]:
    """Every figure logd reports, as plain data (taken on the event loop: numbers only): the
    pipeline's, every sink's :class:`~logd.components.SinkStats`, and each component's own
    figures (``Spec.figures``) under the keys it names."""
    stats = pipeline.stats
    s: dict[str, Any] = {
        "version": __version__,
        "uptime_s": round(now - started, 3),
        "paused": pipeline.paused,
        "received": stats.received,
        "received_hot_path": stats.hot_path,
        "queue_depth": pipeline.queue_depth,
        "reloads": reloads,
        "dropped": dict(stats.dropped),
        "record_errors": dict(stats.step_errors),  # records kept flagged, by failing step
        "sinks": {name: sink.as_dict() for name, sink in pipeline.sink_stats().items()},
    }
    for spec, part in parts:
        if spec.figures is not None and not spec.figures_in_thread:
            s.update(spec.figures(part))
    s["ready"] = s.get("listening", False) and all(sink["writable"] for sink in s["sinks"].values())
    return s


def status_view(s: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as ``logd status`` shows it: the same figures under the same names, a counter
    that does not apply to a sink left out, each component's part as its spec shows it."""
    view = {k: v for k, v in s.items() if k != "version"}
    view["sinks"] = {name: {k: v for k, v in figures.items() if v is not None} for name, figures in s["sinks"].items()}
    for spec in registry.specs():
        if spec.view is not None:
            spec.view(s, view)
    return view


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
        yield CounterMetricFamily("logd_config_reloads", "Configuration reloads applied", value=s["reloads"])
        yield from sink_families(s["sinks"])
        for spec in registry.specs():
            if spec.families is not None:
                yield from spec.families(s)


def histogram(name: str, help: str, label: str | None, rows: dict[str, list[float]],
              buckets: Iterable[float]) -> HistogramMetricFamily:
    """A histogram family from rows of ``[count per bucket (not cumulative; the last is +Inf)...,
    sum]`` by label value, as the counting steps keep them (``label`` None: one row, under "")."""
    family = HistogramMetricFamily(name, help, labels=[label] if label is not None else [])
    bounds = [repr(float(b)) for b in buckets] + ["+Inf"]
    for value, row in sorted(rows.items()):
        cumulative, total = [], 0
        for bound, n in zip(bounds, row[:-1], strict=True):
            total += int(n)
            cumulative.append((bound, total))
        family.add_metric([value] if label is not None else [], cumulative, sum_value=row[-1])
    return family


def sink_families(sinks: dict[str, dict[str, Any]]) -> Iterable[Any]:
    """One family per counter of :class:`SinkStats` that declares one, labelled by sink."""
    for f in stats_fields():
        kind = GaugeMetricFamily if f.metadata["type"] == "gauge" else CounterMetricFamily
        family = kind(f.metadata["metric"], f.metadata["help"], labels=["sink"])
        for name, figures in sinks.items():
            if figures[f.name] is not None:
                family.add_metric([name], float(figures[f.name]))
        yield family


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
                 slow_figures: Callable[[], dict[str, Any]] | None = None) -> None:
        self.listen = listen
        self.address = parse_listen(listen)
        self._snapshot_on_loop = snapshot_on_loop
        # shippers' figures read their files (lag), so they are taken here, off the loop
        self._slow_figures = slow_figures
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
        s.update(self._slow_figures() if self._slow_figures is not None else {})
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


class MetricsService:
    """The server as the daemon runs it: a busy address is reported, and logging goes on."""

    def __init__(self, settings: MetricsSettings, figures: Callable[[], dict[str, Any]],
                 slow_figures: Callable[[], dict[str, Any]], events: Events) -> None:
        self.settings = settings
        self.figures, self.slow_figures = figures, slow_figures
        self.events = events
        self.server: MetricsServer | None = None
        self.error: str | None = None

    async def start(self) -> None:
        self.server, self.error = None, None
        if not self.settings.listen:
            return
        server = MetricsServer(self.settings.listen, self.figures, asyncio.get_running_loop(),
                               mode=self.settings.mode, slow_figures=self.slow_figures)
        try:
            server.start()
        except ListenError as exc:
            self.error = f"not served: {exc}"
            self.events.emit("error", "metrics server not started; logging goes on without it",
                             event="metrics", listen=self.settings.listen, error=str(exc))
            return
        self.server = server
        self.events.emit("info", f"metrics served on {server.url}", event="metrics", url=server.url)

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await asyncio.to_thread(server.stop)  # waits for the HTTP thread, not the loop

    async def reload(self, config: Tables) -> None:
        new = config.of(MetricsSettings)
        old, self.settings = self.settings, new
        if (old.listen, old.mode) != (new.listen, new.mode):
            await self.stop()
            await self.start()

    def stats(self) -> dict[str, Any]:
        """Where it serves, for ``logd status``."""
        return {"metrics": self.server.url if self.server is not None else (self.error or "off")}


def _build(settings: MetricsSettings, ctx: Context) -> MetricsService:
    assert ctx.figures is not None and ctx.slow_figures is not None  # the daemon gives both
    return MetricsService(settings, ctx.figures, ctx.slow_figures, ctx.events)


SPEC = Spec(SERVICE, "metrics", _build, MetricsSettings, table="metrics", check=world_writable,
            figures=lambda service: service.stats())
