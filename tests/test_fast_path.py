"""The parse fast path (record._parse_canonical) gives exactly the record the full path gives.

Issue 14: most agents send records that are already canonical, so they take a short path;
it must not change a single record. Generated records are parsed both ways and compared
key by key, in order, and as the bytes the file sink writes.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from logd.pipeline import encode
from logd.record import _parse_canonical, _parse_line, parse_line

RECEIVED = "2026-11-29T12:00:00.000000Z"
TRUSTED = {"_pid": 4242, "_uid": 1000, "_gid": 1000, "_comm": "agent"}

good_times = st.sampled_from(["2026-11-29T10:11:12.123456Z", "2026-11-29T10:11:12.123Z",  # canonical, zerolog ms
                              "2026-11-29T10:11:12.123456789Z", "2026-11-29T10:11:12Z"])  # Go RFC3339Nano, seconds
other_times = st.one_of(st.sampled_from(["2026-11-29T10:11:12+02:00", "2026-13-29T10:11:12.123456Z", "yesterday",
                                         "2026-11-29T10:11:12.12345\u0661Z"]),
                        st.integers(min_value=0, max_value=2**62), st.floats(allow_nan=False, allow_infinity=False),
                        st.none(), st.booleans())
good_levels = st.sampled_from(["info", "warning", "warn", "err", "debug", "trace", "fatal", "panic", "dpanic"])
other_levels = st.one_of(st.sampled_from(["INFO", "Warn", "nope", ""]), st.integers(min_value=-2, max_value=70),
                         st.none())
other_messages = st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
times = st.one_of(good_times, other_times)
levels = st.one_of(good_levels, other_levels)
messages = st.one_of(st.text(max_size=40), other_messages)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
extra_keys = st.one_of(st.text(max_size=12), st.sampled_from(["_pid", "_uid", "_comm", "_level", "_rid", "ts", "msg",
                                                              "lvl", "record", "text", "event", "client_pid"]))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    obj: dict = {}
    fields = {"time": times, "level": levels, "message": messages}
    good = {"time": good_times, "level": good_levels, "message": st.text(max_size=40)}
    common = draw(st.booleans())  # half the records as agents send them: all three fields, most often valid
    order = draw(st.permutations(["time", "level", "message", "extra"]))
    for name in order:
        if name == "extra":
            obj.update(draw(st.dictionaries(extra_keys, values, max_size=5)))
        elif common or draw(st.booleans()):
            valid = draw(st.sampled_from([True, True, True, False]))  # most often valid
            obj[name] = draw(good[name] if valid else fields[name])
    style = draw(st.sampled_from(["orjson", "spaced", "ascii"]))
    if style == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # an integer orjson cannot write: the standard library can
            style = "ascii"
    text = json.dumps(obj, ensure_ascii=style == "ascii", separators=(", ", ": ") if style == "spaced" else (",", ":"))
    return text.encode()


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
