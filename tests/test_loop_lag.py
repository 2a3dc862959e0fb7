"""logd.loop_lag: how late the event loop wakes, on `logd status` and /metrics (clock injected;
the end-to-end check is tests/test_otlp_turns.py)."""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric

from logd.loop_lag import LoopLag, _families, _figures


def test_lag_is_how_much_later_than_asked_the_probe_woke():
    readings = iter([100.0, 100.3, 200.0, 199.0, 300.0, 300.0])  # late 0.3 - 0.001; a clock stepped back; on time

    async def main() -> LoopLag:
        probe = LoopLag(lambda: next(readings, 300.0), interval=0.001)
        await probe.start()
        while sum(probe.counts) < 3:
            await asyncio.sleep(0.001)
        await probe.stop()
        return probe

    probe = asyncio.run(main())
    stats = probe.stats()
    assert stats["max_lag_s"] == 0.299 and stats["max_lag_at"] == "1970-01-01T00:01:40.300000Z"
    assert stats["checks"] >= 3
    families: list[Metric] = list(_families(_figures(probe)))
    histogram = {s.name + str(s.labels.get("le", "")): s.value for s in families[0].samples}
    assert histogram["logd_event_loop_lag_seconds_bucket0.25"] == histogram["logd_event_loop_lag_seconds_bucket0.001"]
    assert histogram["logd_event_loop_lag_seconds_bucket0.5"] == histogram["logd_event_loop_lag_seconds_bucket0.25"] + 1
    assert [s.value for s in families[1].samples] == [0.299]
