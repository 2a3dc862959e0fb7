"""logd's HTTP ingest listener as the daemon runs it (``[logging.otlp]``): one component with
``start``/``stop``/``stats``. The listener and the OTLP routes (:mod:`logd.sources.http`,
:mod:`logd.sources.otlp`) need the ``otlp`` extra (h11, opentelemetry-proto); they are
imported only when the listener starts, so the core install runs without them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from logd.components import Tables
from logd.events import Events
from logd.extras import available, install_hint
from logd.pipeline import Pipeline
from logd.settings import integer, seconds, setting, string, tcp_listen
from logd.sources.tokens import TokenFileError, read_tokens
from logd.spec import SOURCE, Spec, TableCheck

if TYPE_CHECKING:
    from logd.sources.http import HttpListener, Routes
    from logd.sources.otlp import OtlpReceiver


OTLP_LISTEN_ENV = "LOGD_OTLP_LISTEN"


def default_otlp_listen(env: Mapping[str, str] | None = None) -> str:
    """``$LOGD_OTLP_LISTEN``, else ``""``: the listener is off unless configured."""
    env = os.environ if env is None else env
    return env.get(OTLP_LISTEN_ENV, "")


@dataclass(frozen=True)
class OtlpSettings:
    """``[logging.otlp]``: the HTTP ingest listener (OTLP/HTTP ``/v1/logs``, ``/v1/traces``,
    the OpenAI Agents SDK's ``/v1/traces/ingest``). Off unless ``listen`` is set; every bound
    is in docs/security.md."""

    listen: str = setting(doc='"host:port" such as "127.0.0.1:4318"; "" for none', factory=default_otlp_listen,
                          check=tcp_listen('"host:port" (e.g. "127.0.0.1:4318"), or "" for no OTLP receiver'))
    token_file: Path | None = setting(None, doc='"name:token" lines; set: every request needs "Authorization: '
                                                'Bearer <token>"', check=string, relative=True)
    max_body_bytes: int = setting(4 * 1024 * 1024, doc="per request, after gzip decompression: larger gets 413",
                                  check=integer(1024, "a whole number of bytes >= 1024"))
    max_items: int = setting(10_000, doc="log records or spans per request (and resource or scope entries): "
                                         "more gets 413", check=integer(1, "a whole number >= 1"))
    max_inflight_bytes: int = setting(64 * 1024 * 1024, doc="bodies and decoded items of all requests in flight: "
                                      "beyond, 503", check=integer(1024, "a whole number of bytes >= 1024"))
    request_timeout: float = setting(30.0, doc="seconds from a request's first byte to its last: a slower sender "
                                           "is closed", check=seconds)
    retry_after: int = setting(1, doc="seconds, the Retry-After of a 503 (backpressure, max_inflight_bytes)",
                               check=integer(1, "a whole number of seconds >= 1"))
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
        self.tokens: dict[str, str] | None = None  # token -> name, from token_file

    async def start(self) -> None:
        if not self.settings.listen:
            return  # off: not even the protobuf classes are imported
        missing = [m for m in ("h11", "opentelemetry.proto") if not available(m)]
        if missing:  # an explicit listen without the extra is a config error; the default is quiet
            self.error = f"needs {', '.join(m.split('.')[0] for m in missing)}: {install_hint('h11')}"
            self.events.emit("info", f"OTLP receiver off: it {self.error}", event="otlp")
            return
        from logd.sources.http import HttpListener, ListenError  # h11: the otlp extra
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
            await listener.stop()  # requests in flight finish; their records are in the pipeline

    async def reload(self, config: Tables) -> None:
        """New settings restart the listener; the same ones re-read the token file."""
        new = config.of(OtlpSettings)
        if new == self.settings:
            self.reload_tokens()
            return
        await self.stop()
        self.settings = new
        await self.start()

    def stats(self) -> dict:
        if self.listener is None:
            return {"listen": self.settings.listen or "off", **({"error": self.error} if self.error else {})}
        listener = self.listener
        return {"url": listener.url, "responses": {str(k): v for k, v in sorted(listener.responses.items())},
                "connections_refused": listener.connections_refused, "timed_out": listener.timed_out,
                "inflight_bytes": listener.budget.used, "over_budget": listener.budget.refused,
                "tokens": len(self.tokens) if self.tokens is not None else 0,
                **(self.otlp.stats() if self.otlp is not None else {})}


def ingest_routes(pipeline: Pipeline, otlp: OtlpReceiver) -> Routes:
    """Every route of the ingest listener. A new source is one line here."""
    from logd.sources.http import records_route
    from logd.traces.openai import ingest_records

    return {
        ("POST", "/v1/logs"): otlp.logs,
        ("POST", "/v1/traces"): otlp.traces,
        # the OpenAI Agents SDK's backend exporter, pointed here (OPENAI_AGENTS... base URL): {"data": [...]}
        ("POST", "/v1/traces/ingest"): records_route(
            pipeline, lambda payload, request: ingest_records(payload, admit=request.admit)),
    }


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


def _check(table: TableCheck) -> None:
    if table.values.get("listen") and not (available("h11") and available("opentelemetry.proto")):
        table.problem("the OTLP receiver needs h11 and opentelemetry-proto, which are not installed: "
                      f'{install_hint("h11")} (or listen = "" for none)', "listen")
    if "token_file" in table.values:  # readable, private enough, and holding tokens
        try:
            read_tokens(table.values["token_file"])
        except TokenFileError as exc:
            table.problem(str(exc), "token_file")


SPEC = Spec(SOURCE, "otlp", lambda settings, ctx: HttpIngest(settings, ctx.pipeline, ctx.events), OtlpSettings,
            table="otlp", check=_check, figures=lambda ingest: {"otlp": ingest.stats()},
            families=lambda s: _otlp_families(s.get("otlp") or {}))
