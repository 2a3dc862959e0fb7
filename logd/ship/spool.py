"""Without a file sink, shippers still read files: the spool is a JSON-lines file in the
state folder that only they read. It is the file sink's format, under another name."""

from __future__ import annotations

from pathlib import Path

from ..sinks.file import FileSink

SPOOL_NAME = "spool.log"


def spool_path(state_dir: Path) -> Path:
    return state_dir / SPOOL_NAME


class SpoolSink(FileSink):
    name = "spool"
