"""--since/--until as journalctl reads them (logd/timeparse.py); clock and zone injected."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from logd.timeparse import TimeError, parse_time

PARIS = ZoneInfo("Europe/Paris")  # UTC+1 in November
NOW = datetime(2026, 11, 29, 15, 30, 0, tzinfo=timezone.utc).timestamp()  # 16:30 in Paris


@pytest.mark.parametrize("text, expected", [
    ("now", "2026-11-29T15:30:00.000000Z"),
    ("today", "2026-11-28T23:00:00.000000Z"),  # local midnight
    ("yesterday", "2026-11-27T23:00:00.000000Z"),
    ("tomorrow", "2026-11-29T23:00:00.000000Z"),
    ("-1h", "2026-11-29T14:30:00.000000Z"),
    ("1h30m ago", "2026-11-29T14:00:00.000000Z"),
    ("1h 30min ago", "2026-11-29T14:00:00.000000Z"),
    ("15m", "2026-11-29T15:15:00.000000Z"),
    ("2 days ago", "2026-11-27T15:30:00.000000Z"),
    ("+1h", "2026-11-29T16:30:00.000000Z"),
    ("@1795966200", "2026-11-29T15:30:00.000000Z"),
    ("2026-11-24", "2026-11-23T23:00:00.000000Z"),
    ("2026-11-29 15:00", "2026-11-29T14:00:00.000000Z"),  # local time
    ("2026-11-29 15:00:30", "2026-11-29T14:00:30.000000Z"),
    ("2026-11-29T15:00:30.25", "2026-11-29T14:00:30.250000Z"),
    ("2026-11-29 15:00Z", "2026-11-29T15:00:00.000000Z"),  # Z: UTC
    ("2026-11-29 15:00:00+02:00", "2026-11-29T13:00:00.000000Z"),
    ("2026-11-23T11:28:07Z", "2026-11-23T11:28:07.000000Z"),
    ("09:15", "2026-11-29T08:15:00.000000Z"),  # today, local
])
def test_journalctl_time_forms(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW, tz=PARIS) == expected


def test_local_midnight_follows_daylight_saving() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    assert parse_time("today", now=summer, tz=PARIS) == "2026-06-30T22:00:00.000000Z"


@pytest.mark.parametrize("bad", ["", "soon", "15x", "1795000000", "2026-13-45", "1h ago ago", "+1h ago"])
def test_an_unreadable_time_is_one_clear_error(bad: str) -> None:
    with pytest.raises(TimeError) as info:
        parse_time(bad, now=NOW, tz=PARIS)
    assert str(info.value).startswith(f"cannot read time {bad!r}: expected now, today, yesterday, -1h")
