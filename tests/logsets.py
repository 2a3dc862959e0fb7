"""Real rotated log sets for the reading tests: files named as rotation names them, written
with logd's own encoder, compressed with the real zstandard and gzip modules."""

from __future__ import annotations

import gzip
import os
import signal
from pathlib import Path
from typing import Iterable

import zstandard

from logd.pipeline import encode
from logd.timestamps import format_epoch

BASE = 1_795_000_000.0  # 2026-11-18T09:46:40Z
AGENTS = ("planner", "writer", "critic")


def record(seq: int, t: float | None = None, level: str | None = None, **fields: object) -> dict:
    """A record as logd writes it: time, level, message first. One second apart by default."""
    rec = {
        "time": format_epoch(BASE + seq if t is None else t),
        "level": level or ("error" if seq % 10 == 3 else "warn" if seq % 10 == 6 else "info"),
        "message": f"step {seq}",
        "agent": AGENTS[seq % 3],
        "session_id": f"s{seq // 10}",
        "duration_ms": (seq * 37) % 1000,
        "seq": seq,
    }
    rec.update(fields)
    return rec


def lines(records: Iterable[dict]) -> bytes:
    return b"".join(encode(r) for r in records)


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, compressed by its suffix (.zst with a checksum, as zstd does)."""
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def rotated_set(folder: Path, per_file: int = 10, names: tuple[str, ...] = (
        "agent.log.4.gz", "agent.log.3.zst", "agent.log.2.zst", "agent.log.1", "agent.log")) -> Path:
    """Consecutive records spread over the files, oldest in the highest number; returns agent.log."""
    seq = 0
    for name in names:
        write(folder / name, lines(record(s) for s in range(seq, seq + per_file)))
        seq += per_file
    return folder / "agent.log"


def compress_file(plain: Path, target: Path) -> None:
    """What the background compressor does: temp file, rename into place, remove the plain file."""
    tmp = target.with_name(target.name + ".tmp")
    data = plain.read_bytes()
    if target.suffix == ".zst":
        data = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    elif target.suffix == ".gz":
        data = gzip.compress(data)
    tmp.write_bytes(data)
    os.replace(tmp, target)
    plain.unlink()


def rotate_by_rename(current: Path, compression: str = ".zst") -> None:
    """Rotate the way logd's rotation does, by renames: older backups shift up, the newest
    backup ``.1`` is compressed into ``.2<ext>``, and the current file becomes ``.1``."""
    folder, name = current.parent, current.name
    numbers = sorted((int(p.name[len(name) + 1:].split(".")[0]) for p in folder.iterdir()
                      if p.name.startswith(name + ".") and not p.name.endswith(".tmp")
                      and p.name[len(name) + 1:].split(".")[0].isdigit()), reverse=True)
    for n in numbers:
        if n >= 2:
            os.replace(folder / f"{name}.{n}{compression}", folder / f"{name}.{n + 1}{compression}")
    if (folder / f"{name}.1").exists():
        os.replace(folder / f"{name}.1", folder / f"{name}.2")
    os.replace(current, folder / f"{name}.1")
    if (folder / f"{name}.2").exists():
        compress_file(folder / f"{name}.2", folder / f"{name}.2{compression}")


def reopen(pid: int) -> None:
    """Ask a running logd to reopen its files (what it does on SIGHUP, for external rotation)."""
    os.kill(pid, signal.SIGHUP)
