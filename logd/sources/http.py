"""logd's HTTP ingest listener: ``POST path -> handler`` on one loopback port.

Routes are a table (see :func:`ingest_routes`): OTLP/HTTP ``/v1/logs`` and
``/v1/traces`` today; adding a source is one line there. The listener does what
every route needs once: HTTP/1.1 framing (keep-alive, chunked bodies) through
``h11``, the body size limit (413, checked against Content-Length before the body
is read, and again after gzip), ``Content-Encoding: gzip``, and backpressure:
while the pipeline is paused every request is answered 503 with ``Retry-After``
before its body is read, so exporters retry instead of logd buffering without bound.

Why asyncio + h11 rather than ``http.server`` on a thread (as /metrics does): ingest
is the hot path and must see the pipeline's pause state and hand records over on
the event loop itself; 1,000 concurrent exporters are 1,000 cheap coroutines, not
1,000 threads. h11 is the HTTP/1.1 state machine httpx already brings with it
(httpx -> httpcore -> h11), so it adds no dependency.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h11
import orjson

from logd.pipeline import Pipeline
from logd.record import Record

if TYPE_CHECKING:
    from logd.sources.otlp import OtlpReceiver

MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 30.0  # a keep-alive connection that sends nothing this long is closed
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes  # already decompressed
    peer: str

    @property
    def media_type(self) -> str:
        """``application/json`` from ``application/json; charset=utf-8``."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]
Routes = dict[tuple[str, str], Handler]  # ("POST", "/v1/logs") -> handler


class ListenError(Exception):
    """The address cannot be bound; the message says which and why."""


PROTOBUF = "application/x-protobuf"
# HTTP status -> google.rpc.Code, for the Status body of an error
_RPC_CODES = {400: 3, 404: 5, 405: 12, 413: 8, 415: 3, 431: 8, 503: 14}


def error_response(status: int, message: str, media_type: str = "application/json", **headers: str) -> Response:
    """A 4xx/5xx whose body is a ``google.rpc.Status`` (what OTLP/HTTP requires): protobuf when
    the request was protobuf, else its JSON form ``{"code": ..., "message": ...}``."""
    code = _RPC_CODES.get(status, 2)
    if media_type == PROTOBUF:  # field 1 code (varint), field 2 message (bytes)
        text = message.encode()
        body, content_type = b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, PROTOBUF
    else:
        body, content_type = orjson.dumps({"code": code, "message": message}), "application/json"
    return Response(status, body, content_type=content_type, headers=list(headers.items()))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class HttpListener:
    """Serves ``routes`` on ``host:port``; ``busy()`` true means answer 503 for now."""

    def __init__(self, listen: str, routes: Routes, *, max_body_bytes: int, max_connections: int = 1024,
                 busy: Callable[[], bool] = lambda: False) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port)
        self.listen = listen
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.busy = busy
        self.responses: dict[int, int] = {}  # status -> count
        self.connections_refused = 0
        self._server: asyncio.AbstractServer | None = None
        self._idle: dict[asyncio.Task, bool] = {}  # connection task -> waiting for a request
        self._closing = False  # stopping: answer what is in flight with Connection: close

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024,
                                                      limit=MAX_HEADER_BYTES)
        except OSError as exc:
            raise ListenError(f"cannot listen on {self.listen}: {exc.strerror or exc}") from None
        if self.port == 0:  # an ephemeral port (tests): report the real one
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close idle keep-alive connections, let requests in flight finish."""
        if self._server is None:
            return
        self._server.close()
        self._closing = True
        for task, idle in list(self._idle.items()):
            if idle:
                task.cancel()
        pending = list(self._idle)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
        await self._server.wait_closed()
        self._server, self._closing = None, False

    # --- one connection ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._idle) >= self.max_connections:
            self.connections_refused += 1
            writer.close()
            return
        self._idle[task] = True
        peer = writer.get_extra_info("peername")
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            while True:
                self._idle[task] = True
                event = await self._next_event(conn, reader)
                if not isinstance(event, h11.Request):
                    break
                self._idle[task] = False
                response = await self._answer(conn, reader, event, peer)
                self.responses[response.status] = self.responses.get(response.status, 0) + 1
                # the connection is kept only when the whole body was read (a 413/503 answered
                # before reading it closes) and the client did not ask to close
                keep = conn.their_state is h11.DONE and not self._closing
                await self._send(conn, writer, response, close=not keep)
                if conn.their_state is h11.SEND_BODY:
                    await _linger(reader, writer)
                if not keep or conn.our_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._protocol_error(conn, writer, exc)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
            pass
        finally:
            self._idle.pop(task, None)
            writer.close()

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT_S)
            conn.receive_data(data)  # b"" is the peer's EOF

    async def _answer(self, conn: h11.Connection, reader: asyncio.StreamReader, head: h11.Request,
                      peer: object) -> Response:
        method = head.method.decode("ascii", "replace")
        path = head.target.decode("ascii", "replace").split("?", 1)[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        handler = self.routes.get((method, path))
        if handler is None:
            known = sorted(m for m, p in self.routes if p == path)
            if known:
                return error_response(405, f"{path} accepts {', '.join(known)}", media, Allow=", ".join(known))
            return error_response(404, f"no route for {method} {path}; "
                                       f"routes: {', '.join(f'{m} {p}' for m, p in sorted(self.routes))}", media)
        if self.busy():
            return error_response(503, "logd is applying backpressure (a sink is slow or failing); retry later",
                                  media, **{"Retry-After": str(RETRY_AFTER_S)})
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large(int(declared), media)
        body = bytearray()
        while True:
            event = await self._next_event(conn, reader)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body_bytes:
                    return self._too_large(len(body), media, at_least=True)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # the client went away mid-body
                raise ConnectionResetError("connection closed before the request body ended")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        try:
            data = self._decoded(bytes(body), encoding, media)
        except _BodyError as exc:
            return exc.response
        return await handler(Request(method, path, headers, data, peer_text))

    def _too_large(self, size: int, media: str, at_least: bool = False) -> Response:
        return error_response(413, f"request body is {'over ' if at_least else ''}{size} bytes; "
                                   f"[logging.otlp] max_body_bytes is {self.max_body_bytes}", media)

    def _decoded(self, body: bytes, encoding: str, media: str) -> bytes:
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "deflate"):
            raise _BodyError(error_response(415, f"unsupported Content-Encoding {encoding!r}; "
                                                 "send gzip, deflate or an uncompressed body", media))
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
        try:
            data = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as exc:
            raise _BodyError(error_response(400, f"the body is not valid {encoding}: {exc}", media)) from None
        if len(data) > self.max_body_bytes:  # a small body that inflates past the limit
            raise _BodyError(self._too_large(len(data), media, at_least=True))
        if not inflater.eof:
            raise _BodyError(error_response(400, f"the {encoding} body is truncated", media))
        return data

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response,
                    close: bool) -> None:
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   *response.headers]
        if close:
            headers.append(("Connection", "close"))
        data = conn.send(h11.Response(status_code=response.status, headers=headers))
        data += conn.send(h11.Data(data=response.body)) if response.body else b""
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()

    async def _protocol_error(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                              exc: h11.RemoteProtocolError) -> None:
        """Malformed HTTP: answer 400 (or 431) once if the exchange still allows it."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
        response = error_response(status, f"malformed HTTP request: {exc}")
        self.responses[status] = self.responses.get(status, 0) + 1
        try:
            await self._send(h11.Connection(h11.SERVER), writer, response, close=True)
        except (ConnectionError, h11.LocalProtocolError):
            pass


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  limit: int = 64 << 20, timeout: float = 5.0) -> None:
    """After answering before the body was read (413, 503): read and discard what the client
    is still sending, so closing does not reset the connection and lose the answer."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        read = 0

        async def drain() -> None:
            nonlocal read
            while read < limit:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                read += len(chunk)

        await asyncio.wait_for(drain(), timeout)
    except (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError):
        pass


class _BodyError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def records_route(pipeline: Pipeline, convert: Callable[[object], list[Record]]) -> Handler:
    """A route for a JSON body that ``convert`` turns into records (400 when it cannot);
    answered once every sink has taken them."""

    async def handle(request: Request) -> Response:
        if request.media_type != "application/json":
            return error_response(415, f"expected Content-Type application/json, got {request.media_type or 'none'!r}")
        try:
            records = convert(orjson.loads(request.body))
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            return error_response(400, f"malformed body: {exc}")
        await put_and_wait(pipeline, records)
        return Response(200, orjson.dumps({"accepted": len(records)}))

    return handle


async def put_and_wait(pipeline: Pipeline, records: list[Record]) -> None:
    """Hand records to the pipeline and return once every sink has taken them: an exporter
    told 200 can forget its batch."""
    if not records:
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def written() -> None:
        if not done.done():
            done.set_result(None)

    pipeline.put(records, on_written=written)
    await done


def ingest_routes(pipeline: Pipeline, otlp: OtlpReceiver) -> Routes:
    """Every route of the ingest listener. A new source is one line here."""
    from logd.traces.openai import records_from_ingest

    return {
        ("POST", "/v1/logs"): otlp.logs,
        ("POST", "/v1/traces"): otlp.traces,
        # the OpenAI Agents SDK's backend exporter, pointed here (OPENAI_AGENTS... base URL): {"data": [...]}
        ("POST", "/v1/traces/ingest"): records_route(pipeline, records_from_ingest),
    }
