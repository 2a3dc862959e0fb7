"""Records -> the bytes each kind of collector takes. Pure functions: no I/O here.

- syslog: RFC 5424 messages, octet-counted (RFC 6587); fields as SD-params.
- otlp: an OTLP ``ExportLogsServiceRequest``, protobuf or OTLP/JSON; with ``signal = "traces"``
  an ``ExportTraceServiceRequest`` of the span records.
- http: newline-delimited JSON (Vector, Fluent Bit, Logstash HTTP inputs).
- loki: the push API's JSON, one stream per (agent, level).
- elasticsearch: a ``_bulk`` body of ``create`` actions with ids derived from the
  record's place in the log, so a batch sent twice is stored once.
"""

from __future__ import annotations

import base64
import calendar
import re
from collections.abc import Iterable
from typing import Any

import orjson

from logd.record import Record
from logd.traces.semantics import span_id

# An item to ship: a stable id (file fingerprint + byte offset of the line) and the record.
Item = tuple[str, Record]

HEADER_FIELDS = frozenset(("time", "level", "message"))


def parse_line(line: bytes) -> Record:
    """A line of logd's JSON file back into a record; a line that is not JSON is kept, flagged."""
    try:
        record = orjson.loads(line)
        if isinstance(record, dict):
            return record
    except orjson.JSONDecodeError:
        pass
    return {"level": "info", "message": line.decode("utf-8", "replace"), "_malformed": True}


_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def time_ns(value: Any) -> int:
    """Nanoseconds since the epoch of a canonical record time; 0 when it is not one."""
    if not isinstance(value, str):
        return 0
    m = _TIME.fullmatch(value)
    if m is None:
        return 0
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    fraction = (m.group(7) or "").ljust(9, "0")
    return calendar.timegm((y, mo, d, h, mi, s)) * 1_000_000_000 + int(fraction)


# --- syslog (RFC 5424 + RFC 6587 octet counting) ---

FACILITIES = {name: i for i, name in enumerate(
    ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"))}
FACILITIES.update({f"local{i}": 16 + i for i in range(8)})
SYSLOG_SEVERITY = {"trace": 7, "debug": 7, "info": 6, "warn": 4, "error": 3, "fatal": 2, "panic": 1}
SD_ID = "logd@32473"  # 32473: the private enterprise number RFC 5612 reserves for documentation
_SD_NAME_BAD = re.compile(r'[^!-~]|[=\]"]')
_HEADER_BAD = re.compile(r"[^!-~]")


def _header(value: Any, limit: int) -> str:
    """A HEADER field: printable US-ASCII without spaces, or ``-`` (NILVALUE)."""
    if value is None or value == "":
        return "-"
    text = str(value)
    if not (text.isascii() and text.isprintable() and " " not in text):
        text = _HEADER_BAD.sub("_", text)
    return text[:limit] or "-"


_sd_names: dict[str, str] = {}  # field name -> SD-NAME; field names repeat, so this stays small


def _sd_name(key: str) -> str:
    name = _sd_names.get(key)
    if name is None:
        name = _SD_NAME_BAD.sub("_", key)[:32] or "_"
        if len(_sd_names) < 10_000:
            _sd_names[key] = name
    return name


def _sd_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is True or value is False:
        return "true" if value else "false"
    elif isinstance(value, int):
        return str(value)
    else:
        text = orjson.dumps(value, default=str).decode()
    if '"' in text or "\\" in text or "]" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return text


def structured_data(record: Record, skip: Iterable[str]) -> str:
    """Every field but ``skip`` as SD-params of one SD-ELEMENT (names cut to 32 characters)."""
    skipped = skip if isinstance(skip, (set, frozenset)) else set(skip)
    params = [f'{_sd_name(key)}="{_sd_value(value)}"' for key, value in record.items()
              if key not in skipped and value is not None]
    return f"[{SD_ID} {' '.join(params)}]" if params else "-"


def syslog_message(record: Record, *, facility: int, hostname: str, msg_format: str = "message") -> bytes:
    """One RFC 5424 message (without framing)."""
    level = record.get("level")
    pri = facility * 8 + SYSLOG_SEVERITY.get(level if isinstance(level, str) else "info", 6)
    when = record.get("time")
    timestamp = when if isinstance(when, str) and _TIME.fullmatch(when) else "-"
    app = _header(record.get("agent"), 48)
    procid = _header(record.get("_pid"), 128)
    msgid = _header(record.get("event"), 32)
    if msg_format == "json":
        sd, msg = "-", orjson.dumps(record, default=str).decode()
    else:
        sd = structured_data(record, HEADER_FIELDS)
        message = record.get("message", "")
        msg = message if isinstance(message, str) else orjson.dumps(message, default=str).decode()
    return f"<{pri}>1 {timestamp} {hostname} {app} {procid} {msgid} {sd} {msg}".encode("utf-8", "replace")


def syslog_frames(items: list[Item], *, facility: int, hostname: str, msg_format: str = "message") -> bytes:
    """Octet-counted frames (RFC 6587 3.4.1): ``LEN SP MSG`` each, so messages may hold newlines."""
    out = []
    for _, record in items:
        message = syslog_message(record, facility=facility, hostname=hostname, msg_format=msg_format)
        out.append(b"%d %s" % (len(message), message))
    return b"".join(out)


# --- OTLP logs ---

OTLP_SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21, "panic": 24}
OTLP_SEVERITY_TEXT = {"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR",
                      "fatal": "FATAL", "panic": "FATAL"}
_TRACE_KEYS = ("trace_id", "traceId", "trace.id")
_SPAN_KEYS = ("span_id", "spanId", "span.id")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _hex_id(record: Record, keys: tuple[str, ...], size: int) -> tuple[bytes, str | None]:
    """A trace/span id given as hex of the right length, and the key it came from."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and len(value) == size * 2 and _HEX.fullmatch(value):
            return bytes.fromhex(value), key
    return b"", None


def _any_value(value: Any, out: Any) -> None:
    """Fill an OTLP ``AnyValue`` from a JSON value."""
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()  # {} stays a (empty) map, not "no value"
        for k, v in value.items():
            kv = out.kvlist_value.values.add()
            kv.key = str(k)
            _any_value(v, kv.value)
    elif isinstance(value, list):
        out.array_value.SetInParent()
        for v in value:
            _any_value(v, out.array_value.values.add())
    elif value is not None:  # None stays an empty AnyValue

        out.string_value = str(value)


def otlp_request(items: list[Item], *, service_name: str, hostname: str) -> Any:
    """An ``ExportLogsServiceRequest``: one ResourceLogs per agent (its ``service.name``)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    scopes: dict[str, Any] = {}
    for _, record in items:
        agent = record.get("agent")
        service = agent if isinstance(agent, str) and agent else service_name
        scope = scopes.get(service)
        if scope is None:
            resource_logs = request.resource_logs.add()
            for key, value in (("service.name", service), ("host.name", hostname)):
                attr = resource_logs.resource.attributes.add()
                attr.key = key
                attr.value.string_value = value
            scope = resource_logs.scope_logs.add()
            scope.scope.name = "logd"
            scopes[service] = scope
        log = scope.log_records.add()
        ts = time_ns(record.get("time"))
        log.time_unix_nano = ts
        log.observed_time_unix_nano = ts
        level = record.get("level")
        level = level if isinstance(level, str) else "info"
        log.severity_number = OTLP_SEVERITY.get(level, 9)
        log.severity_text = OTLP_SEVERITY_TEXT.get(level, level.upper())
        _any_value(record.get("message", ""), log.body)
        trace_id, trace_key = _hex_id(record, _TRACE_KEYS, 16)
        span_id, span_key = _hex_id(record, _SPAN_KEYS, 8)
        log.trace_id, log.span_id = trace_id, span_id
        skip = {"time", "level", "message", "agent", trace_key, span_key}
        for key, value in record.items():
            if key in skip or value is None:
                continue
            attr = log.attributes.add()
            attr.key = key
            _any_value(value, attr.value)
    return request


def otlp_protobuf(items: list[Item], *, service_name: str, hostname: str) -> bytes:
    return otlp_request(items, service_name=service_name, hostname=hostname).SerializeToString()


def otlp_json(items: list[Item], *, service_name: str, hostname: str) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping, except ids are hex (not base64) as OTLP requires."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(otlp_request(items, service_name=service_name, hostname=hostname))
    for resource_logs in data.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for log in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in log:
                        log[key] = base64.b64decode(log[key]).hex()
    return orjson.dumps(data)


# --- OTLP traces (signal = "traces"): logd's span records -> ExportTraceServiceRequest ---

# span_data.type -> gen_ai.operation.name, for span records that did not come in as OTLP
_OPERATIONS = {"agent": "invoke_agent", "generation": "chat", "response": "chat", "function": "execute_tool"}


def _otlp_id(value: Any, size: int) -> bytes:
    """A hex id of the right size as is (OTLP in, OTel ids); any other id (``trace_<hex>``,
    ``span_<hex>``) hashed to ``size`` bytes, the same for a span and its children's parent_id."""
    if not isinstance(value, str) or not value:
        return b""
    if len(value) == size * 2 and _HEX.fullmatch(value):
        return bytes.fromhex(value)
    import hashlib

    return hashlib.sha256(value.encode()).digest()[:size]


def _span_time_ns(value: Any) -> int:
    ns = time_ns(value)
    if ns or value is None:
        return ns
    from logd.timestamps import epoch_seconds

    seconds = epoch_seconds(value)
    return int(seconds * 1e9) if seconds is not None else 0


def _add_attributes(target: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is None:
            continue
        attr = target.add()
        attr.key = str(key)
        _any_value(value, attr.value)


def _gen_ai_attributes(record: Record) -> dict[str, Any]:
    """For span records that did not come in as OTLP: span_data as GenAI semantic conventions."""
    span_data = record.get("span_data")
    data = span_data if isinstance(span_data, dict) else {}
    kind: Any = data.get("type")  # as sent: usually a str, but any JSON value passes through
    out: dict[str, Any] = {"gen_ai.operation.name": _OPERATIONS.get(kind, kind)}
    if kind == "agent":
        out["gen_ai.agent.name"] = data.get("name")
    elif record.get("agent"):
        out["gen_ai.agent.name"] = record["agent"]
    if kind == "function":
        out["gen_ai.tool.name"] = data.get("name")
    out["gen_ai.request.model"] = data.get("model")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    out["gen_ai.usage.input_tokens"] = usage.get("input_tokens")
    out["gen_ai.usage.output_tokens"] = usage.get("output_tokens")
    out["gen_ai.conversation.id"] = record.get("session_id") or record.get("group_id")
    for key, value in data.items():
        if key not in ("type", "name", "model", "usage"):
            out[f"logd.span_data.{key}"] = value
    return out


def otlp_trace_request(items: list[Item], *, service_name: str, hostname: str) -> Any:
    """An ``ExportTraceServiceRequest`` from span records (others are skipped by the shipper).

    Spans that came in as OTLP go out with their own resource, scope, name, kind, attributes
    and events (logd in between changes nothing but redaction); other span records get
    ``service.name`` from their agent and their span_data as ``gen_ai.*`` attributes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    request = ExportTraceServiceRequest()
    kind_names = Span.SpanKind.keys()  # a protobuf enum's names (a list; the enum itself has no ``in``)
    scopes: dict[tuple[bytes, str], Any] = {}
    for _, record in items:
        otel = record.get("otel")
        if not isinstance(otel, dict):
            otel = {}
        resource = record.get("resource")
        if not isinstance(resource, dict):
            agent = record.get("agent")
            resource = {"service.name": agent if isinstance(agent, str) and agent else service_name,
                        "host.name": hostname}
        otel_scope = otel.get("scope")
        scope_name = otel_scope if isinstance(otel_scope, str) else "logd"
        key = (orjson.dumps(resource, option=orjson.OPT_SORT_KEYS, default=str), scope_name)
        scope = scopes.get(key)
        if scope is None:
            resource_spans = request.resource_spans.add()
            _add_attributes(resource_spans.resource.attributes, resource)
            scope = resource_spans.scope_spans.add()
            scope.scope.name = scope_name
            scopes[key] = scope
        span = scope.spans.add()
        span.trace_id = _otlp_id(record.get("trace_id"), 16)
        span.span_id = _otlp_id(span_id(record), 8)
        span.parent_span_id = _otlp_id(record.get("parent_id"), 8)
        span_data = record.get("span_data")
        data = span_data if isinstance(span_data, dict) else {}
        span.name = str(otel.get("name") or data.get("name") or record.get("message") or "span")
        span.kind = Span.SpanKind.Value(otel["kind"]) if otel.get("kind") in kind_names else Span.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = _span_time_ns(record.get("started_at"))
        span.end_time_unix_nano = _span_time_ns(record.get("ended_at")) or span.start_time_unix_nano
        attributes = record.get("attributes")
        _add_attributes(span.attributes, attributes if isinstance(attributes, dict) else _gen_ai_attributes(record))
        events = otel.get("events")
        if not isinstance(events, list):
            events = []
        for event in events:
            if isinstance(event, dict):
                added = span.events.add()
                added.name = str(event.get("name", ""))
                added.time_unix_nano = _span_time_ns(event.get("time"))
                if isinstance(event.get("attributes"), dict):
                    _add_attributes(added.attributes, event["attributes"])
        error = record.get("error")
        if error:
            span.status.code = Status.STATUS_CODE_ERROR
            detail = error if isinstance(error, dict) else {"message": str(error)}
            span.status.message = str(detail.get("status") or detail.get("message") or "error")
            if not any(e.name == "exception" for e in span.events):
                added = span.events.add()
                added.name = "exception"
                added.time_unix_nano = span.end_time_unix_nano
                _add_attributes(added.attributes, {"exception.type": detail.get("type"),
                                                   "exception.message": detail.get("message")})
    return request


def otlp_traces_protobuf(items: list[Item], *, service_name: str, hostname: str) -> bytes:
    return otlp_trace_request(items, service_name=service_name, hostname=hostname).SerializeToString()


def otlp_traces_json(items: list[Item], *, service_name: str, hostname: str) -> bytes:
    """OTLP/JSON traces, ids as hex."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(otlp_trace_request(items, service_name=service_name, hostname=hostname))
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(data)


# --- newline-delimited JSON, Loki, Elasticsearch ---

def ndjson(items: list[Item]) -> bytes:
    return b"".join(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE) for _, record in items)


def loki_push(items: list[Item], *, hostname: str) -> bytes:
    """Loki push API body: streams labelled job/host/agent/level, each line the record as JSON."""
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for _, record in items:
        agent, level = record.get("agent"), record.get("level")
        key = (agent if isinstance(agent, str) else "unknown", level if isinstance(level, str) else "info")
        ns = time_ns(record.get("time"))
        streams.setdefault(key, []).append([str(ns), orjson.dumps(record, default=str).decode()])
    return orjson.dumps({"streams": [
        {"stream": {"job": "logd", "host": hostname, "agent": agent, "level": level}, "values": values}
        for (agent, level), values in streams.items()]})


def es_bulk(items: list[Item], *, index: str) -> bytes:
    """``_bulk`` body: ``create`` with the item's id, then the record with ``@timestamp``."""
    out = []
    for item_id, record in items:
        out.append(orjson.dumps({"create": {"_index": index, "_id": item_id}}))
        out.append(orjson.dumps({"@timestamp": record.get("time"), **record}, default=str))
    return b"\n".join(out) + b"\n"
