"""logd's HTTP ingest listener: ``POST path -> handler`` on one port.

Routes are a table (see :func:`logd.sources.ingest.ingest_routes`): OTLP/HTTP ``/v1/logs``
and ``/v1/traces``, the OpenAI Agents SDK's ``/v1/traces/ingest``; adding a source is one
line there. The listener does what every route needs once, and bounds it (docs/security.md
lists every bound with its default):

* HTTP/1.1 framing (keep-alive, chunked bodies) through ``h11``; a request must arrive
  whole, headers and body, within ``request_timeout`` of its first byte (else 408 and
  the connection is closed), so a slow sender cannot hold a connection slot;
* the bearer token (``token_file``): without a known one, 401 before the body is read;
  records carry the token's name (``_sender``) and ``_transport``, so they can be told
  from socket records;
* the body size limit (413, checked against Content-Length before the body is read, and
  again after gzip), ``Content-Encoding: gzip``;
* one memory budget for every request in flight (``max_inflight_bytes``): each holds its
  body and, once a route counted them, :data:`ITEM_BYTES` per record or span and
  :data:`VALUE_BYTES` per attribute it decodes; a request that does not fit now gets 503
  + ``Retry-After``, one that could never fit 413; a route refuses more than
  ``max_items`` records or spans in one request (413) before it decodes them;
* backpressure: while the pipeline is paused every request is answered 503 with
  ``Retry-After`` before its body is read, so exporters retry instead of logd buffering
  without bound;
* turns: a large request is decoded, mapped and handed to the pipeline a piece at a time,
  the loop given back between pieces (:mod:`logd.turns`), one decode at a time.

Why asyncio + h11 rather than ``http.server`` on a thread (as /metrics does): ingest
is the hot path and must see the pipeline's pause state and hand records over on
the event loop itself; 1,000 concurrent exporters are 1,000 cheap coroutines, not
1,000 threads. h11 is the HTTP/1.1 state machine httpx already brings with it
(httpx -> httpcore -> h11), so it adds no dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import h11
import orjson

from logd.pipeline import Pipeline
from logd.record import Record
from logd.sources.tokens import sender
from logd.turns import Turns, Work

MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 30.0  # a keep-alive connection that starts no request this long is closed
# What a request is charged against max_inflight_bytes per item a route decodes (measured:
# a span record from OTLP is 1.5-2 KiB of Python objects, a log record ~0.7 KiB; an
# attribute or array element ~100-200 bytes), so a small body of many empty items is
# charged for what it becomes, not for its size on the wire.
ITEM_BYTES = 2048
VALUE_BYTES = 192
TRANSPORT = "http"  # the _transport of records that came over this listener
HANDOVER_RECORDS = 32  # records through the pipeline between two looks at the time (~5 ms of spans)


class Refused(Exception):
    """A request answered before (or instead of) its records reaching the pipeline."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Budget:
    """``max_inflight_bytes``: what all requests in flight hold together."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.used = 0
        self.refused = 0  # requests answered 503 because the budget was spent
        # held by the one request that may hold memory not charged yet (Request.uncharged)
        self.uncharged = asyncio.Lock()

    def hold(self, media_type: str) -> Hold:
        return Hold(self, media_type)


class Hold:
    """One request's share of the :class:`Budget`, given back when it is answered."""

    __slots__ = ("budget", "media_type", "held")

    def __init__(self, budget: Budget, media_type: str) -> None:
        self.budget, self.media_type, self.held = budget, media_type, 0

    def take(self, nbytes: int) -> None:
        """Charge ``nbytes``, or raise :class:`Refused`: 413 if this request alone is over the
        whole budget, else 503 + Retry-After while the others' share leaves too little."""
        budget = self.budget
        if self.held + nbytes > budget.limit:
            raise Refused(error_response(413, f"the request needs over {budget.limit} bytes in memory; "
                                              "[logging.otlp] max_inflight_bytes is "
                                              f"{budget.limit}: send smaller batches", self.media_type))
        if budget.used + nbytes > budget.limit:
            budget.refused += 1
            raise Refused(error_response(503, "logd's intake memory (max_inflight_bytes) is in use by other "
                                              "requests; retry later", self.media_type,
                                         **{"Retry-After": str(budget.retry_after)}))
        self.held += nbytes
        budget.used += nbytes

    def release(self) -> None:
        self.budget.used -= self.held
        self.held = 0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes  # already decompressed
    peer: str
    sender: str | None = None  # the name of the bearer token it came with
    hold: Hold | None = None  # its share of max_inflight_bytes
    max_items: int = 10_000

    @property
    def media_type(self) -> str:
        """``application/json`` from ``application/json; charset=utf-8``."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def admit(self, items: int, what: str = "records") -> None:
        """Before ``items`` records or spans are decoded: 413 beyond ``max_items``, else their
        memory is charged (:class:`Refused` when it does not fit)."""
        self.limit(items, what)
        self.charge_items(items)

    def charge_items(self, count: int) -> None:
        """``count`` records, spans or other entries about to be decoded."""
        self.charge(count * ITEM_BYTES)

    def limit(self, items: int, what: str = "records") -> None:
        """413 (:class:`Refused`) for more than ``max_items`` in one request."""
        if items > self.max_items:
            raise Refused(error_response(413, f"{items} {what} in one request; [logging.otlp] max_items is "
                                              f"{self.max_items}: send smaller batches", self.media_type))

    def charge(self, nbytes: int) -> None:
        if self.hold is not None:
            self.hold.take(nbytes)

    def uncharged(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held while this request is decoded: until its items are counted and charged it holds
        memory it is not charged for (a JSON document is charged a piece at a time, with the
        loop given back between pieces). One request at a time, so the budget is overrun by
        one decode at most, as when a decode held the loop."""
        return self.hold.budget.uncharged if self.hold is not None else contextlib.nullcontext()

    def charge_values(self, count: int) -> None:
        """``count`` attribute values or array elements about to be decoded."""
        if count:
            self.charge(count * VALUE_BYTES)

    def stamp(self, records: list[Record]) -> list[Record]:
        """What identifies the sender, on each record (trusted fields: a client cannot set them)."""
        for record in records:
            record["_transport"] = TRANSPORT
            if self.sender is not None:
                record["_sender"] = self.sender
        return records


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]
Routes = dict[tuple[str, str], Handler]  # ("POST", "/v1/logs") -> handler


class Bounds(Protocol):
    """What the listener is told (``[logging.otlp]``: :class:`logd.sources.ingest.OtlpSettings`)."""

    @property
    def listen(self) -> str: ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def max_items(self) -> int: ...

    @property
    def max_inflight_bytes(self) -> int: ...

    @property
    def request_timeout(self) -> float: ...

    @property
    def retry_after(self) -> int: ...

    @property
    def max_connections(self) -> int: ...


class ListenError(Exception):
    """The address cannot be bound; the message says which and why."""


PROTOBUF = "application/x-protobuf"
# HTTP status -> google.rpc.Code, for the Status body of an error
_RPC_CODES = {400: 3, 401: 16, 404: 5, 405: 12, 408: 4, 413: 8, 415: 3, 431: 8, 503: 14}


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


class _Late(Exception):
    """The request did not arrive whole within request_timeout."""


class _Exchange:
    """One request's clock: its deadline starts with its first byte."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline: float | None = None


class HttpListener:
    """Serves ``routes`` on ``settings.listen``; ``busy()`` true means answer 503 for now;
    ``tokens`` (token -> name): the bearer tokens a request must carry one of (None: none asked)."""

    def __init__(self, settings: Bounds, routes: Routes, *, tokens: dict[str, str] | None = None,
                 busy: Callable[[], bool] = lambda: False) -> None:
        host, _, port = settings.listen.rpartition(":")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port)
        self.listen = settings.listen
        self.settings = settings
        self.routes = routes
        self.max_body_bytes = settings.max_body_bytes
        self.max_connections = settings.max_connections
        self.tokens = tokens
        self.busy = busy
        self.budget = Budget(settings.max_inflight_bytes, settings.retry_after)
        self.responses: dict[int, int] = {}  # status -> count
        self.connections_refused = 0
        self.timed_out = 0  # requests closed at request_timeout
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
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text repeats the address
            raise ListenError(f"cannot listen on {self.listen}: {reason}") from None
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
                exchange = _Exchange()
                event = await self._next_event(conn, reader, exchange)
                if not isinstance(event, h11.Request):
                    break
                self._idle[task] = False
                response = await self._answer(conn, reader, event, peer, exchange)
                self._count(response.status)
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
        except _Late:
            self.timed_out += 1
            await self._refuse(conn, writer, error_response(408, "the request did not arrive whole within "
                                                                 f"{self.settings.request_timeout:g} s "
                                                                 "([logging.otlp] request_timeout)"))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
            pass
        finally:
            self._idle.pop(task, None)
            writer.close()

    def _count(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader, exchange: _Exchange) -> object:
        """The next HTTP event; waits IDLE_TIMEOUT_S for a request to start, then until the
        request's deadline (:class:`_Late`)."""
        loop = asyncio.get_running_loop()
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if exchange.deadline is None and conn.trailing_data[0]:  # a request has begun
                exchange.deadline = loop.time() + self.settings.request_timeout
            if exchange.deadline is None:
                data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT_S)
                if data:
                    exchange.deadline = loop.time() + self.settings.request_timeout
            else:
                left = exchange.deadline - loop.time()
                try:
                    if left <= 0:
                        raise TimeoutError
                    data = await asyncio.wait_for(reader.read(65536), left)
                except (TimeoutError, asyncio.TimeoutError):
                    raise _Late from None
            conn.receive_data(data)  # b"" is the peer's EOF

    async def _answer(self, conn: h11.Connection, reader: asyncio.StreamReader, head: h11.Request,
                      peer: object, exchange: _Exchange) -> Response:
        method = head.method.decode("ascii", "replace")
        path = head.target.decode("ascii", "replace").split("?", 1)[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        name = None
        if self.tokens is not None:
            name = sender(self.tokens, headers.get("authorization", ""))
            if name is None:
                return error_response(401, "a bearer token is required ([logging.otlp] token_file): send "
                                           "Authorization: Bearer <token>, e.g. OTEL_EXPORTER_OTLP_HEADERS="
                                           '"authorization=Bearer <token>"', media,
                                      **{"WWW-Authenticate": 'Bearer realm="logd"'})
        handler = self.routes.get((method, path))
        if handler is None:
            known = sorted(m for m, p in self.routes if p == path)
            if known:
                return error_response(405, f"{path} accepts {', '.join(known)}", media, Allow=", ".join(known))
            return error_response(404, f"no route for {method} {path}; "
                                       f"routes: {', '.join(f'{m} {p}' for m, p in sorted(self.routes))}", media)
        if self.busy():
            return error_response(503, "logd is applying backpressure (a sink is slow or failing); retry later",
                                  media, **{"Retry-After": str(self.settings.retry_after)})
        hold = self.budget.hold(media)
        try:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit():
                if int(declared) > self.max_body_bytes:
                    return self._too_large(int(declared), media)
                hold.take(int(declared))
            body = bytearray()
            while True:
                event = await self._next_event(conn, reader, exchange)
                if isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.max_body_bytes:
                        return self._too_large(len(body), media, at_least=True)
                    if declared is None:  # chunked: charged as it comes
                        hold.take(len(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # the client went away mid-body
                    raise ConnectionResetError("connection closed before the request body ended")
            encoding = headers.get("content-encoding", "identity").strip().lower()
            data = self._decoded(body, encoding, media, hold)
            del body
            return await handler(Request(method, path, headers, data, peer_text, name, hold,
                                         self.settings.max_items))
        except Refused as refused:
            return refused.response
        finally:
            hold.release()

    def _too_large(self, size: int, media: str, at_least: bool = False) -> Response:
        return error_response(413, f"request body is {'over ' if at_least else ''}{size} bytes; "
                                   f"[logging.otlp] max_body_bytes is {self.max_body_bytes}", media)

    def _decoded(self, body: bytearray, encoding: str, media: str, hold: Hold) -> bytes:
        if encoding in ("", "identity"):
            return bytes(body)
        if encoding not in ("gzip", "deflate"):
            raise Refused(error_response(415, f"unsupported Content-Encoding {encoding!r}; "
                                              "send gzip, deflate or an uncompressed body", media))
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
        try:
            data = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as exc:
            raise Refused(error_response(400, f"the body is not valid {encoding}: {exc}", media)) from None
        if len(data) > self.max_body_bytes:  # a small body that inflates past the limit
            raise Refused(self._too_large(len(data), media, at_least=True))
        if not inflater.eof:
            raise Refused(error_response(400, f"the {encoding} body is truncated", media))
        hold.take(len(data))
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
        status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
        await self._refuse(conn, writer, error_response(status, f"malformed HTTP request: {exc}"))

    async def _refuse(self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
        """Answer ``response`` and close, if the exchange still allows an answer."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        self._count(response.status)
        try:
            await asyncio.wait_for(self._send(h11.Connection(h11.SERVER), writer, response, close=True), 5.0)
        except (ConnectionError, h11.LocalProtocolError, TimeoutError, asyncio.TimeoutError):
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


def records_route(pipeline: Pipeline, convert: Callable[[object, Request], Work[list[Record]]],
                  turns: Turns | None = None) -> Handler:
    """A route for a JSON body that ``convert`` turns into records, in turns (400 when it
    cannot; it calls ``request.admit`` before it makes them); answered once every sink has
    taken them."""
    turns = turns if turns is not None else Turns()

    async def handle(request: Request) -> Response:
        if request.media_type != "application/json":
            return error_response(415, f"expected Content-Type application/json, got {request.media_type or 'none'!r}")
        try:
            async with request.uncharged():  # one decode at a time (docs/security.md's memory bound)
                records = await turns.run(convert(orjson.loads(request.body), request))
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            return error_response(400, f"malformed body: {exc}")
        except RecursionError:
            return error_response(400, "malformed body: nested too deeply")
        await put_and_wait(pipeline, request.stamp(records))
        return Response(200, orjson.dumps({"accepted": len(records)}))

    return handle


async def put_and_wait(pipeline: Pipeline, records: list[Record]) -> None:
    """Hand records to the pipeline and return once every sink has taken them: an exporter
    told 200 can forget its batch. A large request goes in turns (:mod:`logd.turns`), so
    other clients' records are taken between its slices."""
    if not records:
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def written() -> None:
        if not done.done():
            done.set_result(None)

    await Turns().run(_hand_over(pipeline, records, written))
    await done


def _hand_over(pipeline: Pipeline, records: list[Record], written: Callable[[], None]) -> Work[None]:
    """``records`` through the pipeline in order, :data:`HANDOVER_RECORDS` at a time (each
    slice drained at once, so its cost is seen by the turns, not left for one large batch);
    ``written`` rides on the last slice (the pipeline calls back only once every sink wrote
    all it was given before)."""
    for start in range(0, len(records), HANDOVER_RECORDS):
        last = start + HANDOVER_RECORDS >= len(records)
        pipeline.put(records[start:start + HANDOVER_RECORDS], on_written=written if last else None)
        pipeline.drain()
        yield


