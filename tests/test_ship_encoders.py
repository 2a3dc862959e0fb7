"""Encoders: RFC 5424 / RFC 6587 syslog frames, time conversion, bodies that are exactly what
collectors take (OTLP is covered against opentelemetry-proto in test_ship_http)."""

from __future__ import annotations

import re

import orjson

from logd.ship import encoders

RECORD = {"time": "2026-11-23T11:28:07.123456Z", "level": "warn", "message": "slow tool", "agent": "planner",
          "_pid": 4242, "event": "tool_call", "quote": 'say "hi" \\ [ok]', "tokens": {"prompt": 5},
          "a_field_name_that_is_far_too_long_for_syslog": 1, "bad name=x": True}

HEADER = re.compile(r"<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")


def test_syslog_message_header_and_structured_data():
    msg = encoders.syslog_message(RECORD, facility=encoders.FACILITIES["local0"], hostname="host-1").decode()
    m = HEADER.match(msg)
    assert m is not None
    assert m.groups() == (str(16 * 8 + 4), "2026-11-23T11:28:07.123456Z", "host-1", "planner", "4242", "tool_call")
    sd, _, text = msg[m.end():].partition("] ")
    assert text == "slow tool"
    assert sd.startswith("[logd@32473 ")
    assert 'quote="say \\"hi\\" \\\\ [ok\\]"' in sd  # RFC 5424 6.3.3: escape " \\ ]
    assert 'tokens="{\\"prompt\\":5}"' in sd  # nested values as JSON
    long_name = "a_field_name_that_is_far_too_long_for_syslog"[:32]  # SD-NAME is at most 32 characters
    assert f' {long_name}="1"' in sd
    assert ' bad_name_x="true"' in sd
    assert "time=" not in sd and "level=" not in sd and "message=" not in sd


def test_syslog_nil_values_and_severity():
    msg = encoders.syslog_message({"level": "error", "message": "x"}, facility=1, hostname="h").decode()
    assert msg == "<11>1 - h - - - - x"


def test_octet_counting_frames_carry_newlines_and_utf8():
    items = [("a", {"level": "info", "message": "line one\nline two"}), ("b", {"level": "info", "message": "héllo"})]
    data = encoders.syslog_frames(items, facility=1, hostname="h")
    messages = []
    while data:
        length, _, rest = data.partition(b" ")
        messages.append(rest[: int(length)])
        data = rest[int(length):]
    assert [m.decode().rsplit(" ", 1)[-1] for m in messages] == ["two", "héllo"]
    assert b"line one\nline two" in messages[0]


def test_syslog_json_format_keeps_the_whole_record():
    msg = encoders.syslog_message(RECORD, facility=1, hostname="h", msg_format="json")
    assert orjson.loads(msg.split(b" - ", 1)[1]) == RECORD


def test_time_ns():
    assert encoders.time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert encoders.time_ns("2026-11-23T11:28:07.123456Z") % 10 ** 9 == 123_456_000
    assert encoders.time_ns("yesterday") == 0 and encoders.time_ns(None) == 0


def test_a_line_that_is_not_json_is_shipped_flagged():
    assert encoders.parse_line(b"plain {text") == {"level": "info", "message": "plain {text", "_malformed": True}
