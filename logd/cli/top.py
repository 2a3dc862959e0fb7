"""`logd top`: a live terminal view of a running daemon, over its control socket.

Each refresh asks the daemon for its raw figures (the ``top`` control command: counters
and histogram rows, stamped with the daemon's clock) and shows the change since the
previous ask: per agent records/s, errors/s, p95 run time, tokens/min and the last
error; logd's own rates, queue depth, sinks and ship lag above them. Keys: ``q`` quits,
``r``/``e``/``p``/``t``/``a`` sort by records, errors, p95, tokens or agent name.
``--once`` prints one frame (two asks ``--interval`` apart) and exits, for scripts.
Needs ``rich`` (the ``tui`` extra).
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logd.cli.common import CONFIG_HELP, EXIT_FAILURE, EXIT_OK, SOCKET_HELP, ask_daemon, error, resolve_socket
from logd.levels import ERROR_LEVELS
from logd.usage import quantile

SORT_KEYS = {"r": "records", "e": "errors", "p": "p95", "t": "tokens", "a": "agent"}


@dataclass
class AgentRow:
    agent: str
    records_per_s: float
    errors_per_s: float
    p95_run_s: float | None
    tokens_per_min: float
    last_error: str = ""


@dataclass
class Frame:
    """What one screen shows: rates between two snapshots ``seconds`` apart."""

    seconds: float
    version: str
    uptime_s: float
    ready: bool
    paused: bool
    received_per_s: float
    dropped_per_s: float
    queue_depth: int
    connections: int
    sinks: dict[str, dict[str, Any]]
    ship: dict[str, dict[str, Any]]
    agents: list[AgentRow] = field(default_factory=list)


def _records(s: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """agent -> (records, errors) so far."""
    return {agent: (sum(levels.values()), sum(levels.get(level, 0) for level in ERROR_LEVELS))
            for agent, levels in s.get("agents", {}).items()}


def _tokens(s: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for agent, _model, _direction, n in s.get("usage", {}).get("tokens", []):
        out[agent] = out.get(agent, 0) + n
    return out


def make_frame(prev: dict[str, Any], cur: dict[str, Any]) -> Frame:
    """The change from ``prev`` to ``cur`` (two ``top`` replies), per second of the daemon's clock."""
    dt = max(cur["now"] - prev["now"], 1e-6)
    before, now = _records(prev), _records(cur)
    tokens_before, tokens_now = _tokens(prev), _tokens(cur)
    last_errors = cur.get("usage", {}).get("last_error", {})
    buckets = cur.get("duration_buckets", [])
    rows = []
    for agent in sorted(set(now) | set(tokens_now)):
        n, errors = now.get(agent, (0, 0))
        n0, errors0 = before.get(agent, (0, 0))
        row = cur.get("durations", {}).get(agent)
        rows.append(AgentRow(
            agent=agent,
            records_per_s=(n - n0) / dt,
            errors_per_s=(errors - errors0) / dt,
            p95_run_s=quantile(0.95, row, buckets) if row else None,
            tokens_per_min=(tokens_now.get(agent, 0) - tokens_before.get(agent, 0)) / dt * 60,
            last_error=(last_errors.get(agent) or {}).get("message", ""),
        ))
    dropped = sum(cur.get("dropped", {}).values()) - sum(prev.get("dropped", {}).values())
    return Frame(
        seconds=dt, version=cur.get("version", "?"), uptime_s=cur.get("uptime_s", 0.0),
        ready=bool(cur.get("ready")), paused=bool(cur.get("paused")),
        received_per_s=(cur["received"] - prev["received"]) / dt, dropped_per_s=dropped / dt,
        queue_depth=cur.get("queue_depth", 0), connections=cur.get("connections", 0),
        sinks=cur.get("sinks", {}), ship=cur.get("ship", {}), agents=rows,
    )


def sort_rows(rows: list[AgentRow], key: str) -> list[AgentRow]:
    if key == "agent":
        return sorted(rows, key=lambda r: r.agent)
    value: Callable[[AgentRow], float] = {
        "records": lambda r: r.records_per_s, "errors": lambda r: r.errors_per_s,
        "p95": lambda r: r.p95_run_s or 0.0, "tokens": lambda r: r.tokens_per_min,
    }[key]
    return sorted(rows, key=lambda r: (-value(r), r.agent))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _rate(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def render(frame: Frame, sort: str) -> Any:
    """The frame as a rich renderable: logd's own figures, then one row per agent."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    state = "ready" if frame.ready else "NOT READY"
    head = Text.assemble(
        (f"logd {frame.version}", "bold"), f"  up {_duration(frame.uptime_s)}  ",
        (state, "green" if frame.ready else "bold red"),
        f"  in {_rate(frame.received_per_s)}/s  dropped {_rate(frame.dropped_per_s)}/s"
        f"  queue {frame.queue_depth}  connections {frame.connections}",
        ("  PAUSED" if frame.paused else "", "bold yellow"),
    )
    sinks = Text("sinks: ")
    for i, (name, s) in enumerate(sorted(frame.sinks.items())):
        ok = s.get("writable", True)
        sinks.append(("  " if i else "") + f"{name} ")
        sinks.append("ok" if ok else "FAILING", "green" if ok else "bold red")
        sinks.append(f" {s.get('sent_events', 0):,} written, {s.get('errors', 0)} errors")
    lines: list[Any] = [head, sinks]
    if frame.ship:
        ship = Text("ship: ")
        for i, (name, t) in enumerate(sorted(frame.ship.items())):
            lag = t.get("lag_records", -1)
            ship.append(("  " if i else "") + f"{name} {t.get('state', '?')} lag "
                        + (f"{lag:,} records" if lag >= 0 else "?"))
        lines.append(ship)
    table = Table(expand=True, box=None, header_style="bold reverse", pad_edge=False)
    for title, justify in (("AGENT", "left"), ("REC/S", "right"), ("ERR/S", "right"), ("P95 RUN", "right"),
                           ("TOK/MIN", "right"), ("LAST ERROR", "left")):
        marked = title + (" ▼" if _column_sort(title) == sort else "")
        table.add_column(marked, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         overflow="ellipsis", ratio=3 if title == "LAST ERROR" else None)
    for row in sort_rows(frame.agents, sort):
        table.add_row(row.agent, _rate(row.records_per_s),
                      Text(_rate(row.errors_per_s), "red" if row.errors_per_s else ""),
                      "-" if row.p95_run_s is None else f"{row.p95_run_s:.2f}s",
                      f"{row.tokens_per_min:,.0f}", Text(row.last_error, "red"))
    footer = Text(f"sort: {sort}   keys: r records  e errors  p p95  t tokens  a agent  q quit", "dim")
    return Group(*lines, Text(""), table, Text(""), footer)


def _column_sort(title: str) -> str | None:
    return {"AGENT": "agent", "REC/S": "records", "ERR/S": "errors", "P95 RUN": "p95", "TOK/MIN": "tokens"}.get(title)


def _ask(args: argparse.Namespace) -> dict[str, Any] | None:
    return ask_daemon(args, "top")


class _Lost(Exception):
    """The daemon stopped answering while the live view was up; ``str()`` is the error line."""


def _ask_live(socket: Any) -> dict[str, Any]:
    from logd.control import ControlError, request

    try:
        return request(socket, "top", timeout=10.0)
    except ControlError as exc:
        raise _Lost(str(exc)) from None


def cmd_top(args: argparse.Namespace) -> int:
    try:
        import rich  # noqa: F401
    except ImportError:
        error("logd top needs rich: pip install 'logd[tui]'")
        return EXIT_FAILURE
    from rich.console import Console

    prev = _ask(args)
    if prev is None:
        return EXIT_FAILURE
    if args.once:
        time.sleep(args.interval)  # rates need two looks
        cur = _ask(args)
        if cur is None:
            return EXIT_FAILURE
        Console(width=args.width).print(render(make_frame(prev, cur), args.sort))
        return EXIT_OK
    return _live(args, prev)


def _live(args: argparse.Namespace, prev: dict[str, Any]) -> int:
    import termios
    import tty

    from rich.live import Live
    from rich.text import Text

    sort = args.sort
    socket = resolve_socket(args)
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    if fd is not None:
        tty.setcbreak(fd)  # keys arrive one by one, unechoed
    try:
        with Live(Text("logd top: waiting for the first figures..."), screen=True, auto_refresh=False) as live:
            frame = None
            while True:
                deadline = time.monotonic() + args.interval
                while (left := deadline - time.monotonic()) > 0:
                    key = _read_key(fd, left)
                    if key == "q":
                        return EXIT_OK
                    if key in SORT_KEYS:
                        sort = SORT_KEYS[key]
                        if frame is not None:
                            live.update(render(frame, sort), refresh=True)
                cur = _ask_live(socket)
                frame = make_frame(prev, cur)
                prev = cur
                live.update(render(frame, sort), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK
    except _Lost as exc:  # said after the alternate screen is gone, so it stays visible
        error(str(exc))
        return EXIT_FAILURE
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(fd: int | None, timeout: float) -> str | None:
    if fd is None:
        time.sleep(timeout)
        return None
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    data = os.read(fd, 1)
    return data.decode(errors="replace").lower() if data else "q"  # end of input: quit


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="live view of a running logd: per-agent rates, errors, p95, tokens; q quits")
    p.add_argument("--once", action="store_true", help="print one frame and exit (for scripts)")
    p.add_argument("--interval", type=_seconds, default=2.0, metavar="S", help="seconds between refreshes (default 2)")
    p.add_argument("--sort", choices=sorted(set(SORT_KEYS.values())), default="records",
                   help="order of the agent rows (default records; keys r/e/p/t/a change it live)")
    p.add_argument("--width", type=int, default=None, help="columns for --once (default: the terminal's, or 80)")
    p.add_argument("--socket", "-s", help=SOCKET_HELP)
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_top)
