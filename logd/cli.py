"""Command-line entry point: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import orjson

from . import __version__
from .config import (Config, ConfigError, default_socket_path, describe, find_config, load_config,
                     socket_path_hint)
from .levels import canonical_level
from .timestamps import format_epoch

if TYPE_CHECKING:  # annotations only: commands import what they need when they run
    import re

    from .query import Filter

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _error(message: str) -> None:
    print(f"logd: error: {message}", file=sys.stderr)


def _load(args: argparse.Namespace) -> Config:
    return load_config(find_config(args.config))


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run

    try:
        config = _load(args)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    return run(config)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    sys.stdout.write(describe(config))
    return EXIT_OK


def resolve_socket(args: argparse.Namespace) -> Path:
    """The socket a client command talks to: --socket, else the config's, else the default rule."""
    if getattr(args, "socket", None):
        return Path(args.socket)
    path = find_config(args.config)
    if path is None:
        return default_socket_path()
    try:
        return load_config(path).socket.path
    except ConfigError:
        if getattr(args, "lenient_config", False):
            return socket_path_hint(path)
        raise


def _parse_field(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    return key, value


def _level_arg(text: str) -> str:
    level = canonical_level(text)
    if level is None:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (use trace, debug, info, warn, error, fatal)")
    return level


def cmd_send(args: argparse.Namespace) -> int:
    try:
        path = resolve_socket(args)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    fields = dict(args.field or [])

    def record(message: str) -> bytes:
        rec = {"time": format_epoch(time.time()), "level": args.level, "message": message, **fields}
        return orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        _error(f"no logd is listening on {path}; start one with `logd run` (or pass --socket/--config)")
        return EXIT_FAILURE
    except PermissionError:
        _error(f"permission denied connecting to {path}; is your user in the socket's group?")
        return EXIT_FAILURE
    try:
        if args.message is not None:
            sock.sendall(record(args.message))
        else:
            for line in sys.stdin.buffer:
                if args.raw:
                    sock.sendall(line if line.endswith(b"\n") else line + b"\n")
                else:
                    sock.sendall(record(line.rstrip(b"\r\n").decode("utf-8", "replace")))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # wait until the daemon has read everything and closed its side
    except BrokenPipeError:
        _error(f"logd on {path} closed the connection (shutting down?); not everything was sent")
        return EXIT_FAILURE
    finally:
        sock.close()
    return EXIT_OK


def ask_daemon(args: argparse.Namespace, command: str, **fields: object) -> dict | None:
    """Send a control command to the running daemon; None (error already printed) when it fails."""
    from .control import ControlError, request

    try:
        return request(resolve_socket(args), command, **fields)
    except (ConfigError, ControlError) as exc:
        _error(str(exc))
        return None


def cmd_status(args: argparse.Namespace) -> int:
    reply = ask_daemon(args, "status")
    if reply is None:
        return EXIT_FAILURE
    reply.pop("ok", None)
    if args.json:
        sys.stdout.write(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    sys.stdout.write(format_status(reply))
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    reply = ask_daemon(args, "reload")
    if reply is None:
        return EXIT_FAILURE
    if not reply.get("applied"):
        _error(f"reload refused, the daemon keeps its last good config: {reply.get('error')}")
        return EXIT_FAILURE
    changed = reply.get("changed") or []
    print(f"reloaded {reply.get('config')}: " + ("; ".join(changed) if changed else "no setting changed, files reopened"))
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace) -> int:
    reply = ask_daemon(args, "rotate")
    if reply is None:
        return EXIT_FAILURE
    for f in reply.get("files", []):
        print(f"rotated {f['file']}" if f.get("rotated") else f"not rotated {f['file']}: {f.get('note')}")
    return EXIT_OK


def format_status(status: dict) -> str:
    """Human view of the daemon's status reply: one ``key: value`` per line, nested tables indented."""
    lines: list[str] = []

    def walk(value: object, indent: int, key: str) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for k, v in value.items():
                walk(v, indent + 1, str(k))
        else:
            lines.append(f"{pad}{key}: {value}")

    ship = status.get("ship")
    for k, v in status.items():
        if k != "ship":
            walk(v, 0, k)
    if isinstance(ship, dict):
        lines.extend(format_ship_status(ship))
    return "\n".join(lines) + "\n"


def format_ship_status(ship: dict) -> list[str]:
    """Per ship target: state, lag, last success and last error, readable at a glance."""
    lines: list[str] = []
    for name, t in ship.items():
        lines.append(f"ship {name} ({t.get('type')} {t.get('url')}): {t.get('state')}")
        lines.append(f"  lag: {t.get('lag_records')} records, {_human_bytes(t.get('lag_bytes'))}")
        lines.append(f"  delivered: {t.get('delivered')}  filtered out: {t.get('filtered_out')}  "
                     f"retries: {t.get('retries')}")
        lines.append(f"  last success: {t.get('last_success') or 'never'}")
        if t.get("last_error"):
            lines.append(f"  last error: {t.get('last_error')} (at {t.get('last_error_at')})")
            if t.get("next_retry_at") and t.get("state") == "retrying":
                lines.append(f"  next retry: {t.get('next_retry_at')}")
        for key, what in (("dead_lettered", "dead-lettered (refused for good, kept in the dead-letter file)"),
                          ("rejected_by_remote", "dropped by the collector after accepting (partial success)"),
                          ("lost_to_retention", "LOST: deleted by retention before shipping"),
                          ("unreadable_files", "damaged files not shipped to their end")):
            if t.get(key):
                lines.append(f"  {what}: {t.get(key)}")
        if t.get("restarting_after"):
            lines.append(f"  restarting from its checkpoint after: {t.get('restarting_after')}")
    return lines


def _human_bytes(value: object) -> str:
    if not isinstance(value, int) or value < 0:
        return "unknown bytes"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit} ({value} bytes)"
    return f"{value} bytes"


def _traces_folder(args: argparse.Namespace) -> Path:
    """--dir, else the config's [logging.traces] dir (or its default)."""
    from .config import traces_dir

    if args.dir:
        return Path(args.dir)
    return traces_dir(_load(args))


def cmd_list(args: argparse.Namespace) -> int:
    from .traces import views

    try:
        folder = _traces_folder(args)
        since = views.parse_since(args.since, time.time()) if args.since else None
    except (ConfigError, views.TraceError) as exc:
        _error(str(exc))
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

    from .traces import views

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
        _error(str(exc))
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE
    except OSError as exc:
        _error(f"cannot read trace session {args.session!r}: {exc}")
        return EXIT_FAILURE
    if args.filter:
        session = views.only_agent(session, args.filter)
    sys.stdout.write(views.show(session, fmt=args.format, flow_only=args.flow_only, analyze=args.analyze,
                                verbose=args.verbose))
    return EXIT_OK


def _log_file(args: argparse.Namespace) -> Path:
    """--file, else the config's [logging] file."""
    if args.file:
        return Path(args.file)
    config = _load(args)
    if config.file is None:
        raise ConfigError(config.source, "no [logging] file is set; pass --file PATH or set it in the config")
    return config.file


def _selection(args: argparse.Namespace) -> Filter:
    from .query import Filter

    return Filter(since=getattr(args, "since", None), until=getattr(args, "until", None), level=args.level,
                  agents=tuple(args.agent or ()), sessions=tuple(args.session or ()),
                  grep=getattr(args, "grep", None), where=tuple(getattr(args, "where", None) or ()))


def _reading_setup(args: argparse.Namespace) -> tuple[Path, Filter] | int:
    from .query import TimeError, parse_time

    try:
        path = _log_file(args)
        for name in ("since", "until"):
            if getattr(args, name, None):
                setattr(args, name, parse_time(getattr(args, name)))
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except TimeError as exc:
        _error(str(exc))
        return EXIT_USAGE
    return path, _selection(args)


def _human_formatter() -> Callable[[dict], str]:
    from .sinks.console import ConsoleFormatter, use_color

    return ConsoleFormatter(use_color(sys.stdout.buffer)).format


def _no_files(path: Path) -> int:
    _error(f"no log file at {path} and no backups of it")
    return EXIT_FAILURE


def cmd_query(args: argparse.Namespace) -> int:
    from .query import problem_printer, run_query
    from .reader import snapshot

    setup = _reading_setup(args)
    if isinstance(setup, int):
        return setup
    path, selection = setup
    problems: list[object] = []
    report = problem_printer(sys.stderr)

    def on_problem(problem: object) -> None:
        problems.append(problem)
        report(problem)

    with snapshot(path) as files:
        if not files:
            return _no_files(path)
        try:
            run_query(list(files), selection, sys.stdout.buffer,
                      on_problem, _human_formatter() if args.human else None)
            sys.stdout.flush()
        except BrokenPipeError:  # `logd query | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
    return EXIT_FAILURE if problems else EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .query import problem_printer, write_human
    from .reader import list_files
    from .tail import run_tail

    setup = _reading_setup(args)
    if isinstance(setup, int):
        return setup
    path, selection = setup
    if not args.follow and not list_files(path):
        return _no_files(path)
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
    match = selection.match if (selection.level or selection.needs_record) else None
    try:
        run_tail(path, args.lines, args.follow, match, emit, problem_printer(sys.stderr), stop)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


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


def _where(text: str) -> tuple:
    from .query import parse_where

    try:
        return parse_where(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_selection_args(p: argparse.ArgumentParser, config_help: str) -> None:
    p.add_argument("--level", "-l", type=_level_arg, help="this level and above (trace, debug, info, warn, error, fatal)")
    p.add_argument("--agent", "-a", action="append", metavar="A", help="only this agent (repeatable: any of them)")
    p.add_argument("--session", action="append", metavar="S",
                   help="only this session_id (repeatable: any of them)")
    p.add_argument("--file", metavar="PATH", help="log file to read (default: the config's [logging] file)")
    p.add_argument("--config", "-c", help=config_help)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logd", description="Log daemon for multi-agent systems.")
    parser.add_argument("--version", action="version", version=f"logd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    config_help = "agentflow.toml to use (default: $LOGD_CONFIG, then ./agentflow.toml, then built-in defaults)"

    p = sub.add_parser("run", help="run the daemon in the foreground")
    p.add_argument("--config", "-c", help=config_help)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate the config and print the effective settings")
    p.add_argument("--config", "-c", help=config_help)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("send", help="send one record (or one per stdin line) to the daemon")
    p.add_argument("message", nargs="?", help="the message; without it, each line of stdin is one record")
    p.add_argument("--level", "-l", type=_level_arg, default="info", help="record level (default info)")
    p.add_argument("--field", "-f", action="append", type=_parse_field, metavar="KEY=VALUE",
                   help="extra field; VALUE is JSON if it parses, else a string (repeatable)")
    p.add_argument("--raw", action="store_true", help="send stdin lines unchanged (they are parsed like any client's)")
    p.add_argument("--config", "-c", help=config_help)
    p.add_argument("--socket", "-s", help="socket path (overrides the config)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("status", help="show the running daemon's state")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--config", "-c", help=config_help)
    p.add_argument("--socket", "-s", help="socket path (overrides the config)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reload", help="ask the running daemon to re-read its config; prints the outcome")
    p.add_argument("--config", "-c", help=config_help)
    p.add_argument("--socket", "-s", help="socket path (overrides the config)")
    p.set_defaults(func=cmd_reload, lenient_config=True)  # the daemon itself reports what is wrong

    p = sub.add_parser("rotate", help="rotate the log file now (through the running daemon; like SIGUSR1)")
    p.add_argument("--config", "-c", help=config_help)
    p.add_argument("--socket", "-s", help="socket path (overrides the config)")
    p.set_defaults(func=cmd_rotate, lenient_config=True)

    dir_help = "trace folder (default: the config's [logging.traces] dir)"
    p = sub.add_parser("list", help="list stored trace sessions: start, duration, agents, events, errors")
    p.add_argument("--since", metavar="T", help="only sessions active since T: 30m, 2h, 7d or a timestamp")
    p.add_argument("--verbose", "-v", action="store_true", help="full ids and agents, file and shapes")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--config", "-c", help=config_help)
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
    p.add_argument("--config", "-c", help=config_help)
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("tail", help="the last records of the log file; -f follows it across rotations")
    p.add_argument("-n", "--lines", type=_positive_count, default=10, metavar="N", help="how many (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing records as they are written")
    p.add_argument("--json", action="store_true", help="JSON lines instead of the console's human format")
    _add_selection_args(p, config_help)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("query", help="records from the log file and every backup, oldest first, as JSON lines")
    p.add_argument("--since", metavar="T", help="records at or after T: RFC 3339, or relative: 15m, 2h, 3d")
    p.add_argument("--until", metavar="T", help="records at or before T (same forms as --since)")
    p.add_argument("--grep", type=_regex, metavar="RE", help="messages matching this regular expression")
    p.add_argument("--where", action="append", type=_where, metavar="KEY=VALUE",
                   help="field equals value (KEY may be dotted: tokens.prompt; VALUE is JSON if it parses)")
    p.add_argument("--human", action="store_true", help="the console's human format instead of JSON lines")
    _add_selection_args(p, config_help)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("bench", help="measure throughput against baselines in the same run")
    p.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    p.add_argument("--records", type=int, default=200_000, help="records in total (default 200000)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--traces", action="store_true", help="trace records stored per session vs plain records")
    p.add_argument("--client", action="store_true",
                   help="cost of a logger.info() call with LogdHandler vs FileHandler and loguru's file sink")
    p.add_argument("--redact", action="store_true",
                   help="what redaction (on by default) costs per record, in-process and end to end")
    p.add_argument("--ship", action="store_true",
                   help="shipping to a local rsyslogd vs rsyslog taking the same frames raw into its file")
    p.add_argument("--rotate", action="store_true",
                   help="ingestion while rotating every 1 MB with zstd compression vs without rotation")
    p.add_argument("--query", action="store_true",
                   help="logd query --level error over rotated zstd logs vs zstdcat | jq in the same run")
    p.add_argument("--query-mb", type=int, default=1024, metavar="MB",
                   help="uncompressed size of the logs --query reads (default 1024)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
