"""Capped exponential back-off: one class for every retry in logd.

Used by the pipeline (a failing sink), the client (reconnecting to the socket) and the
shippers (a failing target, with jitter and Retry-After). It computes delays and never
sleeps; the clock is injected, so tests drive it without waiting. Stdlib only: the
client imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

RETRY_AFTER_CAP = 3600.0  # a server asking for more than an hour is asking for too much


@dataclass
class Backoff:
    """``initial``, then ``factor`` times longer each failed attempt, at most ``cap`` seconds.

    ``jitter``: "equal jitter", half the step plus a random part up to the other half, so
    many hosts recovering at once do not retry in lock-step and a wait never collapses to
    zero. ``max_retries`` (0: no limit) is for callers that give up.
    """

    initial: float = 0.05
    cap: float = 5.0
    factor: float = 2.0
    jitter: bool = False
    max_retries: int = 0
    rng: random.Random | None = None
    clock: Callable[[], float] = time.monotonic
    attempts: int = field(default=0, init=False)  # failures since the last success
    _next_try: float = field(default=0.0, init=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based); a server's Retry-After
        is honoured when it asks for longer."""
        step = min(self.cap, self.initial * self.factor ** max(0, attempt - 1))
        if self.jitter:
            if self.rng is None:
                import random

                self.rng = random.Random()
            step = step / 2 + self.rng.uniform(0, step / 2)
        if retry_after is not None:
            step = max(step, min(retry_after, RETRY_AFTER_CAP))
        return step

    def failed(self, retry_after: float | None = None) -> float:
        """An attempt failed: returns the delay before the next one, which :meth:`remaining` counts down."""
        self.attempts += 1
        wait = self.delay(self.attempts, retry_after)
        self._next_try = self.clock() + wait
        return wait

    def succeeded(self) -> None:
        self.attempts = 0
        self._next_try = 0.0

    def remaining(self) -> float:
        """Seconds until the next attempt is due (0: try now)."""
        return max(0.0, self._next_try - self.clock())

    def gives_up(self, attempt: int) -> bool:
        return self.max_retries > 0 and attempt > self.max_retries
