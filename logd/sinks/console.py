"""The console sink: records in the console's human format (:mod:`logd.console_format`),
or as JSON lines with ``format = "json"``, on a stream (stdout by default)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import BinaryIO

from logd.components import Batch, SinkBase, SinkStats, Tables
from logd.console_format import ConsoleFormatter, use_color
from logd.events import Events
from logd.settings import choice, setting
from logd.sinks.file import FileSettings
from logd.spec import SINK, Context, Spec


class ConsoleSink(SinkBase):
    """Writes to a binary stream (stdout by default).

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
        self._echoing = False  # counted in events.echoes: this console prints where stderr goes

    def _broke(self, exc: OSError, lost: int) -> None:
        self._echo(False)
        self.broken = True
        self.dropped += lost
        self.events.emit("error", f"console output failed ({exc.strerror or exc}); console disabled, "
                         "records still go to the other sinks", sink=self.name)

    def open(self) -> None:
        self._echo(writes_to_stderr(self.stream))  # the stream is open already

    def _echo(self, on: bool) -> None:
        """Tell ``events`` whether this console shows logd's own records where its stderr
        lines go (a terminal): then a warning is printed once, not twice."""
        if on != self._echoing:
            self._echoing = on
            self.events.echoes += 1 if on else -1

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
        self._echo(False)
        self.flush()

    def stats(self) -> SinkStats:
        return SinkStats(discarded_events=self.dropped, sent_bytes=self.bytes_written, writable=not self.broken)


def writes_to_stderr(stream: BinaryIO) -> bool:
    """Whether ``stream`` is the file stderr is (the same terminal or file)."""
    try:
        mine, err = os.fstat(stream.fileno()), os.fstat(2)
    except (OSError, ValueError, AttributeError):  # a stream without a file (tests), or stderr closed
        return False
    return (mine.st_dev, mine.st_ino) == (err.st_dev, err.st_ino)


@dataclass(frozen=True)
class ConsoleSettings:
    format: str = setting("console", doc="what the console prints: human lines, or the JSON lines of the file",
                          check=choice({"console": "console", "text": "console", "json": "json"},
                                       'one of "console", "text", "json"'))


def _build(settings: ConsoleSettings, ctx: Context) -> ConsoleSink | None:
    if not ctx.config.of(FileSettings).console_enabled:  # file_only, with a file
        return None
    return ConsoleSink(sys.stdout.buffer, settings.format, events=ctx.events)


def _summary(config: Tables) -> str | None:
    return f"console ({config.of(ConsoleSettings).format})" if config.of(FileSettings).console_enabled else None


SPEC = Spec(SINK, "console", _build, ConsoleSettings, table="", summary=_summary)
