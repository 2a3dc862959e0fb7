"""``logd query --sql``: SQL over the current log file and every backup with DuckDB
(the optional extra ``pip install 'logd[sql]'``).

The view ``logs`` has one row per record and one column per field seen in any file
(nested objects are STRUCTs: ``tokens.prompt``), with ``time`` a TIMESTAMPTZ and
``level`` and ``message`` VARCHAR. DuckDB reads the files itself, ``.zst`` and ``.gz``
included, through the descriptors of one :func:`~logd.logfiles.snapshot.snapshot` (so a
rotation during the query changes nothing). A backup DuckDB cannot read (damaged,
truncated) is read again by logd's own reader, which reports the damage once and keeps
every line before it; the query then runs over that. Malformed lines in the current
file (the one being written, whose last line may be unfinished) are skipped.
"""

from __future__ import annotations

import csv
import os
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from logd.logfiles.content import LogFile, Problem, file_blocks
from logd.logfiles.snapshot import snapshot
from logd.reading.output import Progress

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
MISSING = "logd query --sql needs DuckDB: pip install 'logd[sql]'"
_COMPRESSION = {"": "none", "gz": "gzip", "zst": "zstd"}


class NoRecords(Exception):
    """Every file is empty (or unreadable): there is no table to query."""


class SqlError(Exception):
    """The query itself is wrong (syntax, unknown column or table): one line for the user."""


def load_duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        return None
    return duckdb


def _fd_path(file: LogFile) -> str:
    return f"/proc/self/fd/{file.fd}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_json(paths: list[str], compression: str, lenient: bool, columns: list[tuple[str, str]] | None = None) -> str:
    listed = ", ".join(_quote(p) for p in paths)
    # every record is looked at to learn the columns (sample_size=-1: a field first seen
    # late is still one); once learnt they are given (columns=), so binding a query
    # does not read the files again
    schema = ("columns={" + ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns) + "}"
              if columns else "sample_size=-1")
    return (f"SELECT * FROM read_json([{listed}], format='newline_delimited', union_by_name=true, "
            f"{schema}, compression='{compression}'{', ignore_errors=true' if lenient else ''})")


Describe = Callable[[str], list[tuple[str, str]]]


def view_sql(files: list[LogFile], salvaged: dict[int, Path], describe: Describe | None = None) -> str | None:
    """``CREATE VIEW logs`` over the open files (each group of one compression read by one
    ``read_json``, its columns found by ``describe`` when given), None when there is nothing
    to read."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for file in files:  # an empty file has no columns to offer: left out
        if file.fd is None or os.fstat(file.fd).st_size == 0:
            continue
        if id(file) in salvaged:
            if salvaged[id(file)].stat().st_size:
                groups.setdefault(("none", False), []).append(str(salvaged[id(file)]))
        else:
            groups.setdefault((_COMPRESSION[file.compression], file.is_current), []).append(_fd_path(file))
    if not groups:
        return None
    parts = [_read_json(paths, compression, lenient) for (compression, lenient), paths in groups.items()]
    if describe is not None:
        parts = [_read_json(paths, compression, lenient, describe(part))
                 for part, ((compression, lenient), paths) in zip(parts, groups.items(), strict=True)]
    union = "\nUNION ALL BY NAME\n".join(f"({part})" for part in parts)
    return ("CREATE OR REPLACE TEMP VIEW logs AS SELECT * REPLACE (try_cast(\"time\" AS TIMESTAMPTZ) AS \"time\", "
            "CAST(\"level\" AS VARCHAR) AS \"level\", CAST(\"message\" AS VARCHAR) AS \"message\") "
            f"FROM ({union})")


def salvage(file: LogFile, folder: Path, on_problem: Callable[[Problem], None]) -> Path | None:
    """Read a backup with logd's reader; if it has damage, report it and write every JSON
    line before it to a plain file in ``folder`` (returned). None: the file is sound."""
    problems: list[Problem] = []
    good: list[bytes] = []
    bad_lines = 0
    first_bad: int | None = None
    read = 0
    for _, lines in file_blocks(file, problems.append):
        for line in lines:
            read += 1
            try:
                ok = isinstance(orjson.loads(line), dict)
            except orjson.JSONDecodeError:
                ok = False
            if ok:
                good.append(line)
            elif line:
                bad_lines += 1
                first_bad = first_bad or read
    if bad_lines:
        more = f" (and {bad_lines - 1} more lines like it)" if bad_lines > 1 else ""
        problems.append(Problem(file.path, first_bad, f"not a JSON record, skipped{more}"))
    if not problems:
        return None
    for problem in problems:
        on_problem(problem)
    path = folder / f"salvaged-{file.number}.jsonl"
    path.write_bytes(b"\n".join(good) + b"\n" if good else b"")
    return path


def run(current: Path, query: str, fmt: str, out: IO[str], err: IO[str], duckdb: Any = None) -> int:
    """Run ``query`` over the files of ``current``; print it as ``fmt``; the exit code."""
    duckdb = duckdb or load_duckdb()
    if duckdb is None:
        print(f"logd: error: {MISSING}", file=err)
        return EXIT_USAGE
    problems: list[Problem] = []

    def report(problem: Problem) -> None:
        problems.append(problem)
        print(f"logd: warning: {problem}", file=err, flush=True)

    with snapshot(current, eager=True) as files, tempfile.TemporaryDirectory(prefix="logd-sql-") as temp:
        if not files:
            print(f"logd: error: no log file at {current} and no backups of it", file=err)
            return EXIT_FAILURE
        for file in files:
            if file.fd is None:
                reason = file.error.strerror if file.error is not None and file.error.strerror else file.error
                report(Problem(file.path, None, f"cannot read: {reason}; skipped"))
        names = {_fd_path(f): str(f.path) for f in files if f.fd is not None}
        salvaged: dict[int, Path] = {}
        con = duckdb.connect()
        try:
            for attempt in (1, 2):
                try:
                    _execute(con, duckdb, files, salvaged, query, fmt, out, names)
                    return EXIT_FAILURE if problems else EXIT_OK
                except SqlError as exc:
                    print(f"logd: error: {exc}", file=err)
                    return EXIT_USAGE
                except NoRecords:
                    print(f"logd: error: no records in {current} or its backups", file=err)
                    return EXIT_FAILURE
                except duckdb.Error as exc:
                    if attempt == 2:
                        print(f"logd: error: --sql failed: {_one_line(str(exc), names)}", file=err)
                        return EXIT_FAILURE
                    for file in files:  # which backups are damaged? logd's reader says where
                        if file.fd is not None and not file.is_current:
                            path = salvage(file, Path(temp), report)
                            if path is not None:
                                salvaged[id(file)] = path
                    if not salvaged:  # every file reads: the query failed on the data
                        print(f"logd: error: --sql failed: {_one_line(str(exc), names)}", file=err)
                        return EXIT_USAGE
        finally:
            con.close()
    return EXIT_FAILURE  # pragma: no cover - the loop always returns


def _one_line(message: str, names: dict[str, str]) -> str:
    """DuckDB's message on one line, with the real file names, without its source excerpt."""
    for fd_path, name in names.items():
        message = message.replace(fd_path, name)
    kept = []
    for line in message.splitlines():
        if line.startswith("LINE "):
            break
        kept.append(line)
    return " ".join(" ".join(kept).split())


def _execute(con: Any, duckdb: Any, files: list[LogFile], salvaged: dict[int, Path], query: str, fmt: str,
             out: IO[str], names: dict[str, str]) -> None:
    def describe(select: str) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in _with_progress(con, lambda: con.execute(f"DESCRIBE {select}").fetchall())]

    view = view_sql(files, salvaged, describe)
    if view is None:
        raise NoRecords()
    con.execute(view)
    try:
        relation = _with_progress(con, lambda: con.sql(query))
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise SqlError(f"bad SQL: {_one_line(str(exc), names)}") from None
    if relation is None:
        return  # a statement without rows (SET ...)
    columns = list(relation.columns)
    rows = _with_progress(con, relation.fetchall)
    write_rows(columns, rows, fmt, out)


def _with_progress(con: Any, work: Callable[[], Any]) -> Any:
    """Run ``work`` with DuckDB's own progress figure drawn on stderr (terminal only, after 1 s)."""
    progress = Progress("logd query --sql")
    if not progress.enabled:
        return work()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # handed back to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        try:
            done = con.query_progress()
        except Exception:
            done = -1
        if done >= 0:
            progress.update(f"{done:.0f}% read", done / 100)
    progress.finish()
    if "error" in result:
        raise result["error"]
    return result.get("value")


# --- output ---

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def display_width(text: str) -> int:
    """Columns a string takes on a terminal: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 0 if unicodedata.combining(c) else 1
               for c in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - display_width(text))
    return gap + text if right else text + gap


def table(columns: list[str], rows: list[tuple], color: bool = False) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows)
               for i in range(len(columns))]
    widths = [max([display_width(c)] + [display_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    head = "  ".join(_pad(c, w, n) for c, w, n in zip(columns, widths, numeric, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    if color:
        head = f"\x1b[1m{head}\x1b[0m"
    lines = [head, rule] + ["  ".join(_pad(v, w, n) for v, w, n in zip(r, widths, numeric, strict=True)).rstrip()
                            for r in cells]
    return "\n".join(lines) + "\n"


def write_rows(columns: list[str], rows: list[tuple], fmt: str, out: IO[str]) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
    elif fmt == "json":
        for row in rows:
            out.write(orjson.dumps(dict(zip(columns, row, strict=True)), default=str).decode() + "\n")
    else:
        color = False
        try:
            color = out.isatty() and not os.environ.get("NO_COLOR")
        except (AttributeError, ValueError):
            pass
        out.write(table(columns, rows, color))
    out.flush()

