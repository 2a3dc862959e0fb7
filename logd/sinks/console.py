"""The console sink: records in the console's human format (:mod:`logd.console_format`),
or as JSON lines with ``format = "json"``, on a stream (stdout by default)."""

from __future__ import annotations

from typing import BinaryIO

from logd.components import SinkStats
from logd.console_format import ConsoleFormatter, use_color
from logd.events import Events
from logd.pipeline import Batch


class ConsoleSink:
    """Writes to a binary stream (stdout by default). The smallest sink: copy it to add one.

    A stream that fails (closed pipe, hung-up terminal) disables the sink rather than hold
    every record back for a reader that is gone: the records it then skips are counted
    (``dropped``) and the failure is reported once through ``events``. The other sinks
    still get every record.
    """

    name = "console"

    def __init__(self, stream: BinaryIO, fmt: str = "console", color: bool | None = None, *,
                 events: Events | None = None) -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.formatter = ConsoleFormatter(use_color(stream) if color is None else color)
        self.events = events if events is not None else Events()
        self.broken = False
        self.dropped = 0
        self.bytes_written = 0

    def _broke(self, exc: OSError, lost: int) -> None:
        self.broken = True
        self.dropped += lost
        self.events.emit("error", f"console output failed ({exc.strerror or exc}); console disabled, "
                         "records still go to the other sinks", sink=self.name)

    def open(self) -> None:
        pass  # the stream is open already

    def write(self, batch: Batch) -> None:
        if self.broken:
            self.dropped += len(batch.records)
            return
        if self.json:
            data = batch.json_lines()
        else:
            fmt = self.formatter.format
            data = "".join([fmt(r) for r in batch.records]).encode("utf-8", "replace")
        try:
            self.stream.write(data)
            self.stream.flush()
        except OSError as exc:
            self._broke(exc, len(batch.records))
        else:
            self.bytes_written += len(data)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except OSError as exc:
                self._broke(exc, 0)

    def close(self) -> None:
        self.flush()

    def stats(self) -> SinkStats:
        return SinkStats(discarded_events=self.dropped, sent_bytes=self.bytes_written, writable=not self.broken)
