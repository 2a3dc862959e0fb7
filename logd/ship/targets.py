"""Delivery to one remote collector, and what came of it.

A target takes a batch of items and answers with an :class:`Outcome`: which items must
be sent again (the remote is down, overloaded, or said 429/5xx), and which were refused
for good (a permanent 4xx, an Elasticsearch item error) with the reason, for the
dead-letter file. Targets never sleep or retry themselves; the shipper decides.
"""

from __future__ import annotations

import gzip
import importlib
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from logd import registry
from logd.extras import require
from logd.ship import encoders
from logd.ship.backoff import parse_retry_after
from logd.ship.encoders import Item
from logd.ship.settings import ShipSettings, TargetSpec, http_url
from logd.spec import TARGET, TableCheck

if TYPE_CHECKING:  # httpx is the `ship` extra: imported when an HTTP target is built
    import httpx


@dataclass
class Outcome:
    retry: list[Item] = field(default_factory=list)  # to send again; empty: nothing left to do
    dead: list[tuple[Item, str]] = field(default_factory=list)  # refused for good, with the reason
    error: str | None = None  # why ``retry`` is not empty
    retry_after: float | None = None  # seconds the remote asked us to wait
    rejected: int = 0  # accepted, but the remote says it dropped this many (OTLP partial success)
    duplicates: int = 0  # accepted as already stored: sent before, de-duplicated by the remote
    reordered: int = 0  # stored after the remote refused an earlier record of the batch (sent again later)
    full: bool = False  # ``retry`` is there because the remote is at its limits (back-pressure)

    @property
    def done(self) -> bool:
        return not self.retry


class Target(Protocol):
    def send(self, items: list[Item]) -> Outcome: ...

    def close(self) -> None: ...


def tls_context(settings: ShipSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=os.fspath(settings.tls_ca) if settings.tls_ca else None)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.tls_cert is not None:
        context.load_cert_chain(os.fspath(settings.tls_cert),
                                os.fspath(settings.tls_key) if settings.tls_key else None)
    return context


def resolved_headers(settings: ShipSettings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Header values, with ``"env:NAME"`` replaced by the variable's value (secrets stay out of files)."""
    env = os.environ if environ is None else environ
    return {name: env.get(value[4:], "") if value.startswith("env:") else value
            for name, value in settings.headers}


def shown_url(url: str) -> str:
    """The URL (or a NATS target's comma-separated server list) without user:password."""
    return ",".join(safe_url(part.strip()) for part in url.split(","))


def safe_url(url: str) -> str:
    """The URL without user:password, for status and logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return url


class SyslogTarget:
    """RFC 5424 over TCP (or TLS, RFC 5425), octet-counted; one connection per batch.

    TCP alone cannot say what the server really read: bytes in flight are lost when it
    stops. So each batch ends with a half-close, and counts as delivered only once the
    server has closed its side too, which it does after reading everything we sent.
    If it dies first, the connection is reset instead and the batch is sent again."""

    def __init__(self, settings: ShipSettings, hostname: str) -> None:
        parts = urlsplit(settings.url)
        self.host, self.port = parts.hostname or "localhost", parts.port or 514
        self.timeout = settings.timeout
        self.facility = encoders.FACILITIES[settings.facility]
        self.hostname = hostname
        self.msg_format = settings.format
        self.tls = tls_context(settings) if parts.scheme == "tls" else None

    def send(self, items: list[Item]) -> Outcome:
        data = encoders.syslog_frames(items, facility=self.facility, hostname=self.hostname,
                                      msg_format=self.msg_format)
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as raw:
                sock: socket.socket = raw
                if self.tls is not None:
                    sock = self.tls.wrap_socket(raw, server_hostname=self.host)
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass  # servers send nothing back; wait for their end of the close
        except (OSError, ssl.SSLError) as exc:
            return Outcome(retry=items, error=f"{self.host}:{self.port}: {_reason(exc)}")
        return Outcome()

    def close(self) -> None:
        pass


class HttpTarget:
    """POST a body per batch (OTLP/HTTP, NDJSON, Loki push, Elasticsearch _bulk) with httpx."""

    def __init__(self, settings: ShipSettings, encode: Callable[[list[Item]], bytes], content_type: str,
                 clock: Callable[[], float] = time.time,
                 check: Callable[[list[Item], httpx.Response], Outcome] | None = None) -> None:
        """``check`` reads a 2xx body for per-record refusals (Elasticsearch, OTLP partial success)."""
        self.httpx = require("httpx", f'ship target type "{settings.type}"')
        self.url = settings.url
        self.encode = encode
        self.gzip = settings.compression == "gzip"
        self.clock = clock
        self.check = check
        headers = {"Content-Type": content_type, "User-Agent": "logd"}
        headers.update(resolved_headers(settings))
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        verify: ssl.SSLContext | bool = tls_context(settings) if self.url.startswith("https:") else True
        self.client = self.httpx.Client(timeout=settings.timeout, headers=headers, verify=verify)

    def send(self, items: list[Item]) -> Outcome:
        body = self.encode(items)
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
        try:
            response = self.client.post(self.url, content=body)
        except self.httpx.HTTPError as exc:
            return Outcome(retry=items, error=f"{safe_url(self.url)}: {type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return self.check(items, response) if self.check else Outcome()
        if status == 413 and len(items) > 1:  # too large for this server: halve it rather than refuse records
            half = len(items) // 2
            first, second = self.send(items[:half]), self.send(items[half:])
            return Outcome(retry=first.retry + second.retry, dead=first.dead + second.dead,
                           error=first.error or second.error,
                           retry_after=max(first.retry_after or 0, second.retry_after or 0) or None)
        reason = f"HTTP {status}: {response.text[:300].strip()}"
        if status in (408, 425, 429) or status >= 500:
            return Outcome(retry=items, error=reason,
                           retry_after=parse_retry_after(response.headers.get("Retry-After"), self.clock()))
        return Outcome(dead=[(item, reason) for item in items])

    def close(self) -> None:
        self.client.close()


def es_bulk_outcome(items: list[Item], response: httpx.Response) -> Outcome:
    """A 200 from ``_bulk`` can still refuse items: retry 429/5xx ones, dead-letter the rest;
    409 on ``create`` means the id is stored already (this batch was sent before)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return Outcome()
    if not body.get("errors"):
        return Outcome()
    outcome = Outcome()
    # strict=False: the reply is the server's; an entry missing or extra in it is not ours to fail on
    for item, result in zip(items, body.get("items", []), strict=False):
        action: dict[str, Any] = next(iter(result.values()), {}) if isinstance(result, dict) else {}
        status = action.get("status", 200)
        if status == 409:
            outcome.duplicates += 1
            continue
        if status < 300:
            continue
        error = action.get("error", {})
        if isinstance(error, dict):
            reason = f"HTTP {status}: {error.get('type', '')}: {error.get('reason', '')}"
        else:
            reason = f"HTTP {status}: {error}"
        if status == 429 or status >= 500:
            outcome.retry.append(item)
            outcome.error = reason
        else:
            outcome.dead.append((item, reason))
    return outcome


def _otlp_partial(response: httpx.Response, json_key: str, response_class: str, field: str,
                  what: str) -> Outcome:
    """OTLP partial success: the collector took the request but rejected some of it. It does
    not say which, so nothing can be dead-lettered; the count is kept as the error."""
    if not response.content:
        return Outcome()
    try:
        if response.headers.get("content-type", "").startswith("application/json"):
            partial = orjson.loads(response.content).get("partialSuccess", {})
            rejected, message = int(partial.get(json_key, 0)), partial.get("errorMessage", "")
        else:
            module, name = response_class.rsplit(".", 1)
            reply = getattr(importlib.import_module(module), name).FromString(response.content)
            rejected, message = getattr(reply.partial_success, field), reply.partial_success.error_message
    except Exception:  # an unreadable success body is still a success
        return Outcome()
    return Outcome(rejected=rejected, error=f"collector rejected {rejected} {what}: {message}" if rejected else None)


def otlp_outcome(items: list[Item], response: httpx.Response) -> Outcome:
    """OTLP logs partial success (``rejectedLogRecords``)."""
    return _otlp_partial(response, "rejectedLogRecords",
                         "opentelemetry.proto.collector.logs.v1.logs_service_pb2.ExportLogsServiceResponse",
                         "rejected_log_records", "records")


def otlp_traces_outcome(items: list[Item], response: httpx.Response) -> Outcome:
    """OTLP traces partial success (``rejectedSpans``)."""
    return _otlp_partial(response, "rejectedSpans",
                         "opentelemetry.proto.collector.trace.v1.trace_service_pb2.ExportTraceServiceResponse",
                         "rejected_spans", "spans")


@dataclass(frozen=True)
class Where:
    """What a target is built with besides its settings: this machine's name, the clock."""

    hostname: str
    clock: Callable[[], float] = time.time


def build_target(settings: ShipSettings, hostname: str, clock: Callable[[], float] = time.time) -> Target:
    """The target of ``settings``' type, as its spec builds it."""
    spec = registry.spec(TARGET, settings.type)
    if spec is None:
        raise ValueError(f"unknown ship target type {settings.type!r}")
    return spec.build(settings, Where(settings.hostname or hostname, clock))


def _syslog_url(url: str) -> str | None:
    if not url.startswith(("tcp://", "tls://")):
        return f'expected tcp://host:port or tls://host:port for type "syslog", found "{url}"'
    if not re.fullmatch(r"(tcp|tls)://[^\s:/]+:\d+", url):
        return f'expected tcp://host:port or tls://host:port (the port is required), found "{url}"'
    return None


def _otlp(settings: ShipSettings, where: Where) -> Target:
    json, hostname = settings.format == "json", where.hostname
    if settings.signal == "traces":  # the shipper passes span records only
        encode = encoders.otlp_traces_json if json else encoders.otlp_traces_protobuf
        check = otlp_traces_outcome
    else:
        encode = encoders.otlp_json if json else encoders.otlp_protobuf
        check = otlp_outcome
    return HttpTarget(settings, lambda items: encode(items, service_name=settings.service_name, hostname=hostname),
                      "application/json" if json else "application/x-protobuf", where.clock, check=check)


def _otlp_signal_and_path(table: TableCheck) -> None:
    """signal = "logs" posts to /v1/logs: a URL ending in the other signal's path is a mistake."""
    signal, url = table.values.get("signal", "logs"), table.values.get("url")
    other = {"logs": "/v1/traces", "traces": "/v1/logs"}[signal]
    if url is not None and urlsplit(url).path.rstrip("/").endswith(other):
        table.problem(f'signal = "{signal}" posts to /v1/{signal}, but the url ends in {other}', "url")


_HTTPX = ("httpx",)
SYSLOG = TargetSpec(TARGET, "syslog", lambda settings, where: SyslogTarget(settings, where.hostname),
                    doc="RFC 5424 frames over TCP or TLS (octet-counted)", formats=("message", "json"),
                    url_problem=_syslog_url)
OTLP = TargetSpec(TARGET, "otlp", _otlp, doc="OTLP/HTTP: logs, or span records as spans (signal)",
                  formats=("protobuf", "json"), needs=("httpx", "opentelemetry.proto"), url_problem=http_url("otlp"),
                  keys=frozenset({"signal"}), check=_otlp_signal_and_path)
HTTP = TargetSpec(TARGET, "http", lambda settings, where: HttpTarget(settings, encoders.ndjson, "application/x-ndjson",
                                                                     where.clock),
                  doc="newline-delimited JSON POSTed to any collector", formats=("ndjson",), needs=_HTTPX,
                  url_problem=http_url("http"))
LOKI = TargetSpec(TARGET, "loki", lambda settings, where: HttpTarget(
    settings, lambda items: encoders.loki_push(items, hostname=where.hostname), "application/json", where.clock),
    doc="Grafana Loki's push API", formats=("json",), needs=_HTTPX, url_problem=http_url("loki"))
ELASTICSEARCH = TargetSpec(TARGET, "elasticsearch", lambda settings, where: HttpTarget(
    settings, lambda items: encoders.es_bulk(items, index=settings.index), "application/x-ndjson", where.clock,
    check=es_bulk_outcome), doc="the bulk API", formats=("json",), needs=_HTTPX, url_problem=http_url("elasticsearch"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
