"""Generated record lines for the tests that compare two paths through logd (test_fast_path,
test_hotpath): agents' lines in every shape they come in, most of them valid."""

from __future__ import annotations

import json

import orjson
from hypothesis import strategies as st

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
