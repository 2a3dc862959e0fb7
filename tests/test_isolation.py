"""logd.isolation on its own: the text form a record a step failed on is kept as."""

from __future__ import annotations

import time

from logd.isolation import fallback_record


def test_a_failed_record_keeps_its_canonical_time():
    record = {"time": "2026-01-01T00:00:00.000000Z", "level": "warn", "message": "m"}
    safe = fallback_record(record, "step", ValueError("bad"))
    assert safe["time"] == "2026-01-01T00:00:00.000000Z" and safe["level"] == "warn"
    assert safe["_error"] == "step: ValueError: bad"


def test_a_failed_record_without_a_canonical_time_gets_the_current_time():
    """The time a step left is not a canonical string (or is gone): the fallback is now."""
    for stamp in (5, None, "yesterday"):
        before = time.time()
        safe = fallback_record({"time": stamp, "message": "m"}, "step", ValueError("bad"))
        assert len(safe["time"]) == 27 and safe["time"].endswith("Z")
        assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before)) <= safe["time"][:16]
        assert safe["_error"] == "step: ValueError: bad" and '"m"' in safe["message"]
    assert len(fallback_record({"message": "m"}, "step", ValueError("bad"))["time"]) == 27
