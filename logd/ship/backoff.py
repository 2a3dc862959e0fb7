"""When to try a failed delivery again: the shippers' defaults for :class:`logd.backoff.Backoff`
(jittered, from 0.2 s up to a minute), and Retry-After parsing.

Pure policy: it computes delays and never sleeps, so tests drive it directly with a
seeded random source; the shipper does the waiting with an interruptible sleeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from logd.backoff import RETRY_AFTER_CAP, Backoff

__all__ = ["RETRY_AFTER_CAP", "RetryPolicy", "parse_retry_after"]


@dataclass
class RetryPolicy(Backoff):
    """The one back-off class with the shippers' defaults (no other behaviour of its own)."""

    initial: float = 0.2
    cap: float = 60.0
    jitter: bool = True


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)
