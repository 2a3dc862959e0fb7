"""Surviving log floods: ``[logging.sampling]``.

Two pipeline steps, both off by default and both reading an injected clock once per batch:

- :class:`Sampler`, zap's sampling: within each ``tick`` seconds, of the records with
  the same agent, level and message the first ``initial`` are kept, then every
  ``thereafter``-th (0: none). Levels above ``max_level`` (by default warn and above)
  are never sampled. Keyed per agent because in zap each agent has its own logger.
- :class:`RateLimiter`, journald's rate limit: each agent may send ``burst`` records per
  ``interval`` seconds; the rest of that interval is suppressed and, once it has ended,
  reported by one record ``suppressed N records from agent X``.

logd's own records are never sampled or limited. Every record removed is counted, by
level (sampling) and by agent (rate limit), in dicts the daemon keeps across reloads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logd.events import SELF_TRUSTED
from logd.isolation import StepFailures
from logd.levels import LEVELS, RANK
from logd.record import MAX_KEY_CHARS, Record, bounded_key
from logd.settings import boolean, choice, integer, seconds, setting
from logd.spec import STEP, Context, Spec, Thins
from logd.steps.agents import agents_of
from logd.timestamps import format_epoch

Clock = Callable[[], float]
NO_AGENT = "unknown"


def _is_own(record: Record, pid: int = os.getpid()) -> bool:
    """A record logd made itself: agent "logd" and logd's own pid (clients cannot set ``_pid``)."""
    return record.get("_pid") == pid and record.get("agent") == "logd"


# per-key tables stay bounded whatever clients send (issue 18): keys are at most
# MAX_KEY_CHARS characters (record.bounded_key), and a table holds at most MAX_KEYS entries
MAX_KEYS = 10_000


def agent_of(record: Record) -> str:
    return agent_name(record.get("agent"))


def agent_name(agent: object) -> str:
    if agent.__class__ is not str:
        agent = NO_AGENT if agent is None else str(agent)
    assert isinstance(agent, str)
    return agent if len(agent) <= MAX_KEY_CHARS else bounded_key(agent)


class Sampler:
    """Pipeline step: zap-style sampling per (agent, level, message) and tick."""

    drop_reason = "sampled"

    def __init__(self, *, initial: int, thereafter: int, tick: float, max_level: str = "info",
                 clock: Clock, counts: dict[str, int] | None = None) -> None:
        self.initial, self.thereafter, self.tick = initial, thereafter, tick
        self.max_rank = RANK[max_level]
        self.clock = clock
        self.counts = {} if counts is None else counts  # level -> records sampled out
        self._seen: dict[tuple[str, str, int], int] = {}  # (agent, level, hash of the message) -> count
        self._tick_ends = float("-inf")

    def __call__(self, records: list[Record]) -> list[Record]:
        self._start()
        keeps = self._keeps
        kept: list[Record] = []
        dropped = 0
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                if _is_own(record) or keeps(record.get("agent"), record["level"], record["message"]):
                    kept.append(record)
                else:
                    dropped += 1
            except Exception as exc:  # isolation (issue 18): kept, and flagged by the pipeline
                kept.append(record)
                failed.append((record, exc))
        if failed:
            raise StepFailures(kept, failed)
        return kept if dropped else records

    def decide(self, lines: list[tuple[Any, str, str]]) -> list[bool]:
        """The compiled path's records as (agent, level, message), in order: which are kept
        (:class:`~logd.spec.Thins`; logd's own records never take that path)."""
        self._start()
        keeps = self._keeps
        return [keeps(agent, level, message) for agent, level, message in lines]

    def _start(self) -> None:
        """Once per batch: the clock, and a new tick when the last one has ended."""
        now = self.clock()
        if now >= self._tick_ends:
            # a new tick: every count starts again (this also bounds the memory used)
            self._seen.clear()
            self._tick_ends = now + self.tick

    def _keeps(self, agent: object, level: str, message: str) -> bool:
        """Whether a record is kept; one sampled out is counted."""
        if RANK[level] > self.max_rank:
            return True
        seen, initial, thereafter = self._seen, self.initial, self.thereafter
        # the message's hash, not the message: a key never holds a 256 KB string
        key = (agent_name(agent), level, hash(message))
        n = seen.get(key, 0) + 1
        if n == 1 and len(seen) >= MAX_KEYS:
            seen.clear()  # like a new tick, early: counts start again rather than grow
        seen[key] = n
        if n <= initial or (thereafter and (n - initial) % thereafter == 0):
            return True
        self.counts[level] = self.counts.get(level, 0) + 1
        return False


class _Window:
    __slots__ = ("ends", "count", "suppressed")

    def __init__(self, ends: float) -> None:
        self.ends, self.count, self.suppressed = ends, 0, 0


class RateLimiter:
    """Pipeline step: at most ``burst`` records per agent per ``interval`` seconds.

    The window of an agent opens with its first record. Suppressed records are reported
    by :meth:`reports` (the daemon calls it every second and at shutdown) once the
    window has ended, as one record per agent and window.
    """

    drop_reason = "rate_limited"

    def __init__(self, *, burst: int, interval: float, clock: Clock,
                 counts: dict[str, int] | None = None, label: Callable[[str], str] = str) -> None:
        self.burst, self.interval, self.clock = burst, interval, clock
        self.counts = {} if counts is None else counts  # agent label -> records suppressed
        self.label = label  # caps how many agents get their own count (metrics.AgentMetrics.label)
        self._windows: dict[str, _Window] = {}
        self._ended: list[tuple[str, int, float]] = []  # (agent, suppressed, window end)

    def __call__(self, records: list[Record]) -> list[Record]:
        now = self.clock()
        keeps = self._keeps
        kept: list[Record] = []
        dropped = 0
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                if _is_own(record) or keeps(record.get("agent"), now):
                    kept.append(record)
                else:
                    dropped += 1
            except Exception as exc:  # isolation (issue 18): kept, and flagged by the pipeline
                kept.append(record)
                failed.append((record, exc))
        if failed:
            raise StepFailures(kept, failed)
        return kept if dropped else records

    def decide(self, lines: list[tuple[Any, str, str]]) -> list[bool]:
        """The compiled path's records as (agent, level, message), in order: which are kept
        (:class:`~logd.spec.Thins`; logd's own records never take that path)."""
        now, keeps = self.clock(), self._keeps
        return [keeps(agent, now) for agent, _, _ in lines]

    def _keeps(self, sent_as: object, now: float) -> bool:
        """Whether the agent's window has room for one more record; one suppressed is counted."""
        windows = self._windows
        agent = agent_name(sent_as)
        window = windows.get(agent)
        if window is None or now >= window.ends:
            if window is not None and window.suppressed:
                self._ended.append((agent, window.suppressed, window.ends))
            elif window is None and len(windows) >= MAX_KEYS:
                oldest = next(iter(windows))  # the table stays bounded: end the oldest window now
                ended = windows.pop(oldest)
                if ended.suppressed:
                    self._ended.append((oldest, ended.suppressed, ended.ends))
            window = windows[agent] = _Window(now + self.interval)
        window.count += 1
        if window.count <= self.burst:
            return True
        name = self.label(agent)
        window.suppressed += 1
        self.counts[name] = self.counts.get(name, 0) + 1
        return False

    def reports(self, *, final: bool = False) -> list[Record]:
        """One ``suppressed N records from agent X`` record per ended window that
        suppressed something; ``final`` (shutdown, reload) ends every window now."""
        now = self.clock()
        ended, self._ended = self._ended, []
        for agent, window in list(self._windows.items()):
            if final or now >= window.ends:
                del self._windows[agent]  # idle agents are forgotten: memory stays bounded
                if window.suppressed:
                    ended.append((agent, window.suppressed, window.ends))
        return [self._report(agent, n, now) for agent, n, _ in ended]

    def _report(self, agent: str, suppressed: int, now: float) -> Record:
        record: Record = {
            "time": format_epoch(now), "level": "warn",
            "message": f"suppressed {suppressed} records from agent {agent}",
            "agent": "logd", "event": "rate_limit", "suppressed": suppressed,
            "suppressed_agent": agent, "burst": self.burst, "interval_s": self.interval,
        }
        record.update(SELF_TRUSTED)
        return record


@dataclass(frozen=True)
class SamplingSettings:
    """``[logging.sampling]``: zap-style sampling (off unless ``enabled``) and a per-agent
    rate limit (off while ``burst`` is 0)."""

    enabled: bool = setting(False, doc="zap-style sampling", check=boolean)
    tick: float = setting(1.0, doc="seconds", check=seconds)
    initial: int = setting(100, doc="per agent, level and message in a tick: keep the first N ...",
                           check=integer(0, "a whole number >= 0"))
    thereafter: int = setting(100, doc="0: nothing after the first ``initial`` in a tick",
                              check=integer(0, "a whole number >= 0 (0 keeps none after the first `initial`)"))
    max_level: str = setting("info", doc="sampled: this level and below",
                             check=choice({name: name for name in LEVELS} | {"warning": "warn"},
                                          "a level: " + ", ".join(f'"{name}"' for name in LEVELS)))
    burst: int = setting(0, doc="records per agent per interval; 0: no rate limit",
                         check=integer(0, "a whole number of records >= 0 (0 means no rate limit)"))
    interval: float = setting(30.0, doc="seconds", check=seconds)


def _sampler(settings: SamplingSettings, ctx: Context) -> Sampler | None:
    if not settings.enabled:
        return None
    return Sampler(initial=settings.initial, thereafter=settings.thereafter, tick=settings.tick,
                   max_level=settings.max_level, clock=ctx.clock, counts=agents_of(ctx).sampled)


def _rate_limiter(settings: SamplingSettings, ctx: Context) -> RateLimiter | None:
    if settings.burst <= 0:
        return None
    agents = agents_of(ctx)
    return RateLimiter(burst=settings.burst, interval=settings.interval, clock=ctx.clock,
                       counts=agents.rate_limited, label=agents.label)


def _reports(limiter: Any, final: bool) -> list[Record]:
    return limiter.reports(final=final)


def _thins(step: Sampler | RateLimiter) -> tuple[Thins]:
    # both decide on every record by its agent, level and message: the compiled path gives them those
    return (Thins("agent", step.decide, step.drop_reason),)


SAMPLER = Spec(STEP, "sampling", _sampler, SamplingSettings, table="sampling", reads=frozenset(), hot=_thins)
RATE_LIMIT = Spec(STEP, "rate_limit", _rate_limiter, SamplingSettings, table="sampling", reads=frozenset(),
                  hot=_thins, tick=_reports)
