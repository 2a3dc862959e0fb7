"""The session index: which files hold which session, and each session's summary, so
``logd list`` and ``logd trace S`` answer from one small database instead of reading
every trace file (100,000 sessions: see docs/benchmarks.md).

The daemon files each record by what it knows on arrival (:mod:`logd.traces.shapes`:
the AgenticGoKit session, the Koog run, a span's trace id); which session a trace
belongs to is settled here, at read time, from all its records (the outermost span
that names a session, :func:`logd.traces.semantics.outermost`), so a parent that
arrives after its children still gathers them into its conversation.

The index is kept by its readers, in SQLite (``.index.sqlite`` in the trace folder, or
under ``$XDG_CACHE_HOME/logd`` when the folder is not writable to the reader). Each
file's rows are summaries of its records from the same functions the views use
(:mod:`logd.traces.semantics`), one row per (file, trace or session) part, updated from
the byte offset read last time. What changed since is found without looking at every
file: the trace store appends the name of each file it writes to a journal
(``.journal``, at most once per file per second), and a file removed or added shows in
the folder's modification time. A journal that was replaced (compacted) or is missing
means every file is looked at once (``stat`` only; only files that changed are read).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

INDEX = ".index.sqlite"
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        # a rollback journal kept between writes: WAL's -wal/-shm files come and go with each
        # reader, and every file created in the folder changes its mtime (a rescan of names)
        self.db.execute("PRAGMA journal_mode=TRUNCATE")
        self.db.execute("PRAGMA synchronous=NORMAL")
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o640)
        self.db.executescript(_SCHEMA)
        if self._meta("version") != _VERSION:  # made by another logd: rebuilt from the files
            self.db.executescript("DROP TABLE files; DROP TABLE parts; DROP TABLE sessions; DROP TABLE meta;")
            self.db.executescript(_SCHEMA)
            self._set_meta("version", _VERSION)

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

    # --- keeping it current ---

    def refresh(self) -> int:
        """Bring the index up to the files as they are; returns how many files were read."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            read = self._refresh()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return read

    def _refresh(self) -> int:
        try:
            folder_mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            self.db.executescript("DELETE FROM files; DELETE FROM parts; DELETE FROM sessions;")
            return 0
        names, scan_all = self._journal_names()
        if scan_all or self._meta("folder_mtime") != str(folder_mtime):
            # files came or went (new ones are in the journal too), or no journal to go by: compare names
            known = {name for (name,) in self.db.execute("SELECT name FROM files")}
            present, foreign = set(), []
            for entry in os.scandir(self.folder):
                if entry.name.endswith(SUFFIX):
                    if entry.is_file(follow_symlinks=False):
                        present.add(entry.name)
                elif entry.name.endswith(FOREIGN_SUFFIXES) and entry.is_file(follow_symlinks=False):
                    foreign.append(entry.name)
            self._set_meta("foreign", orjson.dumps(sorted(foreign)).decode())
            for gone in known - present:
                self._forget(gone)
            names |= present - known
            if scan_all:
                names |= present
        read = 0
        self._touched: set[str] = set()
        for name in sorted(names):
            read += self._update(name)
        self._summarise(self._touched)
        self._set_meta("folder_mtime", str(folder_mtime))
        return read

    def _sessions_of(self, name: str) -> None:
        self._touched.update(r[0] for r in self.db.execute("SELECT DISTINCT session FROM parts WHERE file = ?",
                                                           (name,)))

    def _summarise(self, sessions: set[str]) -> None:
        """The sessions table (what ``logd list`` reads, in start order) for sessions whose parts changed."""
        for session in sessions:
            row = self.db.execute(
                "SELECT MIN(start), MAX(end), SUM(events), SUM(errors), GROUP_CONCAT(agents, char(1)), "
                "GROUP_CONCAT(DISTINCT shape), GROUP_CONCAT(DISTINCT file) FROM parts WHERE session = ?",
                (session,)).fetchone()
            self.db.execute("DELETE FROM sessions WHERE session = ?", (session,))
            if row is None or row[6] is None:
                continue
            start, end, events, errors, agents, shapes, files = row
            summary = Summary(session, start, end, events, errors, _merge_agents(agents),
                              sorted(shapes.split(",")), self.folder, sorted(files.split(",")),
                              format_epoch(start) if start is not None else None)
            # stored in start order (the table is clustered on it) with its line of the table:
            # logd list reads it straight through
            self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (start if start is not None else 0.0, session, end, events, errors,
                             orjson.dumps(summary.agents).decode(), ",".join(summary.shapes), ",".join(summary.names),
                             summary.start_text, list_line(summary)))

    def _journal_names(self) -> tuple[set[str], bool]:
        """Files written since the last refresh (and those of the journal's last second then,
        which may have been written again within that second), and whether to look at all."""
        path = self.folder / JOURNAL
        recent = set(orjson.loads(self._meta("recent") or "[]"))
        try:
            fd, st = open_regular(path)  # not a link, not a FIFO (logd.regular)
        except OSError:
            self._set_meta("journal", "")
            return recent, True
        with os.fdopen(fd, "rb") as f:
            identity = f"{st.st_dev}:{st.st_ino}"
            offset = 0
            saved = self._meta("journal") or ""
            scan_all = True
            if saved.startswith(identity + "@"):
                offset = int(saved.rsplit("@", 1)[1])
                scan_all = offset > st.st_size
            if scan_all:
                offset = 0
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        names = set(recent)
        last_epoch, last_names = self._meta("last_epoch") or "", set(recent)
        for line in data[:end].splitlines():
            epoch, _, name = line.decode("utf-8", "replace").partition(" ")
            if not name.endswith(SUFFIX) or "/" in name:
                continue
            names.add(name)
            if epoch != last_epoch:
                last_epoch, last_names = epoch, set()
            last_names.add(name)
        self._set_meta("journal", f"{identity}@{offset + end}")
        self._set_meta("last_epoch", last_epoch)
        self._set_meta("recent", orjson.dumps(sorted(last_names)).decode())
        return names, scan_all

    def _forget(self, name: str) -> None:
        self._sessions_of(name)
        self.db.execute("DELETE FROM files WHERE name = ?", (name,))
        self.db.execute("DELETE FROM parts WHERE file = ?", (name,))

    def _update(self, name: str) -> int:
        path = self.folder / name
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self._forget(name)
            return 0
        row = self.db.execute("SELECT offset, size, mtime_ns FROM files WHERE name = ?", (name,)).fetchone()
        if row is not None and row[1] == st.st_size and row[2] == st.st_mtime_ns:
            return 0
        offset = row[0] if row is not None and st.st_size >= row[1] else 0
        self._sessions_of(name)
        if offset == 0:
            self.db.execute("DELETE FROM parts WHERE file = ?", (name,))
        try:
            records, offset = read_lines(path, offset)
        except (FileNotFoundError, OSError):
            self._forget(name)
            return 0
        parts = {}
        if records:
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
            session = decl[2] or key
            self._touched.add(session)
            self.db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (name, key, part.shape, session, decl[0], decl[1], decl[2], part.start, part.end,
                             part.events, part.errors, orjson.dumps(part.agents).decode()))
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                        (name, offset, st.st_size, st.st_mtime_ns))
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
