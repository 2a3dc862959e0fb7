"""OTLP/HTTP receiver: ``POST /v1/logs`` and ``POST /v1/traces`` -> logd records.

Bodies are ``ExportLogsServiceRequest`` / ``ExportTraceServiceRequest`` as protobuf
(``application/x-protobuf``) or as OTLP JSON (``application/json``: lowerCamelCase
keys, hex trace/span ids, int64 as strings), decoded with ``opentelemetry-proto``'s
own classes. Answers follow the OTLP/HTTP spec: 200 with an Export*ServiceResponse
(in the request's encoding; ``partial_success`` names what was rejected), 400 with a
``google.rpc.Status`` for a body that cannot be decoded (and a logd error record),
415 for another content type. 413 and 503 + Retry-After come from the listener.

Log records become ordinary records; spans become logd's span records (the shape
:mod:`logd.client.tracing` writes and :mod:`logd.traces` reads): the protocol is read
here, what the instrumentations' attributes mean is :mod:`logd.traces.otel`'s
(docs/traces.md has the table per framework).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from logd.events import Events
from logd.levels import canonical_level
from logd.pipeline import Pipeline
from logd.record import RESERVED, Record
from logd.sources.http import PROTOBUF, Request, Response, error_response, put_and_wait
from logd.timestamps import format_epoch
from logd.traces import otel
from logd.traces.otel import OtelSpan
from logd.turns import Turns, Work

JSON = "application/json"
_CORE = frozenset({"time", "level", "message"})
_SPAN_KIND_NAMES = {k: v for v, k in OtlpSpan.SpanKind.items()}
# severityNumber ranges of the OTel log data model: 1-4 TRACE ... 21-24 FATAL
_SEVERITY = ("trace", "debug", "info", "warn", "error", "fatal")


class MalformedBody(ValueError):
    """The body cannot be decoded; the message says what was wrong."""


# --- AnyValue / attributes -> plain values ---

Charge = Callable[[int], None]  # told how many values are about to be made (Request.charge_values)


def _free(count: int) -> None:
    pass


def any_value(value: AnyValue, charge: Charge = _free) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        values = value.array_value.values
        charge(len(values))
        return [any_value(v, charge) for v in values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values, charge)
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def attributes(pairs: Any, charge: Charge = _free) -> dict[str, Any]:
    """A repeated KeyValue as a dict; ``charge`` is told how many values first."""
    charge(len(pairs))
    return {kv.key: any_value(kv.value, charge) for kv in pairs}


_second: list = [None, ""]  # the last whole second formatted: spans of one batch share it


def _time(unix_nano: int, fallback: int) -> str:
    """Canonical RFC 3339 UTC with microseconds, as format_epoch writes it."""
    ns = unix_nano or fallback
    second, rest = divmod(ns, 1_000_000_000)
    if _second[0] != second:
        _second[0], _second[1] = second, format_epoch(second)[:-8]  # "...T10:00:00" of "...T10:00:00.000000Z"
    return f"{_second[1]}.{rest // 1000:06d}Z"


def _safe_key(key: str) -> str:
    """Attribute keys never overwrite a record's core keys or logd's trusted fields."""
    if key in _CORE:
        return "otel." + key
    return "client" + key if key in RESERVED else key


# --- request bodies ---

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(node: Any, charge: Charge) -> None:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes. Every
    value is visited here first, so ``charge`` is told of them before the protobuf JSON
    parser makes a message of them."""
    if isinstance(node, dict):
        charge(len(node))
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise MalformedBody(f"{key} {value[:40]!r} is not a hex id") from None
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value, charge)
    elif isinstance(node, list):
        charge(len(node))
        for item in node:
            if isinstance(item, (dict, list)):
                _hex_ids_to_base64(item, charge)


_M = TypeVar("_M", bound=Message)  # a protobuf request message

# the three levels of both export requests: resource entries, scope entries, items; each is
# field 1 of the request, then field 2 of its parent, on the wire
LOG_LEVELS = (("resource_logs", "resourceLogs"), ("scope_logs", "scopeLogs"), ("log_records", "logRecords"))
SPAN_LEVELS = (("resource_spans", "resourceSpans"), ("scope_spans", "scopeSpans"), ("spans", "spans"))
_MAX_DEPTH = 100  # protobuf's JSON parser's own limit on nested messages, counted from the request


def decode(body: bytes, media_type: str, message: _M, levels: tuple[tuple[str, str], ...],
           check: Callable[[dict], None] = lambda document: None, charge: Charge = _free) -> Work[_M]:
    """Fill ``message`` (a protobuf request) from the body, or raise MalformedBody; work that
    yields after each entry of a JSON body (:mod:`logd.turns`). ``check`` sees a JSON body's
    document before the (slow) protobuf JSON parser does (item counts), ``charge`` is told
    of its values."""
    if media_type == PROTOBUF:
        try:
            message.ParseFromString(body)  # C: ~10 ms for 4 MB, in one go
        except DecodeError as exc:
            raise MalformedBody(f"not a valid {type(message).__name__} protobuf: {exc}") from None
        return message
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedBody(f"expected a JSON object {type(message).__name__}, found {type(document).__name__}")
    check(document)
    try:
        yield from _fill(document, message, levels, 0, charge)
    except RecursionError:
        raise MalformedBody("nested too deeply") from None
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
        raise MalformedBody(f"not a valid {type(message).__name__}: {exc}") from None
    return message


def _fill(node: dict, message: Message, levels: tuple[tuple[str, str], ...], level: int, charge: Charge,
          path: str = "") -> Work[None]:
    """``node`` (the request's JSON object, or an entry's at ``level``) into ``message`` as
    protobuf's JSON parser makes it of the whole, but its entries one at a time: that parser
    is pure Python (~0.1 ms a span), seconds for a 4 MB body."""
    field, json_name = levels[level]
    names = [key for key in node if key in (field, json_name)]  # both given: the last wins, as in the parser
    skeleton = {key: [] if key in names else value for key, value in node.items()}
    _hex_ids_to_base64(skeleton, charge)
    _parse(skeleton, message, path, _MAX_DEPTH - level)
    entries = node[names[-1]] if names else None
    if entries is None:
        return
    where = f"{path}{names[-1]}"
    if not isinstance(entries, list):
        raise json_format.ParseError(f"{where} must be a list, found {type(entries).__name__}")
    charge(len(entries))
    repeated = getattr(message, field)
    for index, entry in enumerate(entries):
        if entry is None:
            raise json_format.ParseError(f"{where}[{index}] is null")
        if level < 2 and isinstance(entry, dict):
            yield from _fill(entry, repeated.add(), levels, level + 1, charge, f"{where}[{index}].")
        else:
            _hex_ids_to_base64(entry, charge)
            _parse(entry, repeated.add(), f"{where}[{index}]", _MAX_DEPTH - level - 1)
        yield  # after every entry: 10,000 empty resource entries are work too


def _parse(document: Any, message: Message, path: str, depth: int) -> None:
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True, max_recursion_depth=depth)
    except json_format.ParseError as exc:
        raise json_format.ParseError(f"{path.rstrip('.')}: {exc}" if path else str(exc)) from None


_WIRE_FIELDS = (1, 2, 2)
_LEVEL_NAMES = ("resource entries", "scope entries")

# children(node, level, room): the node's entries at that level, at most ``room`` of them
Children = Callable[[Any, int, int], Any]


def _count_levels(root: Any, children: Children, request: Request, what: str) -> int:
    """Resource entries, scope entries and items (records or spans) under ``root``, added up;
    ``request.limit`` refuses (413) a level over ``max_items``, before the next is looked at,
    so no loop runs over more than ``max_items`` entries."""
    nodes, counted = [root], 0
    for level, name in enumerate((*_LEVEL_NAMES, what)):
        below: list = []
        total = 0
        for node in nodes:
            found = children(node, level, request.max_items - total + 1)
            total += len(found)
            request.limit(total, name)
            if level < 2:
                below.extend(found)
        counted += total
        nodes = below
    return counted


def admit_items(request: Request, message: Message, levels: tuple[tuple[str, str], ...], what: str) -> None:
    """Count the decoded request's entries and items, and charge them (Request.charge_items),
    before any is turned into a record."""
    request.charge_items(_count_levels(message, lambda node, level, room: getattr(node, levels[level][0]),
                                       request, what))


def json_item_limit(request: Request, levels: tuple[tuple[str, str], ...], what: str) -> Callable[[dict], None]:
    """The item limit on a JSON document, before the protobuf JSON parser (pure Python, slow)
    would make a message of any size out of it."""

    names = [tuple(dict.fromkeys(pair)) for pair in levels]  # "spans" is both names of the third level

    def children(node: Any, level: int, room: int) -> list:
        if not isinstance(node, dict):
            return []
        return [item for name in names[level] if isinstance(node.get(name), list) for item in node[name]]

    def check(document: dict) -> None:
        _count_levels(document, children, request, what)

    return check


def wire_item_limit(request: Request, what: str) -> None:
    """The item limit on a protobuf body, read off the wire before it is parsed: an empty log
    record or span is 2 bytes on the wire and ~130-170 bytes once parsed, so 4 MB of them
    would take ~300 MB before they could be counted. Every field at these three levels is a
    step, and at most ``3 * max_items`` steps are taken (413 beyond). A body that is not valid
    protobuf stops the count; the parser then says what is wrong with it."""
    body, steps = request.body, [3 * request.max_items]

    def children(node: tuple[int, int], level: int, room: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        wanted = _WIRE_FIELDS[level]
        for number, start, end in _wire_fields(body, *node):
            steps[0] -= 1
            if steps[0] < 0:
                request.limit(request.max_items + 1, "fields at the top three levels")
            if number == wanted and start >= 0:
                out.append((start, end))
                if len(out) >= room:
                    break
        return out

    _count_levels((0, len(body)), children, request, what)


def _wire_fields(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of the message in
    ``data[pos:end]``; other fields are stepped over (and yielded as (number, -1, -1))."""
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _read_varint(data, pos, end)
            if pos + size > end:
                return
            yield number, pos, pos + size
            pos += size
            continue
        if wire == 0:
            _, pos = _read_varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (long deprecated) or not protobuf at all
            return
        yield number, -1, -1


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return value, end + 1  # cut short: past the end, so the caller stops


def encode(message: Any, media_type: str) -> bytes:
    if media_type == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


# --- logs ---

def level_of(severity_number: int, severity_text: str) -> str:
    if 1 <= severity_number <= 24:
        return _SEVERITY[(severity_number - 1) // 4]
    return canonical_level(severity_text) or "info" if severity_text else "info"


def log_records(request: ExportLogsServiceRequest, received_ns: int, charge: Charge = _free) -> Work[list[Record]]:
    """The request's log records as logd records, in order: work that yields after each."""
    out: list[Record] = []
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes, charge)
        service = resource.get("service.name")
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            for log in scope_logs.log_records:
                body = any_value(log.body, charge)
                record: Record = {
                    "time": _time(log.time_unix_nano or log.observed_time_unix_nano, received_ns),
                    "level": level_of(log.severity_number, log.severity_text),
                    "message": body if isinstance(body, str) else ("" if body is None else
                                                                   orjson.dumps(body, default=str).decode()),
                }
                attrs = attributes(log.attributes, charge)
                for key, value in (*resource.items(), *attrs.items()):
                    record[_safe_key(key)] = value
                record.setdefault("agent", attrs.get("gen_ai.agent.name") or service or "otlp")
                if scope:
                    record.setdefault("logger", scope)
                record["severity_number"] = log.severity_number  # also marks it a log, not a span
                if log.severity_text:
                    record["severity_text"] = log.severity_text
                if log.event_name:
                    record["event_name"] = log.event_name
                if any(log.trace_id):
                    record["trace_id"] = log.trace_id.hex()
                if any(log.span_id):
                    record["span_id"] = log.span_id.hex()
                out.append(record)
                yield
    return out


# --- spans ---

class SpanMapper:
    """Spans -> logd span records: the protocol's part (ids, times, status, exception
    events); what the attributes mean is :mod:`logd.traces.otel`'s, one span at a time
    (a trace's session and agents are settled when it is read, whatever order it came in)."""

    def records(self, request: ExportTraceServiceRequest, received_ns: int,
                charge: Charge = _free) -> Work[tuple[list[Record], int, str]]:
        """(records, rejected spans, why) for one request, as work that yields after each span;
        ``charge`` is told of every value made."""
        spans: list[OtelSpan] = []
        rejected, why = 0, ""
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes, charge)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
                        rejected += 1
                        why = "a span needs a 16-byte traceId and an 8-byte spanId"
                        continue
                    spans.append(_otel_span(span, resource, scope_spans.scope.name, received_ns, charge))
                    yield
        return (yield from otel.records(spans)), rejected, why


def _otel_span(span: OtlpSpan, resource: dict, scope: str, received_ns: int, charge: Charge) -> OtelSpan:
    return OtelSpan(
        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() if any(span.parent_span_id) else None, name=span.name,
        start=_time(span.start_time_unix_nano, received_ns), end=_time(span.end_time_unix_nano, received_ns),
        attributes=attributes(span.attributes, charge), resource=resource, scope=scope,
        span_kind=_SPAN_KIND_NAMES.get(span.kind, "SPAN_KIND_UNSPECIFIED"),
        status=Status.StatusCode.Name(span.status.code) if span.status.code else None,
        status_message=span.status.message, events=_events(span.events, charge), error=_error(span, charge))


def _events(events: Any, charge: Charge) -> list[dict[str, Any]]:
    charge(len(events))
    return [{"name": event.name, "time": format_epoch(event.time_unix_nano / 1e9),
             **({"attributes": attributes(event.attributes, charge)} if event.attributes else {})}
            for event in events]


def _error(span: OtlpSpan, charge: Charge) -> dict[str, Any] | None:
    """status ERROR with its message, and the exception event's type, message, stack."""
    if span.status.code != Status.STATUS_CODE_ERROR:
        return None
    error: dict[str, Any] = {}
    for event in span.events:
        if event.name == "exception":
            found = attributes(event.attributes, charge)
            error = {"type": found.get("exception.type"), "message": found.get("exception.message"),
                     **({"stacktrace": found["exception.stacktrace"]} if found.get("exception.stacktrace") else {})}
            error = {k: v for k, v in error.items() if v}
    if span.status.message:
        error["message"] = span.status.message if not error.get("message") else error["message"]
        error.setdefault("status", span.status.message)
    return error or {"message": "status ERROR"}


# --- the routes ---

class OtlpReceiver:
    """The two OTLP routes, feeding ``pipeline``; counts what it took and refused."""

    def __init__(self, pipeline: Pipeline, events: Events) -> None:
        self.events = events
        self.pipeline = pipeline
        self.spans = SpanMapper()  # no state: a trace is put together when it is read
        self.received = {"spans": 0, "log_records": 0}
        self.rejected = {"spans": 0, "log_records": 0}
        self.malformed = 0
        self.turns = Turns()  # a large request is decoded and mapped in turns (logd/turns.py)

    def _now_ns(self) -> int:
        return int(self.pipeline.clock() * 1e9)

    def _check_type(self, request: Request) -> Response | None:
        if request.media_type in (PROTOBUF, JSON):
            return None
        return error_response(415, f"expected Content-Type {PROTOBUF} or {JSON}, "
                                   f"got {request.media_type or 'none'!r}")

    def _malformed(self, request: Request, exc: MalformedBody) -> Response:
        self.malformed += 1
        self.events.emit("error", "OTLP request refused: malformed body", event="otlp", path=request.path,
                           peer=request.peer, content_type=request.media_type, bytes=len(request.body),
                           error=str(exc))
        return error_response(400, str(exc), request.media_type)

    async def _decode(self, request: Request, message: _M, levels: tuple[tuple[str, str], ...],
                      what: str) -> _M | Response:
        """The body as ``message`` with its items admitted (Request.admit), or the answer that
        refuses it (415 wrong type, 400 malformed; 413 and 503 are raised by admit)."""
        refused = self._check_type(request)
        if refused is not None:
            return refused
        if request.media_type == PROTOBUF:
            wire_item_limit(request, what)
        work = decode(request.body, request.media_type, message, levels, json_item_limit(request, levels, what),
                      request.charge_values)
        try:
            async with request.uncharged():  # one decode at a time (docs/security.md's memory bound)
                message = await self.turns.run(work)
                admit_items(request, message, levels, what)
        except MalformedBody as exc:
            return self._malformed(request, exc)
        return message

    async def logs(self, request: Request) -> Response:
        message = await self._decode(request, ExportLogsServiceRequest(), LOG_LEVELS, "log records")
        if isinstance(message, Response):
            return message
        records = await self.turns.run(log_records(message, self._now_ns(), request.charge_values))
        del message
        await put_and_wait(self.pipeline, request.stamp(records))
        self.received["log_records"] += len(records)
        return Response(200, encode(ExportLogsServiceResponse(), request.media_type), content_type=request.media_type)

    async def traces(self, request: Request) -> Response:
        message = await self._decode(request, ExportTraceServiceRequest(), SPAN_LEVELS, "spans")
        if isinstance(message, Response):
            return message
        records, rejected, why = await self.turns.run(self.spans.records(message, self._now_ns(),
                                                                           request.charge_values))
        del message
        await put_and_wait(self.pipeline, request.stamp(records))
        self.received["spans"] += len(records)
        response = ExportTraceServiceResponse()
        if rejected:
            self.rejected["spans"] += rejected
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = why
            self.events.emit("warn", f"OTLP: {rejected} span(s) rejected", event="otlp", peer=request.peer,
                               rejected_spans=rejected, error=why)
        return Response(200, encode(response, request.media_type), content_type=request.media_type)

    def stats(self) -> dict[str, Any]:
        return {"received": dict(self.received), "rejected": dict(self.rejected), "malformed": self.malformed}
