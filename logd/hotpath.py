"""The hot path: lines already in logd's shape go from the socket to the file without a dict.

Most records agents send are already canonical (``time`` in UTC, a known level, text
``message``), carry no secret and no trace or usage shape. For those, the compiled
:mod:`logd._hotpath` checks and rewrites the line in one pass and hands the pipeline the
JSON lines the file gets, plus what the metric steps count of them (records per agent and
level, durations, tokens), which they add to their counters. Every other line, and every
line when a step the hot path does not know is configured (sampling, rate limits), takes
the Python path (:func:`logd.record.parse_line` and the steps), which decides.

The compiled code never decides anything Python would decide differently: for each line it
either makes the same bytes and counts as the Python path (tests/test_hotpath.py compares
them on generated lines) or stops and gives the line to Python. What it asks Python is
asked through the steps' own functions: which key names are secret
(:meth:`Redactor.is_secret_key`), which name text (:meth:`Redactor.is_text_key`), which
strings a pattern matches, which level spellings exist, which keys make a record a trace
or usage record. A connection's peer fields (``_comm`` is whatever the client named its
process) end its lines on this path only when redaction would leave them as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import orjson

from logd import tracebacks
from logd.levels import ALIASES, ERROR_LEVELS, RANK
from logd.metrics import AgentMetrics
from logd.pipeline import BATCH_RECORDS, Encoded, Pipeline, Step
from logd.record import RESERVED, Record, parse_line
from logd.steps.redact import Redactor
from logd.traces.shapes import TRIGGER_KEYS as TRACE_KEYS
from logd.usage import DIRECTIONS, UsageMetrics
from logd.usage import TRIGGER_KEYS as USAGE_KEYS

_hotpath: ModuleType | None
try:
    from logd import _hotpath
except ImportError:  # built without a C compiler: every line takes the Python path
    _hotpath = None

__all__ = ["AVAILABLE", "HotPath", "build"]

AVAILABLE = _hotpath is not None
# The metric steps read "agent", "duration_ms", "model" and "tokens" of an ordinary record
# (AgentMetrics.__call__, UsageMetrics._flat): the compiled code counts those as they do.
# A record with a key that makes a step look further goes to Python whole.
PYTHON_KEYS = RESERVED | {"record"} | TRACE_KEYS | USAGE_KEYS | AgentMetrics.TRACE_KEYS | tracebacks.KEYS
# lines that fail in a row before the rest of a chunk goes straight to Python (a client
# whose records are not in logd's shape pays for a few tries per chunk, not for every line)
_GIVE_UP_AFTER = 8

if _hotpath is not None:
    K_SECRET, K_BAIL, K_TEXT = _hotpath.K_SECRET, _hotpath.K_BAIL, _hotpath.K_TEXT


class HotPath:
    """The compiled path for one set of steps (rebuilt with them on reload)."""

    def __init__(self, floor: int, agents: AgentMetrics, usage: UsageMetrics | None,
                 redactor: Redactor | None) -> None:
        self.agents = agents
        self.usage = usage
        self.redactor = redactor
        self._reported = False  # a failure of the compiled path was reported
        # per canonical level: 0 written, 1 under the level floor, 2 to Python (usage metrics
        # keep each agent's last error from the whole record); times 16, plus the level's rank
        actions = {level: 16 * (2 if usage is not None and level in ERROR_LEVELS else int(rank < floor)) + rank
                   for level, rank in RANK.items()}
        assert _hotpath is not None  # build() makes none without it
        self._fast = _hotpath.FastPath(
            aliases=dict(ALIASES), actions=actions, classify_key=self._classify_key,
            value_clean=redactor.value_clean if redactor is not None and redactor.pattern is not None else None,
            message_clean=redactor.message_clean if redactor is not None and redactor.has_key_rule else None,
            buckets=tuple(float(b) for b in agents.buckets), directions=dict(DIRECTIONS),
            min_len=redactor.min_len if redactor is not None else 0, redact=redactor is not None,
            usage=usage is not None)

    def _classify_key(self, key: str) -> int:
        flags = 0
        if key in PYTHON_KEYS:
            flags |= K_BAIL
        if self.redactor is not None:
            if self.redactor.is_secret_key(key):
                flags |= K_SECRET
            if self.redactor.has_key_rule and self.redactor.is_text_key(key):
                flags |= K_TEXT
        return flags

    def suffix(self, trusted: Record) -> bytes | None:
        """The trusted fields as the end of each line, or None when redaction would touch one
        of them: a configured key such as ``pid``, or a value such as a ``_comm`` the client
        named ``Bearer ...`` (``prctl(PR_SET_NAME)``): that connection takes the Python path."""
        if self.redactor is not None and not all(self._clean_field(k, v) for k, v in trusted.items()):
            return None
        if trusted.get("_pid") == os.getpid():  # logd's own records pass the level floor (level_filter)
            return None
        return b"," + orjson.dumps(trusted)[1:-1] if trusted else b""

    def _clean_field(self, key: str, value: object) -> bool:
        """Whether the redactor leaves this trusted field as it is (asked as the walk would ask)."""
        redactor = self.redactor
        assert redactor is not None
        if redactor.is_secret_key(key):
            return False
        if not isinstance(value, str):
            return True
        return redactor.value_clean(value) and not (redactor.has_key_rule and redactor.is_text_key(key)
                                                    and not redactor.message_clean(value))

    def feed(self, lines: list[bytes], received: str, trusted: Record, suffix: bytes, pipeline: Pipeline) -> None:
        """Every line into ``pipeline``, in order: runs of hot-path lines as :class:`Encoded`
        batches, the others parsed by Python."""
        run, put = self._fast.run, pipeline.put
        slow: list[Record] = []
        i, n, misses = 0, len(lines), 0
        while i < n:
            if misses >= _GIVE_UP_AFTER:
                slow.extend([parse_line(line, received, trusted) for line in lines[i:]])
                break
            try:
                json_lines, stop, kept, below, agents, tokens, low, high = run(lines, i, n, suffix)
            except Exception as exc:  # a question to Python failed (a bug): Python takes the rest
                if not self._reported:  # once: the records themselves are all kept
                    self._reported = True
                    pipeline.events.emit("error", "hot path failed; its lines go through Python",
                                         event="hotpath", error=f"{type(exc).__name__}: {exc}"[:300])
                slow.extend([parse_line(line, received, trusted) for line in lines[i:]])
                break
            if stop > i:
                misses = 0
                if slow:
                    put(slow)
                    slow = []
                bounds = (low, high) if low is not None and high is not None else _EMPTY
                pipeline.put_encoded(Encoded(json_lines, kept, below, bounds,
                                             self._counter(agents, tokens)))
            if stop < n:
                slow.append(parse_line(lines[stop], received, trusted))
                misses += 1
                if len(slow) >= BATCH_RECORDS:
                    put(slow)
                    slow = []
            i = stop + 1
        if slow:
            put(slow)

    def _counter(self, agents: list, tokens: list) -> Callable[[], None]:
        def count() -> None:
            self.agents.count_tally(agents)
            if self.usage is not None and tokens:
                self.usage.count_tally(tokens)
        return count


_EMPTY = ("\U0010ffff", "")  # no kept record: bounds that widen nothing


def build(steps: list[Step]) -> HotPath | None:
    """The hot path for these steps, or None when a step is one it cannot stand in for."""
    if _hotpath is None:
        return None
    floor: int | None = None
    agents: AgentMetrics | None = None
    usage: UsageMetrics | None = None
    redactor: Redactor | None = None
    for step in steps:
        if isinstance(step, AgentMetrics):
            agents = step
        elif isinstance(step, UsageMetrics):
            usage = step
        elif isinstance(step, Redactor):
            redactor = step
        elif getattr(step, "drop_reason", None) == "below_level":
            floor = getattr(step, "floor", None)
        else:
            return None  # sampling, rate limits: they decide per record, in Python
    if floor is None or agents is None:
        return None
    return HotPath(floor, agents, usage, redactor)
