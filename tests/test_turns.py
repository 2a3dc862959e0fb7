"""logd.turns: long work gives the event loop back once it has held it a turn (clock injected)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from logd.turns import Turns, Work, finish


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves ``step`` seconds each time it is read."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def units(log: list[str], count: int) -> Work[int]:
    for n in range(count):
        log.append(f"unit {n}")
        yield
    return count


def test_work_gives_the_loop_back_once_its_turn_is_spent_and_returns_its_result():
    log: list[str] = []

    async def neighbour() -> None:  # another client, ready all along
        while True:
            log.append("neighbour")
            await asyncio.sleep(0)

    async def main() -> tuple[int, int]:
        task = asyncio.get_running_loop().create_task(neighbour())
        await asyncio.sleep(0)
        log.clear()
        turns = Turns(turn=2.5, clock=ticking(1.0))  # each unit is seen to take a second
        result = await turns.run(units(log, 6))
        task.cancel()
        return result, turns.yields

    assert asyncio.run(main()) == (6, 2)
    assert log == ["unit 0", "unit 1", "unit 2", "neighbour", "unit 3", "unit 4", "unit 5", "neighbour"]


def test_finish_runs_work_in_one_go():
    log: list[str] = []
    assert finish(units(log, 3)) == 3 and log == ["unit 0", "unit 1", "unit 2"]
