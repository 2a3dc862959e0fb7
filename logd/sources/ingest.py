"""logd's HTTP ingest listener as the daemon runs it (``[logging.otlp]``): one component with
``start``/``stop``/``stats``. The listener and the OTLP routes (:mod:`logd.sources.http`,
:mod:`logd.sources.otlp`) need the ``otlp`` extra (h11, opentelemetry-proto); they are
imported only when the listener starts, so the core install runs without them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logd.config import OtlpSettings
from logd.events import Events
from logd.extras import available, install_hint
from logd.pipeline import Pipeline
from logd.sources.tokens import TokenFileError, read_tokens

if TYPE_CHECKING:
    from logd.sources.http import HttpListener, Routes
    from logd.sources.otlp import OtlpReceiver


class HttpIngest:
    """The ingest listener as the daemon runs it: built from ``[logging.otlp]`` and the
    pipeline, started and stopped as one component. A busy or unusable address is
    reported once (a record and a stderr line) and logging goes on without it."""

    def __init__(self, settings: OtlpSettings, pipeline: Pipeline, events: Events,
                 routes: Routes | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.events = events
        self.routes = routes
        self.otlp: OtlpReceiver | None = None
        self.listener: HttpListener | None = None
        self.error: str | None = None
        self.tokens: dict[str, str] | None = None  # token -> name, from token_file

    async def start(self) -> None:
        if not self.settings.listen:
            return  # off: not even the protobuf classes are imported
        missing = [m for m in ("h11", "opentelemetry.proto") if not available(m)]
        if missing:  # an explicit listen without the extra is a config error; the default is quiet
            self.error = f"needs {', '.join(m.split('.')[0] for m in missing)}: {install_hint('h11')}"
            self.events.emit("info", f"OTLP receiver off: it {self.error}", event="otlp")
            return
        from logd.sources.http import HttpListener, ListenError, ingest_routes  # h11: the otlp extra
        from logd.sources.otlp import OtlpReceiver

        if self.routes is None:
            self.otlp = OtlpReceiver(self.pipeline, self.events)
            self.routes = ingest_routes(self.pipeline, self.otlp)
        if self.settings.token_file is not None:
            try:
                self.tokens = read_tokens(self.settings.token_file)
            except TokenFileError as exc:  # checked at load: changed since
                self.error = str(exc)
                self.events.emit("error", f"OTLP receiver not started: {exc}", event="otlp")
                return
        listener = HttpListener(self.settings, self.routes, tokens=self.tokens, busy=lambda: self.pipeline.paused)
        try:
            await listener.start()
        except ListenError as exc:
            self.error = str(exc)
            self.events.emit("warn", "OTLP receiver not started (another collector?); logging goes on without it: "
                             'set [logging.otlp] listen to another "host:port", or "" for none',
                             event="otlp", listen=self.settings.listen, error=str(exc))
            return
        self.listener = listener
        self.events.emit("info", f"OTLP receiver on {listener.url}", event="otlp", url=listener.url,
                         routes=[f"{m} {p}" for m, p in sorted(self.routes)],
                         tokens=sorted(set(self.tokens.values())) if self.tokens is not None else None)

    def reload_tokens(self) -> None:
        """Re-read ``token_file`` (a reload with the same settings): a file that became
        unusable keeps the tokens read before, and says so."""
        if self.listener is None or self.settings.token_file is None:
            return
        try:
            self.tokens = read_tokens(self.settings.token_file)
        except TokenFileError as exc:
            self.events.emit("error", f"OTLP tokens not reloaded, the previous ones stay: {exc}", event="otlp")
            return
        self.listener.tokens = self.tokens

    async def stop(self) -> None:
        if self.listener is not None:
            listener, self.listener = self.listener, None
            await listener.stop()

    def stats(self) -> dict:
        if self.listener is None:
            return {"listen": self.settings.listen or "off", **({"error": self.error} if self.error else {})}
        listener = self.listener
        return {"url": listener.url, "responses": {str(k): v for k, v in sorted(listener.responses.items())},
                "connections_refused": listener.connections_refused, "timed_out": listener.timed_out,
                "inflight_bytes": listener.budget.used, "over_budget": listener.budget.refused,
                "tokens": len(self.tokens) if self.tokens is not None else 0,
                **(self.otlp.stats() if self.otlp is not None else {})}
