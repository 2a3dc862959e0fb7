"""`logd list` and `logd trace`: stored trace sessions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from logd.cli.common import CONFIG_HELP, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, daemon_files, error, load
from logd.config import ConfigError


def _traces_folder(args: argparse.Namespace) -> Path:
    """--dir, else the config's [logging.traces] dir (or its default)."""
    from logd.config import traces_dir

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
    items = views.summaries(folder, since)
    sys.stdout.write(views.list_json(items) if args.format == "json" else views.render_list(items, args.verbose))
    return EXIT_OK


def _agent_filter(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or key != "agent" or not value:
        raise argparse.ArgumentTypeError(f"expected agent=NAME, got {text!r}")
    return value


def cmd_trace(args: argparse.Namespace) -> int:
    import signal

    from logd.traces import views

    try:
        folder = _traces_folder(args)
        path = views.find(folder, args.session, must_exist=not args.follow)
        if args.follow:
            stop = {"now": False}

            def finish(*_: object) -> None:
                stop["now"] = True

            signal.signal(signal.SIGTERM, finish)
            signal.signal(signal.SIGINT, finish)
            views.follow(path, sys.stdout, fmt=args.format, agent=args.filter, verbose=args.verbose,
                         stop=lambda: stop["now"])
            return EXIT_OK
        session = views.load(path)
    except (ConfigError, views.TraceError) as exc:
        error(str(exc))
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE
    except OSError as exc:
        error(f"cannot read trace session {args.session!r}: {exc}")
        return EXIT_FAILURE
    if args.filter:
        session = views.only_agent(session, args.filter)
    sys.stdout.write(views.show(session, fmt=args.format, flow_only=args.flow_only, analyze=args.analyze,
                                verbose=args.verbose))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    dir_help = "trace folder (default: the config's [logging.traces] dir)"
    p = sub.add_parser("list", help="list stored trace sessions: start, duration, agents, events, errors")
    p.add_argument("--since", metavar="T", help="only sessions active since T: 30m, 2h, 7d or a timestamp")
    p.add_argument("--verbose", "-v", action="store_true", help="full ids and agents, file and shapes")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("trace", help="show one trace session: table, agent flow, route; --analyze for timing")
    p.add_argument("session", help="session id (a unique prefix is enough)")
    p.add_argument("--flow-only", action="store_true", help="only the agent flow, sequence and route")
    p.add_argument("--filter", type=_agent_filter, metavar="agent=NAME", help="only this agent's events")
    p.add_argument("--verbose", "-v", action="store_true", help="full timestamps, state and ids")
    p.add_argument("--analyze", action="store_true",
                   help="per-agent count/total/mean/p95/max, slowest spans, errors, critical path, timeline")
    p.add_argument("--format", choices=("table", "json", "csv", "chrome"), default="table",
                   help="table (default), json, csv (one row per event) or chrome (trace JSON for Perfetto)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing events as they arrive (Ctrl-C stops)")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_trace)
