"""Each dialect agents send, and each kind of bad input, becomes one canonical record."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logd import timestamps
from logd.record import parse_line
from logd.timestamps import epoch_seconds, normalize_time

RECEIVED = "2026-11-23T11:28:07.123456Z"


def parse(line: bytes | dict, **kw) -> dict:
    if isinstance(line, dict):
        line = orjson.dumps(line)
    return parse_line(line, RECEIVED, {"_pid": 42, "_uid": 1000, "_gid": 1000}, **kw)


def test_canonical_keys_come_first_and_other_fields_are_kept_as_sent():
    rec = parse({"agent": "a", "message": "m", "level": "info", "time": "2026-01-02T03:04:05.5Z",
                 "nested": {"k": [1, 2]}})
    assert list(rec)[:3] == ["time", "level", "message"]
    assert rec["nested"] == {"k": [1, 2]} and rec["agent"] == "a"


def test_zerolog_record():
    rec = parse(b'{"level":"warn","time":"2026-11-23T12:28:07+01:00","message":"slow tool",'
                b'"error":"timeout","caller":"agent.go:42"}')
    assert rec["time"] == "2026-11-23T11:28:07.000000Z"
    assert (rec["level"], rec["message"], rec["error"], rec["caller"]) == (
        "warn", "slow tool", "timeout", "agent.go:42")


def test_zap_production_record():
    rec = parse({"level": "dpanic", "ts": 1700000000.25, "caller": "x/y.go:9", "msg": "boom",
                 "stacktrace": "goroutine 1"})
    assert rec["time"] == "2023-11-14T22:13:20.250000Z"
    assert (rec["level"], rec["message"], rec["stacktrace"]) == ("panic", "boom", "goroutine 1")
    assert "ts" not in rec and "msg" not in rec


def test_loguru_serialized_record():
    line = {
        "text": "2026-11-23 11:28:07.123 | ERROR | agent:run:7 - tool failed\n"
                "Traceback (most recent call last):\n  x\nValueError: bad\n",
        "record": {
            "elapsed": {"repr": "0:00:01", "seconds": 1.0},
            "exception": {"type": "ValueError", "value": "bad", "traceback": True},
            "extra": {"session_id": "s1"},
            "file": {"name": "agent.py", "path": "/app/agent.py"},
            "function": "run", "level": {"icon": "x", "name": "ERROR", "no": 40}, "line": 7,
            "message": "tool failed", "module": "agent", "name": "agent",
            "process": {"id": 99, "name": "MainProcess"}, "thread": {"id": 1, "name": "MainThread"},
            "time": {"repr": "2026-11-23 11:28:07.123+00:00", "timestamp": 1795000087.123},
        },
    }
    rec = parse(line)
    assert rec["level"] == "error" and rec["message"] == "tool failed"
    assert rec["time"] == normalize_time(1795000087.123)
    assert rec["session_id"] == "s1" and rec["caller"] == "/app/agent.py:7" and rec["logger"] == "agent"
    assert rec["error"] == "ValueError: bad" and rec["stack"].startswith("Traceback")
    assert "record" not in rec and "text" not in rec


def test_python_json_logger_record_uses_local_asctime():
    rec = parse({"asctime": "2026-11-23 11:28:07,123", "levelname": "WARNING", "name": "planner", "message": "hi"})
    assert rec["level"] == "warn" and rec["name"] == "planner" and rec["message"] == "hi"
    assert rec["time"] == normalize_time("2026-11-23 11:28:07.123")  # machine-local naive time
    assert "asctime" not in rec and "levelname" not in rec


def test_logd_client_record_passes_through_unchanged():
    sent = {"time": "2026-11-23T11:28:07.123456Z", "level": "debug", "message": "m", "logger": "x", "k": 1}
    rec = parse(sent)
    assert {k: rec[k] for k in sent} == sent


@pytest.mark.parametrize("level,expected", [
    ("WARNING", "warn"), ("CRITICAL", "fatal"), ("SUCCESS", "info"), ("TRC", "trace"), (30, "info"),
    (50, "error"), (-1, "trace"), (3, "error"), ("err", "error"),
])
def test_level_spellings(level, expected):
    assert parse({"level": level, "msg": "x"})["level"] == expected


def test_unknown_level_and_time_are_kept_and_flagged():
    rec = parse({"level": "verbose", "time": "yesterday", "msg": "x"})
    assert (rec["level"], rec["time"]) == ("info", RECEIVED)
    assert (rec["_level"], rec["_time"]) == ("verbose", "yesterday")


def test_record_without_time_gets_the_receive_time():
    assert parse({"msg": "x"})["time"] == RECEIVED


@pytest.mark.parametrize("raw,expected", [
    ("2026-11-23T11:28:07Z", "2026-11-23T11:28:07.000000Z"),
    ("2026-11-23T11:28:07.1Z", "2026-11-23T11:28:07.100000Z"),
    ("2026-11-23T11:28:07.123456789Z", "2026-11-23T11:28:07.123456Z"),
    ("2026-11-23T06:28:07.5-05:00", "2026-11-23T11:28:07.500000Z"),
    (1795000087, "2026-11-18T11:08:07.000000Z"),
    (1795000087123, "2026-11-18T11:08:07.123000Z"),
    (1795000087123456789, "2026-11-18T11:08:07.123456Z"),
    ("2026-13-40T11:28:07Z", None),
    ("2026-02-30T11:28:07.000000Z", None),
    ("2026-11-23t11:28:07.123456Z", "2026-11-23T11:28:07.123456Z"),  # kept its t before
    ("2026-11-23T11:28:60.5Z", None),
])
def test_time_normalisation(raw, expected):
    assert normalize_time(raw) == expected


@given(st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.sampled_from("Tt _"), st.integers(0, 25),
       st.integers(0, 61), st.integers(0, 61), st.text(alphabet="0123456789", min_size=1, max_size=9))
def test_the_quick_check_of_a_utc_time_says_what_the_full_parse_says(year, month, day, sep, hour, minute, second,
                                                                     fraction):
    """normalize_time takes UTC times with a fraction without a datetime; whatever it takes or
    refuses, the full parse (the regular expression, then datetime) gives the same."""
    text = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}.{fraction}Z"
    assert normalize_time(text) == timestamps._parse_text(text)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
       st.text(alphabet="0123456789\u0663\u00b2x", min_size=6, max_size=6))
def test_a_canonical_time_of_a_known_second_has_the_epoch_the_long_way_gives(when, fraction):
    """epoch_seconds takes canonical times of a second it has met without normalising them: the
    same answer (and the same refusals) as normalising first."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + "." + fraction + "Z"
    epoch_seconds(when.strftime("%Y-%m-%dT%H:%M:%S") + ".000000Z")  # the second is known now
    canonical = normalize_time(text)
    expected = None if canonical is None else (
        datetime.fromisoformat(canonical[:19]).replace(tzinfo=UTC).timestamp() + int(canonical[20:26]) / 1e6)
    assert epoch_seconds(text) == expected


def test_plain_text_line_is_an_info_message():
    rec = parse(b"agent started on port 8080")
    assert (rec["level"], rec["message"], rec["time"]) == ("info", "agent started on port 8080", RECEIVED)
    assert "_malformed" not in rec


def test_malformed_json_is_kept_as_text_and_flagged():
    rec = parse(b'{"level":"info","msg":"unterminated')
    assert rec["message"] == '{"level":"info","msg":"unterminated' and rec["_malformed"] is True


def test_invalid_utf8_is_replaced_and_flagged():
    rec = parse(b'{"msg":"caf\xe9"}')
    assert rec["message"] == "caf\ufffd" and rec["_invalid_utf8"] is True
    text = parse(b"caf\xe9 plain")
    assert text["message"] == "caf\ufffd plain" and text["_invalid_utf8"] is True


def test_truncated_line_records_its_original_length():
    rec = parse(b'{"msg":"' + b"x" * 50, truncated=5000)
    assert rec["_truncated"] == 5000 and rec["message"].startswith('{"msg":"xxx')


def test_truncation_inside_a_multibyte_character_is_not_invalid_utf8():
    rec = parse("ééé".encode()[:5], truncated=100)
    assert rec["message"] == "éé" and "_invalid_utf8" not in rec


def test_partial_line_is_kept_and_flagged():
    rec = parse(b'{"msg":"complete object, no newline"}', partial=True)
    assert rec["message"] == "complete object, no newline" and rec["_partial"] is True
    cut = parse(b'{"msg":"cut he', partial=True)
    assert cut["_partial"] is True and cut["_malformed"] is True


def test_client_cannot_spoof_trusted_fields_or_flags():
    rec = parse({"msg": "x", "_pid": 1, "_uid": 0, "_comm": "sshd", "_malformed": False})
    assert (rec["_pid"], rec["_uid"]) == (42, 1000)
    assert "_comm" not in rec and "_malformed" not in rec
    assert (rec["client_pid"], rec["client_uid"], rec["client_comm"], rec["client_malformed"]) == (1, 0, "sshd", False)


def test_non_string_message_is_rendered_as_json_text():
    assert parse({"msg": {"a": 1}})["message"] == '{"a":1}'
    assert parse({"msg": None})["message"] == ""


def test_structlog_event_is_the_message():
    rec = parse({"event": "user logged in", "level": "info", "timestamp": "2026-11-23T11:28:07Z"})
    assert rec["message"] == "user logged in" and rec["time"] == "2026-11-23T11:28:07.000000Z"
