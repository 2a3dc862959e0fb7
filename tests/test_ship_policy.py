"""The retry policy on its own: capped exponential backoff with jitter, Retry-After, retry limit."""

from __future__ import annotations

import random
from email.utils import formatdate

from logd.ship.backoff import RETRY_AFTER_CAP, RetryPolicy, parse_retry_after


def test_backoff_doubles_to_the_cap_with_jitter_in_the_upper_half():
    policy = RetryPolicy(initial=0.5, cap=8.0, rng=random.Random(1))
    steps = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for attempt, step in enumerate(steps, start=1):
        for _ in range(50):
            assert step / 2 <= policy.delay(attempt) <= step


def test_jitter_spreads_hosts_apart():
    """Two hosts failing together do not retry in lock-step."""
    a, b = RetryPolicy(rng=random.Random(1)), RetryPolicy(rng=random.Random(2))
    assert [a.delay(n) for n in range(1, 6)] != [b.delay(n) for n in range(1, 6)]


def test_same_seed_same_delays():
    assert [RetryPolicy(rng=random.Random(3)).delay(n) for n in range(1, 6)] == [
        RetryPolicy(rng=random.Random(3)).delay(n) for n in range(1, 6)]


def test_retry_after_is_honoured_when_longer_than_backoff_and_capped():
    policy = RetryPolicy(initial=0.2, cap=60, rng=random.Random(1))
    assert policy.delay(1, retry_after=30) == 30
    assert policy.delay(10, retry_after=0.01) >= 30  # the backoff is longer: it wins
    assert policy.delay(1, retry_after=10 ** 9) == RETRY_AFTER_CAP


def test_parse_retry_after_seconds_and_http_date():
    now = 1_795_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_no_retry_limit_by_default():
    assert not RetryPolicy().gives_up(10 ** 6)
    limited = RetryPolicy(max_retries=3)
    assert not limited.gives_up(3) and limited.gives_up(4)


def test_shippers_step_aside_while_ingestion_is_busy():
    """Above the busy rate a shipper pauses twice the CPU it spent (capped); otherwise not at all."""
    from logd.ship.shipper import BUSY_RATE, yield_seconds

    assert yield_seconds(BUSY_RATE / 2, cpu_spent=0.05) == 0.0
    assert yield_seconds(BUSY_RATE * 10, cpu_spent=0.05) == 0.1
    assert yield_seconds(BUSY_RATE * 10, cpu_spent=5.0) == 0.5
