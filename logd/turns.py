"""Long work on the event loop, a turn at a time.

One large HTTP request (a 4 MB OTLP body of thousands of spans) is seconds of pure Python:
done in one go it stalls every other client, the control socket and the systemd watchdog
ping. Such work is written as a generator that yields after each unit (an item decoded, a
span mapped, a slice handed to the pipeline) and returns its result; :meth:`Turns.run`
drives it on the loop and gives the loop back whenever it has held it for ``turn`` seconds
(Twisted's ``cooperate``); :func:`finish` runs the same work in one go, where nothing
else waits (tests, tools). ``yield from`` composes the pieces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")

# A piece of work: yields (None) after each unit, returns its result.
Work = Generator[None, None, T]

TURN_SECONDS = 0.005  # the longest the loop is held between two looks at the other clients


def finish(work: Work[T]) -> T:
    """Run ``work`` to its end in one go and return its result."""
    while True:
        try:
            next(work)
        except StopIteration as done:
            return done.value


class Turns:
    """Drives work on the event loop in turns of at most ``turn`` seconds (by ``clock``, a
    monotonic one: a wall clock stepped back would stop the turns ending); counts the turns
    it gave back (``yields``)."""

    def __init__(self, turn: float = TURN_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.turn = turn
        self.clock = clock
        self.yields = 0

    async def run(self, work: Work[T]) -> T:
        clock, turn = self.clock, self.turn
        since = clock()
        while True:
            try:
                next(work)
            except StopIteration as done:
                return done.value
            if clock() - since >= turn:
                await asyncio.sleep(0)  # whatever is ready runs: sockets, timers, other requests
                self.yields += 1
                since = clock()
