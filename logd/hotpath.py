"""The hot path: lines already in logd's shape go from the socket to the file without a dict.

Most records agents send are already canonical (``time`` in UTC, a known level, text
``message``), carry no secret and no trace or usage shape. For those, the compiled
:mod:`logd._hotpath` checks and rewrites the line in one pass and hands the pipeline the
JSON lines the file gets, plus what the counting steps count of them, which they add to
their counters. Every other line takes the Python path (:func:`logd.record.parse_line` and
the steps), which decides.

What the compiled code does is what the steps declare (:mod:`logd.spec`): each step's
role (``LevelFloor``, ``Redact``, ``CountByLevel``, ``SumFields``, ``LevelsToPython``) and
the record keys it reads in Python (``Spec.reads``): a line holding one of those goes to
Python, the others stay on the compiled path. A step that reads every record (sampling,
rate limits) leaves no compiled path, and ``logd status`` says which (``hot_path.off``).

A step that only reads the records it reads (``ReadsRecords``: the metric steps reading
trace and usage shapes), and the trace store's branch, do not need Python's parser: the
compiled code still checks and writes those lines (issue 27: trace records were 0.14x the
plain rate, most of it parsing and redacting them in Python), and hands them over as one
batch whose records, decoded from the lines, go through the steps but redaction, which
the compiled code found nothing for, and the branch; the file and the session files get
the lines as they are.

The compiled code never decides anything Python would decide differently: for each line it
either makes the same bytes and counts as the Python path (tests/test_hotpath.py compares
them on generated lines) or stops and gives the line to Python. What it asks Python is
asked through the steps' own functions: which key names are secret
(:meth:`Redactor.is_secret_key`), which name text (:meth:`Redactor.is_text_key`), which
strings a pattern matches, which level spellings exist, which keys a step reads. A
connection's peer fields (``_comm`` is whatever the client named its process) end its
lines on this path only when redaction would leave them as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import orjson

from logd.levels import ALIASES, RANK
from logd.pipeline import BATCH_RECORDS, Encoded, Pipeline
from logd.record import PARSER_KEYS, Record, parse_line
from logd.spec import EVERY_RECORD, CountByLevel, LevelFloor, LevelsToPython, ReadsRecords, Redact, Spec, SumFields

_hotpath: ModuleType | None
try:
    from logd import _hotpath
except ImportError:  # built without a C compiler: every line takes the Python path
    _hotpath = None

__all__ = ["AVAILABLE", "HotPath", "build"]

AVAILABLE = _hotpath is not None
# lines that fail in a row before Python takes the next ones without a try, in stretches that
# double (up to a batch) while the one try between them fails: a client whose records are not
# in logd's shape pays for a few tries per chunk, not one per line, and a burst of such lines
# (8 loguru records in a row) no longer sends the whole rest of the chunk to Python
_GIVE_UP_AFTER = 8

if _hotpath is not None:
    K_SECRET, K_BAIL, K_TEXT, K_READ = _hotpath.K_SECRET, _hotpath.K_BAIL, _hotpath.K_TEXT, _hotpath.K_READ


def _no_tally(rows: list[list[Any]]) -> None:
    pass


def _no_count() -> None:
    pass


class HotPath:
    """The compiled path for one set of steps (rebuilt with them on reload), from their roles."""

    def __init__(self, python_keys: frozenset[str], floor: int, redactor: Any, count: CountByLevel | None,
                 sums: SumFields | None, python_levels: frozenset[str], read_keys: frozenset[str] = frozenset(),
                 done: tuple[Any, ...] = ()) -> None:
        self.python_keys = python_keys
        self.read_keys = read_keys - python_keys
        self.done = done  # the steps whose work the compiled path has done on the lines steps read (redaction)
        self.redactor = redactor
        self.add_counts = count.add if count is not None else _no_tally
        self.add_sums = sums.add if sums is not None else _no_tally
        self._reported = False  # a failure of the compiled path was reported
        # per canonical level: 0 written, 1 under the level floor, 2 to Python; times 16, plus the level's rank
        actions = {level: 16 * (2 if level in python_levels else int(rank < floor)) + rank
                   for level, rank in RANK.items()}
        assert _hotpath is not None  # build() makes none without it
        label = count.label_key if count is not None else (sums.labels[0] if sums is not None else None)
        self._fast = _hotpath.FastPath(
            aliases=dict(ALIASES), actions=actions, classify_key=self._classify_key,
            value_clean=redactor.value_clean if redactor is not None and redactor.pattern is not None else None,
            message_clean=redactor.message_clean if redactor is not None and redactor.has_key_rule else None,
            min_len=redactor.min_len if redactor is not None else 0, redact=redactor is not None,
            label=label, count=count is not None,
            histogram=count.histogram_key if count is not None else None,
            scale=count.scale if count is not None else 1.0,
            buckets=tuple(float(b) for b in count.buckets) if count is not None else (),
            sum=sums.key if sums is not None else None, sum_label=sums.labels[1] if sums is not None else None,
            directions=dict(sums.fields) if sums is not None else {})

    def _classify_key(self, key: str) -> int:
        flags = 0
        if key in self.python_keys:
            flags |= K_BAIL
        elif key in self.read_keys:
            flags |= K_READ
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
        i, n, misses, stretch = 0, len(lines), 0, _GIVE_UP_AFTER
        while i < n:
            if misses >= _GIVE_UP_AFTER:
                end = min(n, i + stretch)
                slow.extend([parse_line(line, received, trusted) for line in lines[i:end]])
                i, misses, stretch = end, _GIVE_UP_AFTER - 1, min(stretch * 2, BATCH_RECORDS)
                if len(slow) >= BATCH_RECORDS:
                    put(slow)
                    slow = []
                continue
            try:
                json_lines, stop, kept, below, agents, tokens, low, high, read, python = run(lines, i, n, suffix)
            except Exception as exc:  # a question to Python failed (a bug): Python takes the rest
                if not self._reported:  # once: the records themselves are all kept
                    self._reported = True
                    pipeline.events.emit("error", "hot path failed; its lines go through Python",
                                         event="hotpath", error=f"{type(exc).__name__}: {exc}"[:300])
                slow.extend([parse_line(line, received, trusted) for line in lines[i:]])
                break
            if stop > i:
                misses, stretch = 0, _GIVE_UP_AFTER
                if slow:
                    put(slow)
                    slow = []
                if read:  # lines some step reads: their records go through the steps (but redaction)
                    pipeline.put_encoded(Encoded(json_lines, kept, 0, _EMPTY, _no_count, self.done))
                else:
                    bounds = (low, high) if low is not None and high is not None else _EMPTY
                    pipeline.put_encoded(Encoded(json_lines, kept, below, bounds, self._counter(agents, tokens)))
            if stop < n and (python or stop == i):
                slow.append(parse_line(lines[stop], received, trusted))
                misses += 1
                if len(slow) >= BATCH_RECORDS:
                    put(slow)
                    slow = []
                stop += 1
            i = stop
        if slow:
            put(slow)

    def _counter(self, agents: list, tokens: list) -> Callable[[], None]:
        def count() -> None:
            self.add_counts(agents)
            if tokens:
                self.add_sums(tokens)
        return count


_EMPTY = ("\U0010ffff", "")  # no kept record: bounds that widen nothing


def build(steps: Iterable[tuple[Spec, Any]], others: Iterable[Spec] = ()) -> tuple[HotPath | None, str | None]:
    """The compiled path the steps declare, or None and why there is none. ``others``: specs
    beside the steps whose ``reads`` also send lines to Python (the trace branch's selector)."""
    if _hotpath is None:
        return None, "logd was built without a C compiler"
    python_keys, read_keys = set(PARSER_KEYS), set[str]()
    roles: list[Any] = []
    done = []  # steps whose one role is redaction: what they would change sends a line to Python
    for spec, step in steps:
        if spec.reads is EVERY_RECORD:
            return None, f"step {spec.name} reads every record"
        own = spec.hot(step) if spec.hot is not None else ()
        if any(isinstance(r, ReadsRecords) for r in own):
            read_keys |= spec.reads
        else:
            python_keys |= spec.reads
        if own and all(isinstance(r, Redact) for r in own) and not spec.reads:
            done.append(step)
        roles += own
    for spec in others:  # the trace store writes the lines its branch selects as they are
        read_keys |= spec.reads or frozenset()
    declared: dict[type, list[Any]] = {}
    for role in roles:
        declared.setdefault(type(role), []).append(role)
    floors, redacts = declared.get(LevelFloor, []), declared.get(Redact, [])
    counts, sums = declared.get(CountByLevel, []), declared.get(SumFields, [])
    if len(floors) > 1 or len(redacts) > 1 or len(counts) > 1 or len(sums) > 1:
        return None, "the compiled path takes one role of each kind"
    if counts and sums and counts[0].label_key != sums[0].labels[0]:
        return None, "the compiled path labels counts and sums by the same first key"
    python_levels = frozenset().union(*(r.levels for r in declared.get(LevelsToPython, [])))
    return HotPath(frozenset(python_keys), floors[0].floor if floors else 0,
                   redacts[0].redactor if redacts else None, counts[0] if counts else None,
                   sums[0] if sums else None, python_levels, frozenset(read_keys), tuple(done)), None
