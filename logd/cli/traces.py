"""`logd list` and `logd trace`: stored trace sessions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from logd.cli.common import CONFIG_HELP, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, daemon_files, error, load
from logd.config import ConfigError
from logd.timeparse import TIME_HELP
from logd.traces.names import SUFFIX

if TYPE_CHECKING:
    from logd.traces.model import Session


def _traces_folder(args: argparse.Namespace) -> Path:
    """--dir, else the config's [logging.traces] dir (or its default)."""
    from logd.traces.sink import traces_dir

    if args.dir:
        return Path(args.dir)
    if not args.config:
        reply, _ = daemon_files(args)
        if reply is not None and reply.get("traces_dir"):
            return Path(reply["traces_dir"])
    return traces_dir(load(args))


def cmd_list(args: argparse.Namespace) -> int:
    from logd.traces import views

    try:
        folder = _traces_folder(args)
        since = views.parse_since(args.since, time.time()) if args.since else None
    except (ConfigError, views.TraceError) as exc:
        error(str(exc))
        return EXIT_USAGE
    if args.format == "html" or args.output:
        return _list_to_file(args, folder, since)
    items = views.summaries(folder, since)
    try:
        if args.format == "json":
            views.list_json(items, out=sys.stdout)
        else:
            views.render_list(items, args.verbose, out=sys.stdout)
    except views.TraceError as exc:  # the session index held by another process for too long
        error(str(exc))
        return EXIT_FAILURE
    return EXIT_OK


def _agent_filter(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or key != "agent" or not value:
        raise argparse.ArgumentTypeError(f"expected agent=NAME, got {text!r}")
    return value


def cmd_import(args: argparse.Namespace) -> int:
    """`logd trace import FILE...`: the frameworks' own trace files into the trace folder."""
    from logd.traces import importer

    if not args.files:
        error("logd trace import: name at least one file (an AgenticGoKit .trace.json, a Koog log or JSON, "
              "an OpenAI Agents SDK export); to show a session named 'import': logd trace --session import")
        return EXIT_USAGE
    try:
        folder = _traces_folder(args)
    except ConfigError as exc:
        error(str(exc))
        return EXIT_USAGE
    status = EXIT_OK
    for name in args.files:
        try:
            done = importer.import_file(Path(name), folder, max_bytes=int(args.max_mb * 1024 * 1024))
        except OSError as exc:
            error(f"cannot import {name}: {exc.strerror or exc}")
            status = EXIT_FAILURE
            continue
        for problem in done.problems:
            print(f"logd: warning: {problem}", file=sys.stderr)
        print(f"{name}: {done.records} trace records in {done.sessions} session(s): {done.added} imported, "
              f"{done.already} already there -> {folder}")
    return status


def cmd_trace(args: argparse.Namespace) -> int:
    import signal

    from logd.traces import render, views

    if args.session_id is not None:
        if args.session is not None:
            error(f"logd trace: give the session once, either {args.session!r} or --session {args.session_id!r}")
            return EXIT_USAGE
        args.session = args.session_id  # any name, "import" included
    elif args.session is None:
        error("logd trace: name a session (logd list shows them), or: logd trace import FILE...")
        return EXIT_USAGE
    render.SHORT_TIMES_UTC = args.utc
    if args.follow and (args.format == "html" or args.output):
        error("--follow prints events as they come: use --format table, json or csv, without -o")
        return EXIT_USAGE
    try:
        folder = _traces_folder(args)
        if args.debug and args.follow:
            raise views.TraceError("--debug shows the stored records once: leave out --follow")
        located = views.find(folder, args.session, must_exist=not args.follow)
        if args.follow:
            stop = {"now": False}

            def finish(*_: object) -> None:
                stop["now"] = True

            signal.signal(signal.SIGTERM, finish)
            signal.signal(signal.SIGINT, finish)
            views.follow(folder, located, sys.stdout, fmt=args.format, agent=args.filter, verbose=args.verbose,
                         stop=lambda: stop["now"])
            return EXIT_OK
        if args.debug:
            if args.format not in ("table", "json"):
                raise views.TraceError("--debug prints --format table or json")
            if located.foreign:
                raise views.TraceError(f"--debug reads the daemon's session files; {located.files[0]} is a "
                                       "framework's own file (import it with `logd trace import`)")
            sys.stdout.write(views.show_debug(located, fmt=args.format, verbose=args.verbose))
            return EXIT_OK
        session = views.load(located)
    except (ConfigError, views.TraceError) as exc:
        error(str(exc))
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE
    except OSError as exc:
        error(f"cannot read trace session {args.session!r}: {exc}")
        return EXIT_FAILURE
    if args.filter:
        session = views.only_agent(session, args.filter)
    if args.format == "html" or args.output:
        return _trace_to_file(args, session)
    sys.stdout.write(views.show(session, fmt=args.format, flow_only=args.flow_only, analyze=args.analyze,
                                verbose=args.verbose))
    return EXIT_OK


# --- HTML reports (--format html) and -o: written to files ---

def _write(path: Path, text: str) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return True
    except OSError as exc:
        error(f"cannot write {path}: {exc.strerror or exc}")
        return False


def _trace_to_file(args: argparse.Namespace, session: Session) -> int:
    """The session as --format says, into -o FILE (an HTML report goes to stdout without -o)."""
    from logd.traces import html, views

    if args.format == "html":
        text = html.report(session)
    else:
        text = views.show(session, fmt=args.format, flow_only=args.flow_only, analyze=args.analyze,
                          verbose=args.verbose)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    return EXIT_OK if _write(Path(args.output), text) else EXIT_FAILURE


def _list_to_file(args: argparse.Namespace, folder: Path, since: float | None) -> int:
    """-o for the table/json list; for --format html, an index plus one report per session.

    ``-o DIR`` writes ``DIR/index.html``; ``-o NAME.html`` writes that index. Either way the
    reports sit beside the index, named like their trace files (``<id>.<hash>.html``), and
    the index links to them by relative name, so the folder can be moved or zipped whole.
    """
    from logd.traces import html, views

    items = views.summaries(folder, since)
    if args.format != "html":
        text = views.list_json(items) if args.format == "json" else views.render_list(items, args.verbose)
        return EXIT_OK if _write(Path(args.output), text) else EXIT_FAILURE
    if not args.output:
        error("logd list --format html writes an index and one report per session: give -o DIR (or -o NAME.html)")
        return EXIT_USAGE
    target = Path(args.output)
    index_path = target if target.suffix.lower() in (".html", ".htm") else target / "index.html"
    try:
        located = (views.Located(item.session, item.files, foreign=not item.files[0].name.endswith(SUFFIX))
                   for item in items)
        written = html.write_site((views.load(found) for found in located), index_path)
    except OSError as exc:
        error(f"cannot write the HTML index {index_path}: {exc.strerror or exc}")
        return EXIT_FAILURE
    print(f"wrote {written[0]} and {len(written) - 1} session report(s) beside it")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    dir_help = "trace folder (default: the config's [logging.traces] dir)"
    p = sub.add_parser("list", help="list stored trace sessions: start, duration, agents, events, errors")
    p.add_argument("--since", metavar="T", help=f"only sessions active since T: {TIME_HELP}")
    p.add_argument("--verbose", "-v", action="store_true", help="full ids and agents, file and shapes")
    p.add_argument("--format", choices=("table", "json", "html"), default="table",
                   help="output format (default table); html: an index page + one report per session, needs -o")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="write here instead of stdout; for html a folder (index.html inside) or NAME.html")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_list)

    trace = sub.add_parser("trace", help="show one trace session (logd trace SESSION); import frameworks' "
                                         "trace files (logd trace import FILE...)",
                           description="logd trace SESSION [options] shows a session (the same as logd trace show "
                                       "SESSION); logd trace import FILE... imports trace files.")
    trace.set_defaults(func=lambda args: (trace.print_help(), EXIT_USAGE)[1])
    commands = trace.add_subparsers(dest="trace_command", metavar="{show,import}")
    p = commands.add_parser("show", help="show one trace session: table, agent flow, route; --analyze for timing")
    p.add_argument("session", nargs="?", help="session id (a unique prefix is enough)")
    p.add_argument("--session", dest="session_id", metavar="ID",
                   help="the session to show, whatever its name (a session named `import` or `show`)")
    p.add_argument("--utc", action="store_true", help="show times in UTC (default: the local time the producer "
                                                      "wrote for AgenticGoKit, as agentcli; else local time)")
    p.add_argument("--flow-only", action="store_true", help="only the agent flow, sequence and route")
    p.add_argument("--filter", type=_agent_filter, metavar="agent=NAME", help="only this agent's events")
    p.add_argument("--verbose", "-v", action="store_true", help="full timestamps, state and ids")
    p.add_argument("--analyze", action="store_true",
                   help="per-agent count/total/mean/p95/max, tokens, guardrails, slowest spans, errors, "
                        "critical path, timeline")
    p.add_argument("--format", choices=("table", "json", "csv", "chrome", "agk", "html"), default="table",
                   help="table (default), json, csv (one row per event), chrome (trace JSON for Perfetto), "
                        "agk (AgenticGoKit's .trace.json, for agentcli trace) or html (a self-contained report page)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing events as they arrive (Ctrl-C stops)")
    p.add_argument("--debug", action="store_true",
                   help="each stored record as stored, and why it was or was not paired into a span")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_trace)

    p = commands.add_parser("import", help="import AgenticGoKit .trace.json, Koog and OpenAI Agents SDK trace "
                                           "files into the trace folder (again: only what is new)")
    p.add_argument("files", nargs="*", metavar="FILE", help="trace files to import")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--max-mb", type=float, default=256, metavar="MB",
                   help="refuse a file larger than this (default 256): it is read whole")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_import)


TRACE_COMMANDS = ("show", "import")


def trace_argv(argv: list[str]) -> list[str]:
    """``logd trace SESSION ...`` is ``logd trace show SESSION ...``: the session view keeps
    its short form, and ``import`` is a subcommand of its own whose options go anywhere."""
    if argv[:1] == ["trace"] and len(argv) > 1 and argv[1] not in TRACE_COMMANDS + ("-h", "--help"):
        return ["trace", "show", *argv[1:]]
    return argv
