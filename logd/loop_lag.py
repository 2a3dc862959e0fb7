"""How late the event loop is: ``logd_event_loop_lag_seconds`` on /metrics, ``event_loop`` in
``logd status``.

Everything logd does for its clients (the socket, the HTTP intake, the control socket, the
systemd watchdog ping) takes turns on one event loop, so a piece of work that holds it
delays them all. A small task sleeps :data:`INTERVAL_S` at a time and records by how much
more than that it woke (by the daemon's clock: a clock stepped back reads as no lag, one
stepped forward as one late check).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from logd.components import Tables
from logd.metrics import histogram
from logd.spec import SERVICE, Context, Spec
from logd.timestamps import format_epoch

INTERVAL_S = 0.25
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoopLag:
    """The lag probe as the daemon runs it: started and stopped like any service."""

    def __init__(self, clock: Callable[[], float], interval: float = INTERVAL_S) -> None:
        self.clock = clock
        self.interval = interval
        self.counts = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0
        self.last = 0.0
        self.worst = 0.0
        self.worst_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def observe(self, lag: float, at: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self.total += lag
        self.last = lag
        if lag > self.worst:
            self.worst, self.worst_at = lag, at

    async def _probe(self) -> None:
        while True:
            before = self.clock()
            await asyncio.sleep(self.interval)
            now = self.clock()
            self.observe(max(0.0, now - before - self.interval), now)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def reload(self, config: Tables) -> None:
        pass  # nothing to configure

    def stats(self) -> dict[str, Any]:
        """``logd status``: the latest lag, the worst since start and when it was."""
        return {"lag_s": round(self.last, 4), "max_lag_s": round(self.worst, 4),
                "max_lag_at": format_epoch(self.worst_at) if self.worst_at is not None else None,
                "checks": sum(self.counts), "interval_s": self.interval}


def _figures(probe: LoopLag) -> dict[str, Any]:
    return {"event_loop": probe.stats(), "event_loop_lag": [*probe.counts, probe.total]}


def _families(s: dict[str, Any]) -> Iterable[Any]:
    row, loop = s.get("event_loop_lag"), s.get("event_loop")
    if row is None or loop is None:
        return ()
    lag = histogram("logd_event_loop_lag_seconds", "How much later than asked the event loop woke a sleeper: "
                    "a stall of every client, the control socket and the systemd watchdog", None, {"": row}, BUCKETS)
    worst = GaugeMetricFamily("logd_event_loop_lag_max_seconds", "The longest event loop lag since start",
                              value=loop["max_lag_s"])
    return (lag, worst)


def _view(s: dict[str, Any], view: dict[str, Any]) -> None:
    view.pop("event_loop_lag", None)  # the histogram's rows: /metrics and `logd top` read them


def _build(settings: None, ctx: Context) -> LoopLag:
    return LoopLag(ctx.clock)


SPEC = Spec(SERVICE, "event_loop", _build, figures=_figures, families=_families, view=_view)
