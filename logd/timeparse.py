"""``--since``/``--until`` values, as journalctl reads them -> canonical UTC time strings.

Accepted: ``now``, ``today``, ``yesterday``, ``tomorrow`` (local midnight); a relative time
counted back from now: ``-1h``, ``1h30m ago``, ``90s``, ``2d``, ``1w`` (``+1h`` counts
forward); ``@1764428400`` (epoch seconds); ``2026-11-29`` (local midnight);
``2026-11-29 15:00``, ``2026-11-29 15:00:30``, ``2026-11-29T15:00:30.5`` (local time,
unless it ends in ``Z`` or an offset such as ``+02:00``); ``15:00`` (today, local).
The clock (``now``) and the zone (``tz``, None: the system's) are injectable.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, tzinfo

from logd.timestamps import format_epoch, format_utc

TIME_HELP = ("now, today, yesterday, -1h, '1h30m ago', 2d, @EPOCH, 2026-11-29, '2026-11-29 15:00[:SS]' "
             "(local time unless Z or +HH:MM), or RFC 3339 (2026-11-23T11:28:07Z)")
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
          "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_RELATIVE = re.compile(r"([-+]?)\s*((?:\d+(?:\.\d+)?\s*[a-z]+\s*)+?)\s*(ago)?")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
_EPOCH = re.compile(r"@(\d+(?:\.\d+)?)")


class TimeError(ValueError):
    """A time that cannot be read; ``str()`` is the one line to show."""


def _midnight(now: float, tz: tzinfo | None, days: int) -> str:
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return format_utc(_aware(today.replace(tzinfo=None) + timedelta(days=days), tz))


def _aware(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time in ``tz`` (None: local) as an aware datetime."""
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


def _relative(text: str) -> float | None:
    """Signed seconds of ``-1h``, ``1h30m ago``, ``+2d``; None if it is not one."""
    m = _RELATIVE.fullmatch(text)
    if m is None or (m.group(1) == "+" and m.group(3)):
        return None
    seconds = 0.0
    for number, unit in _PART.findall(m.group(2)):
        if unit not in _UNITS:
            return None
        seconds += float(number) * _UNITS[unit]
    return seconds if m.group(1) == "+" else -seconds


def parse_time(text: str, now: float | None = None, tz: tzinfo | None = None) -> str:
    """The canonical UTC time ``text`` means; raises :class:`TimeError`."""
    now = time.time() if now is None else now
    value = " ".join(text.strip().lower().split())
    if value == "now":
        return format_epoch(now)
    days = {"today": 0, "yesterday": -1, "tomorrow": 1}.get(value)
    if days is not None:
        return _midnight(now, tz, days)
    m = _EPOCH.fullmatch(value)
    if m:
        return format_epoch(float(m.group(1)))
    offset = _relative(value)
    if offset is not None:
        return format_epoch(now + offset)
    if _CLOCK.fullmatch(value):
        value = datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d ") + value
    if value[:4].isdigit() and len(value) >= 10 and value[4] == "-":
        iso = value.upper()
        iso = iso[:-1] + "+00:00" if iso.endswith("Z") else iso  # Python 3.10's fromisoformat wants +00:00
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            pass
        else:
            return format_utc(moment if moment.tzinfo is not None else _aware(moment, tz))
    raise TimeError(f"cannot read time {text!r}: expected {TIME_HELP}")
