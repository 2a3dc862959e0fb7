"""logd.isolation on its own: the text form a record a step failed on is kept as."""

from __future__ import annotations

import asyncio
import time

import orjson

from logd.isolation import fallback_record
from logd.pipeline import Pipeline
from logd.sinks.file import FileSink
from logd.steps.agents import AgentMetrics
from logd.steps.redact import Redactor
from logd.steps.sampling import Sampler
from logd.usage import UsageMetrics


def test_a_failed_record_keeps_its_canonical_time():
    record = {"time": "2026-01-01T00:00:00.000000Z", "level": "warn", "message": "m"}
    safe = fallback_record(record, "step", ValueError("bad"))
    assert safe["time"] == "2026-01-01T00:00:00.000000Z" and safe["level"] == "warn"
    assert safe["_error"] == "step: ValueError: bad"


def test_a_failed_record_without_a_canonical_time_gets_the_current_time():
    """The time a step left is not a canonical string (or is gone): the fallback is now."""
    for stamp in (5, None, "yesterday"):
        before = time.time()
        safe = fallback_record({"time": stamp, "message": "m"}, "step", ValueError("bad"))
        assert len(safe["time"]) == 27 and safe["time"].endswith("Z")
        assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before)) <= safe["time"][:16]
        assert safe["_error"] == "step: ValueError: bad" and '"m"' in safe["message"]
    assert len(fallback_record({"message": "m"}, "step", ValueError("bad"))["time"]) == 27


class Unprintable:
    """A value no step can turn into text: stands for a bug a record trips in a step."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


def test_a_step_with_counts_fails_on_one_record_and_counts_every_other_record_once(tmp_path):
    """Running a counting step again record by record after it failed midway would count the
    records before the culprit twice; a step with state flags the culprit and goes on."""
    agents = AgentMetrics()
    usage = UsageMetrics(agents.label)
    redactor = Redactor(counts=agents.redacted)
    sampler = Sampler(initial=100, thereafter=0, tick=60.0, clock=lambda: 0.0)
    records = [{"time": "2026-01-01T00:00:00.000000Z", "level": "info", "message": f"m{i}", "agent": "a",
                "tokens": {"prompt": 10, "completion": 1}, "password": "hunter2"} for i in range(10)]
    records[5]["agent"] = Unprintable()  # AgentMetrics.label calls str() on it

    async def run() -> Pipeline:
        pipeline = Pipeline([agents, usage, redactor, sampler], [FileSink(tmp_path / "agent.log")])
        pipeline.put(records)
        pipeline.close()
        return pipeline

    pipeline = asyncio.run(run())
    written = [orjson.loads(line) for line in (tmp_path / "agent.log").read_bytes().splitlines()]
    assert [r["message"] for r in written[:5] + written[6:]] == [f"m{i}" for i in range(10) if i != 5]
    culprit = written[5]
    assert culprit["_error"].startswith("AgentMetrics: RuntimeError: no text for you")
    assert "hunter2" not in culprit["message"] and "<Unprintable>" in culprit["message"]
    assert pipeline.stats.step_errors == {"AgentMetrics": 1}  # its text form has no agent to trip on
    # the nine others once each (not 14: the five before the culprit are not counted again),
    # and the culprit's text form once
    assert agents.records == {("a", "info"): 9, ("unknown", "info"): 1}
    assert usage.tokens[("a", "unknown", "input")] == 90
    assert agents.redacted == {"key": 10}  # nine fields, and the culprit's "password": "hunter2" in its text
    assert all(r.get("password") == "[REDACTED]" for r in written if "_error" not in r)
