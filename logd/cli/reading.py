"""`logd query` and `logd tail`: reading the log file and its backups."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from logd.cli.common import (
    CONFIG_HELP,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    config_error,
    daemon_files,
    error,
    level_arg,
    load,
)
from logd.config import ConfigError
from logd.reading.output import FORMATS

if TYPE_CHECKING:  # annotations only: commands import what they need when they run
    import re

    from logd.logfiles.content import Problem
    from logd.reading.query import Filter, Where


class NoLogFile(Exception):
    """Neither --file, --config, a running daemon nor the search order named a log file."""


def _log_file(args: argparse.Namespace) -> Path:
    """--file; else --config's [logging] file; else the running daemon's; else the search order's."""
    from logd.config import config_search_text

    if args.file:
        return Path(args.file)
    if not args.config:
        reply, why = daemon_files(args)
        if reply is not None and reply.get("file"):
            return Path(reply["file"])
        if reply is not None:
            why = f"the running daemon (it writes no file: config {reply.get('config') or '<embedded defaults>'})"
    config = load(args)
    if config.file is None:
        if args.config or config.source is not None:
            raise ConfigError(config.source, "no [logging] file is set; pass --file PATH or set it in the config")
        raise NoLogFile(f"no log file found; tried {why}, {config_search_text()}; "
                        "pass --file PATH or --config FILE")
    return config.file


def _selection(args: argparse.Namespace) -> Filter:
    from logd.levels import RANK
    from logd.reading.query import Filter

    level, level_max = args.level, None
    if getattr(args, "priority", None):
        low, level_max = args.priority
        level = max(level, low, key=lambda name: RANK[name]) if level else low
    return Filter(since=getattr(args, "since", None), until=getattr(args, "until", None), level=level,
                  level_max=level_max,
                  agents=tuple(args.agent or ()), sessions=tuple(args.session or ()),
                  grep=getattr(args, "grep", None), where=tuple(getattr(args, "where", None) or ()))


def _reading_setup(args: argparse.Namespace) -> tuple[Path, Filter] | int:
    from logd.timeparse import TimeError, parse_time

    try:
        path = _log_file(args)
        for name in ("since", "until"):
            if getattr(args, name, None):
                setattr(args, name, parse_time(getattr(args, name)))
    except ConfigError as exc:
        config_error(exc)
        return EXIT_USAGE
    except NoLogFile as exc:
        error(str(exc))
        return EXIT_USAGE
    except TimeError as exc:
        error(str(exc))
        return EXIT_USAGE
    return path, _selection(args)


def _human_formatter() -> Callable[[dict], str]:
    from logd.console_format import ConsoleFormatter, use_color

    return ConsoleFormatter(use_color(sys.stdout.buffer)).format


def _no_files(path: Path) -> int:
    error(f"no log file at {path} and no backups of it")
    return EXIT_FAILURE


def cmd_query(args: argparse.Namespace) -> int:
    from logd.console_format import use_color
    from logd.logfiles.snapshot import snapshot
    from logd.reading.dedupe import Deduplicator
    from logd.reading.output import Progress, last_and_reversed, line_formatter, paged, write_lines
    from logd.reading.query import problem_printer, select

    if args.follow:
        return _follow_query(args)
    if args.sql is not None:
        return _cmd_sql(args)
    setup = _reading_setup(args)
    if isinstance(setup, int):
        return setup
    path, selection = setup
    problems: list[Problem] = []
    report = problem_printer(sys.stderr)

    def on_problem(problem: Problem) -> None:
        problems.append(problem)
        report(problem)

    fmt = "short" if args.human else args.output
    with snapshot(path) as files:
        if not files:
            return _no_files(path)
        progress = Progress("logd query")
        try:
            with paged(sys.stdout.buffer, not args.no_pager) as out:
                progress.enabled = progress.enabled and out is sys.stdout.buffer  # not over a pager's screen
                render = line_formatter(fmt, args.output_fields, use_color(sys.stdout.buffer))
                batches = select(list(files), selection, on_problem, Deduplicator(), current=path,
                                 progress=progress)
                write_lines(last_and_reversed(batches, args.lines, args.reverse), out, render)
                progress.finish()
                out.flush()
        except BrokenPipeError:  # `logd query | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        finally:
            progress.finish()
    return EXIT_FAILURE if problems else EXIT_OK


_NOT_WITH_SQL = ("since", "until", "grep", "where", "human", "priority", "lines", "reverse", "output_fields",
                 "level", "agent", "session")


def _cmd_sql(args: argparse.Namespace) -> int:
    from logd.reading import sql

    mixed = [name for name in _NOT_WITH_SQL if getattr(args, name, None)]
    if mixed:
        error(f"--sql selects with its own WHERE; it cannot be combined with "
              f"{', '.join('--' + name.replace('_', '-') for name in mixed)}")
        return EXIT_USAGE
    try:
        path = _log_file(args)
    except (ConfigError, NoLogFile) as exc:
        error(str(exc))
        return EXIT_USAGE
    return sql.run(path, args.sql, args.format, sys.stdout, sys.stderr)


def _follow_query(args: argparse.Namespace) -> int:
    """``logd query -f`` as journalctl's ``-f``: the last N (default 10) selected records, then new
    ones as they are written, in the query's output (json or short): ``logd tail -f`` does it."""
    if args.output not in ("json", "short") or args.reverse or args.sql is not None or args.output_fields:
        error("logd query -f follows in -o json or -o short only, oldest first; "
              "or use `logd tail -f` with the same selection")
        return EXIT_USAGE
    args.json = not args.human and args.output == "json"
    args.lines = 10 if args.lines is None else args.lines
    return cmd_tail(args)


def cmd_tail(args: argparse.Namespace) -> int:
    import signal
    import threading

    from logd.logfiles.snapshot import list_files
    from logd.reading.query import problem_printer, write_human
    from logd.reading.tail import run_tail

    setup = _reading_setup(args)
    if isinstance(setup, int):
        return setup
    path, selection = setup
    if not args.follow and not list_files(path):
        return _no_files(path)
    folder = path.parent if str(path.parent) else Path(".")
    if args.follow and not folder.is_dir():
        error(f"cannot follow {path}: the folder {folder} does not exist (check --file or the config's [logging] file)")
        return EXIT_FAILURE
    out = sys.stdout.buffer
    human = None if args.json else _human_formatter()

    def emit(lines: list[bytes]) -> None:
        if human is None:
            out.write(b"\n".join(lines) + b"\n")
        else:
            write_human([lines], out, human)
        out.flush()

    stop = threading.Event()
    if args.follow:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    match = selection.match if selection.selects else None
    try:
        run_tail(path, args.lines, args.follow, match, emit, problem_printer(sys.stderr), stop)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:  # e.g. the folder removed while following
        error(f"cannot {'follow' if args.follow else 'read'} {path}: {exc.strerror or exc}")
        return EXIT_FAILURE
    return EXIT_OK


# journalctl's -p numbers, syslog's severities: 0 emerg, 1 alert, 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug
_SYSLOG_SEVERITY = {"0": "fatal", "1": "fatal", "2": "fatal", "3": "error", "4": "warn", "5": "info", "6": "info",
                    "7": "debug"}


def _priority(text: str) -> str:
    return _SYSLOG_SEVERITY.get(text.strip()) or level_arg(text)


def _level_range(text: str) -> tuple[str, str | None]:
    from logd.levels import RANK

    low, sep, high = text.partition("..")
    first = _priority(low)
    if not sep:
        return first, None
    second = _priority(high)
    return (first, second) if RANK[first] <= RANK[second] else (second, first)


def _field_list(text: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    if not fields:
        raise argparse.ArgumentTypeError(f"expected field names separated by commas, got {text!r}")
    return fields


def _positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _regex(text: str) -> re.Pattern[str]:
    import re

    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {exc}") from None


def _where(text: str) -> Where:
    from logd.reading.query import parse_where

    try:
        return parse_where(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_selection_args(p: argparse.ArgumentParser, config_help: str) -> None:
    """What ``logd tail`` and ``logd query`` both select by (journalctl's spellings too: -S, -U, -p, -u)."""
    p.add_argument("--since", "-S", metavar="T",
                   help="records at or after T: today, yesterday, -1h, '1h30m ago', "
                        "'2026-11-29 15:00' (local), RFC 3339")
    p.add_argument("--until", "-U", metavar="T", help="records at or before T (same forms as --since)")
    p.add_argument("--level", "-l", type=level_arg,
                   help="this level and above (trace, debug, info, warn, error, fatal)")
    p.add_argument("-p", "--priority", type=_level_range, metavar="LEVEL[..LEVEL]",
                   help="this level and above, or a range: -p warn..error; journalctl's numbers too "
                        "(-p 3: error and above)")
    p.add_argument("--agent", "-a", "-u", action="append", metavar="A",
                   help="only this agent (repeatable: any of them; -u as journalctl's unit)")
    p.add_argument("--session", action="append", metavar="S",
                   help="only this session_id (repeatable: any of them)")
    p.add_argument("--file", metavar="PATH", help="log file to read (default: the config's [logging] file)")
    p.add_argument("--config", "-c", help=config_help)


def _negative_values_are_values(p: argparse.ArgumentParser) -> None:
    """``--since -1h``: read ``-1h`` as a value, as Python 3.13's argparse does (before
    3.13 only ``-1`` or ``-1.5`` counted as a negative number, ``-1h`` as an unknown option)."""
    import re

    p._negative_number_matcher = re.compile(r"-\.?\d")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="the last records of the log file; -f follows it across rotations")
    p.add_argument("-n", "--lines", type=_positive_count, default=10, metavar="N", help="how many (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing records as they are written")
    p.add_argument("--json", action="store_true", help="JSON lines instead of the console's human format")
    _add_selection_args(p, CONFIG_HELP)
    _negative_values_are_values(p)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("query", help="records from the log file and every backup, oldest first, as JSON lines")
    p.add_argument("--grep", type=_regex, metavar="RE", help="messages matching this regular expression")
    p.add_argument("--where", action="append", type=_where, metavar="KEY=VALUE",
                   help="KEY=V, KEY!=V, KEY~REGEX, KEY>N, KEY<N "
                        "(KEY may be dotted: tokens.prompt; V is JSON if it parses)")
    p.add_argument("--human", action="store_true", help="the console's human format (same as -o short)")
    p.add_argument("-n", "--lines", type=_positive_count, metavar="N",
                   help="only the last N records (with -f: 10 unless given)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="then keep printing records as they are written (as logd tail -f; -o json or short)")
    p.add_argument("-r", "--reverse", action="store_true", help="newest first")
    p.add_argument("-o", "--output", choices=FORMATS, default="json",
                   help="json (default: lines as stored), json-pretty, short (the console's), short-iso, cat (message)")
    p.add_argument("--output-fields", type=_field_list, metavar="A,B", help="only these fields (json, short)")
    p.add_argument("--no-pager", action="store_true", help="never page (on a terminal: $PAGER or less -FRX)")
    p.add_argument("--sql", metavar="SELECT", help="run SQL over every record (the view `logs`); needs logd[sql]")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="--sql output (default table)")
    _add_selection_args(p, CONFIG_HELP)
    _negative_values_are_values(p)
    p.set_defaults(func=cmd_query)
