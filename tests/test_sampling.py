"""Sampling (zap's semantics) and the per-agent rate limit (journald's), driven by an injected clock."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest

from logd.config import ConfigError, parse_config
from logd.daemon import build
from logd.events import Events
from logd.pipeline import SELF_TRUSTED, Pipeline
from logd.spec import Context
from logd.steps.agents import AgentMetrics
from logd.steps.sampling import RateLimiter, Sampler

from support import agent_records, read_records, send_records, wait_for


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recs(n: int, level: str = "info", message: str = "same", agent: str = "a") -> list[dict]:
    return [{"time": "t", "level": level, "message": message, "agent": agent, "seq": i} for i in range(n)]


def own(message: str = "logd says") -> dict:
    return {"time": "t", "level": "info", "message": message, "agent": "logd", **SELF_TRUSTED}


# --- sampling ---

def test_first_initial_then_every_thereafter_th_within_a_tick():
    clock = Clock()
    sampler = Sampler(initial=3, thereafter=5, tick=1.0, clock=clock)
    kept = sampler(recs(20))
    # records 1..3, then the 8th, 13th, 18th (every 5th after the first 3)
    assert [r["seq"] + 1 for r in kept] == [1, 2, 3, 8, 13, 18]
    assert sampler.counts == {"info": 14}


def test_counts_are_per_agent_level_and_message_and_span_batches():
    clock = Clock()
    sampler = Sampler(initial=2, thereafter=0, tick=1.0, clock=clock)
    kept = sampler(recs(3, message="m1") + recs(3, message="m2") + recs(3, message="m1", agent="b")
                   + recs(3, message="m1", level="debug"))
    assert len(kept) == 8
    assert sampler(recs(2, message="m1")) == []  # same tick: the count goes on across batches
    assert sampler.counts == {"info": 5, "debug": 1}


def test_a_new_tick_starts_counting_again():
    clock = Clock()
    sampler = Sampler(initial=1, thereafter=0, tick=2.0, clock=clock)
    assert len(sampler(recs(5))) == 1
    clock.advance(1.9)
    assert sampler(recs(5)) == []
    clock.advance(0.1)
    assert len(sampler(recs(5))) == 1
    assert sampler.counts == {"info": 13}


def test_warn_and_above_are_not_sampled_unless_asked():
    clock = Clock()
    by_default = Sampler(initial=1, thereafter=0, tick=1.0, clock=clock)
    batch = recs(4, level="warn") + recs(4, level="error") + recs(4, level="fatal")
    assert len(by_default(batch)) == 12
    asked = Sampler(initial=1, thereafter=0, tick=1.0, max_level="warn", clock=clock)
    assert len(asked(batch)) == 1 + 4 + 4
    assert asked.counts == {"warn": 3}


def test_logds_own_records_are_never_sampled_but_a_client_claiming_to_be_logd_is():
    clock = Clock()
    sampler = Sampler(initial=1, thereafter=0, tick=1.0, clock=clock)
    assert len(sampler([own() for _ in range(5)])) == 5
    impostor = [{"time": "t", "level": "info", "message": "logd says", "agent": "logd", "_pid": 1}] * 5
    assert len(sampler(impostor)) == 1


# --- rate limit ---

def test_burst_per_interval_then_one_report_when_the_window_ends():
    clock = Clock()
    limiter = RateLimiter(burst=5, interval=10.0, clock=clock)
    assert len(limiter(recs(12, agent="chatty"))) == 5
    assert len(limiter(recs(3, agent="quiet"))) == 3
    clock.advance(9.9)
    assert limiter(recs(2, agent="chatty")) == []
    assert limiter.reports() == []  # the window has not ended yet
    clock.advance(0.1)
    reports = limiter.reports()
    assert [r["message"] for r in reports] == ["suppressed 9 records from agent chatty"]
    report = reports[0]
    assert report["level"] == "warn" and report["agent"] == "logd" and report["suppressed"] == 9
    assert report["suppressed_agent"] == "chatty" and report["_pid"] == SELF_TRUSTED["_pid"]
    assert limiter.reports() == []  # once per window
    assert limiter.counts == {"chatty": 9}
    assert len(limiter(recs(7, agent="chatty"))) == 5  # a new window, a new burst


def test_a_window_ended_by_the_agents_next_record_is_still_reported():
    clock = Clock()
    limiter = RateLimiter(burst=1, interval=5.0, clock=clock)
    limiter(recs(4))
    clock.advance(6)
    assert len(limiter(recs(1))) == 1  # opens the next window
    assert [r["suppressed"] for r in limiter.reports()] == [3]


def test_final_reports_end_every_window_now():
    clock = Clock()
    limiter = RateLimiter(burst=2, interval=30.0, clock=clock)
    limiter(recs(5, agent="a") + recs(4, agent="b") + recs(1, agent="c"))
    reports = limiter.reports(final=True)
    assert sorted(r["message"] for r in reports) == ["suppressed 2 records from agent b",
                                                     "suppressed 3 records from agent a"]
    assert limiter.reports(final=True) == []


def test_logds_own_records_pass_the_rate_limit():
    limiter = RateLimiter(burst=1, interval=30.0, clock=Clock())
    assert len(limiter([own() for _ in range(10)])) == 10
    assert limiter.counts == {}


# --- in the pipeline ---

def test_pipeline_counts_what_each_step_removed_by_reason():
    clock = Clock()
    config = parse_config('[logging]\nlevel = "info"\n[logging.sampling]\nenabled = true\ninitial = 2\n'
                          'thereafter = 0\nburst = 3\ninterval = 60\n', _path())
    agents = AgentMetrics()
    steps = build(Context(config, Events(), clock, kept={"agents": agents})).steps
    assert [type(s).__name__ for s in steps] == ["Redactor", "AgentMetrics", "UsageMetrics", "function", "Sampler",
                                                 "RateLimiter"]

    class Memory:
        name = "memory"

        def __init__(self) -> None:
            self.records: list[dict] = []

        def write(self, batch) -> None:
            self.records.extend(batch.records)

        def flush(self) -> None: ...

        def close(self) -> None: ...

    sink = Memory()

    async def run() -> None:
        pipeline = Pipeline(steps, [sink], clock=clock)
        pipeline.put(recs(4, level="debug") + recs(5, message="x") + [r | {"message": f"m{i}"} for i, r in
                                                                       enumerate(recs(6, agent="b"))])
        pipeline.drain()
        assert pipeline.stats.dropped == {"below_level": 4, "sampled": 3, "rate_limited": 3}

    asyncio.run(run())
    assert [(r["agent"], r["message"]) for r in sink.records] == [("a", "x"), ("a", "x"), ("b", "m0"),
                                                                   ("b", "m1"), ("b", "m2")]
    assert agents.sampled == {"info": 3} and agents.rate_limited == {"b": 3}
    assert agents.records == {("a", "debug"): 4, ("a", "info"): 5, ("b", "info"): 6}


def _path():
    from pathlib import Path

    return Path("/tmp/agentflow.toml")


def test_config_defaults_and_errors():
    config = parse_config("[logging]\n", _path())
    assert config.sampling.enabled is False and config.sampling.burst == 0
    steps = build(Context(config, Events())).steps
    assert [type(s).__name__ for s in steps] == ["Redactor", "AgentMetrics", "UsageMetrics", "function"]
    with pytest.raises(ConfigError) as err:
        parse_config("[logging.sampling]\ntick = 0\n", _path())
    assert "logging.sampling.tick: expected a positive number of seconds, found integer 0" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config("[logging.sampling]\nburst = -1\n", _path())
    assert "logging.sampling.burst" in str(err.value)


# --- end to end ---

def test_rate_limited_daemon_reports_suppressed_records_and_counts(daemon, tmp_path):
    d = daemon('file = "agent.log"\n\n[logging.sampling]\nburst = 10\ninterval = 3600\n')
    send_records(d.socket_path, [{"msg": f"flood {i}", "agent": "flooder"} for i in range(50)]
                 + [{"msg": "calm", "agent": "calm"}])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 11, what="the burst and the calm agent")
    status = orjson.loads(subprocess.run(
        [sys.executable, "-m", "logd", "status", "--json", "--socket", str(d.socket_path)],
        capture_output=True, text=True, check=True).stdout)
    assert status["dropped"]["rate_limited"] == 40
    assert status["rate_limited"] == {"flooder": 40}
    assert d.stop() == 0
    # the window had not ended: its report is written at shutdown, before "logd stopped"
    own = [r for r in read_records(tmp_path / "agent.log") if r.get("agent") == "logd"]
    messages = [r["message"] for r in own]
    assert "suppressed 40 records from agent flooder" in messages
    assert messages.index("suppressed 40 records from agent flooder") < messages.index("logd stopped")


def test_sampling_daemon_keeps_initial_and_every_thereafter(daemon, tmp_path):
    d = daemon('file = "agent.log"\n\n[logging.sampling]\nenabled = true\ninitial = 5\nthereafter = 10\n'
               'tick = 3600\n')
    send_records(d.socket_path, [{"msg": "retrying", "agent": "a", "n": i} for i in range(100)]
                 + [{"msg": "retrying", "agent": "a", "level": "error", "n": i} for i in range(3)])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 5 + 9 + 3, what="sampled records")
    kept = [r["n"] for r in agent_records(tmp_path / "agent.log") if r["level"] == "info"]
    assert kept == [0, 1, 2, 3, 4, 14, 24, 34, 44, 54, 64, 74, 84, 94]


def test_reload_reports_open_windows_and_applies_the_new_limit(daemon, tmp_path):
    from support import write_config

    d = daemon('file = "agent.log"\n\n[logging.sampling]\nburst = 2\ninterval = 3600\n')
    send_records(d.socket_path, [{"msg": f"a{i}", "agent": "flooder"} for i in range(7)])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 2, what="the burst")
    # the config watcher reloads (once: `logd reload` as well would make two reloads)
    write_config(tmp_path, d.socket_path, 'file = "agent.log"\n\n[logging.sampling]\nburst = 4\ninterval = 3600\n')

    def own_messages() -> list[str]:
        return [r["message"] for r in read_records(tmp_path / "agent.log") if r.get("agent") == "logd"]
    wait_for(lambda: "suppressed 5 records from agent flooder" in own_messages(),
             what="the old window's report at reload")
    send_records(d.socket_path, [{"msg": f"b{i}", "agent": "flooder"} for i in range(7)])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 2 + 4, what="the new burst")
    status = orjson.loads(subprocess.run(
        [sys.executable, "-m", "logd", "status", "--json", "--socket", str(d.socket_path)],
        capture_output=True, text=True, check=True).stdout)
    assert status["rate_limited"] == {"flooder": 5 + 3}  # counts survive the reload
