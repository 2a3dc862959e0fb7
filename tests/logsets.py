"""Real rotated log sets for the reading tests: files named as rotation names them, written
with logd's own encoder, compressed with the real zstandard and gzip modules."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import zstandard

from logd.pipeline import encode
from logd.timestamps import format_epoch

from support import send_records, wait_for

if TYPE_CHECKING:
    from support import DaemonProcess

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


def seqs(data: bytes | str) -> list[int]:
    return [orjson.loads(line)["seq"] for line in data.splitlines() if line]


@contextmanager
def following(daemon: DaemonProcess, out_path: Path, *source: str) -> Iterator[Callable[[], list[int]]]:
    """`logd tail -f -n 0 --json --agent tester SOURCE…` running against ``daemon``'s file.

    Returns once the follower printed a marker record (-1), yields a function giving the
    ``seq`` of every complete line printed so far, and at the end stops the follower and
    checks it exited cleanly with nothing on stderr."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    with out_path.open("wb") as out:
        tail = subprocess.Popen([sys.executable, "-m", "logd", "tail", "-f", "-n", "0", "--json", "--agent", "tester",
                                 *source], stdout=out, stderr=subprocess.PIPE, env=env)

    def printed() -> list[int]:
        data = out_path.read_bytes()
        return seqs(data[: data.rfind(b"\n") + 1])

    def marker_seen() -> bool:  # tail -n 0 starts at the end: send markers until one shows
        send_records(daemon.socket_path, [record(-1, agent="tester")])
        return -1 in printed()

    try:
        wait_for(marker_seen, interval=0.2, what="tail -f to start following")
        yield printed
    finally:
        tail.send_signal(signal.SIGTERM)
        _, err = tail.communicate(timeout=10)
    assert tail.returncode == 0 and err == b"", err


class SteadySender:
    """Sends numbered `tester` records in groups of 20, all the time, until the block ends."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.sent = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._done.is_set():
            send_records(self.daemon.socket_path, [record(s, agent="tester") for s in range(self.sent, self.sent + 20)])
            self.sent += 20

    def wait_sent(self, more: int) -> None:
        goal = self.sent + more
        wait_for(lambda: self.sent >= goal, what="records sent")

    def __enter__(self) -> SteadySender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(30)
