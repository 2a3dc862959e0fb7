"""What every ``logd bench`` mode shares: the records clients send, the clients and the servers
they drive, a logd to measure, and the :class:`Report` of rows and ratios."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

AGENTS = ("research-agent", "planner", "writer", "critic", "tool-runner")
MESSAGES = ("Agent execution completed", "Calling tool", "LLM response received",
            "Handing off to next agent", "Retrying request")


@dataclass
class Row:
    name: str
    records: int
    seconds: float
    bytes: int = 0
    cpu_s: float | None = None
    lost: int | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Report:
    title: str
    rows: list[Row]
    ratios: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target: str = ""
    ok: bool = True

    def to_json(self) -> dict:
        return {
            "title": self.title, "target": self.target, "ok": self.ok, "notes": self.notes,
            "rows": [{"name": r.name, "records": r.records, "seconds": round(r.seconds, 4),
                      "records_per_s": round(r.rate), "mb_per_s": round(r.bytes / r.seconds / 1e6, 2) if r.seconds else 0,
                      "cpu_s": r.cpu_s, "lost": r.lost} for r in self.rows],
            "ratios": {name: round(v, 3) for name, v in self.ratios},
        }

    def render(self) -> str:
        out = [self.title, f"{'scenario':<34}{'records/s':>12}{'MB/s':>9}{'cpu s':>8}{'lost':>7}"]
        for r in self.rows:
            mbs = f"{r.bytes / r.seconds / 1e6:.1f}" if r.bytes and r.seconds else "-"
            cpu = f"{r.cpu_s:.2f}" if r.cpu_s is not None else "-"
            lost = str(r.lost) if r.lost is not None else "-"
            out.append(f"{r.name:<34}{r.rate:>12,.0f}{mbs:>9}{cpu:>8}{lost:>7}")
        for name, value in self.ratios:
            out.append(f"ratio {name}: {value:.2f}x")
        out.extend(self.notes)
        if self.target:
            out.append(f"target: {self.target} -> {'met' if self.ok else 'NOT met'}")
        return "\n".join(out) + "\n"


def machine_line() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


# --- workload ---

def make_records(count: int, client: int, seed_time: float = 1_790_000_000.0) -> bytes:
    """Realistic agent records (~250 bytes each) as JSON lines, numbered per client for checking."""
    lines = []
    for i in range(count):
        rec = {
            "level": "error" if i % 50 == 0 else ("warn" if i % 10 == 0 else "info"),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seed_time + i // 1000)) + f".{i % 1000:03d}Z",
            "message": MESSAGES[i % len(MESSAGES)],
            "agent": AGENTS[i % len(AGENTS)],
            "session_id": f"sess-{client:02d}-{i // 500:05d}",
            "correlation_id": f"c{client:02d}{i:010d}",
            "duration_ms": (i * 37) % 5000,
            "model": "gpt-4o-mini",
            "tokens": {"prompt": 512 + i % 300, "completion": 128 + i % 90},
            "client": client,
            "seq": i,
        }
        lines.append(orjson.dumps(rec))
    return b"\n".join(lines) + b"\n"


_CLIENT_CODE = r"""
import os, socket, sys
path, blob_path = sys.argv[1], sys.argv[2]
data = open(blob_path, "rb").read()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
view = memoryview(data)
for i in range(0, len(data), 1 << 16):
    s.sendall(view[i:i + (1 << 16)])
s.shutdown(socket.SHUT_WR)
s.recv(1)
"""

_RAW_SERVER_CODE = r"""
import asyncio, os, sys
path, out = sys.argv[1], sys.argv[2]
async def main():
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    class P(asyncio.Protocol):
        def data_received(self, data):
            os.write(fd, data)
    server = await asyncio.get_running_loop().create_unix_server(P, path)
    await asyncio.Event().wait()
asyncio.run(main())
"""

_FILEHANDLER_CODE = r"""
import logging, sys, time
out, blob_path = sys.argv[1], sys.argv[2]
lines = open(blob_path, "rb").read().decode().splitlines()
handler = logging.FileHandler(out)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("bench"); log.addHandler(handler); log.setLevel(logging.INFO); log.propagate = False
start = time.perf_counter()
for line in lines:
    log.info(line)
handler.flush()
print(time.perf_counter() - start)
"""


def _wait_socket(path: Path, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(os.fspath(path))
            return
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise RuntimeError(f"server did not listen on {path} within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LineCounter:
    """Counts newlines appended to a file, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


def drive_clients(sock: Path, blobs: list[Path], out: Path | Callable[[], int], expected_lines: int,
                  timeout: float = 300, sender: list[str] | None = None) -> float:
    """Start one sender process per blob, release them together, return seconds until
    ``expected_lines`` more lines are in the file ``out`` (or ``out()``, a progress count,
    has grown by that much), or the timeout. ``sender``: the command of another kind of
    sender (it takes the blob last, prints "ready", waits for a line, then sends)."""
    command = sender or [sys.executable, "-c", _CLIENT_CODE, str(sock)]
    clients = [subprocess.Popen([*command, str(b)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for b in blobs]
    for c in clients:
        assert c.stdout is not None and c.stdout.readline().strip() == "ready"
    progress = LineCounter(out).poll if isinstance(out, Path) else out
    base = progress()
    start = time.perf_counter()
    for c in clients:
        assert c.stdin is not None
        c.stdin.write("go\n")
        c.stdin.flush()
    deadline = start + timeout
    while progress() - base < expected_lines and time.perf_counter() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    for c in clients:
        c.wait(60)
    return elapsed


def _write_blobs(folder: Path, clients: int, records: int,
                 make: Callable[[int, int], bytes] = make_records) -> tuple[list[Path], int, int]:
    """Each client's lines in a file; ``make(count, client)`` writes them (the canonical records)."""
    per_client = records // clients
    blobs, total_bytes = [], 0
    for i in range(clients):
        data = make(per_client, i)
        path = folder / f"client{i}.jsonl"
        path.write_bytes(data)
        blobs.append(path)
        total_bytes += len(data)
    return blobs, per_client * clients, total_bytes


def start_logd(folder: Path, logging_body: str) -> tuple[subprocess.Popen, Path]:
    """A ``logd run`` subprocess on a config in ``folder``; returns it and its socket."""
    sock = folder / "logd.sock"
    config = folder / "agentflow.toml"
    config.write_text(f"[logging]\n{logging_body}\n\n[logging.socket]\npath = \"{sock}\"\n")
    proc = subprocess.Popen([sys.executable, "-m", "logd", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "NO_COLOR": "1"})
    _wait_socket(sock, proc)
    return proc, sock


def count_agent_lines(path: Path, marker: bytes = b'"client":') -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if marker in line)
