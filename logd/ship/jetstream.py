"""The nats target: records into a NATS JetStream stream, each counted only once the stream acked it.

Every record is one message on a subject from the target's template (``logs.{agent}``:
:mod:`.subjects`), with ``Nats-Msg-Id`` = ``<host>/<file id>-<offset>``: the record's place
in the log, the same after a rotation or a restart. So a message sent again (its ack was
lost, or logd was killed before its checkpoint moved) is stored once: the stream drops an
id it has seen within its duplicate window and acks it as a duplicate.

A batch is published pipelined on one connection, each message with its own reply
subject, and the target waits for every ack (``timeout``). What the stream refused for
now (full under ``discard = new``, no stream leader during a fail-over), what got no
ack and what could not be sent go back to the shipper to retry, in order; a message too
large for the stream or the server is refused for good (the dead-letter file).

Order: a stream stores what it is sent in order, so a failure cuts a batch into a stored
head and a tail to retry. To keep it so, the connection is dropped after a failure (the
client would otherwise flush what it had buffered through the next server, past the
lost messages); after a failure one message goes alone first, so a stream that comes
back mid-batch does not take the end of a batch before its start; and for a while after
the stream said it was full, every message waits for the ack of the one before (a
consumer freeing space mid-batch would let the stream take a later record before an
earlier refused one). A stream that took a record after refusing an earlier one all the
same (the batch that first fills it) is reported as ``reordered``.

nats-py is asyncio; the target runs its own event loop on a thread, and ``send`` (called
on the shipper's thread) waits for it.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from logd.extras import require
from logd.ship import subjects
from logd.ship.encoders import Item
from logd.ship.settings import NATS_URLS, ShipSettings, TargetSpec
from logd.ship.targets import Outcome, safe_url, shown_url, tls_context
from logd.spec import TARGET, TableCheck
from logd.traces.shapes import classify

STORE_FAILED = 10077  # JetStream's "store failed": maximum bytes/messages (per subject) exceeded, discard new
TOO_LARGE = 10054  # "message size exceeds maximum allowed" (the stream's max_msg_size)
EXPECTED_STREAM = "Nats-Expected-Stream"
CAREFUL_AFTER_FULL = 30.0  # seconds after a "full" refusal during which records go one at a time


def server_urls(url: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` -> each server (4222 when no port is given)."""
    out = []
    for part in url.split(","):
        parts = urlsplit(part.strip())
        netloc = parts.netloc if parts.port else f"{parts.netloc}:4222"
        out.append(f"{parts.scheme}://{netloc}")
    return out


def resolved_secret(value: str) -> str:
    """``"env:NAME"`` -> the variable's value (checked to be set by ``logd check``)."""
    return os.environ.get(value[4:], "") if value.startswith("env:") else value


@dataclass
class _Ack:
    ok: bool
    retry: bool = False  # refused for now; else (not ok) refused for good
    reason: str = ""
    duplicate: bool = False
    full: bool = False  # the stream is at its limits (discard new)
    connection: bool = False  # no answer at all: the connection is suspect and is replaced


class NatsTarget:
    def __init__(self, settings: ShipSettings, hostname: str) -> None:
        self.nats = require("nats", 'ship target type "nats"')
        self.settings = settings
        self.host = settings.hostname or hostname
        self.servers = server_urls(settings.url)
        self.shown = shown_url(settings.url)
        self.template = subjects.Template(settings.subject or subjects.default_subject(settings.signal), self.host)
        self.traces = settings.signal == "traces"
        self.timeout = settings.timeout
        self.options: dict[str, Any] = {}
        if settings.user:
            self.options["user"] = settings.user
            self.options["password"] = resolved_secret(settings.password)
        if settings.token:
            self.options["token"] = resolved_secret(settings.token)
        if settings.creds is not None:
            self.options["user_credentials"] = os.fspath(settings.creds)
        if settings.nkey is not None:
            self.options["nkeys_seed"] = os.fspath(settings.nkey)
        if any(url.startswith("tls:") for url in self.servers) or settings.tls_ca or settings.tls_cert:
            self.options["tls"] = tls_context(settings)
        self._known = list(self.servers)  # and the servers the cluster told us about
        self._next = 0  # where the next connection attempt starts in _known
        self._nc: Any = None
        self._url = ""  # the server of the current connection
        self._inbox = ""
        self._probe = True  # after a failure, one message alone before the rest
        self._careful_until = 0.0  # monotonic time until which messages go one at a time (the stream was full)
        self._attempt = 0
        self._acks: list[_Ack | None] = []
        self._subjects: list[str] = []
        self._missing = 0
        self._all_acked: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._server_error: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nats-{settings.name}", daemon=True)
        self._thread.start()

    # --- the shipper's side ---

    def send(self, items: list[Item]) -> Outcome:
        return asyncio.run_coroutine_threadsafe(self._send(items), self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(self.timeout + 1)
        except Exception:
            pass  # closing: nothing is left to deliver on this connection
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    # --- one batch ---

    def _message(self, item: Item) -> tuple[str, bytes, dict[str, str]]:
        item_id, record = item
        session = None
        if self.template.uses_session:
            found = classify(record)
            session = found[1] if found is not None else None
        headers = {"Nats-Msg-Id": f"{self.host}/{item_id}"}
        if self.settings.stream:
            headers[EXPECTED_STREAM] = self.settings.stream
        return (self.template.subject(record, session), orjson.dumps(record, default=str), headers)

    async def _send(self, items: list[Item]) -> Outcome:
        try:
            nc = await self._connection()
        except _Unreachable as exc:
            return Outcome(retry=items, error=str(exc))
        messages = [self._message(item) for item in items]
        self._subjects = [subject for subject, _, _ in messages]
        acks: list[_Ack | None] = [None] * len(items)
        # One at a time, each after the ack of the one before: the whole batch while the stream was
        # lately full (space freed by a consumer mid-batch would let it take a later record before
        # an earlier refused one), else the first record after a failure (a stream coming back
        # mid-batch would do the same). The rest goes out pipelined.
        alone = len(items) if time.monotonic() < self._careful_until else 1 if self._probe else 0
        for index in range(min(alone, len(items))):
            await self._publish(nc, messages, acks, index, index + 1)
            ack = acks[index] or _Ack(False, retry=True, reason=self._silence(), connection=True)
            if not ack.ok and ack.retry:  # still failing: the rest waits, unsent
                acks[index:] = [ack] * (len(items) - index)
                break
        if alone < len(items) and acks[alone] is None:
            await self._publish(nc, messages, acks, alone, len(items))
        return await self._outcome(items, acks)

    async def _publish(self, nc: Any, messages: list[tuple[str, bytes, dict[str, str]]], acks: list[_Ack | None],
                       start: int, end: int) -> None:
        """Publish ``messages[start:end]``, each with its own reply subject, and wait for their acks."""
        self._attempt += 1
        prefix = f"{self._inbox}.{self._attempt}."
        self._acks = acks
        self._missing = end - start
        assert self._all_acked is not None and self._closed is not None
        self._all_acked.clear()
        for index in range(start, end):
            subject, payload, headers = messages[index]
            try:
                await nc.publish(subject, payload, reply=prefix + str(index), headers=headers)
            except self.nats.errors.MaxPayloadError:
                acks[index] = _Ack(False, reason=f"larger than the server's max_payload ({nc.max_payload} bytes)")
                self._missing -= 1
            except self.nats.errors.Error as exc:  # connection closed or closing: the rest waits for the next one
                failed = _Ack(False, retry=True, reason=f"{self._url}: {_reason(exc)}", connection=True)
                acks[index:end] = [failed] * (end - index)
                self._missing -= end - index
                break
        if self._missing <= 0:
            return
        waits = [asyncio.ensure_future(self._all_acked.wait()), asyncio.ensure_future(self._closed.wait())]
        await asyncio.wait(waits, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        self._acks = []  # late acks of this attempt are ignored: those records go out again

    def _on_reply(self, msg: Any) -> None:
        """An ack (or a refusal) for one message of the current attempt."""
        attempt, _, index_text = msg.subject[len(self._inbox) + 1:].partition(".")
        if attempt != str(self._attempt) or not self._acks:
            return
        index = int(index_text)
        if self._acks[index] is not None:
            return
        self._acks[index] = _ack(msg, self._subjects[index])
        self._missing -= 1
        if self._missing <= 0 and self._all_acked is not None:
            self._all_acked.set()

    async def _outcome(self, items: list[Item], acks: list[_Ack | None]) -> Outcome:
        outcome = Outcome()
        refused_at: int | None = None
        lost_connection = False
        for index, (item, answer) in enumerate(zip(items, acks, strict=True)):
            # no answer in time, or the connection went first
            ack = answer or _Ack(False, retry=True, reason=self._silence(), connection=True)
            if ack.ok:
                outcome.duplicates += ack.duplicate
                if refused_at is not None:
                    outcome.reordered += 1
            elif ack.retry:
                outcome.retry.append(item)
                refused_at = index if refused_at is None else refused_at
                outcome.error = outcome.error or ack.reason
                outcome.full = outcome.full or ack.full
                lost_connection = lost_connection or ack.connection
            else:
                outcome.dead.append((item, ack.reason))
        self._probe = bool(outcome.retry)
        if outcome.full:
            self._careful_until = time.monotonic() + CAREFUL_AFTER_FULL
        if lost_connection:
            await self._drop()  # a fresh connection: nothing buffered in this one goes out later, out of order
        return outcome

    def _silence(self) -> str:
        why = f"no ack from the stream within {self.timeout:g}s ({self._url})"
        if self._closed is not None and self._closed.is_set():
            why = f"{self._url}: connection lost before the stream acked"
        if self._server_error:
            why += f"; the server said: {self._server_error}"
        return why

    # --- the connection ---

    async def _connection(self) -> Any:
        nc = self._nc
        if nc is not None and nc.is_connected:
            return nc
        await self._drop()
        tried = []
        for step in range(len(self._known)):
            url = self._known[(self._next + step) % len(self._known)]
            closed = asyncio.Event()

            async def on_closed(closed: asyncio.Event = closed) -> None:
                closed.set()

            self._server_error = None
            try:
                nc = await self.nats.connect(
                    # one server at a time, tried (at most twice) without nats-py's waits: the shipper backs off
                    servers=[url], allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                    connect_timeout=max(1, round(self.timeout)),
                    name=f"logd {self.host} {self.settings.name}", error_cb=self._on_error, closed_cb=on_closed,
                    disconnected_cb=on_closed, **self.options)
            except Exception as exc:  # refused, timed out, TLS or auth failure: try the next server
                # nats-py reports the cause (refused, TLS, authorization) to error_cb, then raises "no servers"
                tried.append(f"{safe_url(url)}: {self._server_error or _reason(exc)}")
                continue
            self._next = (self._next + step + 1) % len(self._known)
            self._learn(nc)
            self._nc, self._url, self._closed, self._all_acked = nc, safe_url(url), closed, asyncio.Event()
            self._inbox = nc.new_inbox()
            self._probe = True
            await nc.subscribe(self._inbox + ".>", cb=self._reply_cb)
            return nc
        raise _Unreachable("no NATS server reachable: " + "; ".join(tried))

    async def _reply_cb(self, msg: Any) -> None:
        self._on_reply(msg)

    def _learn(self, nc: Any) -> None:
        """Servers the cluster announced join the list to reconnect through."""
        scheme = "tls" if "tls" in self.options else "nats"
        for server in nc.discovered_servers:
            url = f"{scheme}://{server.hostname}:{server.port or 4222}"
            if url not in self._known:
                self._known.append(url)

    async def _on_error(self, exc: Exception) -> None:
        self._server_error = _reason(exc)  # shown with the next failure (a permissions violation, say)

    async def _drop(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), self.timeout)
            except Exception:
                pass  # a dead connection closes with an error; it is gone either way


class _Unreachable(Exception):
    """No server of the list took a connection."""


def _ack(msg: Any, subject: str) -> _Ack:
    """What the stream (or the server) answered to the publish of one message to ``subject``."""
    headers = msg.headers or {}
    status = headers.get("Status")
    if status:  # 503 no responders: no stream listens on the subject (or it has no leader just now)
        if status == "503":
            return _Ack(False, retry=True,
                        reason=f'no stream took subject "{subject}" (none is configured for it, '
                               "or it has no leader just now)")
        return _Ack(False, retry=True, reason=f"server status {status} {headers.get('Description', '')}".strip())
    try:
        reply = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return _Ack(False, retry=True, reason=f"unreadable ack: {msg.data[:200]!r}")
    error = reply.get("error") if isinstance(reply, dict) else None
    if not error:
        return _Ack(True, duplicate=bool(reply.get("duplicate")))
    stream = reply.get("stream") or "?"
    description = error.get("description", "") if isinstance(error, dict) else str(error)
    code = error.get("err_code") if isinstance(error, dict) else None
    if code == TOO_LARGE:
        return _Ack(False, reason=f"stream {stream} refused it: {description}")
    if code == STORE_FAILED:
        return _Ack(False, retry=True, full=True,
                    reason=f"stream {stream} is full ({description}): records wait in the log until it has room")
    return _Ack(False, retry=True, reason=f"stream {stream} refused it for now: {description} (error {code})")


def _reason(exc: BaseException) -> str:
    text = str(exc).removeprefix("nats: ")
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text or type(exc).__name__


def _nats_url(url: str) -> str | None:
    if not re.fullmatch(NATS_URLS, url):
        return f'expected nats://host:port or tls://host:port servers, comma-separated, for type "nats", found "{url}"'
    return None


def _check(table: TableCheck) -> None:
    """A nats target's subject template, and its secrets: set in the environment, one way to log in."""
    values, problem = table.values, table.problem
    signal = values.get("signal", "logs")
    values.setdefault("subject", subjects.default_subject(signal))
    wrong = subjects.template_problem(values["subject"], signal)
    if wrong is not None:
        problem(f'expected {wrong}, found "{values["subject"]}"', "subject")
    for secret in ("password", "token"):
        value = values.get(secret, "")
        if value.startswith("env:") and value[4:] not in os.environ:
            problem(f"environment variable {value[4:]} is not set (the {secret} is read from it)", secret)
    if ("user" in values) != ("password" in values):
        missing = "password" if "user" in values else "user"
        problem(f"user and password go together; {missing} is missing", missing, at=None)
    ways = [key for key in ("user", "token", "creds", "nkey") if key in values]
    if len(ways) > 1:
        problem(f"one way to log in: {' or '.join(ways)}, not both", ways[1])


SPEC = TargetSpec(TARGET, "nats", lambda settings, where: NatsTarget(settings, where.hostname),
                  doc="a NATS JetStream stream, each record acked (nats-py: the nats extra)", formats=("json",),
                  needs=("nats",), url_problem=_nats_url, check=_check,
                  keys=frozenset({"signal", "subject", "stream", "user", "password", "token", "creds", "nkey"}))

