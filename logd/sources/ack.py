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

from collections.abc import Callable
from typing import Protocol

from logd.pipeline import Rids
from logd.protocol import ack_line, parse_header
from logd.record import Record, parse_line
from logd.sources.framing import LineFramer
from logd.timestamps import format_epoch


class AckConnection(Protocol):
    """What an ack reader needs of its connection (:class:`logd.sources.unix.Connection`)."""

    max_bytes: int
    trusted: Record

    def put(self, records: list[Record], on_written: Callable[[], None] | None = None) -> None: ...

    def take(self, lines: list[bytes], received: str, rids: Rids, truncated: dict[int, int] | None,
             on_written: Callable[[], None] | None) -> None:
        """A batch's record lines into the pipeline's intake (:meth:`logd.pipeline.Pipeline.take`)."""

    def drain(self) -> None: ...

    def now(self) -> float: ...

    def reply(self, data: bytes) -> None:
        """Send ``data`` back, unless the connection is closing."""


class AckReader:
    """The lines of one ack-mode connection: headers, their records, an ack once written.

    A line outside a batch that is not a header is kept as an ordinary record
    (no ack). Records of a batch cut short by a closed connection are written
    too: the client resends the batch, and ``_rid`` tells the copies apart.
    """

    def __init__(self, conn: AckConnection, stream: str, chunk_records: int = 256) -> None:
        self.conn = conn
        self.chunk_records = chunk_records  # the pipeline's BATCH_RECORDS
        self.stream = stream
        self.framer = LineFramer(conn.max_bytes)
        self._seq = 0
        self._left = 0  # records still expected in the current batch
        self._index = 0  # of the next record in the batch
        self._prefix = ""  # "<stream>:<seq>:" of the current batch
        self._resent = False

    def data_received(self, data: bytes) -> None:
        """A batch's record lines go to the pipeline's intake as they come (the compiled path
        takes what it can, each line ending with its ``_rid``), in runs of at most
        chunk_records while still in CPU cache (a whole 2,048-record batch at once measured
        1.6x slower per record), the batch's last run with the callback that sends the ack."""
        lines, cuts = self.framer.feed(data)
        if not lines:
            return
        received = format_epoch(self.conn.now())
        i, n = 0, len(lines)
        while i < n:
            if self._left:  # the batch's next lines, at most chunk_records at a time
                count = min(self._left, n - i, self.chunk_records)
                self._left -= count
                self._hand(lines[i : i + count], received, cuts, i)
                i += count
                continue
            line, truncated = lines[i], cuts.get(i) if cuts is not None else None
            i += 1
            header = parse_header(line) if truncated is None else None
            if header is None:
                self.conn.put([parse_line(line, received, self.conn.trusted, truncated=truncated)])
                continue
            self._seq, self._left, self._resent = header
            self._index, self._prefix = 0, f"{self.stream}:{self._seq}:"
            if self._left == 0:
                self._hand([], received, None)

    def _hand(self, lines: list[bytes], received: str, cuts: dict[int, int] | None, at: int = 0) -> None:
        """Lines of the current batch (``at``: where they start in the read's lines, as ``cuts``
        counts), with the ack once they are written if they end the batch."""
        truncated = {i - at: n for i, n in cuts.items() if at <= i < at + len(lines)} if cuts else None
        seq = self._seq
        self.conn.take(lines, received, Rids(self._prefix, self._index, self._resent), truncated or None,
                       (lambda: self._ack(seq)) if self._left == 0 else None)
        self._index += len(lines)

    def _ack(self, seq: int) -> None:
        self.conn.reply(ack_line(seq))

    def eof_received(self) -> None:
        """The client is done sending: write what it sent now, so its acks go out before we close."""
        self.conn.drain()

    def connection_lost(self) -> None:
        """Keep a partial last line (of an unfinished batch: with its ``_rid``), without an ack."""
        rest = self.framer.close()
        if rest is not None:
            line, truncated = rest
            record = parse_line(line, format_epoch(self.conn.now()), self.conn.trusted,
                                truncated=truncated, partial=truncated is None)
            record["_partial"] = True
            if self._left:
                record.update(Rids(self._prefix, self._index, self._resent).fields(0))
            self.conn.put([record])
