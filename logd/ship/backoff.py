"""When to try a failed delivery again: capped exponential backoff with jitter, and Retry-After.

Pure policy: it computes delays and never sleeps, so tests drive it directly with a
seeded random source; the shipper does the waiting with an interruptible sleeper.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

RETRY_AFTER_CAP = 3600.0  # a server asking for more than an hour is asking for too much


@dataclass
class RetryPolicy:
    initial: float = 0.2
    cap: float = 60.0
    factor: float = 2.0
    max_retries: int = 0  # 0: no limit
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based).

        "Equal jitter": half the exponential step, plus a random part up to the other
        half, so many hosts recovering at once do not retry in lock-step, and a wait
        never collapses to zero. A server's Retry-After is honoured when it asks for longer."""
        step = min(self.cap, self.initial * self.factor ** max(0, attempt - 1))
        wait = step / 2 + self.rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
        return wait

    def gives_up(self, attempt: int) -> bool:
        return self.max_retries > 0 and attempt > self.max_retries


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
