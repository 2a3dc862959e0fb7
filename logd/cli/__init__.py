"""Command-line entry point: argument parsing only; each command lives in the module for its topic
(``service``: the daemon and talking to it, ``reading``: query/tail, ``traces``: list/trace, ``bench``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from logd import __version__
from logd.cli import bench, reading, service, top, traces
from logd.cli.common import EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logd", description="Log daemon for multi-agent systems.")
    parser.add_argument("--version", action="version", version=f"logd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (service, traces, reading, bench, top):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    parser = build_parser()
    args = parser.parse_args(traces.trace_argv(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
