"""``logd run``: build the components from a Config, serve the socket, shut down in order.

Start-up is written once, in :func:`serve`: each part is made whole, started, and its
clean-up entered into one :class:`contextlib.AsyncExitStack`, so shut-down is the stack
unwinding in reverse (SIGTERM / SIGINT): stop accepting -> read what clients already
sent -> process it -> flush and close sinks -> remove the socket -> exit 0. A start-up
that fails half-way unwinds the same way.
Reload (file change, SIGHUP, ``logd reload``): re-read the config and swap steps and
sinks between two batches; an invalid config is refused and the last good one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from logd import __version__, hotpath, systemd
from logd.components import Pressure, Sink, Step
from logd.config import Config, ConfigError, MetricsSettings, changes, load_config, traces_dir
from logd.control import ControlServer, control_path
from logd.events import Events, write_stderr
from logd.hotpath import HotPath
from logd.malloc import tune_malloc
from logd.metrics import AgentMetrics, ListenError, MetricsServer, snapshot, status_view
from logd.pipeline import Branch, Pipeline, level_filter
from logd.reload import ConfigWatcher
from logd.rotation import OnDelete, RotationPolicy
from logd.ship import ShipManager
from logd.ship.checkpoint import CheckpointError
from logd.ship.spool import SpoolSink, spool_path
from logd.sinks.console import ConsoleSink
from logd.sinks.file import FileSink
from logd.sources.ingest import HttpIngest
from logd.sources.unix import SocketServer, StartupError, create_listener
from logd.steps.redact import Redactor
from logd.steps.sampling import RateLimiter, Sampler
from logd.traces.sink import TraceSink, trace_branch
from logd.usage import UsageMetrics, usage_view

# --- building: config -> components (no socket, no event loop needed) ---


def build_sinks(config: Config, events: Events, *, clock: Callable[[], float] = time.time,
                on_delete: OnDelete | None = None) -> list[Sink]:
    """The config's sinks, not yet opened. ``on_delete``: retention asks the shippers first."""
    sinks: list[Sink] = []
    if config.console_enabled:
        sinks.append(ConsoleSink(sys.stdout.buffer, config.format, events=events))
    if config.file is not None:
        sinks.append(FileSink(config.file, RotationPolicy.from_config(config), clock=clock, events=events,
                              on_delete=on_delete))
    elif config.ship:  # shippers read files: without a log file they read the spool
        sinks.append(SpoolSink(spool_path(config.ship_state_dir), max_bytes=config.max_size_bytes, events=events))
    return sinks


def build_steps(config: Config, agents: AgentMetrics | None = None,
                clock: Callable[[], float] = time.time, usage: UsageMetrics | None = None) -> list[Step]:
    """Redact -> count by agent (and usage: tokens, tool calls, model latency) -> level filter ->
    sample -> rate-limit. ``agents`` and ``usage`` hold counts that outlive reloads. Redaction
    comes first, before any sink (shippers and trace files included) and before the counters,
    whose names and last errors ``logd status``, ``logd top`` and ``/metrics`` show."""
    agents = agents if agents is not None else AgentMetrics(config.metrics.max_agents)
    steps: list[Step] = []
    redactor = build_redactor(config, agents.redacted)
    if redactor is not None:
        steps.append(redactor)
    steps += [agents] + ([usage] if usage is not None else []) + [level_filter(config.level)]
    sampling = config.sampling
    if sampling.enabled:
        steps.append(Sampler(initial=sampling.initial, thereafter=sampling.thereafter, tick=sampling.tick,
                             max_level=sampling.max_level, clock=clock, counts=agents.sampled))
    if sampling.burst > 0:
        steps.append(RateLimiter(burst=sampling.burst, interval=sampling.interval, clock=clock,
                                 counts=agents.rate_limited, label=agents.label))
    return steps


def build_redactor(config: Config, counts: dict[str, int] | None = None) -> Redactor | None:
    """``[logging.redact]`` as a step (None when off); ``counts``: where it counts what it redacted."""
    redact = config.redact
    if not redact.enabled:
        return None
    return Redactor(redact.keys, redact.patterns, redact.replacement, counts=counts)


@dataclass
class Components:
    """What one config makes: the steps, the sinks and the trace branch, built, not opened."""

    steps: list[Step]
    sinks: list[Sink]
    traces: TraceSink
    branch: Branch
    hot: HotPath | None = None  # the compiled path for these steps (None: every line through Python)

    def open(self) -> None:
        """Open every sink, or close those opened and raise OSError (a bad path fails here)."""
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open()
                opened.append(sink)
        except OSError:
            for sink in opened:
                try:
                    sink.close()
                except OSError:
                    pass
            raise


def build(config: Config, events: Events, *, agents: AgentMetrics | None = None,
          clock: Callable[[], float] = time.time, on_delete: OnDelete | None = None,
          traces: TraceSink | None = None, usage: UsageMetrics | None = None) -> Components:
    """Every component a config asks for. ``traces``: the running trace store, kept when
    the new config leaves its folder and settings alone (a reload)."""
    steps = build_steps(config, agents, clock, usage)
    if (traces is None or traces.store.folder != traces_dir(config)
            or traces.store.max_age_days != config.traces.max_age):
        traces = TraceSink(traces_dir(config), max_age_days=config.traces.max_age, clock=clock, events=events)
    # the fork stands after redaction and the counters, before the level filter: see trace_branch
    at = next(i for i, step in enumerate(steps) if getattr(step, "drop_reason", None) == "below_level")
    branch = trace_branch(traces, at=at)
    return Components(steps, build_sinks(config, events, clock=clock, on_delete=on_delete), traces, branch,
                      hotpath.build(steps))


def sink_open_error(exc: OSError) -> str:
    return f"cannot open {exc.filename or 'a sink'}: {exc.strerror or exc}"


# --- running ---


async def serve(config: Config, clock: Callable[[], float] = time.time) -> int:
    """Run until SIGTERM/SIGINT: start every part in order, then unwind them in reverse."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # before the socket exists: a stop that arrives while starting still drains what
    # clients sent; a HUP or USR1 that early is ignored rather than fatal
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        loop.add_signal_handler(sig, lambda: None)
    events = Events(clock)
    async with contextlib.AsyncExitStack() as stack:
        daemon = await Daemon.start(config, events, stack, stopping, clock)
        loop.add_signal_handler(signal.SIGHUP, daemon.on_sighup)
        loop.add_signal_handler(signal.SIGUSR1, lambda: daemon.rotate_files("SIGUSR1"))
        systemd.notify("READY=1", f"STATUS=listening on {daemon.socket_path}", f"MAINPID={os.getpid()}")
        await stopping.wait()
        systemd.notify("STOPPING=1", "STATUS=draining clients")
    return 1 if daemon.pipeline.lost_at_shutdown else 0  # records accepted and not written: say so


class Daemon:
    """One running logd: its pipeline, socket source, control socket, shippers and metrics.

    Made by :meth:`start`, which builds and starts every part; the parts' clean-up is
    on the stack ``start`` was given.
    """

    def __init__(self, config: Config, events: Events, pipeline: Pipeline, traces: TraceSink,
                 server: SocketServer, ship: ShipManager, agents: AgentMetrics, usage: UsageMetrics,
                 stopping: asyncio.Event, clock: Callable[[], float]) -> None:
        self.config = config
        self.events = events
        self.pipeline = pipeline
        self.traces = traces
        self.server = server
        self.ship = ship
        self.agents = agents  # counts that survive reloads
        self.usage = usage  # tokens, tool calls, model latency; survive reloads too
        self.stopping = stopping
        self.clock = clock
        self.started = clock()
        self.socket_path = server.path
        self.reloads = 0
        self.running = False  # set once started: a start-up that fails half-way writes no "logd stopped"
        self.aborted = 0  # connections still open at the shut-down deadline
        self.metrics: MetricsServer | None = None  # optional: [logging.metrics] listen
        self.metrics_error: str | None = None
        try:
            self.control = ControlServer(control_path(self.socket_path), group=config.socket.control_group)
        except ValueError as exc:  # a control_group that does not exist
            raise StartupError(str(exc)) from None
        self.control.register("ping", self._ping, read_only=True)
        self.control.register("status", self._status, read_only=True)
        self.control.register("top", self._top, read_only=True)
        self.control.register("config", self._config_command, read_only=True)
        self.ingest = HttpIngest(config.otlp, pipeline, events)  # [logging.otlp]: OTLP/HTTP and /v1/traces/ingest
        self.control.register("reload", self._reload_command)
        self.control.register("rotate", self._rotate_command)
        # called as hook(old, new) after a reload was applied; components that live
        # outside the pipeline (metrics server, shippers) re-read their settings here
        self.reload_hooks: list[Callable[[Config, Config], Awaitable[None]]] = [self._ship_reload,
                                                                                 self._metrics_reload,
                                                                                 self._ingest_reload]
        self._reload_lock = asyncio.Lock()

    @classmethod
    async def start(cls, config: Config, events: Events, stack: contextlib.AsyncExitStack,
                    stopping: asyncio.Event, clock: Callable[[], float] = time.time) -> Daemon:
        """Start every part in order; each one's clean-up goes on ``stack`` as soon as it runs."""
        loop = asyncio.get_running_loop()
        activated = systemd.activated_listener()  # systemd keeps this socket open across restarts
        listener = activated or create_listener(config.socket)  # raises StartupError before any output
        socket_path = Path(listener.getsockname()) if activated is not None else config.socket.path
        stack.callback(_remove_socket, socket_path, os.stat(socket_path).st_ino, activated is None)
        stack.callback(listener.close)

        agents = AgentMetrics(config.metrics.max_agents)
        usage = UsageMetrics(agents.label)
        ship = ShipManager(events, ingested=lambda: pipeline.stats.received)
        parts = build(config, events, agents=agents, clock=clock, on_delete=ship.before_delete, usage=usage)
        try:
            parts.open()
        except OSError as exc:
            raise StartupError(sink_open_error(exc)) from None
        parts.traces.open()
        events.redact_with(build_redactor(config))  # its own: stderr lines, on any thread
        pressure = Pressure()
        pipeline = Pipeline(parts.steps, parts.sinks, events=events, branch=parts.branch, on_pressure=pressure,
                            clock=clock, hot=parts.hot)
        events.connect(pipeline.put, loop)
        server = SocketServer(listener, config.socket, pipeline, events=events, pressure=pressure,
                              path=socket_path, clock=clock)
        daemon = cls(config, events, pipeline, parts.traces, server, ship, agents, usage, stopping, clock)
        stack.callback(daemon._close_pipeline)

        try:
            ship.start(config)
        except (OSError, CheckpointError) as exc:
            raise StartupError(f"cannot start shipping: {exc}") from None
        stack.push_async_callback(daemon._stop_shipping)
        await server.start()
        stack.push_async_callback(daemon._stop_server)
        if config.source is not None:
            def changed() -> None:
                loop.create_task(daemon.reload("config file changed"))

            watcher = ConfigWatcher(config.source, loop, changed, loaded=config.digest)
            watcher.start()
            stack.callback(watcher.stop)
        await daemon.control.start()
        stack.push_async_callback(daemon.control.stop)
        await daemon.ingest.start()  # a busy port is reported, never fatal
        stack.push_async_callback(daemon._stop_ingest)
        daemon._start_metrics(config.metrics)
        stack.push_async_callback(daemon._stop_metrics)
        for task in (daemon._rate_limit_reporter(), daemon._file_housekeeping(), daemon._watchdog()):
            stack.callback(loop.create_task(task).cancel)
        if config.file_only and config.file is None:
            events.emit("warn", "file_only is set but no file is configured; logging to the console",
                        config=str(config.source))
        events.emit("info", "logd started", event="start", version=__version__,
                    socket=str(socket_path), socket_activated=activated is not None,
                    config=str(config.source or "<embedded defaults>"),
                    min_level=config.level, sinks=[s.name for s in pipeline.sinks])
        for warning in config.warnings:  # accepted, but probably not meant (a misspelt [logging])
            events.emit("warn", warning, config=str(config.source))
        daemon.running = True
        return daemon

    # --- shut-down steps (run by the stack, in reverse order of start) ---

    async def _stop_server(self) -> None:
        self.aborted = await self.server.stop()

    async def _stop_shipping(self) -> None:
        if self.ship.shippers:
            self.pipeline.drain()  # what clients sent is in the file before the shippers' last look
            await asyncio.to_thread(self.ship.stop)

    def _close_pipeline(self) -> None:
        if self.running:
            self._report_rate_limits(final=True)
            stats = self.pipeline.stats
            self.events.emit("info", "logd stopped", event="stop", received=stats.received,
                             filtered=stats.filtered, connections_aborted=self.aborted)
        self.pipeline.close()  # the trace branch's sink too, after its last batch

    # --- HTTP ingest (OTLP/HTTP receiver, OpenAI Agents SDK exporter) ---

    async def _stop_ingest(self) -> None:
        await self.ingest.stop()  # requests in flight finish; their records are in the pipeline

    async def _ingest_reload(self, old: Config, new: Config) -> None:
        if old.otlp != new.otlp:
            await self.ingest.stop()
            self.ingest = HttpIngest(new.otlp, self.pipeline, self.events)
            await self.ingest.start()
        else:
            self.ingest.reload_tokens()

    # --- control commands ---

    async def _ping(self, request: dict) -> dict:
        return {"pid": os.getpid(), "version": __version__}

    async def _status(self, request: dict) -> dict:
        """``logd status``: the daemon's settings plus the same figures ``/metrics`` serves."""
        reply = await self._base_status(request)
        view = status_view(snapshot_of(self))
        for name, figures in view.pop("sinks").items():
            reply.setdefault("sinks", {}).setdefault(name, {}).update(figures)
        reply.update(view)
        reply["metrics"] = self.metrics.url if self.metrics is not None else (self.metrics_error or "off")
        reply["usage"] = usage_view(self.usage.snapshot())
        return reply

    async def _top(self, request: dict) -> dict:
        """``logd top``: the raw snapshot (counters and histogram rows, so the client can take rates
        and quantiles between two calls), with usage and ship lag."""
        s = snapshot_of(self)
        if self.ship.shippers:
            s["ship"] = await asyncio.to_thread(self.ship.status)  # lag is counted in the files
        s["now"] = self.clock()
        return s

    async def _base_status(self, request: dict) -> dict:
        stats = self.pipeline.stats
        return {
            "pid": os.getpid(), "version": __version__, "uptime_s": round(self.clock() - self.started, 3),
            "config": str(self.config.source or "<embedded defaults>"), "socket": str(self.socket_path),
            "level": self.config.level, "connections": len(self.server.connections),
            "connections_refused": self.server.rejected, "paused": self.pipeline.paused,
            "received": stats.received, "filtered": stats.filtered, "reloads": self.reloads,
            # lines in logd's shape take the compiled path (logd/hotpath.py): how many did
            "hot_path": {"on": self.pipeline.hot is not None, "records": stats.hot_path},
            "sinks": {**{name: {"delivered": stats.delivered[name], "errors": stats.sink_errors[name]}
                         for name in stats.delivered},
                      **{name: {"delivered": stats.branch_delivered[name], "errors": stats.branch_errors[name]}
                         for name in stats.branch_delivered}},
            "traces": self.traces.store_stats(),
            "otlp": self.ingest.stats(),
            # logd's own events by level, and those that had nowhere to go (before start, after stop)
            "events": {"emitted": dict(self.events.counts), "lost": self.events.lost},
            # lag is counted in the files, so off the event loop
            **({"ship": await asyncio.to_thread(self.ship.status)} if self.ship.shippers else {}),
        }

    async def _config_command(self, request: dict) -> dict:
        """Where this daemon's config and files are, for ``logd query/tail/list/trace``."""
        config = self.config
        return {"config": str(config.source.resolve()) if config.source else None,
                "file": os.path.abspath(config.file) if config.file else None,
                "traces_dir": os.path.abspath(traces_dir(config))}

    async def _reload_command(self, request: dict) -> dict:
        return await self.reload("logd reload")

    async def _ship_reload(self, old: Config, new: Config) -> None:
        try:
            restarted = await asyncio.to_thread(self.ship.reconfigure, new)
        except (OSError, CheckpointError) as exc:
            self.events.emit("error", "ship targets could not follow the new config", error=str(exc))
            return
        if restarted:
            self.events.emit("info", "ship targets follow the new config", event="reload", targets=restarted)

    # --- metrics, health, rate-limit reports ---

    def _start_metrics(self, settings: MetricsSettings) -> None:
        """Serve /metrics, /health, /ready; a busy address is reported, and logging goes on."""
        self.metrics, self.metrics_error = None, None
        if not settings.listen:
            return
        server = MetricsServer(settings.listen, lambda: snapshot_of(self), asyncio.get_running_loop(),
                               mode=settings.mode, ship_status=self._ship_figures)
        try:
            server.start()
        except ListenError as exc:
            self.metrics_error = f"not served: {exc}"
            self.events.emit("error", "metrics server not started; logging goes on without it",
                             event="metrics", listen=settings.listen, error=str(exc))
            return
        self.metrics = server
        self.events.emit("info", f"metrics served on {server.url}", event="metrics", url=server.url)

    def _ship_figures(self) -> dict:
        """Per ship target, for /metrics (called on the HTTP thread: lag reads files)."""
        return self.ship.status() if self.ship.shippers else {}

    async def _stop_metrics(self) -> None:
        if self.metrics is not None:
            server, self.metrics = self.metrics, None
            await asyncio.to_thread(server.stop)  # waits for the HTTP thread, not the loop

    async def _metrics_reload(self, old: Config, new: Config) -> None:
        self.agents.max_agents = new.metrics.max_agents
        if old.metrics.listen != new.metrics.listen or old.metrics.mode != new.metrics.mode:
            await self._stop_metrics()
            self._start_metrics(new.metrics)

    def _report_rate_limits(self, final: bool = False) -> None:
        """Put the "suppressed N records from agent X" records of ended windows."""
        for step in self.pipeline.steps:
            if isinstance(step, RateLimiter):
                reports = step.reports(final=final)
                if reports:
                    self.pipeline.put(reports)

    async def _rate_limit_reporter(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._report_rate_limits()

    async def _watchdog(self) -> None:
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:  # pings come from the event loop itself: a stuck loop stops them
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # --- reload ---

    async def reload(self, reason: str) -> dict:
        """Re-read the config and apply it between two batches; an invalid one is refused.

        Returns what happened (``applied``, ``changed`` or ``error``) for ``logd reload``.
        """
        async with self._reload_lock:
            systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._apply_reload(reason)
            finally:
                systemd.notify("READY=1", f"STATUS=listening on {self.socket_path}")

    async def _apply_reload(self, reason: str) -> dict:
        path = self.config.source
        try:
            new = load_config(path) if path is not None else self.config
        except ConfigError as exc:
            return self._refuse(reason, str(exc), error=exc.message, file=str(exc.file), line=exc.line, key=exc.key)
        new = self._keep_socket_identity(new)
        changed = changes(self.config, new)
        failing = self.pipeline.failing_sinks()
        if failing:
            return self._refuse(reason, f"sink {', '.join(failing)} is failing and holds unwritten records; "
                                        "reload again once it has recovered")
        parts = build(new, self.events, agents=self.agents, clock=self.clock, on_delete=self.ship.before_delete,
                      traces=self.traces, usage=self.usage)
        try:
            parts.open()
        except OSError as exc:
            return self._refuse(reason, sink_open_error(exc))
        parts.traces.open()
        # announced under the old settings, so it is seen even when the new ones filter
        # it out, and lands in the old file when the file changes (its last line)
        self.events.emit("info", "config reloaded" if changed else "config reloaded; files reopened",
                         event="reload", reason=reason, changed=changed)
        self._report_rate_limits(final=True)  # the old limiter's windows end here
        self.pipeline.reconfigure(parts.steps, parts.sinks, parts.branch, parts.hot)  # closes a replaced trace store
        self.events.redact_with(build_redactor(new))
        self.traces = parts.traces
        old, self.config = self.config, new
        self.server.settings = new.socket
        for hook in self.reload_hooks:
            await hook(old, new)
        self.reloads += 1
        return {"applied": True, "changed": changed, "config": str(path or "<embedded defaults>")}

    def _refuse(self, reason: str, summary: str, **fields: Any) -> dict:
        """Report a reload that was not applied: as a record, on stderr, and to `logd reload`."""
        fields.setdefault("error", summary)
        self.events.emit("error", "config change refused; keeping the last good config", event="reload",
                         reason=reason, **fields)
        return {"applied": False, "error": summary}

    def _keep_socket_identity(self, new: Config) -> Config:
        """The listening socket cannot move while clients use it: path, mode, group need a restart."""
        old = self.config.socket
        fixed = ("path", "mode", "group")
        moved = [k for k in fixed if getattr(old, k) != getattr(new.socket, k)]
        if moved:
            self.events.emit("warn", "socket settings change on restart only; keeping the current ones",
                             event="reload", keys=[f"socket.{k}" for k in moved])
        return replace(new, socket=replace(new.socket, **{k: getattr(old, k) for k in fixed}))

    # --- file rotation ---

    def _file_sinks(self) -> list[FileSink]:
        """The log file's sink (the spool rotates by its own rule)."""
        return [s for s in self.pipeline.sinks if isinstance(s, FileSink) and not isinstance(s, SpoolSink)]

    def on_sighup(self) -> None:
        """Reload, which reopens the files (an external logrotate moved them); a refused reload
        (a bad edit, a failing sink holding records) still reopens the log file."""
        async def reload_or_reopen() -> None:
            result = await self.reload("SIGHUP")
            if not result.get("applied"):
                self.pipeline.drain()  # the refusal, and what came before it, go to the old file
                for sink in self._file_sinks():
                    sink.reopen()
        asyncio.get_running_loop().create_task(reload_or_reopen())

    def rotate_files(self, reason: str) -> list[dict]:
        """Rotate the log file now (``logd rotate``, SIGUSR1); a failure is reported, and the
        rotation is retried before the next write through the pipeline's failure path."""
        self.pipeline.drain()  # what clients sent before the request goes to the old file
        results = []
        for sink in self._file_sinks():
            try:
                rotated = sink.rotate_now()
            except OSError as exc:
                results.append({"file": str(sink.path), "rotated": False, "error": str(exc)})
                self.events.emit("error", "log file rotation failed; retrying before the next write",
                                 event="rotate", reason=reason, file=str(sink.path), error=str(exc))
                continue
            results.append({"file": str(sink.path), "rotated": rotated,
                            **({} if rotated else {"note": "the file is empty"})})
            if rotated:
                self.events.emit("info", "log file rotated", event="rotate", reason=reason, file=str(sink.path))
        return results

    async def _rotate_command(self, request: dict) -> dict:
        files = self.rotate_files("logd rotate")
        if not files:
            return {"ok": False, "error": "no log file is configured ([logging] file)"}
        failed = [f for f in files if f.get("error")]
        if failed:
            return {"ok": False, "error": "; ".join(f"{f['file']}: {f['error']}" for f in failed), "files": files}
        return {"files": files}

    async def _file_housekeeping(self, interval: float = 30.0) -> None:
        """Time rotation that came due without writes, and hourly retention (by the clock)."""
        while True:
            await asyncio.sleep(interval)
            for sink in self._file_sinks():
                try:
                    sink.tick()
                except OSError as exc:
                    self.events.emit("error", "scheduled log file rotation failed; retrying before the next write",
                                     event="rotate", file=str(sink.path), error=str(exc))
            branch = self.pipeline.branch
            if branch is not None and isinstance(branch.sink, TraceSink):
                branch.sink.tick()  # trace retention (its errors are reported by the sink)


def _remove_socket(path: Path, inode: int, ours: bool) -> None:
    """The last step of shut-down. An activated socket belongs to systemd and outlives us;
    one a newer logd has put at the path since is not ours to remove."""
    if not ours:
        return
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def snapshot_of(daemon: Daemon) -> dict:
    """Every figure of a running daemon (on its event loop): for /metrics and ``logd status``."""
    s = snapshot(pipeline=daemon.pipeline, server=daemon.server, agents=daemon.agents,
                 reloads=daemon.reloads, started=daemon.started, now=daemon.clock())
    s["usage"] = daemon.usage.snapshot()
    s["otlp"] = daemon.ingest.stats()
    return s


def raise_fd_limit(wanted: int) -> None:
    """Allow ``wanted`` open files (clients + files + slack) up to the hard limit: the usual
    soft limit of 1024 would make accept() fail before max_connections is reached."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass


def run(config: Config) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the process exit code."""
    tune_malloc()
    raise_fd_limit(config.socket.max_connections + 256)
    try:
        return asyncio.run(serve(config))
    except StartupError as exc:
        write_stderr(f"logd: error: {exc}")
        return 1
