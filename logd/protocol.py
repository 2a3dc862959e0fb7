"""The acknowledged-delivery wire format, shared by the client (``logd.client``) and the
daemon (``logd.sources.ack``): a hello line, then batches framed by a header line.

Light on purpose (orjson only): clients import it.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

PROTOCOL_VERSION = 1
HELLO_KEY = "logd_ack"
_HELLO_MARK = HELLO_KEY.encode()


def hello_line(stream: str) -> bytes:
    """The first line of an ack-mode connection (the client sends it, the daemon echoes it)."""
    return orjson.dumps({HELLO_KEY: PROTOCOL_VERSION, "stream": stream}) + b"\n"


def header_line(seq: int, count: int, resent: bool = False) -> bytes:
    header: dict[str, Any] = {"batch": seq, "count": count}
    if resent:
        header["resent"] = True
    return orjson.dumps(header) + b"\n"


def ack_line(seq: int) -> bytes:
    return b'{"ack":%d}\n' % seq


# the stream id is copied into every record's _rid: a short, plain name only
MAX_STREAM_ID = 128
_STREAM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+-")


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


def parse_header(line: bytes) -> tuple[int, int, bool] | None:
    """``(seq, count, resent)`` of a batch header line, else None."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    seq, count = obj.get("batch"), obj.get("count")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(count, int) or isinstance(count, bool):
        return None
    if count < 0:
        return None
    return seq, count, obj.get("resent") is True
