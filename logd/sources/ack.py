"""Acknowledged delivery: the small line protocol a client opts into, daemon side.

A connection whose first line is a hello (``{"logd_ack": 1, "stream": "<id>"}``)
is in ack mode: the daemon answers the hello with the same line, then reads
batches framed by a header line, ``{"batch": <seq>, "count": <n>}`` followed by
``n`` record lines, and answers ``{"ack": <seq>}`` once every sink has taken the
batch. A batch sent again after a reconnect says ``"resent": true`` in its
header. Every record of an ack-mode batch gets ``_rid`` = ``<stream>:<seq>:<i>``
(the same on the first and the resent copy), resent ones ``_resent: true``, so
a reader keeps the first record of each ``_rid``. Both fields are set by logd
only (see ``record.RESERVED``). Plain connections never come through here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import orjson

from logd.record import Record, parse_line
from logd.timestamps import format_epoch

if TYPE_CHECKING:
    from logd.sources.unix import Connection

PROTOCOL_VERSION = 1
HELLO_KEY = "logd_ack"
_HELLO_MARK = HELLO_KEY.encode()
# the stream id is copied into every record's _rid: a short, plain name only
MAX_STREAM_ID = 128
_STREAM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+-")


def hello_line(stream: str) -> bytes:
    """The first line of an ack-mode connection (the client sends it, the daemon echoes it)."""
    return orjson.dumps({HELLO_KEY: PROTOCOL_VERSION, "stream": stream}) + b"\n"


def header_line(seq: int, count: int, resent: bool = False) -> bytes:
    header: Record = {"batch": seq, "count": count}
    if resent:
        header["resent"] = True
    return orjson.dumps(header) + b"\n"


def parse_hello(line: bytes) -> str | None:
    """The stream id of a hello line (one is made up when the client gave none), else None.

    Only a real hello counts: ``logd_ack`` and ``stream`` and nothing else, with a stream id
    of at most MAX_STREAM_ID plain characters. Anything else (a plain client's record that
    happens to hold ``"logd_ack": 1``) is an ordinary record."""
    if _HELLO_MARK not in line or len(line) > 64 + MAX_STREAM_ID:
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get(HELLO_KEY) != PROTOCOL_VERSION or type(obj[HELLO_KEY]) is not int:
        return None
    if not set(obj) <= {HELLO_KEY, "stream"}:
        return None
    stream = obj.get("stream")
    if stream is None or stream == "":
        return os.urandom(6).hex()
    if isinstance(stream, str) and len(stream) <= MAX_STREAM_ID and _STREAM_CHARS.issuperset(stream):
        return stream
    return None


def _parse_header(line: bytes) -> tuple[int, int, bool] | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    seq, count = obj.get("batch"), obj.get("count")
    if type(seq) is not int or type(count) is not int or count < 0:
        return None
    return seq, count, obj.get("resent") is True


class AckReader:
    """The lines of one ack-mode connection: headers, their records, an ack once written.

    A line outside a batch that is not a header is kept as an ordinary record
    (no ack). Records of a batch cut short by a closed connection are written
    too: the client resends the batch, and ``_rid`` tells the copies apart.
    """

    def __init__(self, conn: "Connection", stream: str, chunk_records: int = 256) -> None:
        self.conn = conn
        self.chunk_records = chunk_records  # the pipeline's BATCH_RECORDS (not imported: clients import this module)
        self.stream = stream
        self.max_bytes = conn.max_bytes
        self._buf = b""
        self._overflow: int | None = None  # original length of a line being cut
        self._seq = 0
        self._left = 0  # records still expected in the current batch
        self._index = 0  # of the next record in the batch
        self._prefix = ""  # "<stream>:<seq>:" of the current batch
        self._resent = False
        # records of the current batch not yet handed to the pipeline: they go in chunks of
        # chunk_records while still in CPU cache (a whole 2,048-record batch at once measured
        # 1.6x slower per record), the last chunk with the callback that sends the ack
        self._records: list[Record] = []

    def data_received(self, data: bytes) -> None:
        received = format_epoch(self.conn.server.clock())
        if self._overflow is not None:
            end = data.find(b"\n")
            if end < 0:
                self._overflow += len(data)
                return
            self._line(self._buf, received, self._overflow + end)
            self._buf, self._overflow, data = b"", None, data[end + 1:]
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        for line in lines:
            if len(line) > self.max_bytes:
                self._line(line[: self.max_bytes], received, len(line))
            else:
                self._line(line, received, None)
        if len(self._buf) > self.max_bytes:
            self._overflow = len(self._buf)
            self._buf = self._buf[: self.max_bytes]

    def _line(self, line: bytes, received: str, truncated: int | None) -> None:
        if self._left == 0:
            header = _parse_header(line) if truncated is None else None
            if header is None:
                self.conn.server.pipeline.put([parse_line(line, received, self.conn.trusted, truncated=truncated)])
                return
            self._seq, self._left, self._resent = header
            self._index, self._prefix = 0, f"{self.stream}:{self._seq}:"
            if self._left == 0:
                self._complete()
            return
        self._records.append(self._record(parse_line(line, received, self.conn.trusted, truncated=truncated)))
        self._left -= 1
        if self._left == 0:
            self._complete()
        elif len(self._records) >= self.chunk_records:
            records, self._records = self._records, []
            self.conn.server.pipeline.put(records)

    def _record(self, record: Record) -> Record:
        record["_rid"] = self._prefix + str(self._index)
        self._index += 1
        if self._resent:
            record["_resent"] = True
        return record

    def _complete(self) -> None:
        """The batch's last records, with the ack: the pipeline calls it after all before it."""
        records, self._records = self._records, []
        seq = self._seq
        self.conn.server.pipeline.put(records, on_written=lambda: self._ack(seq))

    def _ack(self, seq: int) -> None:
        transport = self.conn.transport
        if transport is not None and not transport.is_closing():
            transport.write(b'{"ack":%d}\n' % seq)

    def eof_received(self) -> None:
        """The client is done sending: write what it sent now, so its acks go out before we close."""
        self.conn.server.pipeline.drain()

    def connection_lost(self) -> None:
        """Keep what arrived of an unfinished batch (and a partial last line), without an ack."""
        received = format_epoch(self.conn.server.clock())
        if self._buf or self._overflow is not None:
            record = parse_line(self._buf, received, self.conn.trusted, truncated=self._overflow,
                                partial=self._overflow is None)
            if self._overflow is not None:
                record["_partial"] = True
            if self._left:
                self._records.append(self._record(record))
            else:
                self.conn.server.pipeline.put([record])
            self._buf, self._overflow = b"", None
        if self._records:
            records, self._records = self._records, []
            self.conn.server.pipeline.put(records)


class Deduplicator:
    """For readers of the log (``logd query``): keep the first record of each ``_rid``.

    Only a ``_resent`` record can be a duplicate, and its first copy is at most a few
    batches of the same stream before it, so memory stays bounded: per stream, the
    record indexes of its last ``batches`` batches.
    """

    def __init__(self, batches: int = 16) -> None:
        self.batches = batches
        self.dropped = 0
        self._seen: dict[str, dict[int, set[int]]] = {}

    def keep(self, record: Record) -> bool:
        rid = record.get("_rid")
        if not isinstance(rid, str):
            return True
        try:
            stream, seq_text, index_text = rid.rsplit(":", 2)
            seq, index = int(seq_text), int(index_text)
        except ValueError:
            return True
        recent = self._seen.setdefault(stream, {})
        seen = recent.get(seq)
        if seen is None:
            seen = recent[seq] = set()
            if len(recent) > self.batches:
                del recent[next(iter(recent))]  # the stream's oldest batch
        if index in seen and record.get("_resent") is True:
            self.dropped += 1
            return False
        seen.add(index)
        return True
