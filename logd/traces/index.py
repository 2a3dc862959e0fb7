"""The session index: which files hold which session, and each session's summary, so
``logd list`` and ``logd trace S`` answer from one small database instead of reading
every trace file (100,000 sessions: see docs/benchmarks.md).

The daemon files each record by what it knows on arrival (:mod:`logd.traces.shapes`:
the AgenticGoKit session, the Koog run, a span's trace id); which session a trace
belongs to is settled here, at read time, from all its records (the outermost span
that names a session, :func:`logd.traces.semantics.outermost`), so a parent that
arrives after its children still gathers them into its conversation.

The index is kept by its readers, in SQLite (``.index/sessions.sqlite`` in the trace folder,
or under ``$XDG_CACHE_HOME/logd`` when the folder is not writable to the reader). Each
file's rows are summaries of its records from the same functions the views use
(:mod:`logd.traces.semantics`), one row per (file, trace or session) part, updated from
the byte offset read last time. What changed since is found without looking at every
file: the trace store appends the name of each file it writes to a journal
(``.journal``, at most once per file per second), and a file removed or added shows in
the folder's modification time. A journal that was replaced (compacted) or is missing
means every file is looked at once (``stat`` only; only files that changed are read).

Readers do not wait for each other: the database is in WAL mode (in a folder of its own, so
its ``-wal``/``-shm`` files, made and removed with each reader, leave the trace folder's
modification time alone), and a reader that finds another refreshing it answers from the
index as last committed; only when there is none yet does it wait for the one being built.
A refresh streams: the names to look at and the sessions touched are temporary tables, so
its memory does not grow with the number of files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from logd.regular import open_regular
from logd.timestamps import format_epoch
from logd.traces import semantics
from logd.traces.names import SUFFIX
from logd.traces.render import clock_time, cut, fmt_duration
from logd.traces.shapes import SPAN, classify
from logd.traces.store import JOURNAL, read_lines

# files ``--dir`` reads in place besides logd's own session files (the frameworks' own)
FOREIGN_SUFFIXES = (".trace.json", ".json", ".jsonl", ".log", ".txt", ".ndjson")

INDEX = ".index/sessions.sqlite"
_EARLIER = (".index.sqlite", ".index.sqlite-journal")  # where logd kept it before (rollback journal): removed
WAIT_S = 600  # for a first build by another reader, or a lock SQLite takes for a moment (WAL recovery)
CHUNK = 512  # files looked at per query of the names to look at
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, offset INTEGER, size INTEGER, mtime_ns INTEGER);
CREATE TABLE IF NOT EXISTS parts (
    file TEXT, part TEXT, shape TEXT, session TEXT,
    decl_start REAL, decl_end REAL, declared TEXT,
    start REAL, end REAL, events INTEGER, errors INTEGER, agents TEXT,
    PRIMARY KEY (file, part));
CREATE INDEX IF NOT EXISTS parts_session ON parts (session);
CREATE INDEX IF NOT EXISTS parts_file ON parts (file);
CREATE TABLE IF NOT EXISTS sessions (
    start REAL NOT NULL, session TEXT NOT NULL, end REAL, events INTEGER, errors INTEGER, agents TEXT, shapes TEXT,
    files TEXT, start_text TEXT, line TEXT, PRIMARY KEY (start, session)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS sessions_session ON sessions (session);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
# per refresh, per connection: the files to look at, the sessions whose parts changed, the names in the folder
_TEMP = ("CREATE TEMP TABLE IF NOT EXISTS todo (name TEXT PRIMARY KEY)",
         "CREATE TEMP TABLE IF NOT EXISTS touched (session TEXT PRIMARY KEY)",
         "CREATE TEMP TABLE IF NOT EXISTS present (name TEXT PRIMARY KEY)")
_VERSION = "5"  # the summaries' meaning; another value rebuilds the index


class Summary:
    """One session as ``logd list`` shows it (a row of the index, or a framework's own file
    read in place). Made for each of 100,000 rows: plain slots, agents decoded when asked."""

    __slots__ = ("session", "start", "end", "events", "errors", "_agents", "shapes", "folder", "names",
                 "start_text", "line")

    def __init__(self, session: str, start: float | None, end: float | None, events: int, errors: int,
                 agents: list[str] | str, shapes: list[str], folder: Path, names: list[str],
                 start_text: str | None = None, line: str | None = None) -> None:
        self.session, self.start, self.end, self.events, self.errors = session, start, end, events, errors
        self._agents, self.shapes, self.folder, self.names, self.start_text = agents, shapes, folder, names, start_text
        self.line = line  # its row of logd list's table, kept in the index

    @property
    def agents(self) -> list[str]:
        if isinstance(self._agents, str):  # as stored: a JSON list
            self._agents = orjson.loads(self._agents)
        return self._agents  # type: ignore[return-value]

    @property
    def duration(self) -> float:
        return (self.end - self.start) if self.start is not None and self.end is not None else 0.0

    @property
    def files(self) -> list[Path]:
        return [self.folder / name for name in self.names]

    @property
    def size(self) -> int:
        total = 0
        for path in self.files:
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total


class _Part:
    """One file's records of one trace (or one AgenticGoKit session / Koog run), summed."""

    __slots__ = ("shape", "decl", "start", "end", "events", "errors", "agents")

    def __init__(self, shape: str) -> None:
        self.shape = shape
        self.decl: tuple[float, float, str] | None = None
        self.start: float | None = None
        self.end: float | None = None
        self.events = 0
        self.errors = 0
        self.agents: dict[str, float] = {}

    @classmethod
    def from_row(cls, row: tuple) -> _Part:
        part = cls(row[0])
        if row[3] is not None:
            part.decl = (row[1], row[2], row[3])
        part.start, part.end, part.events, part.errors = row[4], row[5], row[6], row[7]
        part.agents = orjson.loads(row[8]) if row[8] else {}
        return part

    def add(self, record: dict[str, Any], shape: str) -> None:
        """What the model makes of ``record`` (:mod:`logd.traces.model`), summed."""
        when = semantics.interval(record)
        if shape == SPAN:
            named = semantics.declared_session(record)
            if named:
                start, end = (float("-inf"), 0.0) if record.get("object") == "trace" else (when or (0.0, 0.0))
                if self.decl is None or (start, -end, named) < (self.decl[0], -self.decl[1], self.decl[2]):
                    self.decl = (start, end, named)  # the outermost so far (semantics.outermost)
            if record.get("object") == "trace":
                return  # names the trace's group; no event of its own
        self.events += 1
        if semantics.error(record) is not None:
            self.errors += 1
        if when is not None:
            self.start = when[0] if self.start is None else min(self.start, when[0])
            self.end = when[1] if self.end is None else max(self.end, when[1])
        name = semantics.agent_name(record)
        if name:
            at = when[0] if when is not None else 0.0
            if name not in self.agents or at < self.agents[name]:
                self.agents[name] = at


class Refreshed(NamedTuple):
    """What a refresh did: files ``read`` (new or grown), files ``looked`` at (``stat``), and
    whether ``every_file`` was (no journal to go by: the first build, or the journal replaced)."""

    read: int
    looked: int
    every_file: bool


class IndexBusy(Exception):
    """Another process holds the index's write lock past :data:`WAIT_S`; ``str()`` says so."""


def index_path(folder: Path) -> Path:
    """Where the index of ``folder`` lives: inside it, or in the reader's cache when the
    reader may not write there (a group member reading the daemon's folder)."""
    if os.access(folder, os.W_OK):
        return folder / INDEX
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "logd"
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache / f"trace-index-{digest}.sqlite"


class SessionIndex:
    """``with SessionIndex(folder) as index: index.refresh(); index.rows()``."""

    def __init__(self, folder: Path, path: Path | None = None) -> None:
        self.folder = folder
        self.path = path or index_path(folder)
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            if self.path.parent.parent == folder:
                for name in _EARLIER:
                    with contextlib.suppress(OSError):
                        os.unlink(folder / name)
        self.db = sqlite3.connect(self.path, timeout=WAIT_S, isolation_level=None)
        try:
            # WAL: a reader never waits for a writer, nor a writer for a reader streaming its rows
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA journal_size_limit=4194304")  # the WAL of a first build is not kept whole
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o640)
            if self._version() != _VERSION:
                self._create()
            for statement in _TEMP:
                self.db.execute(statement)
        except BaseException:
            self.db.close()
            raise

    def _version(self) -> str | None:
        try:
            return self._meta("version")
        except sqlite3.OperationalError:  # no such table: a new file
            return None

    def _create(self) -> None:
        """The tables, under the write lock; an index made by another logd is rebuilt from the files."""
        self._begin(wait=True)
        try:
            if self._version() != _VERSION:  # not made meanwhile by another reader
                for table in ("files", "parts", "sessions", "meta"):
                    self.db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._set_meta("version", _VERSION)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def __enter__(self) -> SessionIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _begin(self, wait: bool) -> bool:
        """The write lock; ``wait=False``: False at once when another process has it."""
        if not wait:
            self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if not wait:
                return False
            raise IndexBusy(f"the session index {self.path} has been locked by another process for "
                            f"{WAIT_S} s; try again when it is done") from None
        finally:
            if not wait:
                self.db.execute(f"PRAGMA busy_timeout = {WAIT_S * 1000}")
        return True

    # --- keeping it current ---

    def refresh(self, wait: bool = True) -> Refreshed | None:
        """Bring the index up to the files as they are. ``wait=False``: when another reader is
        refreshing it now, None at once, and the answers are the index as it last committed
        it (waited for only when it has never been built)."""
        if not self._begin(wait or self._meta("refreshed") is None):
            return None
        try:
            done = self._refresh()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return done

    def last_refresh(self) -> Refreshed | None:
        """What the last committed refresh did (by whichever reader)."""
        saved = self._meta("refreshed")
        return Refreshed(*orjson.loads(saved)) if saved else None

    def _refresh(self) -> Refreshed:
        db = self.db
        for table in ("todo", "touched", "present"):
            db.execute(f"DELETE FROM temp.{table}")
        try:
            folder_mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            db.execute("DELETE FROM files")
            db.execute("DELETE FROM parts")
            db.execute("DELETE FROM sessions")
            return self._done(Refreshed(0, 0, True), None)
        every_file = self._journal_names()
        if every_file or self._meta("folder_mtime") != str(folder_mtime):
            # files came or went (new ones are in the journal too), or no journal to go by: compare names
            foreign: list[str] = []
            db.executemany("INSERT OR IGNORE INTO present VALUES (?)", self._scan(foreign))
            self._set_meta("foreign", orjson.dumps(sorted(foreign)).decode())
            gone = "file NOT IN (SELECT name FROM present)"
            db.execute(f"INSERT OR IGNORE INTO touched SELECT session FROM parts WHERE {gone}")
            db.execute(f"DELETE FROM parts WHERE {gone}")
            db.execute("DELETE FROM files WHERE name NOT IN (SELECT name FROM present)")
            db.execute("INSERT OR IGNORE INTO todo SELECT name FROM present"
                       + ("" if every_file else " WHERE name NOT IN (SELECT name FROM files)"))
        read = looked = 0
        last = ""
        while True:  # in chunks, by name: the table is written to meanwhile
            chunk = db.execute("SELECT t.name, f.offset, f.size, f.mtime_ns FROM todo t LEFT JOIN files f "
                               "ON f.name = t.name WHERE t.name > ? ORDER BY t.name LIMIT ?",
                               (last, CHUNK)).fetchall()
            if not chunk:
                break
            parts: list[tuple] = []
            files: list[tuple] = []
            for name, *known in chunk:
                read += self._update(name, None if known[0] is None else tuple(known), parts, files)
            db.executemany("INSERT OR IGNORE INTO touched VALUES (?)", ((row[3],) for row in parts))
            db.executemany("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", parts)
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", files)
            looked += len(chunk)
            last = chunk[-1][0]
        self._summarise()
        return self._done(Refreshed(read, looked, every_file), folder_mtime)

    def _done(self, done: Refreshed, folder_mtime: int | None) -> Refreshed:
        self._set_meta("folder_mtime", str(folder_mtime))
        self._set_meta("refreshed", orjson.dumps(list(done)).decode())
        return done

    def _scan(self, foreign: list[str]) -> Iterator[tuple[str]]:
        """The session files' names in the folder; the frameworks' own files go to ``foreign``."""
        for entry in os.scandir(self.folder):
            if entry.name.endswith(SUFFIX):
                if entry.is_file(follow_symlinks=False):
                    yield (entry.name,)
            elif entry.name.endswith(FOREIGN_SUFFIXES) and entry.is_file(follow_symlinks=False):
                foreign.append(entry.name)

    def _summarise(self) -> None:
        """The sessions table (what ``logd list`` reads, in start order) for sessions whose parts
        changed, streamed from one query."""
        self.db.execute("DELETE FROM sessions WHERE session IN (SELECT session FROM touched)")
        summed = self.db.execute(
            "SELECT t.session, MIN(start), MAX(end), SUM(events), SUM(errors), GROUP_CONCAT(agents, char(1)), "
            "GROUP_CONCAT(DISTINCT shape), GROUP_CONCAT(DISTINCT file) FROM touched t "
            "JOIN parts p ON p.session = t.session GROUP BY t.session")
        # stored in start order (the table is clustered on it) with its line of the table:
        # logd list reads it straight through
        self.db.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (self._session_row(*row) for row in summed))

    def _session_row(self, session: str, start: float | None, end: float | None, events: int, errors: int,
                     agents: str | None, shapes: str, files: str) -> tuple:
        summary = Summary(session, start, end, events, errors, _merge_agents(agents), sorted(shapes.split(",")),
                          self.folder, sorted(files.split(",")), format_epoch(start) if start is not None else None)
        return (start if start is not None else 0.0, session, end, events, errors,
                orjson.dumps(summary.agents).decode(), ",".join(summary.shapes), ",".join(summary.names),
                summary.start_text, list_line(summary))

    def _journal_names(self) -> bool:
        """Into ``todo``: files written since the last refresh (and those of the journal's last
        second then, which may have been written again within that second). True: no journal
        to go by (missing, or not the one read last time), every file is to be looked at."""
        path = self.folder / JOURNAL
        recent = orjson.loads(self._meta("recent") or "[]")
        self.db.executemany("INSERT OR IGNORE INTO todo VALUES (?)", ((name,) for name in recent))
        try:
            fd, st = open_regular(path)  # not a link, not a FIFO (logd.regular)
        except OSError:
            self._set_meta("journal", "")
            return True
        with os.fdopen(fd, "rb") as f:
            identity = f"{st.st_dev}:{st.st_ino}"
            offset = 0
            saved = self._meta("journal") or ""
            every_file = True
            if saved.startswith(identity + "@"):
                offset = int(saved.rsplit("@", 1)[1])
                every_file = offset > st.st_size
            if every_file:
                offset = 0
            f.seek(offset)
            lines = _Lines(f, self._meta("last_epoch") or "", set(recent))
            self.db.executemany("INSERT OR IGNORE INTO todo VALUES (?)", lines)
        self._set_meta("journal", f"{identity}@{offset + lines.read}")
        self._set_meta("last_epoch", lines.last_epoch)
        self._set_meta("recent", orjson.dumps(sorted(lines.last_names)).decode())
        return every_file

    def _forget(self, name: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO touched SELECT session FROM parts WHERE file = ?", (name,))
        self.db.execute("DELETE FROM files WHERE name = ?", (name,))
        self.db.execute("DELETE FROM parts WHERE file = ?", (name,))

    def _update(self, name: str, known: tuple[int, int, int] | None, rows: list[tuple], files: list[tuple]) -> int:
        """Read what ``name`` gained since ``known`` (its offset, size and mtime as read last); its
        new rows of ``parts`` and ``files`` are added to ``rows`` and ``files``; 1 if it was read."""
        path = self.folder / name
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self._forget(name)
            return 0
        if known is not None and known[1] == st.st_size and known[2] == st.st_mtime_ns:
            return 0
        offset = known[0] if known is not None and st.st_size >= known[1] else 0
        if known is not None:  # its sessions are summed again
            self.db.execute("INSERT OR IGNORE INTO touched SELECT session FROM parts WHERE file = ?", (name,))
            if offset == 0:
                self.db.execute("DELETE FROM parts WHERE file = ?", (name,))
        try:
            records, offset = read_lines(path, offset)
        except (FileNotFoundError, OSError):
            self._forget(name)
            return 0
        parts = {}
        if records and known is not None:  # appended to: its parts so far
            for key, *rest in self.db.execute(
                    "SELECT part, shape, decl_start, decl_end, declared, start, end, events, errors, agents "
                    "FROM parts WHERE file = ?", (name,)):
                parts[key] = _Part.from_row(tuple(rest))
        for record in records:
            found = classify(record)
            if found is None:
                continue
            shape, key = found
            part = parts.get(key)
            if part is None:
                part = parts[key] = _Part(shape)
            part.add(record, shape)
        for key, part in parts.items():
            decl = part.decl or (None, None, None)
            rows.append((name, key, part.shape, decl[2] or key, decl[0], decl[1], decl[2], part.start, part.end,
                         part.events, part.errors, orjson.dumps(part.agents).decode()))
        files.append((name, offset, st.st_size, st.st_mtime_ns))
        return 1

    # --- answers ---

    def rows(self, since: float | None = None, session: str | None = None) -> Iterator[Summary]:
        """Sessions, oldest first (streamed: memory does not grow with their number)."""
        where: list[str] = []
        args: list[Any] = []
        if session is not None:
            where.append("session = ?")
            args.append(session)
        if since is not None:
            where.append("end >= ?")
            args.append(since)
        cursor = self.db.execute(
            "SELECT session, start, end, events, errors, agents, shapes, files, start_text, line FROM sessions "
            + (f"WHERE {' AND '.join(where)} " if where else "") + "ORDER BY start, session", args)
        folder = self.folder
        for sid, start, end, events, errors, agents, shapes, files, start_text, line in cursor:
            yield Summary(sid, start, end, events, errors, agents, shapes.split(","), folder, files.split(","),
                          start_text, line)

    def sessions_like(self, prefix: str, limit: int = 6) -> list[str]:
        """The session ``prefix`` names exactly, else up to ``limit`` it begins."""
        if self.db.execute("SELECT 1 FROM sessions WHERE session = ?", (prefix,)).fetchone():
            return [prefix]
        return [r[0] for r in self.db.execute(
            "SELECT session FROM sessions WHERE session >= ? AND session < ? ORDER BY session LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit))]

    def foreign_files(self) -> list[Path]:
        """The frameworks' own files in the folder (read in place by ``--dir``), as the last
        look at the folder's names found them (the folder has not changed since)."""
        return [self.folder / name for name in orjson.loads(self._meta("foreign") or "[]")]

    def files_of(self, session: str) -> list[Path]:
        return [self.folder / r[0] for r in self.db.execute(
            "SELECT DISTINCT file FROM parts WHERE session = ? ORDER BY file", (session,))]


LIST_HEADER = f"{'SESSION':<36} {'START':<24} {'DURATION':>9} {'EVENTS':>6} {'ERRORS':>6}  AGENTS"


def list_line(s: Summary, verbose: bool = False) -> str:
    """The session's row of ``logd list`` (``verbose``: whole ids and agents)."""
    agents = ", ".join(s.agents)
    start = s.start_text or (clock_time(s.start, True) if s.start else "-")
    return (f"{s.session if verbose else cut(s.session, 36):<36} {start:<24} {fmt_duration(s.duration):>9} "
            f"{s.events:>6} {s.errors:>6}  {agents if verbose else cut(agents, 40)}")


def _merge_agents(joined: str | None) -> list[str]:
    if joined and "\x01" not in joined:  # one part: nothing to merge
        one: dict[str, float] = orjson.loads(joined)
        return sorted(one, key=lambda n: (one[n], n))
    first: dict[str, float] = {}
    for part in (joined or "").split("\x01"):
        if not part:
            continue
        for name, at in orjson.loads(part).items():
            if name not in first or at < first[name]:
                first[name] = at
    return sorted(first, key=lambda n: (first[n], n))


class _Lines:
    """The journal's complete lines from where ``f`` stands, as ``(name,)`` rows, noting the
    bytes taken (``read``) and the names of the last second in it."""

    def __init__(self, f: Iterable[bytes], last_epoch: str, last_names: set[str]) -> None:
        self.f, self.read, self.last_epoch, self.last_names = f, 0, last_epoch, last_names

    def __iter__(self) -> Iterator[tuple[str]]:
        for line in self.f:
            if not line.endswith(b"\n"):
                return  # being written: read next time
            self.read += len(line)
            epoch, _, name = line[:-1].decode("utf-8", "replace").partition(" ")
            if not name.endswith(SUFFIX) or "/" in name:
                continue
            if epoch != self.last_epoch:
                self.last_epoch, self.last_names = epoch, set()
            self.last_names.add(name)
            yield (name,)
