"""logd's HTTP ingest listener as the daemon runs it (``[logging.otlp]``): one component with
``start``/``stop``/``stats``. The listener and the OTLP routes (:mod:`logd.sources.http`,
:mod:`logd.sources.otlp`) need the ``otlp`` extra (h11, opentelemetry-proto); they are
imported only when the listener starts, so the core install runs without them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily

from logd.events import Events
from logd.extras import available, install_hint
from logd.pipeline import Pipeline
from logd.settings import integer, setting, tcp_listen
from logd.spec import SOURCE, Spec, TableCheck, Tables

if TYPE_CHECKING:
    from logd.sources.http import HttpListener, Routes
    from logd.sources.otlp import OtlpReceiver


OTLP_LISTEN_ENV = "LOGD_OTLP_LISTEN"
OTLP_DEFAULT_LISTEN = "127.0.0.1:4318"  # the OTLP/HTTP port exporters use by default


def default_otlp_listen(env: Mapping[str, str] | None = None) -> str:
    """``$LOGD_OTLP_LISTEN`` (``""`` turns the receiver off), else 127.0.0.1:4318."""
    env = os.environ if env is None else env
    return env.get(OTLP_LISTEN_ENV, OTLP_DEFAULT_LISTEN)


@dataclass(frozen=True)
class OtlpSettings:
    """``[logging.otlp]``: the HTTP ingest listener (OTLP/HTTP ``/v1/logs``, ``/v1/traces``).

    On by default on loopback; a busy default port is reported once and logging goes on."""

    listen: str = setting(doc='"host:port"; "" for no listener', factory=default_otlp_listen,
                          check=tcp_listen('"host:port" (e.g. "127.0.0.1:4318"), or "" for no OTLP receiver'))
    max_body_bytes: int = setting(4 * 1024 * 1024, doc="per request, after gzip decompression: larger gets 413",
                                  check=integer(1024, "a whole number of bytes >= 1024"))
    max_connections: int = setting(1024, doc="further connections are closed at once (exporters retry)",
                                   check=integer(1, "a whole number >= 1"))


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
            await listener.stop()  # requests in flight finish; their records are in the pipeline

    async def reload(self, config: Tables) -> None:
        new = config.of(OtlpSettings)
        if new != self.settings:
            await self.stop()
            self.settings = new
            await self.start()

    def stats(self) -> dict:
        if self.listener is None:
            return {"listen": self.settings.listen or "off", **({"error": self.error} if self.error else {})}
        return {"url": self.listener.url, "responses": {str(k): v for k, v in sorted(self.listener.responses.items())},
                "connections_refused": self.listener.connections_refused,
                **(self.otlp.stats() if self.otlp is not None else {})}


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
    return (received, rejected, responses, malformed, refused)


def _check(table: TableCheck) -> None:
    if table.values.get("listen") and not (available("h11") and available("opentelemetry.proto")):
        table.problem("the OTLP receiver needs h11 and opentelemetry-proto, which are not installed: "
                      f'{install_hint("h11")} (or listen = "" for none)', "listen")


SPEC = Spec(SOURCE, "otlp", lambda settings, ctx: HttpIngest(settings, ctx.pipeline, ctx.events), OtlpSettings,
            table="otlp", check=_check, figures=lambda ingest: {"otlp": ingest.stats()},
            families=lambda s: _otlp_families(s.get("otlp") or {}))
