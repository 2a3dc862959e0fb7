"""How ``logd query`` prints what it selected: ``-o json|json-pretty|short|short-iso|cat``,
``--output-fields``, ``-n N`` (the last N), ``-r`` (newest first), through a pager on a
terminal, with a progress line on stderr when a query takes more than a second."""

from __future__ import annotations

import collections
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, BinaryIO

import orjson

from logd.console_format import LEVEL_STYLE, ConsoleFormatter, value_text
from logd.record import Record

FORMATS = ("json", "json-pretty", "short", "short-iso", "cat")
DEFAULT_PAGER = "less -FRX"


def last_and_reversed(batches: Iterable[list[bytes]], last: int | None, reverse: bool) -> Iterator[list[bytes]]:
    """Only the last ``last`` lines (in constant memory), newest first with ``reverse``."""
    if last is None and not reverse:
        yield from batches
        return
    kept: collections.deque[bytes] = collections.deque(maxlen=last)
    for lines in batches:
        kept.extend(lines)
    out = list(kept)
    if reverse:
        out.reverse()
    for start in range(0, len(out), 1000):
        yield out[start:start + 1000]


def _short_iso(record: Record, fields: tuple[str, ...] | None) -> str:
    raw = record.get("time", "")
    try:
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone().isoformat(timespec="microseconds")
    except (ValueError, AttributeError):
        stamp = str(raw)
    keys = fields if fields is not None else sorted(k for k in record if k not in ("time", "level", "message")
                                                     and not k.startswith("_"))
    parts = [f"{k}={value_text(record[k])}" for k in keys if k in record]
    head = f"{stamp} {LEVEL_STYLE.get(record.get('level', ''), ('???', ''))[0]} {record.get('message', '')}"
    return " ".join([head, *parts]) + "\n"


def line_formatter(fmt: str, fields: tuple[str, ...] | None, color: bool) -> Callable[[bytes], bytes] | None:
    """Raw stored line -> printed bytes; None: print lines as stored (``json``, all fields)."""
    if fmt == "json" and fields is None:
        return None
    human: Callable[[Record], str] | None = None
    if fmt == "short":
        console = ConsoleFormatter(color)
        keep = frozenset(fields or ()) | {"time", "level", "message", "stack", "stacktrace"}
        human = console.format if fields is None else (
            lambda r: console.format({k: v for k, v in r.items() if k in keep}))

    def render(line: bytes) -> bytes:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            return line + b"\n"  # not a record: shown as is
        if fmt == "cat":
            message = record.get("message", "")
            return (message if isinstance(message, str) else str(message)).encode("utf-8", "replace") + b"\n"
        if fmt == "short-iso":
            return _short_iso(record, fields).encode("utf-8", "replace")
        if human is not None:
            return human(record).encode("utf-8", "replace")
        if fields is not None:
            record = {k: record[k] for k in fields if k in record}
        option = orjson.OPT_INDENT_2 if fmt == "json-pretty" else 0
        return orjson.dumps(record, option=option | orjson.OPT_APPEND_NEWLINE)

    return render


def write_lines(batches: Iterable[list[bytes]], out: BinaryIO, render: Callable[[bytes], bytes] | None) -> int:
    count = 0
    for lines in batches:
        count += len(lines)
        if render is None:
            out.write(b"\n".join(lines) + b"\n")
        else:
            out.write(b"".join([render(line) for line in lines]))
    return count


@contextmanager
def paged(stdout: BinaryIO, enabled: bool, env: dict[str, str] | None = None) -> Iterator[BinaryIO]:
    """``stdout``, or the stdin of ``$PAGER`` (default ``less -FRX``) when ``enabled`` and
    stdout is a terminal. The reader quitting the pager early is not an error."""
    env = dict(os.environ if env is None else env)
    command = env.get("PAGER", DEFAULT_PAGER)
    argv = shlex.split(command) if command.strip() else []
    if not enabled or not _isatty(stdout) or not argv or argv[0] == "cat" or shutil.which(argv[0]) is None:
        yield stdout
        return
    env.setdefault("LESS", "FRX")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    try:
        yield proc.stdin  # type: ignore[misc]
        proc.stdin.close()
    except BrokenPipeError:
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """A one-line progress report on stderr, drawn only on a terminal and only once the work
    has taken more than ``delay`` seconds; cleared at the end."""

    def __init__(self, what: str, stream: IO[str] | None = None, delay: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _isatty(self.stream)
        self.clock = clock
        self.start = clock()
        self.delay = delay
        self._last = 0.0
        self.drawn = False

    def update(self, text: str, fraction: float | None = None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self.start < self.delay or now - self._last < 0.1:
            return
        self._last = now
        bar = ""
        if fraction is not None:
            filled = int(max(0.0, min(1.0, fraction)) * 24)
            bar = f"[{'#' * filled}{'.' * (24 - filled)}] {fraction * 100:3.0f}% "
        self.stream.write(f"\r\x1b[2K{self.what}: {bar}{text} ({now - self.start:.0f}s)")
        self.stream.flush()
        self.drawn = True

    @contextmanager
    def ticking(self, text: str, fraction: float | None = None) -> Iterator[None]:
        """Keep the line fresh (elapsed seconds) while a blocking step runs."""
        import threading

        done = threading.Event()

        def tick() -> None:
            while not done.wait(0.2):
                self.update(text, fraction)

        thread = threading.Thread(target=tick, daemon=True)
        if self.enabled:
            thread.start()
        try:
            yield
        finally:
            done.set()
            if thread.is_alive():
                thread.join()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.drawn = False
