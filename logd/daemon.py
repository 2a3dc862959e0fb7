"""``logd run``: build the components from a Config, serve the socket, shut down in order.

What is built is what the registry lists (:mod:`logd.registry`): nothing here names a
component. Start-up is written once, in :meth:`Daemon.start`: each part is made whole,
started, and its clean-up entered into one :class:`contextlib.AsyncExitStack`, so
shut-down is the stack unwinding in reverse (SIGTERM / SIGINT): stop accepting -> read
what clients already sent -> process it -> let the shippers take their last look ->
flush and close sinks -> remove the socket -> exit 0. A start-up that fails half-way
unwinds the same way.
Reload (file change, SIGHUP, ``logd reload``): re-read the config and swap steps and
sinks between two batches; an invalid config is refused and the last good one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from logd import __version__, hotpath, paths, registry, systemd
from logd.components import Pressure, Runnable, Sink, StartupError, Step, Tables
from logd.config import Config, ConfigError, changes, load_config
from logd.control import ControlServer, control_path
from logd.events import Events, write_stderr
from logd.malloc import tune_gc, tune_malloc
from logd.metrics import snapshot, status_view
from logd.pipeline import Branch, Pipeline
from logd.reload import ConfigWatcher
from logd.sources.unix import SocketSettings, create_listener
from logd.spec import SERVICE, SINK, SOURCE, STEP, STORE, Context, Spec
from logd.traces.sink import traces_dir

# --- building: config -> components (no socket, no event loop needed) ---


def _built(kind: str, ctx: Context) -> list[tuple[Spec, Any]]:
    """Every spec of ``kind`` the config asks for, built, in registry order."""
    out = []
    for spec in registry.specs(kind):
        part = spec.build(_settings_of(spec, ctx.config), ctx)
        if part is not None:
            out.append((spec, part))
    return out


@dataclass
class Components:
    """What one config makes: the steps, the sinks and the trace branch, built, not opened."""

    steps: list[Step]
    specs: list[Spec]  # each step's
    sinks: list[Sink]
    store: Sink  # at the end of the trace branch
    branch: Branch | None
    hot: hotpath.HotPath | None  # the compiled path for these steps (None: every line through Python)
    cold: str | None = None  # why there is none

    def specified(self) -> list[tuple[Spec, Step]]:
        """Each step with its spec."""
        return list(zip(self.specs, self.steps, strict=True))

    def open(self) -> None:
        """Open every sink, or close those opened and raise OSError (a bad path fails here)."""
        opened: list[Sink] = []
        try:
            for sink in [*self.sinks, self.store]:
                sink.open()
                opened.append(sink)
        except OSError:
            for sink in opened:
                try:
                    sink.close()
                except OSError:
                    pass
            raise


def build(ctx: Context) -> Components:
    """Every step, sink and store ``ctx.config`` asks for, and the compiled path for the steps.
    ``ctx.previous`` holds what the last build made: a store whose settings did not change is
    kept running (a reload)."""
    steps = _built(STEP, ctx)
    sinks = [sink for _, sink in _built(SINK, ctx)]
    (store_spec, store), = _built(STORE, ctx)
    named = [(spec.name, step) for spec, step in steps]
    branch = store_spec.branch(store, named) if store_spec.branch is not None else None
    hot, cold = hotpath.build(steps, [store_spec])
    ctx.previous.update({spec.name: part for spec, part in [*steps, (store_spec, store)]})
    return Components([step for _, step in steps], [spec for spec, _ in steps], sinks, store, branch, hot, cold)


def sink_open_error(exc: OSError) -> str:
    why = f"cannot open {exc.filename or 'a sink'}: {exc.strerror or exc}"
    if exc.errno == errno.EROFS:  # most often logd.service's ProtectSystem=strict, not the disk
        why += (f" (logd.service may write only below {', '.join(paths.SERVICE_WRITABLE)}; "
                "`logd check` names the drop-in that allows another folder)")
    return why


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
        # what start-up made (modules, specs, tables) lives as long as the daemon: out of the
        # collector's sight, so its full passes, which stall the loop, walk only the records'
        # garbage (the loop's longest stall under a large OTLP request: ~80 ms -> ~57 ms)
        gc.freeze()
        systemd.notify("READY=1", f"STATUS=listening on {daemon.socket_path}", f"MAINPID={os.getpid()}")
        await stopping.wait()
        systemd.notify("STOPPING=1", "STATUS=draining clients")
    return 1 if daemon.pipeline.lost_at_shutdown else 0  # records accepted and not written: say so


class Daemon:
    """One running logd: its pipeline, the registry's sources and services, the control socket.

    Made by :meth:`start`, which builds and starts every part; the parts' clean-up is
    on the stack ``start`` was given.
    """

    def __init__(self, ctx: Context, parts: Components, pipeline: Pipeline, socket_path: Path,
                 stopping: asyncio.Event) -> None:
        self.ctx = ctx
        self.config: Config = ctx.config  # type: ignore[assignment]  # the loaded Config
        self.events = ctx.events
        self.parts = parts
        self.pipeline = pipeline
        self.socket_path = socket_path
        self.stopping = stopping
        self.clock = ctx.clock
        self.started = self.clock()
        self.reloads = 0
        self.running = False  # set once started: a start-up that fails half-way writes no "logd stopped"
        self.runnables: list[tuple[Spec, Runnable]] = []  # sources and services, in start order
        try:
            group = self.config.of(SocketSettings).control_group
            self.control = ControlServer(control_path(socket_path), group=group)
        except ValueError as exc:  # a control_group that does not exist
            raise StartupError(str(exc)) from None
        self.control.register("ping", self._ping, read_only=True)
        self.control.register("status", self._status, read_only=True)
        self.control.register("top", self._top, read_only=True)
        self.control.register("config", self._config_command, read_only=True)
        self.control.register("reload", self._reload_command)
        self.control.register("rotate", self._rotate_command)
        self._reload_lock = asyncio.Lock()

    @classmethod
    async def start(cls, config: Config, events: Events, stack: contextlib.AsyncExitStack,
                    stopping: asyncio.Event, clock: Callable[[], float] = time.time) -> Daemon:
        """Start every part in order; each one's clean-up goes on ``stack`` as soon as it runs."""
        loop = asyncio.get_running_loop()
        activated = systemd.activated_listener()  # systemd keeps this socket open across restarts
        listener = activated or create_listener(config.of(SocketSettings))  # StartupError before any output
        socket_path = Path(listener.getsockname()) if activated is not None else config.of(SocketSettings).path
        stack.callback(_remove_socket, socket_path, os.stat(socket_path).st_ino, activated is None)
        stack.callback(listener.close)

        ctx = Context(config, events, clock, listener=listener)
        parts = build(ctx)
        try:
            parts.open()
        except OSError as exc:
            raise StartupError(sink_open_error(exc)) from None
        _filter_stderr(events, config)
        pressure = Pressure()
        pipeline = Pipeline(parts.steps, parts.sinks, events=events, branch=parts.branch,
                            on_pressure=pressure, clock=clock, hot=parts.hot)
        events.connect(pipeline.put, loop)
        ctx.pipeline, ctx.pressure = pipeline, pressure
        daemon = cls(ctx, parts, pipeline, socket_path, stopping)
        ctx.figures, ctx.slow_figures = daemon.figures, daemon.slow_figures
        stack.callback(daemon._close_pipeline)

        # services (metrics, shippers), then sources: stopped in reverse, so clients are read
        # and their records written before the shippers take their last look
        for spec in [*registry.specs(SERVICE), *registry.specs(SOURCE)]:
            part = spec.build(_settings_of(spec, config), ctx)
            await part.start()
            stack.push_async_callback(daemon._stop, part)
            daemon.runnables.append((spec, part))
        if config.source is not None:
            def changed() -> None:
                loop.create_task(daemon.reload("config file changed"))

            watcher = ConfigWatcher(config.source, loop, changed, loaded=config.digest)
            watcher.start()
            stack.callback(watcher.stop)
        await daemon.control.start()
        stack.push_async_callback(daemon.control.stop)
        for task in (daemon._tick_steps(), daemon._housekeeping(), daemon._watchdog()):
            stack.callback(loop.create_task(task).cancel)
        events.emit("info", "logd started", event="start", version=__version__,
                    socket=str(socket_path), socket_activated=activated is not None,
                    config=str(config.source or "<embedded defaults>"),
                    min_level=config.level, sinks=[s.name for s in pipeline.sinks])
        for warning in config.warnings:  # accepted, but probably not meant
            events.emit("warn", warning, config=str(config.source))
        daemon.running = True
        return daemon

    # --- shut-down steps (run by the stack, in reverse order of start) ---

    async def _stop(self, part: Runnable) -> None:
        self.pipeline.drain()  # what came in so far is in the sinks (and the files the shippers read)
        await part.stop()

    def _close_pipeline(self) -> None:
        if self.running:
            self._tick_steps_now(final=True)
            stats = self.pipeline.stats
            self.events.emit("info", "logd stopped", event="stop", received=stats.received,
                             filtered=stats.filtered, connections_aborted=self.figures().get("connections_aborted", 0))
        self.pipeline.close()  # the trace branch's sink too, after its last batch

    # --- figures: /metrics, logd status, logd top ---

    def figures(self) -> dict[str, Any]:
        """Every figure of the running daemon, on its event loop (see :func:`logd.metrics.snapshot`)."""
        return snapshot(pipeline=self.pipeline, parts=[*self.parts.specified(), *self._store(), *self.runnables],
                        reloads=self.reloads, started=self.started, now=self.clock())

    def slow_figures(self) -> dict[str, Any]:
        """The figures that read files (ship lag), off the event loop."""
        out: dict[str, Any] = {}
        for spec, part in self.runnables:
            if spec.figures is not None and spec.figures_in_thread:
                out.update(spec.figures(part))
        return out

    def _store(self) -> list[tuple[Spec, Any]]:
        return [(spec, self.parts.store) for spec in registry.specs(STORE)]

    # --- control commands ---

    async def _ping(self, request: dict) -> dict:
        return {"pid": os.getpid(), "version": __version__}

    async def _status(self, request: dict) -> dict:
        """``logd status``: the daemon's settings plus the same figures ``/metrics`` serves."""
        stats = self.pipeline.stats
        reply = {
            "pid": os.getpid(), "version": __version__,
            "config": str(self.config.source or "<embedded defaults>"), "socket": str(self.socket_path),
            "level": self.config.level, "filtered": stats.filtered,
            # lines in logd's shape take the compiled path (logd/hotpath.py): how many did, and why not
            "hot_path": {"on": self.pipeline.hot is not None, "records": stats.hot_path,
                         "trace_entries": stats.hot_entries, **({"off": self.parts.cold} if self.parts.cold else {})},
            # logd's own events by level, and those that had nowhere to go (before start, after stop)
            "events": {"emitted": dict(self.events.counts), "lost": self.events.lost},
        }
        reply.update(status_view(self.figures()))
        reply.update(await asyncio.to_thread(self.slow_figures))  # lag is counted in the files
        return reply

    async def _top(self, request: dict) -> dict:
        """``logd top``: the raw snapshot (counters and histogram rows, so the client can take rates
        and quantiles between two calls), with ship lag."""
        s = self.figures()
        s.update(await asyncio.to_thread(self.slow_figures))
        s["now"] = self.clock()
        return s

    async def _config_command(self, request: dict) -> dict:
        """Where this daemon's config and files are, for ``logd query/tail/list/trace``."""
        config = self.config
        return {"config": str(config.source.resolve()) if config.source else None,
                "file": os.path.abspath(config.file) if config.file else None,
                "traces_dir": os.path.abspath(traces_dir(config))}

    async def _reload_command(self, request: dict) -> dict:
        return await self.reload("logd reload")

    # --- on the clock: steps that report (rate limits), sinks' housekeeping, the watchdog ---

    def _tick_steps_now(self, final: bool = False) -> None:
        """Records steps emit on the clock: "suppressed N records from agent X" of ended windows."""
        for spec, step in self.parts.specified():
            if spec.tick is not None:
                records = spec.tick(step, final)
                if records:
                    self.pipeline.put(records)

    async def _tick_steps(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._tick_steps_now()

    async def _housekeeping(self, interval: float = 30.0) -> None:
        """Time rotation that came due without writes, hourly retention (by the clock)."""
        while True:
            await asyncio.sleep(interval)
            for sink in [*self.pipeline.sinks, self.parts.store]:
                try:
                    sink.tick()
                except OSError as exc:
                    self.events.emit("error", "scheduled log file rotation failed; retrying before the next write",
                                     event="rotate", sink=sink.name, error=str(exc))

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
        ctx = replace(self.ctx, config=new)
        parts = build(ctx)
        try:
            parts.open()
        except OSError as exc:
            return self._refuse(reason, sink_open_error(exc))
        # announced under the old settings, so it is seen even when the new ones filter
        # it out, and lands in the old file when the file changes (its last line)
        self.events.emit("info", "config reloaded" if changed else "config reloaded; files reopened",
                         event="reload", reason=reason, changed=changed)
        self._tick_steps_now(final=True)  # the old limiter's windows end here
        self.pipeline.reconfigure(parts.steps, parts.sinks, parts.branch, parts.hot)  # closes a replaced store
        _filter_stderr(self.events, new)
        self.ctx, self.parts, self.config = ctx, parts, new
        for _, part in self.runnables:
            await part.reload(new)
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
        old, now = self.config.of(SocketSettings), new.of(SocketSettings)
        fixed = ("path", "mode", "group")
        moved = [k for k in fixed if getattr(old, k) != getattr(now, k)]
        if moved:
            self.events.emit("warn", "socket settings change on restart only; keeping the current ones",
                             event="reload", keys=[f"socket.{k}" for k in moved])
        return new.with_settings(replace(now, **{k: getattr(old, k) for k in fixed}))

    # --- file rotation ---

    def on_sighup(self) -> None:
        """Reload, which reopens the files (an external logrotate moved them); a refused reload
        (a bad edit, a failing sink holding records) still reopens the log file."""
        async def reload_or_reopen() -> None:
            result = await self.reload("SIGHUP")
            if not result.get("applied"):
                self.pipeline.drain()  # the refusal, and what came before it, go to the old file
                for sink in self.pipeline.sinks:
                    sink.reopen()
        asyncio.get_running_loop().create_task(reload_or_reopen())

    def rotate_files(self, reason: str) -> list[dict]:
        """Rotate the log file now (``logd rotate``, SIGUSR1); a failure is reported, and the
        rotation is retried before the next write through the pipeline's failure path."""
        self.pipeline.drain()  # what clients sent before the request goes to the old file
        results = []
        for sink in self.pipeline.sinks:
            file = str(sink.path)
            try:
                rotated = sink.rotate_now()
            except OSError as exc:
                results.append({"file": file, "rotated": False, "error": str(exc)})
                self.events.emit("error", "log file rotation failed; retrying before the next write",
                                 event="rotate", reason=reason, file=file, error=str(exc))
                continue
            if rotated is None:  # the sink has no file of its own to rotate
                continue
            results.append({"file": file, "rotated": rotated, **({} if rotated else {"note": "the file is empty"})})
            if rotated:
                self.events.emit("info", "log file rotated", event="rotate", reason=reason, file=file)
        return results

    async def _rotate_command(self, request: dict) -> dict:
        files = self.rotate_files("logd rotate")
        if not files:
            return {"ok": False, "error": "no log file is configured ([logging] file)"}
        failed = [f for f in files if f.get("error")]
        if failed:
            return {"ok": False, "error": "; ".join(f"{f['file']}: {f['error']}" for f in failed), "files": files}
        return {"files": files}


def _filter_stderr(events: Events, config: Tables) -> None:
    """logd's own stderr lines go through the steps that filter them too (redaction), each its
    own instance: they are written from any thread."""
    for spec in registry.specs(STEP):
        if spec.stderr is not None:
            events.redact_with(spec.stderr(_settings_of(spec, config)))


def _settings_of(spec: Spec, config: Tables) -> Any:
    if spec.settings is None:
        return None
    return config.elements(spec.settings) if spec.array else config.of(spec.settings)


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
    tune_gc()
    raise_fd_limit(config.of(SocketSettings).max_connections + 256)
    try:
        return asyncio.run(serve(config))
    except StartupError as exc:
        write_stderr(f"logd: error: {exc}")
        return 1
