"""``logd query``: select records from the log file and its backups, as JSON lines for jq.

Filters are compiled once into a :class:`Filter`; its ``match`` takes a raw line and
rejects most records from bytes alone (logd writes ``time`` and ``level`` first, so both
sit at fixed places at the head of each line, and a wanted agent's ``"agent":"x"``
must appear in the line verbatim) before anything is parsed. Matching lines are printed
as they are stored: no re-encoding.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from logd.levels import LEVELS, RANK
from logd.logfiles import bounds
from logd.logfiles.content import LogFile, Problem, ProblemHandler, file_blocks
from logd.reading.dedupe import Deduplicator
from logd.reading.output import Progress
from logd.record import Record
from logd.timestamps import normalize_time

SESSION_KEYS = ("session_id", "session")
_WHERE = re.compile(r"([^=!~<>]+?)\s*(!=|>=|<=|=|~|>|<)\s*(.*)", re.S)


@dataclass(frozen=True)
class Where:
    """One ``--where`` condition: ``key=v``, ``key!=v``, ``key~regex``, ``key>n``, ``key<n``
    (``>=``, ``<=`` too). ``key`` may be dotted into nested objects."""

    path: tuple[str, ...]
    op: str
    value: Any  # JSON if the text parses as JSON, else the text; a float for > <; a pattern for ~
    raw: str

    def matches(self, record: Record) -> bool:
        found = _lookup(record, self.path)
        if self.op in ("=", "!="):
            equal = found is not _MISSING and (found == self.value or (isinstance(found, str) and found == self.raw))
            return equal if self.op == "=" else not equal
        if found is _MISSING:
            return False
        if self.op == "~":
            text = found if isinstance(found, str) else orjson.dumps(found).decode()
            return self.value.search(text) is not None
        if not isinstance(found, (int, float)) or isinstance(found, bool):
            return False
        return {">": found > self.value, "<": found < self.value,
                ">=": found >= self.value, "<=": found <= self.value}[self.op]


def parse_where(text: str) -> Where:
    """``KEY OP VALUE``; raises ValueError naming what was expected."""
    m = _WHERE.fullmatch(text)
    if m is None or not m.group(1).strip():
        raise ValueError(f"expected KEY=VALUE, KEY!=VALUE, KEY~REGEX, KEY>N or KEY<N, got {text!r}")
    key, op, raw = m.group(1).strip(), m.group(2), m.group(3)
    value: Any
    if op == "~":
        try:
            value = re.compile(raw)
        except re.error as exc:
            raise ValueError(f"bad regular expression {raw!r} in --where {text!r}: {exc}") from None
    elif op in ("=", "!="):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
    else:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number after {op!r} in --where {text!r}") from None
    return Where(tuple(key.split(".")), op, value, raw)


def _lookup(record: Record, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


@dataclass
class Filter:
    """What ``logd query`` and ``logd tail`` select; empty selects everything."""

    since: str | None = None
    until: str | None = None
    level: str | None = None  # this level and above
    level_max: str | None = None  # and this level and below (``-p warn..error``)
    agents: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    grep: re.Pattern[str] | None = None
    where: tuple[Where, ...] = ()
    _levels: frozenset[bytes] = field(init=False, repr=False)
    _needles: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        floor = RANK[self.level] if self.level else 0
        ceiling = RANK[self.level_max] if self.level_max else max(RANK.values())
        self._levels = frozenset(name.encode() for name in LEVELS if floor <= RANK[name] <= ceiling)
        # a top-level "agent":"x" is in the line exactly as orjson writes it
        self._needles = tuple(b'"agent":' + orjson.dumps(a) for a in self.agents)

    @property
    def needs_record(self) -> bool:
        return bool(self.agents or self.sessions or self.grep or self.where)

    @property
    def selects(self) -> bool:
        """Whether anything is left out at all (else every line is taken as it is)."""
        return bool(self.needs_record or self.level or self.level_max or self.since or self.until)

    def match(self, line: bytes) -> bool | None:
        """Whether a raw line is selected; None when it is not a JSON object (damage)."""
        fast = line.startswith(b'{"time":"') and line[36:47] == b'","level":"'
        if fast:
            if self.since is not None or self.until is not None:
                t = line[9:36].decode("ascii", "replace")
                if (self.since is not None and t < self.since) or (self.until is not None and t > self.until):
                    return False
            if self.level or self.level_max:
                end = line.find(b'"', 47)
                if line[47:end] not in self._levels:
                    return False
            if self._needles and not any(n in line for n in self._needles):
                return False
        try:
            record = orjson.loads(line)  # confirms what the bytes suggested
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict):
            return None
        return self.match_record(record, times_checked=fast)

    def match_record(self, record: Record, times_checked: bool = False) -> bool:
        if not times_checked:
            if self.since is not None or self.until is not None:
                t = normalize_time(record.get("time"))
                if t is None or (self.since is not None and t < self.since) or (
                        self.until is not None and t > self.until):
                    return False
            level = record.get("level")
            if (self.level or self.level_max) and not (isinstance(level, str) and level.encode() in self._levels):
                return False
        if self.agents and record.get("agent") not in self.agents:
            return False
        if self.sessions and not any(record.get(k) in self.sessions for k in SESSION_KEYS):
            return False
        if self.grep is not None:
            message = record.get("message")
            if not isinstance(message, str) or self.grep.search(message) is None:
                return False
        return all(condition.matches(record) for condition in self.where)


_RID = b'"_rid":"'


def repeat_finder(dedupe: Deduplicator) -> Callable[[bytes], bool]:
    """Whether a line is the resent copy of a record already read (acknowledged delivery:
    same ``_rid``, ``"_resent": true``); reads the two fields from the bytes, no parsing."""
    keep = dedupe.keep

    def is_repeat(line: bytes) -> bool:
        start = line.find(_RID)
        if start < 0:
            return False
        start += len(_RID)
        rid = line[start:line.find(b'"', start)].decode("utf-8", "replace")
        return not keep({"_rid": rid, "_resent": b'"_resent":true' in line})

    return is_repeat


def select(files: list[LogFile], selection: Filter, on_problem: ProblemHandler,
           dedupe: Deduplicator | None = None, current: Path | None = None,
           progress: Progress | None = None) -> Iterator[list[bytes]]:
    """Batches of the selected raw lines, oldest file first, each file in write order.
    Lines that are not JSON records are reported once per file (first line, and how many).
    With ``dedupe``, a record's resent copy is left out (judged before the filters: a
    record is where its first copy is). With a time window, a backup is skipped only when
    the bounds index (:mod:`logd.logfiles.bounds`) says all its records are outside it; a
    backup read whole without problems gets its bounds filed for the next query."""
    match = selection.match
    is_repeat = repeat_finder(dedupe) if dedupe is not None else None
    if current is None:
        current = next((f.path for f in files if f.is_current), files[0].path if files else Path("."))
    window = selection.since is not None or selection.until is not None
    chosen_files = bounds.files_in_window(current, files, selection.since, selection.until)
    total = sum(_disk_size(k.file) for k in chosen_files) or 1
    done = 0
    for number, known in enumerate(chosen_files, 1):
        file = known.file
        measure = window and known.bounds is None and known.fp is not None
        measured: bounds.Bounds | None = None
        size = 0
        troubled = False

        def report(problem: Problem) -> None:
            nonlocal troubled
            troubled = True
            on_problem(problem)

        read = 0
        damaged: tuple[int, int] | None = None  # (first line number, count)
        for block, batch in file_blocks(file, report):
            if measure:
                measured = bounds.lines_bounds(batch, measured)
                size += len(block) + 1
            chosen = []
            repeats = is_repeat if is_repeat is not None and _RID in block else None  # one scan per block
            for line in batch:
                if repeats is not None and repeats(line):
                    continue
                verdict = match(line) if line else False
                if verdict:
                    chosen.append(line)
                elif verdict is None:
                    number = read + batch.index(line) + 1
                    damaged = (damaged[0], damaged[1] + 1) if damaged else (number, 1)
            read += len(batch)
            if progress is not None:
                progress.update(f"file {number} of {len(chosen_files)}, {total / 1e6:,.0f} MB on disk",
                                done / total)
            if chosen:
                yield chosen
        done += _disk_size(file)
        if measure and not troubled:
            bounds.record_bounds(current, known, size, measured)
        if damaged:
            more = f" (and {damaged[1] - 1} more lines like it)" if damaged[1] > 1 else ""
            on_problem(Problem(file.path, damaged[0], f"not a JSON record, skipped{more}"))


def _disk_size(file: LogFile) -> int:
    if file.disk_size >= 0:  # noted when listed: no need to open a backup for it
        return file.disk_size
    try:
        return os.fstat(file.fd).st_size if file.fd is not None else 0
    except OSError:
        return 0


def write_json(batches: Iterable[list[bytes]], out: BinaryIO) -> int:
    """Write lines as they are stored; returns how many."""
    count = 0
    for lines in batches:
        count += len(lines)
        out.write(b"\n".join(lines) + b"\n")
    return count


def write_human(batches: Iterable[list[bytes]], out: BinaryIO, format_record: Callable[[Record], str]) -> int:
    """Write lines in the console's human format (a line that is not JSON is shown as is)."""
    count = 0
    for lines in batches:
        parts = []
        for line in lines:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                parts.append(format_record(record))
            else:
                parts.append(line.decode("utf-8", "replace") + "\n")
        count += len(lines)
        out.write("".join(parts).encode("utf-8", "replace"))
    return count


def problem_printer(stream: Any) -> Callable[[Problem], None]:
    def report(problem: Problem) -> None:
        print(f"logd: warning: {problem}", file=stream, flush=True)
    return report



def run_query(files: list[LogFile], selection: Filter, out: BinaryIO, on_problem: ProblemHandler,
              format_record: Callable[[Record], str] | None = None) -> int:
    """Print the selected records (JSON lines, or human lines with ``format_record``); returns how many."""
    batches = select(files, selection, on_problem, Deduplicator())
    if format_record is None:
        return write_json(batches, out)
    return write_human(batches, out, format_record)
