"""`logd run`, `check`, `send`, `status`, `reload`, `rotate`: the daemon and talking to it."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import TYPE_CHECKING

import orjson

from logd.cli.common import (
    CONFIG_HELP,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    SOCKET_HELP,
    ask_daemon,
    config_error,
    error,
    found_socket,
    level_arg,
    load,
    warn,
)
from logd.client.sender import trusted_daemon_uids, untrusted_peer  # the peer check every client makes
from logd.config import Config, ConfigError, ConfigErrors, describe, path_problems
from logd.timestamps import format_epoch

if TYPE_CHECKING:
    from logd.traces.formats import Documents


def _checked_config(args: argparse.Namespace) -> Config | None:
    """The config with its warnings shown, or None once every error of the file is shown."""
    try:
        config = load(args)
    except ConfigError as exc:
        config_error(exc)
        return None
    for message in config.warnings:
        warn(message)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from logd.daemon import run

    config = _checked_config(args)
    return EXIT_USAGE if config is None else run(config)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 for a usable config, 2 with every error listed (warnings alone do not fail),
    including paths logd could not create or read here as this user."""
    config = _checked_config(args)
    if config is None:
        return EXIT_USAGE
    problems = path_problems(config)
    if problems:
        config_error(ConfigErrors(problems))
        return EXIT_USAGE
    sys.stdout.write(describe(config))
    return EXIT_OK


def _parse_field(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    return key, value


def cmd_send(args: argparse.Namespace) -> int:
    try:
        found = found_socket(args)
    except ConfigError as exc:
        config_error(exc)
        return EXIT_USAGE
    path = found.path
    if args.verbose:
        print(f"logd: sending to {path} ({found.why}; config read: {found.config or 'none'})", file=sys.stderr)
    fields = dict(args.field or [])

    def record(message: str) -> bytes:
        rec = {"time": format_epoch(time.time()), "level": args.level, "message": message, **fields}
        return orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        chosen = "" if found.why == "--socket" else f" ({found.why})"
        error(f"no logd is listening on {path}{chosen}; start one with `logd run` (or pass --socket/--config)")
        return EXIT_FAILURE
    except PermissionError:
        error(f"permission denied connecting to {path}; is your user in the socket's group?")
        return EXIT_FAILURE
    refused = untrusted_peer(sock, path, trusted_daemon_uids())  # before a single byte is sent
    if refused is not None:
        sock.close()
        error(refused)
        return EXIT_FAILURE
    try:
        if args.message is not None:
            sock.sendall(record(args.message))
        else:
            raw = _raw_documents() if args.raw else None
            for line in sys.stdin.buffer:
                if raw is not None:
                    sock.sendall(b"".join(raw.feed(line)))
                else:
                    sock.sendall(record(line.rstrip(b"\r\n").decode("utf-8", "replace")))
            if raw is not None:
                sock.sendall(b"".join(raw.finish()))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # wait until the daemon has read everything and closed its side
    except BrokenPipeError:
        error(f"logd on {path} closed the connection (shutting down?); not everything was sent")
        return EXIT_FAILURE
    finally:
        sock.close()
    return EXIT_OK


def _raw_documents() -> Documents:
    """--raw: pretty-printed JSON documents and Koog trace writer lines become one record each."""
    from logd.traces.formats import Documents

    return Documents()


def cmd_status(args: argparse.Namespace) -> int:
    try:
        found = found_socket(args)
    except ConfigError as exc:
        config_error(exc)
        return EXIT_USAGE
    reply = ask_daemon(args, "status", found)
    if reply is None:
        return EXIT_FAILURE
    reply.pop("ok", None)
    # which socket this command chose and why; the daemon's own config and socket follow
    reply = {"reached": {"socket": str(found.path), "by": found.why,
                         "config_read": str(found.config) if found.config else None}, **reply}
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
        error(f"reload refused, the daemon keeps its last good config: {reply.get('error')}")
        return EXIT_FAILURE
    changed = reply.get("changed") or []
    summary = "; ".join(changed) if changed else "no setting changed, files reopened"
    print(f"reloaded {reply.get('config')}: {summary}")
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
        if t.get("duplicates"):
            lines.append(f"  of them acked as already stored (sent again, de-duplicated): {t.get('duplicates')}")
        if t.get("remote_full"):
            lines.append("  held: the remote is full (at its limits); records wait in the log until it has room")
        lines.append(f"  last success: {t.get('last_success') or 'never'}")
        if t.get("last_error"):
            lines.append(f"  last error: {t.get('last_error')} (at {t.get('last_error_at')})")
            if t.get("next_retry_at") and t.get("state") in ("retrying", "held"):
                lines.append(f"  next retry: {t.get('next_retry_at')}")
        for key, what in (("dead_lettered", "dead-lettered (refused for good, kept in the dead-letter file)"),
                          ("rejected_by_remote", "dropped by the collector after accepting (partial success)"),
                          ("reordered", "stored ahead of earlier records the remote refused for a while"),
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate the config and print the effective settings")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("send", help="send one record (or one per stdin line) to the daemon")
    p.add_argument("message", nargs="?", help="the message; without it, each line of stdin is one record")
    p.add_argument("--level", "-l", type=level_arg, default="info", help="record level (default info)")
    p.add_argument("--field", action="append", type=_parse_field, metavar="KEY=VALUE",
                   help="extra field; VALUE is JSON if it parses, else a string (repeatable)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="say on stderr which socket (and config) was chosen, and why")
    p.add_argument("--raw", action="store_true",
                   help="send stdin lines as they are (parsed like any client's); a pretty-printed JSON "
                        "document (Koog, AgenticGoKit .trace.json) or a Koog trace writer line is one record")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.add_argument("--socket", "-s", help=SOCKET_HELP)
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("status", help="show the running daemon's state")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.add_argument("--socket", "-s", help=SOCKET_HELP)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reload", help="ask the running daemon to re-read its config; prints the outcome")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.add_argument("--socket", "-s", help=SOCKET_HELP)
    p.set_defaults(func=cmd_reload, lenient_config=True)  # the daemon itself reports what is wrong

    p = sub.add_parser("rotate", help="rotate the log file now (through the running daemon; like SIGUSR1)")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.add_argument("--socket", "-s", help=SOCKET_HELP)
    p.set_defaults(func=cmd_rotate, lenient_config=True)
