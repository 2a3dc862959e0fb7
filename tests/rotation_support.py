"""Helpers for the rotation tests: an injected clock, numbered records, and reading a
rotated file set back (plain, .zst, .gz) oldest first."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import zstandard

from logd.logfiles.names import Names
from logd.pipeline import Batch


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def record(i: int, pad: int = 60) -> dict:
    return {"time": "2026-11-23T11:28:07.123456Z", "level": "info", "message": f"line {i}", "seq": i,
            "pad": "x" * pad}


def batch(start: int, count: int, pad: int = 60) -> Batch:
    return Batch([record(i, pad) for i in range(start, start + count)])


def decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def names(folder: Path, prefix: str = "agent.log") -> list[str]:
    """The log file set's names (daemon output and configs beside them left out), in number order."""
    return sorted((n for n in os.listdir(folder) if n.startswith(prefix)), key=lambda n: (len(n), n))


def file_set(current: Path) -> list[Path]:
    """The current file and its backups (either layout), oldest first (as readers order them)."""
    return [path for path, _, _ in Names(current).readable()]


def backup_names(current: Path) -> list[str]:
    """Every file of every backup (either layout), newest backup first."""
    return [p.name for b in Names(current).scan() for p in b.files]


def all_seqs(current: Path) -> list[int]:
    """``seq`` of every line in the file set, oldest first; every line must be whole JSON."""
    out = []
    for path in file_set(current):
        data = decompress(path)
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends inside a line"
        out.extend(orjson.loads(line).get("seq", -1) for line in data.splitlines())
    return [s for s in out if s != -1]


def seqs_in(path: Path) -> list[int]:
    """``seq`` of every line of one file."""
    return [s for s in (orjson.loads(line).get("seq", -1) for line in decompress(path).splitlines()) if s != -1]
