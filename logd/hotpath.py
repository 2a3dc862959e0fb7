"""The hot path: the lines agents send go from the socket to the file without a dict.

Most records agents send have a time, a known level and a text message (in logd's shape or
a common dialect: zerolog, zap, slog, python-json-logger, structlog, loguru, ``json.dumps``),
carry no secret and no trace or usage shape. For those, the compiled :mod:`logd._hotpath`
checks and rewrites the line in one pass (the time to UTC, the level and message from their
aliases, escapes as orjson writes them: what :func:`logd.record.normalize_object` makes) and
hands the pipeline the JSON lines the file gets, plus what the counting steps count of them,
which they add to their counters. Every other line takes the Python path (:func:`logd.record.parse_line` and
the steps), which decides.

What the compiled code does is what the steps declare (:mod:`logd.spec`): each step's
role (``LevelFloor``, ``Redact``, ``CountByLevel``, ``SumFields``, ``CountNames``,
``ObserveNumber``, ``RecordsAtLevels``, ``Thins``) and
the record keys it reads in Python (``Spec.reads``): a line holding one of those goes to
Python, the others stay on the compiled path. A step that reads every record leaves no
compiled path, and ``logd status`` says which (``hot_path.off``); sampling and rate limits
decide by agent, level and message, which the compiled code gives them (``Thins``).

A step that only reads the records it reads (``ReadsRecords``: the metric steps reading
trace and usage shapes), and the trace store's branch, do not need Python's parser: the
compiled code still checks and writes those lines (issue 27: trace records were 0.14x the
plain rate, most of it parsing and redacting them in Python), and hands them over as one
batch whose records, decoded from the lines, go through the steps but redaction, which
the compiled code found nothing for, and the branch; the file and the session files get
the lines as they are.

Most trace records need no record at all: an AgenticGoKit hook entry that reports no usage,
tool call or error is only counted by agent and level, paired if it starts or ends a run,
and filed in its session (``QuietEntries``, declared by the usage step with the rule of
:func:`logd.traces.semantics.may_report`, and ``PairsRuns`` by the agents step). The
compiled code recognises such lines and hands over, per run of them, the agents' counts,
the run hooks' fields and each line's session, never a dict: a trace record then costs
about what a plain one does (issue 27). While a step needs their records after all (spans
wait for their agent; the agents' label cap is near), a run of them is decoded as above.

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
from logd.pipeline import BATCH_RECORDS, Encoded, Pipeline, Rids, Thinned
from logd.record import PARSER_KEYS, Record, parse_line
from logd.spec import (
    EVERY_RECORD,
    CountByLevel,
    CountNames,
    LevelFloor,
    ObserveNumber,
    PairsRuns,
    QuietEntries,
    ReadsRecords,
    RecordsAtLevels,
    Redact,
    Spec,
    SumFields,
    Thins,
)
from logd.timestamps import local_zone_is_utc

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
    K_SECRET, K_BAIL, K_TEXT, K_READ, K_FULL = (_hotpath.K_SECRET, _hotpath.K_BAIL, _hotpath.K_TEXT, _hotpath.K_READ,
                                                _hotpath.K_FULL)


def _no_tally(*rows: Any) -> None:
    pass


def _no_count() -> None:
    pass


class HotPath:
    """The compiled path for one set of steps (rebuilt with them on reload), from their roles."""

    def __init__(self, python_keys: frozenset[str], floor: int, redactor: Any, count: CountByLevel | None,
                 sums: SumFields | None, read_keys: frozenset[str] = frozenset(),
                 done: tuple[Any, ...] = (), names: CountNames | None = None, observe: ObserveNumber | None = None,
                 handed: RecordsAtLevels | None = None, thins: tuple[Thins, ...] = (),
                 quiet: tuple[QuietEntries, PairsRuns] | None = None) -> None:
        self.python_keys = python_keys
        self.read_keys = read_keys - python_keys
        # quiet trace entries: their steps' roles, and the keys that make an entry need its record
        self.quiet = quiet
        self.full_keys = frozenset() if quiet is None or count is None else \
            quiet[0].full_keys | ({count.histogram_key} if count.histogram_key else set())  # duration_ms: its own
        self.done = done  # the steps whose work the compiled path has done on the lines steps read (redaction)
        self.redactor = redactor
        self.add_counts = count.add if count is not None else _no_tally
        # the usage roles' adds, by the row tag the compiled code gives (ROW_* in _hotpath.c)
        self._adds = tuple(role.add if role is not None else _no_tally for role in (sums, names, observe))
        self.take = handed.take if handed is not None else None
        self.thins = thins  # in step order: each decides on the lines the ones before kept
        self._reported = False  # a failure of the compiled path was reported
        # per canonical level: 0 written, 1 under the level floor, 2 to Python, 3 written and its record
        # handed to a step (or Python's, under the floor); times 16, plus the level's rank
        given = handed.levels if handed is not None else frozenset()
        actions = {level: 16 * ((2 if rank < floor else 3) if level in given else int(rank < floor)) + rank
                   for level, rank in RANK.items()}
        assert _hotpath is not None  # build() makes none without it
        label = (count.label_key if count is not None else sums.labels[0] if sums is not None else
                 names.label_key if names is not None else None)
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
            directions=dict(sums.fields) if sums is not None else {},
            names=names.key if names is not None else None, failed=names.failed_key if names is not None else None,
            failed_ranks=sum(1 << RANK[level] for level in names.failed_levels) if names is not None else 0,
            observe=observe.key if observe is not None else None,
            observe_label=observe.label_key if observe is not None else None,
            observe_scale=observe.scale if observe is not None else 1.0,
            observe_buckets=tuple(float(b) for b in observe.buckets) if observe is not None else (),
            thin=thins[0].key if thins else None, naive_utc=local_zone_is_utc(),
            entries=None if quiet is None else _entry_rule(*quiet))

    def _classify_key(self, key: str) -> int:
        flags = 0
        if key in self.python_keys:
            flags |= K_BAIL
        elif key in self.read_keys:
            flags |= K_READ
        if key in self.full_keys:
            flags |= K_FULL
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

    def _ack_ends(self, suffix: bytes, rids: Rids, n: int) -> list[bytes] | None:
        """Each line's end on an ack connection: the peer's fields, then ``_rid`` (and
        ``_resent``), as Python's record ends; None when redaction would change one of them.
        (A stream id is plain characters and a sequence number digits: no JSON escape.)"""
        ids = [f"{rids.prefix}{rids.first + i}" for i in range(n)]
        redactor = self.redactor
        if redactor is not None:
            if redactor.is_secret_key("_rid") or (rids.resent and redactor.is_secret_key("_resent")):
                return None
            # asked as the walk asks, but not remembered: every id is new
            search = redactor.pattern.search if redactor.pattern is not None else None
            text = redactor.has_key_rule and redactor.is_text_key("_rid")
            for rid in ids:
                if ((search is not None and len(rid) >= redactor.min_len and search(rid) is not None)
                        or (text and not redactor.message_clean(rid))):
                    return None
        head, tail = suffix + b',"_rid":"', b'","_resent":true' if rids.resent else b'"'
        return [head + rid.encode() + tail for rid in ids]

    def feed(self, lines: list[bytes], received: str, trusted: Record, suffix: bytes, pipeline: Pipeline,
             rids: Rids | None = None) -> None:
        """Every line into ``pipeline``, in order: runs of hot-path lines as :class:`Encoded`
        batches, the others parsed by Python. ``rids``: the lines are an ack batch's (their
        ``_rid`` and ``_resent`` end each line after the peer's fields)."""
        run, put = self._fast.run, pipeline.put
        ends: bytes | list[bytes] | None = suffix
        if rids is None:
            def parse(i: int) -> Record:
                return parse_line(lines[i], received, trusted)
        else:
            ends = self._ack_ends(suffix, rids, len(lines))

            def parse(i: int) -> Record:
                return parse_line(lines[i], received, {**trusted, **rids.fields(i)})
        slow: list[Record] = []
        i, n, misses, stretch = 0, len(lines), 0, _GIVE_UP_AFTER
        if ends is None:  # redaction would change an ack field: Python takes them all
            misses, stretch = _GIVE_UP_AFTER, n
        while i < n:
            if misses >= _GIVE_UP_AFTER:
                end = min(n, i + stretch)
                slow.extend([parse(j) for j in range(i, end)])
                i, misses, stretch = end, _GIVE_UP_AFTER - 1, min(stretch * 2, BATCH_RECORDS)
                if len(slow) >= BATCH_RECORDS:
                    put(slow)
                    slow = []
                continue
            try:
                (json_lines, stop, kept, below, agents, rows, low, high, read, python, handed, thin, selected,
                 runs) = run(lines, i, n, ends)
            except Exception as exc:  # a question to Python failed (a bug): Python takes the rest
                if not self._reported:  # once: the records themselves are all kept
                    self._reported = True
                    pipeline.events.emit("error", "hot path failed; its lines go through Python",
                                         event="hotpath", error=f"{type(exc).__name__}: {exc}"[:300])
                slow.extend([parse(j) for j in range(i, n)])
                break
            if stop > i:
                misses, stretch = 0, _GIVE_UP_AFTER
                if slow:
                    put(slow)
                    slow = []
                bounds = (low, high) if low is not None and high is not None else _EMPTY
                if read == _ENTRIES:  # no step needs their records: counted and filed here, unless one does now
                    pipeline.put_encoded(Encoded(json_lines, kept, below, bounds,
                                                 self._entries(agents, runs, json_lines, thin), self.done, selected,
                                                 handed))
                elif read:  # lines some step reads: their records go through the steps (but redaction)
                    pipeline.put_encoded(Encoded(json_lines, kept, 0, _EMPTY, _no_count, self.done))
                else:
                    pipeline.put_encoded(Encoded(json_lines, kept, below, bounds,
                                                 self._counter(agents, rows, json_lines, handed, thin)))
            if stop < n and (python or stop == i):
                slow.append(parse(stop))
                misses += 1
                if len(slow) >= BATCH_RECORDS:
                    put(slow)
                    slow = []
                stop += 1
            i = stop
        if slow:
            put(slow)

    def _entries(self, agents: list, runs: list, json_lines: bytes,
                 thin: list[tuple[int, Any, str, str]]) -> Callable[[], Thinned | bool]:
        """What a run of quiet entries adds to the steps (their counts by agent and level, their
        run hooks), called in order with the batches around it; then what sampling and rate
        limits left of the lines the log file gets (True: all). False, adding nothing: a step
        needs their records now (spans wait for their agent, or the agents' label cap is near)."""
        assert self.quiet is not None
        entries, pairs = self.quiet
        add_counts = self.add_counts

        def count() -> Thinned | bool:
            if not entries.ready() or not pairs.fits([row[0] for row in agents] + [r[2] or r[3] for r in runs]):
                return False
            add_counts(agents)
            if runs:
                pairs.add(runs)
            thinned = _thinned(self.thins, json_lines, thin) if self.thins and thin else None
            return thinned if thinned is not None else True
        return count

    def _counter(self, agents: list, rows: list, json_lines: bytes, handed: list[int],
                 thin: list[tuple[int, Any, str, str]]) -> Callable[[], Thinned | None]:
        """What the run's counts add to the steps, called in order with the batches around it;
        then what the steps that keep or drop records (Thins) left of its lines."""
        adds, take = self._adds, self.take

        def count() -> Thinned | None:
            self.add_counts(agents)
            for row in rows:  # the usage roles' rows, in the order their keys first appeared
                adds[row[0]](*row[1:])
            if take is not None:
                for start in handed:  # a few records (errors): decoded from the lines written
                    take(orjson.loads(json_lines[start:json_lines.index(b"\n", start)]))
            return _thinned(self.thins, json_lines, thin) if self.thins and thin else None
        return count


def _thinned(thins: tuple[Thins, ...], json_lines: bytes, lines: list[tuple[int, Any, str, str]]) -> Thinned | None:
    """The run's lines each step in ``thins`` kept (in order, each deciding on what the ones
    before kept), their time bounds, and how many each dropped; None: all kept."""
    dropped: dict[str, int] = {}
    for role in thins:
        keep = role.decide([entry[1:] for entry in lines])
        kept = [entry for entry, yes in zip(lines, keep, strict=True) if yes]
        if len(kept) < len(lines):
            dropped[role.reason] = dropped.get(role.reason, 0) + len(lines) - len(kept)
            lines = kept
    if not dropped:
        return None
    ends = {start: json_lines.index(b"\n", start) + 1 for start, *_ in lines}
    kept_lines = b"".join([json_lines[start:ends[start]] for start, *_ in lines])
    times = [json_lines[start + 9:start + 36].decode() for start, *_ in lines]  # {"time":"<27 characters>"
    return Thinned(kept_lines, len(lines), (min(times), max(times)) if times else _EMPTY, dropped)


_EMPTY = ("\U0010ffff", "")  # no kept record: bounds that widen nothing
_ENTRIES = 2  # run's kind: quiet entries (RUN_ENTRIES in _hotpath.c)


def _entry_rule(entries: QuietEntries, pairs: PairsRuns) -> tuple[Any, ...]:
    """The quiet entries' rule as FastPath takes it (EntryRule in _hotpath.c)."""
    return (entries.shape, entries.hook, entries.hooks, pairs.hooks, entries.session, *pairs.agent_keys,
            entries.nested, entries.nested_names, entries.type_key, entries.type_prefix, entries.result,
            entries.result_error)


def _quiet(declared: dict[type, list[Any]], own_roles: list[tuple[Any, ...]],
           count: CountByLevel | None) -> tuple[QuietEntries, PairsRuns] | None:
    """The roles that let quiet entries skip their records, when every step that reads records
    declared what it does with them, and the agents' count labels, and sampling and rate limits
    decide, by the agent the pairs fall back on."""
    entries, pairs = declared.get(QuietEntries, []), declared.get(PairsRuns, [])
    if len(entries) != 1 or len(pairs) != 1 or count is None:
        return None
    if {count.label_key, *(role.key for role in declared.get(Thins, []))} != {pairs[0].agent_keys[1]}:
        return None
    if any(any(isinstance(r, ReadsRecords) for r in own) and not any(isinstance(r, (QuietEntries, PairsRuns))
                                                                     for r in own) for own in own_roles):
        return None
    return entries[0], pairs[0]


def build(steps: Iterable[tuple[Spec, Any]], others: Iterable[Spec] = ()) -> tuple[HotPath | None, str | None]:
    """The compiled path the steps declare, or None and why there is none. ``others``: specs
    beside the steps whose ``reads`` also send lines to Python (the trace branch's selector)."""
    if _hotpath is None:
        return None, "logd was built without a C compiler"
    python_keys, read_keys = set(PARSER_KEYS), set[str]()
    roles: list[Any] = []
    own_roles: list[tuple[Any, ...]] = []
    done = []  # steps whose one role is redaction: what they would change sends a line to Python
    for spec, step in steps:
        if spec.reads is EVERY_RECORD:
            return None, f"step {spec.name} reads every record"
        own = spec.hot(step) if spec.hot is not None else ()
        own_roles.append(own)
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
    one = {kind: found[0] for kind, found in declared.items()}
    if any(len(found) > 1 for kind, found in declared.items() if kind not in (ReadsRecords, Thins, QuietEntries,
                                                                                 PairsRuns)):
        return None, "the compiled path takes one role of each kind"
    count, sums, names = one.get(CountByLevel), one.get(SumFields), one.get(CountNames)
    labels = {role.label_key if not isinstance(role, SumFields) else role.labels[0]
              for role in (count, sums, names) if role is not None}
    if len(labels) > 1:
        return None, "the compiled path labels counts, sums and names by the same first key"
    thins = tuple(declared.get(Thins, []))
    if len({role.key for role in thins}) > 1:
        return None, "the compiled path gives the steps that keep or drop records one key"
    floor = one.get(LevelFloor)
    redact = one.get(Redact)
    return HotPath(frozenset(python_keys), floor.floor if floor is not None else 0,
                   redact.redactor if redact is not None else None, count, sums,
                   frozenset(read_keys), tuple(done), names, one.get(ObserveNumber), one.get(RecordsAtLevels),
                   thins, _quiet(declared, own_roles, count)), None
