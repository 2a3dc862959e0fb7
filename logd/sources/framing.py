"""Newline framing of a byte stream, written once for every stream source (plain and ack).

A line longer than ``max_bytes`` is cut to ``max_bytes`` and its original length is
reported, so the record says it was truncated; the bytes past the cut are skipped
up to the next newline without being kept. A last line without its newline is
handed back at close, so nothing a client sent is lost.
"""

from __future__ import annotations

__all__ = ["LineFramer"]


class LineFramer:
    __slots__ = ("max_bytes", "_buf", "_overflow")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = b""
        self._overflow: int | None = None  # original length (so far) of a line being cut

    def feed(self, data: bytes) -> tuple[list[bytes], dict[int, int] | None]:
        """The lines ``data`` completes, and ``{index: original length}`` of those that were
        cut (None when none was: the common case costs one C-level ``max``)."""
        max_bytes = self.max_bytes
        cuts: dict[int, int] | None = None
        head: bytes | None = None
        if self._overflow is not None:
            end = data.find(b"\n")
            if end < 0:
                self._overflow += len(data)
                return [], None
            head, cuts = self._buf, {0: self._overflow + end}
            self._buf, self._overflow, data = b"", None, data[end + 1 :]
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        self._buf = lines.pop()
        if head is not None:
            lines.insert(0, head)
        if lines and max(map(len, lines)) > max_bytes:
            cuts = cuts or {}
            for i, line in enumerate(lines):
                if len(line) > max_bytes and i not in cuts:
                    cuts[i] = len(line)
                    lines[i] = line[:max_bytes]
        if len(self._buf) > max_bytes:
            self._overflow = len(self._buf)
            self._buf = self._buf[:max_bytes]
        return lines, cuts

    def close(self) -> tuple[bytes, int | None] | None:
        """The unfinished last line and its original length if it was cut, else None."""
        if not self._buf and self._overflow is None:
            return None
        rest = (self._buf, self._overflow)
        self._buf, self._overflow = b"", None
        return rest
