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
        listener = HttpListener(self.settings.listen, self.routes, max_body_bytes=self.settings.max_body_bytes,
                                max_connections=self.settings.max_connections,
                                busy=lambda: self.pipeline.paused)
        try:
            await listener.start()
        except ListenError as exc:
            self.error = str(exc)
            self.events.emit("warn", f"OTLP receiver not started: {exc} (another collector?); logging goes on "
                             'without it: set [logging.otlp] listen to another "host:port", or "" for none',
                             event="otlp", listen=self.settings.listen, error=str(exc))
            return
        self.listener = listener
        self.events.emit("info", f"OTLP receiver on {listener.url}", event="otlp", url=listener.url,
                           routes=[f"{m} {p}" for m, p in sorted(self.routes)])

    async def stop(self) -> None:
        if self.listener is not None:
            listener, self.listener = self.listener, None
            await listener.stop()

    def stats(self) -> dict:
        if self.listener is None:
            return {"listen": self.settings.listen or "off", **({"error": self.error} if self.error else {})}
        return {"url": self.listener.url, "responses": {str(k): v for k, v in sorted(self.listener.responses.items())},
                "connections_refused": self.listener.connections_refused,
                **(self.otlp.stats() if self.otlp is not None else {})}
