"""The sender: ready records in, JSON lines out to logd, on a background thread.

:meth:`Sender.put` is all a logging call pays: one append to a bounded deque
under a lock. A daemon thread batches, encodes and writes to the socket. While
logd is unreachable it reconnects with capped exponential backoff and keeps at
most ``max_buffer`` records (plus the batch in flight); past that the oldest
are dropped and counted, and the next batch starts with one record saying how
many. With ``ack=True`` the connection speaks the ack protocol (logd/ack.py):
each batch is kept until logd says it is written, and resent after a reconnect.
"""

from __future__ import annotations

import atexit
import os
import pwd
import socket
import struct
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from logd.backoff import Backoff
from logd.paths import client_socket_path
from logd.protocol import header_line, hello_line
from logd.timestamps import format_epoch

Record = dict[str, Any]
_OPTIONS = orjson.OPT_APPEND_NEWLINE
_PEERCRED = struct.Struct("3i")
DAEMON_USER_ENV = "LOGD_DAEMON_USER"  # the user (name or uid) logd runs as, when not root or you


def trusted_daemon_uids(extra: str | int | None = None) -> set[int]:
    """Who may be listening on logd's socket: root, this process's user, and the user named
    by ``extra`` or ``$LOGD_DAEMON_USER`` (a service account such as ``logd``)."""
    uids = {0, os.getuid()}
    for who in (extra, os.environ.get(DAEMON_USER_ENV)):
        if who is None or who == "":
            continue
        if isinstance(who, int) or str(who).isdecimal():
            uids.add(int(who))
            continue
        try:
            uids.add(pwd.getpwnam(str(who)).pw_uid)
        except KeyError:
            pass  # an unknown name trusts nobody more
    return uids


def vouched_by_folder(path: os.PathLike[str] | str, uid: int) -> bool:
    """A service account's socket in a system folder (systemd's ``/run/logd``, owned by ``logd``):
    the socket's folder belongs to the daemon's user, and the folder holding it (``/run``) is
    root's and writable by nobody else, so no other user could have made either."""
    folder = Path(path).parent
    try:
        mine, parent = os.stat(folder), os.stat(folder.parent)
    except OSError:
        return False
    return (mine.st_uid == uid and not mine.st_mode & 0o022
            and parent.st_uid == 0 and not parent.st_mode & 0o022)


def untrusted_peer(sock: socket.socket, path: os.PathLike[str] | str, trusted: set[int]) -> str | None:
    """Why the process listening at ``path`` must not get our records (kernel peer credentials),
    or None when it runs as a trusted user: another local user could have put their own socket
    there (a folder they created first), and records hold secrets until logd redacts them."""
    try:
        pid, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError as exc:
        return f"cannot check who listens on {path}: {exc}"
    if uid in trusted or vouched_by_folder(path, uid):
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    allowed = ", ".join(str(u) for u in sorted(trusted))
    return (f"refusing to send to {path}: it is served by pid {pid} running as uid {uid} ({name}), "
            f"not root or the expected user (uids {allowed}); set {DAEMON_USER_ENV} if logd runs as {name}")
SEND_BUFFER = 1 << 20  # bytes asked for the socket's send buffer (the kernel caps it at wmem_max)


Reconnect = Backoff  # the client's name for it: when to try the socket again


class _TimeFormatter:
    """Epoch seconds -> canonical RFC 3339 UTC (as :func:`logd.timestamps.format_epoch`),
    the date and time up to the second cached: consecutive records share it."""

    def __init__(self) -> None:
        self._cached = (-1, "")  # (second, "YYYY-MM-DDTHH:MM:SS"), replaced whole: senders share it

    def __call__(self, seconds: float) -> str:
        whole = int(seconds // 1)
        micros = round((seconds - whole) * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        cached = self._cached
        if cached[0] != whole:
            cached = self._cached = (whole, format_epoch(whole)[:19])
        return f"{cached[1]}.{micros:06d}Z"


_format_time = _TimeFormatter()


def encode_batch(records: list[Record], format_time: Callable[[float], str] = _format_time) -> tuple[bytes, list[int]]:
    """The records as JSON lines, and each line's length; float times become canonical RFC 3339.

    Never raises. Each line is appended to one buffer at once and let go: keeping a
    thousand small bytes objects alive measured ~7x slower (fresh heap pages each batch).
    """
    data = bytearray()
    lengths = []
    dumps, options = orjson.dumps, _OPTIONS
    for record in records:
        when = record.get("time")
        if type(when) is float:
            record["time"] = format_time(when)
        try:
            line = dumps(record, default=str, option=options)
        except (TypeError, orjson.JSONEncodeError) as exc:  # a non-str key, an int beyond 64 bits...
            line = _encode_safely(record, exc)
        data += line
        lengths.append(len(line))
    return bytes(data), lengths


def _encode_safely(record: Record, exc: Exception) -> bytes:
    try:
        return orjson.dumps(record, default=str, option=_OPTIONS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        safe = {str(k): v if isinstance(v, (str, bool, float, type(None))) else str(v) for k, v in record.items()}
        safe["encode_error"] = str(exc)
        return orjson.dumps(safe, option=_OPTIONS)


class _Closed(Exception):
    """The connection went away; what was not confirmed is sent again on the next one."""


class Sender:
    """Delivers records to logd from a background thread; see the module docstring.

    Reusable by anything that makes records (the logging handler, the loguru sink,
    tracing): ``put(record)`` takes a dict whose ``time`` is epoch seconds (float)
    or an RFC 3339 string, and that nobody changes afterwards.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        ack: bool = False,
        max_buffer: int = 10_000,
        batch_size: int | None = None,
        linger: float = 0.002,
        exit_timeout: float = 2.0,
        io_timeout: float = 1.0,
        backoff_initial: float = 0.05,
        backoff_cap: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        stream: str | None = None,
        daemon_user: str | int | None = None,
    ) -> None:
        """``daemon_user``: the user logd runs as, if not root or this process's user (see
        :func:`trusted_daemon_uids`); a socket served by anyone else gets nothing."""
        self.path = Path(path) if path is not None else client_socket_path()
        self.trusted_uids = trusted_daemon_uids(daemon_user)
        self.ack = ack
        self.max_buffer = max_buffer
        # records per write; in ack mode per round trip, so there it is everything queued:
        # one batch in flight at a time, and bigger batches amortise the wait for each ack
        self.batch_size = batch_size or (max_buffer if ack else 2048)
        self.linger = linger  # seconds to wait for more records after a send
        self.exit_timeout = exit_timeout
        self.io_timeout = io_timeout
        self.clock = clock
        self.reconnect = Backoff(backoff_initial, backoff_cap, clock=clock)
        self.stream = stream or os.urandom(8).hex()  # stable across reconnects: resends match their first copy
        # counters (read them, do not set them)
        self.sent = 0  # records written to the socket (ack mode: acknowledged)
        self.dropped = 0  # records dropped because the buffer was full
        self.connects = 0
        self._init_state()
        _live_senders.add(self)

    def _init_state(self) -> None:
        self._queue: deque[Record] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition(threading.Lock())
        self._idle = False
        self._lingering = False
        self._unreported = 0  # drops not yet announced to logd
        self._accepted = 0  # records put (flush waits until sent + dropped reach it)
        self._finished = 0
        self._closing = False
        self._deadline = float("inf")
        self._sock: socket.socket | None = None
        self._inbox = b""
        # the batch taken from the queue and not yet confirmed: its JSON lines, each line's
        # length, and per line 1 for a record that was put or 0 for a drop report
        self._unsent = b""
        self._lengths: list[int] = []
        self._weights: list[int] = []
        self._exit_retry = False
        self._seq = 0  # ack mode: the batch awaiting its ack, if _unsent holds one
        self._resend = False
        self._written = 0
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="logd-sender", daemon=True)
        self._thread.start()

    # --- the caller's side: cheap, never blocks, never raises ---

    def put(self, record: Record) -> None:
        with self._lock:
            if len(self._queue) >= self.max_buffer:
                self._queue.popleft()
                self.dropped += 1
                self._unreported += 1
            self._queue.append(record)
            self._accepted += 1
        if self._idle:
            self._wake.set()

    @property
    def running(self) -> bool:
        """The background thread is alive (False after :meth:`close`)."""
        return self._thread.is_alive()

    @property
    def in_flight(self) -> int:
        """Records taken from the queue and not yet confirmed (written to the socket; ack mode: acknowledged)."""
        return len(self._weights)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far is sent (ack mode: written) or dropped; False on timeout."""
        with self._lock:
            target = self._accepted
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._finished < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._done.wait(min(left, 0.1))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (up to ``timeout``, default ``exit_timeout``), then stop."""
        if self._closing:
            return
        self._deadline = self.clock() + (self.exit_timeout if timeout is None else timeout)
        self._closing = True
        self._wake.set()
        self._thread.join(max(0.0, self._deadline - self.clock()) + self.io_timeout + 1)

    # --- the background thread ---

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except Exception as exc:  # a bug must not take the application down; say it once
            self.warn_once("crash", f"logd client: sender stopped after an unexpected error: {exc!r}")
        finally:
            self._disconnect()
            self._give_up()

    def _step(self) -> bool:
        """One round: connect if needed, send one batch, or wait. False when done."""
        if self._closing and not self._exit_retry:
            self._exit_retry = True
            self.reconnect.succeeded()  # at exit, try at once rather than after the current backoff
        if not self._unsent and not self._take():
            if self._closing:
                return False
            self._wait_for_records()
            return True
        if self._sock is None and not self._connect():
            if self._closing and self.clock() >= self._deadline:
                return False
            self._wake.wait(self.reconnect.remaining())
            self._wake.clear()
            return True
        try:
            if self.ack:
                self._send_acked()
            else:
                self._send_plain()
            self._lingering = True
        except (_Closed, OSError):
            self._disconnect()
            self.reconnect.failed()
            if self._closing and self.clock() >= self._deadline:
                return False
        return True

    def _wait_for_records(self) -> None:
        """Right after a send, linger without asking callers to wake us: a burst then costs them
        nothing and goes out in few large writes. After a quiet linger, sleep until woken."""
        self._wake.clear()
        if self._lingering:
            self._lingering = False
            self._wake.wait(self.linger)
            return
        self._idle = True  # from now on the next put wakes us
        if not self._queue and not self._closing:
            self._wake.wait(1.0)
        self._idle = False

    def _take(self) -> bool:
        """Move the next batch from the queue to ``_unsent`` (encoded), led by a drop report."""
        with self._lock:
            n = min(len(self._queue), self.batch_size)
            records = [self._queue.popleft() for _ in range(n)]
            unreported, self._unreported = self._unreported, 0
        if unreported:
            self._finish(unreported)
            records.insert(0, self._drop_report(unreported))
        if not records:
            return False
        self._unsent, self._lengths = encode_batch(records)
        self._weights = [1] * n
        if unreported:
            self._weights.insert(0, 0)
        self._seq += 1
        self._resend = False
        return True

    def _drop_report(self, count: int) -> Record:
        return {"time": time.time(), "level": "warn",
                "message": f"logd client dropped {count} records: its buffer (max_buffer={self.max_buffer}) "
                           "was full while logd was unreachable or slow",
                "logger": "logd.client", "dropped": count, "dropped_total": self.dropped}

    def _connect(self) -> bool:
        if self.reconnect.remaining() > 0:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.io_timeout)
        try:
            # every send() gives up the GIL, and getting it back from a busy caller takes a
            # switch interval (5 ms): the more each send can take, the fewer of them
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
        try:
            sock.connect(os.fspath(self.path))
            refused = untrusted_peer(sock, self.path, self.trusted_uids)
            if refused is not None:
                raise _Closed(refused)
            if self.ack:
                self._sock, self._inbox = sock, b""
                sock.sendall(hello_line(self.stream))
                reply = self._read_line(patient=False)  # a logd without ack mode never answers
                if b'"logd_ack"' not in reply:
                    raise _Closed(f"unexpected answer to the ack hello: {reply[:80]!r}")
        except (OSError, _Closed) as exc:
            sock.close()
            self._sock = None
            self.reconnect.failed()
            self.warn_once("connect", f"logd client: cannot reach logd at {self.path} ({exc}); "
                                  "buffering and retrying")
            return False
        self._sock = sock
        self.connects += 1
        self.reconnect.succeeded()
        self._warned.discard("connect")
        return True

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._resend = self.ack and bool(self._unsent)

    def _write_all(self, data: bytes) -> None:
        """Write everything, waiting while logd pushes back; ``_written`` counts what went."""
        assert self._sock is not None
        self._written = 0
        while self._written < len(data):
            try:
                self._written += self._sock.send(data[self._written:], socket.MSG_NOSIGNAL)
            except TimeoutError:
                if self._closing and self.clock() >= self._deadline:
                    raise

    def _send_plain(self) -> None:
        """Write the batch; on failure the lines not fully written stay in ``_unsent``."""
        try:
            self._write_all(self._unsent)
        finally:
            self._forget_written(self._written)

    def _forget_written(self, offset: int) -> None:
        """Forget the lines wholly written (the daemon reads them; a cut one is resent whole)."""
        count = done = 0
        for length in self._lengths:
            if done + length > offset:
                break
            done += length
            count += 1
        records = sum(self._weights[:count])
        self._unsent = self._unsent[done:]
        del self._lengths[:count], self._weights[:count]
        self.sent += records
        self._finish(records)

    def _send_acked(self) -> None:
        """Send the batch framed by its header, then wait for its ack."""
        header = header_line(self._seq, len(self._lengths), resent=self._resend)
        self._write_all(header + self._unsent)
        while True:
            line = self._read_line()
            try:
                reply = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(reply, dict) and reply.get("ack") == self._seq:
                break
        records = sum(self._weights)
        self.sent += records
        self._finish(records)
        self._unsent, self._lengths, self._weights, self._resend = b"", [], [], False

    def _read_line(self, patient: bool = True) -> bytes:
        """The next line from logd; waits while it is busy (``patient``, else up to ``io_timeout``),
        raises _Closed when it went away."""
        assert self._sock is not None
        while b"\n" not in self._inbox:
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                if not patient:
                    raise _Closed(f"no answer within {self.io_timeout}s") from None
                if self._closing and self.clock() >= self._deadline:
                    raise _Closed("no answer before the exit timeout") from None
                continue
            if not chunk:
                raise _Closed("logd closed the connection")
            self._inbox += chunk
        line, _, self._inbox = self._inbox.partition(b"\n")
        return line

    def _finish(self, count: int) -> None:
        if count:
            with self._done:
                self._finished += count
                self._done.notify_all()

    def _give_up(self) -> None:
        """At close: what could not be sent before the deadline is lost; say how much."""
        with self._lock:
            left = len(self._queue) + sum(self._weights)
            self._queue.clear()
            self.dropped += left
        self._unsent, self._lengths, self._weights = b"", [], []
        if left:
            self._finish(left)
            _stderr(f"logd client: {left} records not delivered to logd at {self.path} before exit")

    def warn_once(self, key: str, text: str) -> None:
        """One line on stderr per ``key`` (a "connect" warning again after the next success)."""
        if key not in self._warned:
            self._warned.add(key)
            _stderr(text)

    def _after_fork(self) -> None:
        """In a forked child: a fresh queue, connection and thread (the parent's records are its own)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self.sent = self.dropped = self.connects = 0
        self.stream = os.urandom(8).hex()
        self._init_state()


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


_live_senders: weakref.WeakSet[Sender] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Flush every sender at interpreter exit, each within its ``exit_timeout``."""
    for sender in list(_live_senders):
        sender.close()


def _after_fork_all() -> None:
    """In a forked child, every live sender starts afresh (:meth:`Sender._after_fork`)."""
    for sender in list(_live_senders):
        sender._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_all)
