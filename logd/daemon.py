"""``logd run``: build the pipeline from a Config, serve the socket, shut down in order.

Shutdown order (SIGTERM / SIGINT): stop accepting -> read what clients already
sent -> process it -> flush and close sinks -> remove the socket -> exit 0.
Reload (file change, SIGHUP, ``logd reload``): re-read the config and swap steps and
sinks between two batches; an invalid config is refused and the last good one kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Awaitable, Callable

from logd import __version__, systemd
from logd.config import Config, ConfigError, changes, load_config, traces_dir
from logd.control import ControlServer, control_path
from logd.malloc import tune_malloc
from logd.reload import ConfigWatcher
from logd.pipeline import Pipeline, Sink, Step, level_filter, _stderr_line
from logd.sources.unix import SocketServer, StartupError, create_listener
from logd.config import MetricsSettings
from logd.metrics import AgentMetrics, ListenError, MetricsServer, snapshot, status_view
from logd.steps.redact import Redactor
from logd.steps.sampling import RateLimiter, Sampler
from logd.sinks.console import ConsoleSink
from logd.rotation import RotationPolicy
from logd.sinks.file import FileSink
from logd.ship import ShipManager
from logd.ship.checkpoint import CheckpointError
from logd.ship.spool import SpoolSink, spool_path
from logd.traces.sink import TraceSink, TraceTap


def build_sinks(config: Config) -> list[Sink]:
    sinks: list[Sink] = []
    if config.console_enabled:
        sinks.append(ConsoleSink(sys.stdout.buffer, config.format))
    if config.file is not None:
        sinks.append(FileSink(config.file, RotationPolicy.from_config(config)))
    elif config.ship:  # shippers read files: without a log file they read the spool
        sinks.append(SpoolSink(spool_path(config.ship_state_dir), max_bytes=config.max_size_bytes))
    return sinks


def build_trace_store(config: Config) -> TraceSink:
    """Per-session trace files, fed by a TraceTap step (see build_steps). Trace records stay
    in the sinks above too: the session files are an index, not the record."""
    return TraceSink(traces_dir(config), max_age_days=config.traces.max_age)


def open_sinks(sinks: list[Sink]) -> None:
    """Open every sink that has something to open, or close them all and raise OSError."""
    try:
        for sink in sinks:
            opener = getattr(sink, "open", None)
            if opener is not None:
                opener()
    except OSError:
        for sink in sinks:
            try:
                sink.close()
            except OSError:
                pass
        raise


def sink_open_error(exc: OSError) -> str:
    return f"cannot open {exc.filename or 'a sink'}: {exc.strerror or exc}"


def build_steps(config: Config, agents: AgentMetrics | None = None,
                clock: Callable[[], float] = time.time, traces: TraceSink | None = None) -> list[Step]:
    """Count by agent -> level filter -> redact -> sample -> rate-limit, with trace records
    taken before the filters and stored after redaction (TraceTap). ``agents`` holds every count and outlives reloads; redaction runs before
    any sink, shippers and session files included."""
    agents = agents if agents is not None else AgentMetrics(config.metrics.max_agents)
    redact = config.redact
    redactor = (Redactor(redact.keys, redact.patterns, redact.replacement, counts=agents.redacted)
                if redact.enabled else None)
    tap = TraceTap(traces, redactor) if traces is not None else None
    steps: list[Step] = [agents]
    if tap is not None:
        steps.append(tap.collect)
    steps.append(level_filter(config.level))
    if redactor is not None:
        steps.append(redactor)
    if tap is not None:
        steps.append(tap.store)
    sampling = config.sampling
    if sampling.enabled:
        steps.append(Sampler(initial=sampling.initial, thereafter=sampling.thereafter, tick=sampling.tick,
                             max_level=sampling.max_level, clock=clock, counts=agents.sampled))
    if sampling.burst > 0:
        steps.append(RateLimiter(burst=sampling.burst, interval=sampling.interval, clock=clock,
                                 counts=agents.rate_limited, label=agents.label))
    return steps


class Daemon:
    """One running logd: owns the listener, pipeline, control socket and config watcher."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        self.stopping = asyncio.Event()
        self.pipeline: Pipeline | None = None
        self.server: SocketServer | None = None
        self.control: ControlServer | None = None
        self.socket_path: Path = config.socket.path
        self.reloads = 0
        self.agents = AgentMetrics(config.metrics.max_agents)  # counts that survive reloads
        self.metrics: MetricsServer | None = None
        self.metrics_error: str | None = None
        # called as hook(old, new) after a reload was applied; components that live
        # outside the pipeline (metrics server, shippers) re-read their settings here
        self.reload_hooks: list[Callable[[Config, Config], Awaitable[None]]] = []
        self.ship: ShipManager | None = None
        self.traces: TraceSink | None = None  # per-session trace files, fed by the TraceTap step
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reload_lock = asyncio.Lock()

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
        return reply

    async def _base_status(self, request: dict) -> dict:
        assert self.pipeline is not None and self.server is not None
        stats = self.pipeline.stats
        return {
            "pid": os.getpid(), "version": __version__, "uptime_s": round(self.clock() - self.started, 3),
            "config": str(self.config.source or "<embedded defaults>"), "socket": str(self.socket_path),
            "level": self.config.level, "connections": len(self.server.connections),
            "connections_refused": self.server.rejected, "paused": self.pipeline.paused,
            "received": stats.received, "filtered": stats.filtered, "reloads": self.reloads,
            "sinks": {name: {"delivered": stats.delivered[name], "errors": stats.sink_errors[name]}
                      for name in stats.delivered},
            **({"traces": self.traces.stats()} if self.traces is not None else {}),
            # lag is counted in the files, so off the event loop
            **({"ship": await asyncio.to_thread(self.ship.status)} if self.ship and self.ship.shippers else {}),
        }

    async def _reload_command(self, request: dict) -> dict:
        return await self.reload("logd reload")

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        # before the socket exists: a stop that arrives while starting still drains what
        # clients sent; a HUP or USR1 that early is ignored rather than fatal
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            loop.add_signal_handler(sig, lambda: None)
        activated = systemd.activated_listener()  # systemd keeps this socket open across restarts
        listener = activated or create_listener(config.socket)  # raises StartupError before any output
        if activated is not None:
            self.socket_path = Path(listener.getsockname())
        socket_inode = os.stat(self.socket_path).st_ino
        try:
            sinks = self._open_sinks(config)
        except OSError as exc:
            listener.close()
            if activated is None:
                os.unlink(self.socket_path)
            raise StartupError(sink_open_error(exc)) from None
        self.traces = build_trace_store(config)
        self._wire_trace_reports(self.traces)
        self.traces.open()
        self.pipeline = Pipeline(build_steps(config, self.agents, self.clock, self.traces), sinks, clock=self.clock)
        self.server = SocketServer(listener, config.socket, self.pipeline, clock=self.clock)
        self.pipeline.on_pressure = self.server.set_paused
        self.control = ControlServer(control_path(self.socket_path))
        self.control.register("ping", self._ping)
        self.control.register("status", self._status)
        self.control.register("reload", self._reload_command)
        self.control.register("rotate", self._rotate_command)
        self._loop = asyncio.get_running_loop()
        pipeline = self.pipeline
        self.ship = ShipManager(self._ship_notify, ingested=lambda: pipeline.stats.received)
        try:
            self.ship.start(config)
        except (OSError, CheckpointError) as exc:
            self.pipeline.close()
            listener.close()
            if activated is None:
                os.unlink(self.socket_path)
            raise StartupError(f"cannot start shipping: {exc}") from None
        self.reload_hooks.append(self._ship_reload)

        loop.add_signal_handler(signal.SIGHUP, lambda: self._on_sighup(loop))
        loop.add_signal_handler(signal.SIGUSR1, lambda: self.rotate_files("SIGUSR1"))
        await self.server.start()
        watcher = None
        if config.source is not None:
            watcher = ConfigWatcher(config.source, loop, lambda: loop.create_task(self.reload("config file changed")),
                                    loaded=config.digest)
            watcher.start()
        await self.control.start()
        self._start_metrics(config.metrics)
        self.reload_hooks.append(self._metrics_reload)
        reporter = loop.create_task(self._rate_limit_reporter())
        housekeeping = loop.create_task(self._file_housekeeping())
        if config.file_only and config.file is None:
            self.pipeline.emit("warn", "file_only is set but no file is configured; logging to the console",
                               config=str(config.source))
        self.pipeline.emit("info", "logd started", event="start", version=__version__,
                           socket=str(self.socket_path), socket_activated=activated is not None,
                           config=str(config.source or "<embedded defaults>"),
                           min_level=config.level, sinks=[s.name for s in self.pipeline.sinks])
        systemd.notify("READY=1", f"STATUS=listening on {self.socket_path}", f"MAINPID={os.getpid()}")
        pinger = self._start_watchdog(loop)
        await self.stopping.wait()

        systemd.notify("STOPPING=1", "STATUS=draining clients")
        if pinger is not None:
            pinger.cancel()
        if watcher is not None:
            watcher.stop()
        reporter.cancel()
        housekeeping.cancel()
        await self._stop_metrics()
        await self.control.stop()
        left = await self.server.stop()
        if self.ship is not None and self.ship.shippers:
            self.pipeline.drain()  # what clients sent is in the file before the shippers' last look
            await asyncio.to_thread(self.ship.stop)
        self._report_rate_limits(final=True)
        stats = self.pipeline.stats
        self.pipeline.emit("info", "logd stopped", event="stop", received=stats.received,
                           filtered=stats.filtered, connections_aborted=left)
        self.pipeline.close()
        self.traces.close()  # after the last batch went through its tap
        if activated is None:  # an activated socket belongs to systemd and outlives us
            try:
                if os.stat(self.socket_path).st_ino == socket_inode:
                    os.unlink(self.socket_path)
            except OSError:
                pass
        return 0

    def _ship_notify(self, level: str, message: str, /, **fields: object) -> None:
        """From a shipper thread: a record about shipping, made on the event loop's thread."""
        if level == "error":
            detail = fields.get("error") or fields.get("reason") or fields.get("problem")
            _stderr_line(f"logd: error: {message}" + (f": {detail}" if detail else ""))
        if self._loop is None or self.pipeline is None:
            return
        pipeline = self.pipeline
        try:
            self._loop.call_soon_threadsafe(lambda: pipeline.emit(level, message, **fields))
        except RuntimeError:
            pass  # the loop has closed: shutting down, stderr has it

    async def _ship_reload(self, old: Config, new: Config) -> None:
        if self.ship is not None:
            try:
                restarted = await asyncio.to_thread(self.ship.reconfigure, new)
            except (OSError, CheckpointError) as exc:
                self._ship_notify("error", "ship targets could not follow the new config", error=str(exc))
                return
            if restarted:
                assert self.pipeline is not None
                self.pipeline.emit("info", "ship targets follow the new config", event="reload", targets=restarted)

    # --- metrics, health, rate-limit reports ---

    def _start_metrics(self, settings: MetricsSettings) -> None:
        """Serve /metrics, /health, /ready; a busy address is reported, and logging goes on."""
        assert self.pipeline is not None
        self.metrics, self.metrics_error = None, None
        if not settings.listen:
            return
        server = MetricsServer(settings.listen, lambda: snapshot_of(self), asyncio.get_running_loop(),
                               mode=settings.mode, ship_status=self._ship_figures)
        try:
            server.start()
        except ListenError as exc:
            self.metrics_error = f"not served: {exc}"
            self.pipeline.emit("error", "metrics server not started; logging goes on without it",
                               event="metrics", listen=settings.listen, error=str(exc))
            _stderr_line(f"logd: error: {exc}; logging goes on without /metrics")
            return
        self.metrics = server
        self.pipeline.emit("info", f"metrics served on {server.url}", event="metrics", url=server.url)

    def _ship_figures(self) -> dict:
        """Per ship target, for /metrics (called on the HTTP thread: lag reads files)."""
        return self.ship.status() if self.ship is not None and self.ship.shippers else {}

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
        if self.pipeline is None:
            return
        for step in self.pipeline.steps:
            if isinstance(step, RateLimiter):
                reports = step.reports(final=final)
                if reports:
                    self.pipeline.put(reports)

    async def _rate_limit_reporter(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._report_rate_limits()

    def _start_watchdog(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task | None:
        interval = systemd.watchdog_interval()
        if interval is None:
            return None

        async def ping() -> None:
            while True:  # pings come from the event loop itself: a stuck loop stops them
                systemd.notify("WATCHDOG=1")
                await asyncio.sleep(interval)

        return loop.create_task(ping())

    async def reload(self, reason: str) -> dict:
        """Re-read the config and apply it between two batches; an invalid one is refused.

        Returns what happened (``applied``, ``changed`` or ``error``) for ``logd reload``.
        """
        assert self.pipeline is not None and self.server is not None
        async with self._reload_lock:
            systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._apply_reload(reason)
            finally:
                systemd.notify("READY=1", f"STATUS=listening on {self.socket_path}")

    async def _apply_reload(self, reason: str) -> dict:
        assert self.pipeline is not None and self.server is not None
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
        try:
            sinks = self._open_sinks(new)
        except OSError as exc:
            return self._refuse(reason, sink_open_error(exc))
        traces = self.traces
        if traces_dir(new) != traces_dir(self.config) or new.traces != self.config.traces:
            traces = build_trace_store(new)
            self._wire_trace_reports(traces)
            traces.open()
        # announced under the old settings, so it is seen even when the new ones filter
        # it out, and lands in the old file when the file changes (its last line)
        self.pipeline.emit("info", "config reloaded" if changed else "config reloaded; files reopened",
                           event="reload", reason=reason, changed=changed)
        self._report_rate_limits(final=True)  # the old limiter's windows end here
        self.pipeline.reconfigure(build_steps(new, self.agents, self.clock, traces), sinks)
        if traces is not self.traces:
            old_traces, self.traces = self.traces, traces
            old_traces.close()  # the old tap's last records went through in reconfigure's drain
        old, self.config = self.config, new
        self.server.settings = new.socket
        for hook in self.reload_hooks:
            await hook(old, new)
        self.reloads += 1
        return {"applied": True, "changed": changed, "config": str(path or "<embedded defaults>")}

    def _wire_trace_reports(self, traces: TraceSink) -> None:
        """The trace writer thread reports its failures as logd records, via the event loop."""
        loop = asyncio.get_running_loop()

        def report(message: str, fields: dict) -> None:
            _stderr_line(f"logd: error: {message}")
            if self.pipeline is not None:
                loop.call_soon_threadsafe(lambda: self.pipeline.emit("error", message, sink="traces", **fields))

        traces.report = report

    # --- file rotation ---

    def _open_sinks(self, config: Config) -> list[Sink]:
        """The config's sinks, wired to report through this daemon and opened (or OSError)."""
        sinks = build_sinks(config)
        self._wire_file_sinks(sinks)
        self._wire_console(sinks)
        open_sinks(sinks)
        return sinks

    def _wire_console(self, sinks: list[Sink]) -> None:
        """A console that breaks says so once, as a logd record (to the file) and on stderr."""
        loop = asyncio.get_running_loop()

        def report(message: str) -> None:
            _stderr_line(f"logd: error: {message}")
            if self.pipeline is not None:  # called from inside a write: emit on the next turn
                loop.call_soon(lambda: self.pipeline.emit("error", message, sink="console"))

        for sink in sinks:
            if isinstance(sink, ConsoleSink):
                sink.report = report

    def _wire_file_sinks(self, sinks: list[Sink]) -> None:
        """Before they open: file sinks report background work (compression, retention, recovery)
        as logd records via the event loop, and retention asks the shippers first."""
        loop = asyncio.get_running_loop()

        def report(level: str, message: str, fields: dict) -> None:
            if level == "error":
                _stderr_line(f"logd: error: {message}: {fields.get('error', '')}")

            def emit() -> None:
                if self.pipeline is not None:
                    self.pipeline.emit(level, message, sink="file", **fields)
            try:
                loop.call_soon_threadsafe(emit)
            except RuntimeError:
                pass  # the loop has closed: shutting down

        def before_delete(paths: list[Path]) -> int:
            ship = self.ship
            return ship.before_delete(paths) if ship is not None and ship.shippers else 0

        for sink in sinks:
            if isinstance(sink, FileSink) and type(sink) is FileSink:
                sink.report, sink.on_delete, sink.clock = report, before_delete, self.clock

    def _file_sinks(self) -> list[FileSink]:
        assert self.pipeline is not None
        return [s for s in self.pipeline.sinks if type(s) is FileSink]

    def _on_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload, which reopens the files (an external logrotate moved them); a refused reload
        (a bad edit, a failing sink holding records) still reopens the log file."""
        async def reload_or_reopen() -> None:
            result = await self.reload("SIGHUP")
            if not result.get("applied"):
                for sink in self._file_sinks():
                    sink.reopen()
        loop.create_task(reload_or_reopen())

    def rotate_files(self, reason: str) -> list[dict]:
        """Rotate the log file now (``logd rotate``, SIGUSR1); a failure is reported, and the
        rotation is retried before the next write through the pipeline's failure path."""
        assert self.pipeline is not None
        self.pipeline.drain()  # what clients sent before the request goes to the old file
        results = []
        for sink in self._file_sinks():
            try:
                rotated = sink.rotate_now()
            except OSError as exc:
                results.append({"file": str(sink.path), "rotated": False, "error": str(exc)})
                self.pipeline.emit("error", "log file rotation failed; retrying before the next write",
                                   event="rotate", reason=reason, file=str(sink.path), error=str(exc))
                _stderr_line(f"logd: error: cannot rotate {sink.path}: {exc}; retrying before the next write")
                continue
            results.append({"file": str(sink.path), "rotated": rotated,
                            **({} if rotated else {"note": "the file is empty"})})
            if rotated:
                self.pipeline.emit("info", "log file rotated", event="rotate", reason=reason, file=str(sink.path))
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
                    self.pipeline.emit("error", "scheduled log file rotation failed; retrying before the next write",
                                       event="rotate", file=str(sink.path), error=str(exc))
                    _stderr_line(f"logd: error: cannot rotate {sink.path}: {exc}")

    def _refuse(self, reason: str, summary: str, **fields: object) -> dict:
        """Report a reload that was not applied: as a record, on stderr, and to `logd reload`."""
        assert self.pipeline is not None
        fields.setdefault("error", summary)
        self.pipeline.emit("error", "config change refused; keeping the last good config", event="reload",
                           reason=reason, **fields)
        _stderr_line(f"logd: error: {summary}; keeping the last good config")
        return {"applied": False, "error": summary}

    def _keep_socket_identity(self, new: Config) -> Config:
        """The listening socket cannot move while clients use it: path, mode, group need a restart."""
        old = self.config.socket
        fixed = ("path", "mode", "group")
        moved = [k for k in fixed if getattr(old, k) != getattr(new.socket, k)]
        if moved:
            assert self.pipeline is not None
            self.pipeline.emit("warn", "socket settings change on restart only; keeping the current ones",
                               event="reload", keys=[f"socket.{k}" for k in moved])
        return replace(new, socket=replace(new.socket, **{k: getattr(old, k) for k in fixed}))


def snapshot_of(daemon: Daemon) -> dict:
    """Every figure of a running daemon (on its event loop): for /metrics and ``logd status``."""
    assert daemon.pipeline is not None
    return snapshot(pipeline=daemon.pipeline, server=daemon.server, agents=daemon.agents,
                    reloads=daemon.reloads, started=daemon.started, now=daemon.clock())


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
        return asyncio.run(Daemon(config).run())
    except StartupError as exc:
        _stderr_line(f"logd: error: {exc}")
        return 1
