"""Agent timestamps in, canonical RFC 3339 UTC with microseconds out.

Canonical form: ``2026-11-23T11:28:07.123456Z``. Parsing is on the hot path, so
strings that repeat (second-precision zerolog times) are cached, and strings
already in canonical form are checked without building a datetime.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

UTC = timezone.utc

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,  # only ASCII digits: int() would take Arabic-Indic or fullwidth ones too
)
_CACHE: dict[str, str | None] = {}
_CACHE_MAX = 4096
_PREFIX_OK: dict[str, bool] = {}


def format_utc(dt: datetime) -> str:
    """Render an aware datetime as canonical RFC 3339 UTC with microseconds."""
    dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def format_epoch(seconds: float) -> str:
    """Render seconds since the epoch as canonical RFC 3339 UTC with microseconds."""
    return format_utc(datetime.fromtimestamp(seconds, UTC))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# the years a naive time may be read as UTC by the compiled path (NAIVE_*_YEAR in _hotpath.c)
NAIVE_YEARS = (1971, 2099)


def local_zone_is_utc() -> bool:
    """Whether a time without an offset, which :func:`normalize_time` reads as the machine's
    local time (``datetime.astimezone``), is UTC in every year of :data:`NAIVE_YEARS`: the zone
    is UTC now, has no daylight saving, and the C library's ``localtime`` gives offset 0 every
    two weeks of those years (a zone such as Europe/London, UTC in winter, fails). Asked when
    the compiled path is built, of the same C library calls (``localtime``) the Python path's
    ``astimezone`` makes, so both read naive times in the same zone."""
    if time.timezone != 0 or time.altzone != 0 or time.daylight:
        return False
    first = int(datetime(NAIVE_YEARS[0], 1, 1, tzinfo=UTC).timestamp())
    last = int(datetime(NAIVE_YEARS[1] + 1, 1, 1, tzinfo=UTC).timestamp())
    return all(time.localtime(t).tm_gmtoff == 0 for t in range(first, last, 14 * 86400 + 3600))


def _epoch_seconds(value: float) -> float:
    """Seconds from an epoch number in s, ms, µs or ns (told apart by magnitude)."""
    magnitude = abs(value)
    if magnitude >= 1e17:
        return value / 1e9
    if magnitude >= 1e14:
        return value / 1e6
    if magnitude >= 1e11:
        return value / 1e3
    return value


def _format_epoch_int(value: int) -> str:
    """Integer epochs (s, ms, µs, ns) exactly, without float rounding of nanoseconds."""
    magnitude = abs(value)
    if magnitude >= 10**17:
        micros = value // 1000
    elif magnitude >= 10**14:
        micros = value
    elif magnitude >= 10**11:
        micros = value * 1000
    else:
        micros = value * 1_000_000
    return format_utc(_EPOCH + timedelta(microseconds=micros))


def _parse_text(text: str) -> str | None:
    m = _ISO.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    # all of it inside the try: an offset of +99:00 or a date at the edge of the calendar
    # is "not a time", never an exception that takes the record's batch with it
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
        if tz is None:
            dt = dt.astimezone()  # naive times (Python's asctime) are the machine's local time
        elif tz in ("Z", "z", "UTC"):
            dt = dt.replace(tzinfo=UTC)
        else:
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            dt = dt.replace(tzinfo=timezone(sign * offset))
        return format_utc(dt)
    except (ValueError, OverflowError, OSError):
        return None


def _canonical_prefix_ok(prefix: str) -> bool:
    """Whether ``prefix`` is ``YYYY-MM-DDTHH:MM:SS`` exactly, a second that exists: the
    canonical form. (strptime is lenient: a lower-case ``t`` went through as sent, where the
    full parse writes ``T``.)"""
    ok = _PREFIX_OK.get(prefix)
    if ok is None:
        digits = prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16] + prefix[17:19]
        ok = (len(prefix) == 19 and prefix[4] + prefix[7] + prefix[10] + prefix[13] + prefix[16] == "--T::"
              and digits.isascii() and digits.isdigit())
        if ok:
            try:
                datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]), int(digits[10:12]),
                         int(digits[12:14]))
            except ValueError:
                ok = False
        if len(_PREFIX_OK) > _CACHE_MAX:
            _PREFIX_OK.clear()
        _PREFIX_OK[prefix] = ok
    return ok


def normalize_time(value: object) -> str | None:
    """Canonical form of a time an agent sent, or None when it is not a time."""
    if isinstance(value, str):
        # the forms agents send most, checked without a datetime: UTC with a fraction of any
        # precision (canonical, zerolog ms, Go RFC3339Nano); one slice and one lookup each
        if len(value) > 20 and value[-1] == "Z" and value[19] == ".":
            fraction = value[20:-1]
            prefix = value[:19]
            ok = _PREFIX_OK.get(prefix)
            if ok is None:
                ok = _canonical_prefix_ok(prefix)
            if ok and fraction.isdigit() and fraction.isascii():  # isdigit alone takes ², ٣...
                if len(fraction) == 6:
                    return value
                return value[:20] + (fraction + "000000")[:6] + "Z"
        try:
            return _CACHE[value]  # None too: known not to be a time
        except KeyError:
            pass
        result = _parse_text(value)
        if result is None:
            try:
                result = format_epoch(_epoch_seconds(float(value)))
            except (ValueError, OverflowError, OSError):
                result = None
        if len(_CACHE) > _CACHE_MAX:
            _CACHE.clear()
        _CACHE[value] = result
        return result
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if isinstance(value, int):
                return _format_epoch_int(value)
            return format_epoch(_epoch_seconds(value))
        except (ValueError, OverflowError, OSError):
            return None
    return None


_SECOND_EPOCH: dict[str, float] = {}


def epoch_seconds(value: object) -> float | None:
    """Seconds since the epoch for any time :func:`normalize_time` accepts, or None.

    Converts each distinct second once (records of one second share it), so it is cheap
    enough for per-record use (agent run durations, trace analysis)."""
    if isinstance(value, str) and len(value) == 27:  # canonical, of a second met before: no normalising
        base = _SECOND_EPOCH.get(value[:19])
        if base is not None and value[19] == "." and value[26] == "Z":
            fraction = value[20:26]
            if fraction.isdigit() and fraction.isascii():
                return base + int(fraction) / 1e6
    text = normalize_time(value) if value is not None else None
    if text is None:
        return None
    second = text[:19]
    base = _SECOND_EPOCH.get(second)
    if base is None:
        base = datetime.fromisoformat(second).replace(tzinfo=UTC).timestamp()
        if len(_SECOND_EPOCH) > _CACHE_MAX:
            _SECOND_EPOCH.clear()
        _SECOND_EPOCH[second] = base
    return base + int(text[20:26]) / 1e6

