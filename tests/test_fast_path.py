"""The parse fast path (record._parse_canonical) gives exactly the record the full path gives.

Issue 14: most agents send records that are already canonical, so they take a short path;
it must not change a single record. Generated records are parsed both ways and compared
key by key, in order, and as the bytes the file sink writes.
"""

from __future__ import annotations

from hypothesis import given, settings

from logd.pipeline import encode
from logd.record import _parse_canonical, _parse_line, parse_line

from record_lines import lines

RECEIVED = "2026-11-29T12:00:00.000000Z"
TRUSTED = {"_pid": 4242, "_uid": 1000, "_gid": 1000, "_comm": "agent"}


def _same(line: bytes) -> bool:
    """True when the fast path took the line (then its record must equal the full path's)."""
    fast = _parse_canonical(line, TRUSTED)
    if fast is None:
        return False
    slow = _parse_line(line, RECEIVED, TRUSTED)
    assert list(fast.items()) == list(slow.items()), line
    assert encode(fast) == encode(slow), line
    return True


@settings(max_examples=1500, deadline=None)
@given(lines())
def test_fast_and_full_paths_give_the_same_record(line: bytes) -> None:
    _same(line)
    assert parse_line(line, RECEIVED, TRUSTED) == _parse_line(line, RECEIVED, TRUSTED)


def test_the_fast_path_takes_the_common_records() -> None:
    """A test that compares nothing would pass too: the common shapes must go the fast way."""
    common = [
        b'{"level":"info","time":"2026-11-29T10:11:12.123Z","message":"tool call","agent":"a","tokens":{"prompt":1}}',
        b'{"time":"2026-11-29T10:11:12.123456Z","level":"warn","message":"slow","seq":1}',
        b'{"level":"warning","time":"2026-11-29T10:11:12.123456789Z","message":"x","list":[1,2,{"a":null}]}',
    ]
    assert all(_same(line) for line in common)


def test_the_fast_path_leaves_the_rest_to_the_full_path() -> None:
    declined = [
        b'{"level":"info","time":"2026-11-29T10:11:12Z","message":"m","_pid":1}',  # reserved key
        b'{"level":"info","ts":"2026-11-29T10:11:12Z","message":"m"}',  # another spelling
        b'{"level":"info","time":"2026-11-29T10:11:12Z","message":{"k":1}}',  # structured message
        b'{"level":"info","time":"2026-11-29T10:11:12Z","message":"m","n":123456789012345678901}',  # > 64 bits
        b'{"level":"INFO","time":"2026-11-29T10:11:12Z","message":"m"}',  # spelling needing lower()
        b'{"level":"info","time":"2026-11-29T10:11:12Z","message":"m"} ',  # trailing space
        b'{"level":"info","time":"not a time","message":"m"}',
        b'{"level":"info","time":"2026-11-29T10:11:12Z","message":"m"',  # malformed
    ]
    for line in declined:
        assert _parse_canonical(line, TRUSTED) is None, line
