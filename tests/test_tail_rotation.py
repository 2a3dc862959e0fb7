"""logd tail -f and logd query against logd's own rotation: size rotation while a daemon
writes (compressed backups made by its background compressor), plus bursts of `logd rotate`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from logsets import record
from support import send_records, wait_for


def logd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, env=env, timeout=60)


def seqs(data: bytes | str) -> list[int]:
    return [orjson.loads(line)["seq"] for line in data.splitlines() if line]


@pytest.mark.parametrize("compression, suffix", [("zstd", ".zst"), ("gzip", ".gz")])
def test_tail_follow_and_query_through_logds_own_rotation(daemon, tmp_path: Path, compression: str,
                                                         suffix: str) -> None:
    proc = daemon(f'file = "agent.log"\nfile_only = true\nmax_size = 0.05\ncompress = true\ncompression = "{compression}"')
    config = str(proc.config)
    out_path = tmp_path / "tail.out"
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    with out_path.open("wb") as out:
        tail = subprocess.Popen([sys.executable, "-m", "logd", "tail", "-f", "-n", "0", "--json", "--agent", "tester",
                                 "--config", config], stdout=out, stderr=subprocess.PIPE, env=env)
    try:
        def printed() -> list[int]:
            data = out_path.read_bytes()
            return seqs(data[: data.rfind(b"\n") + 1])

        def marker_seen() -> bool:
            send_records(proc.socket_path, [record(-1, agent="tester")])
            return -1 in printed()

        wait_for(marker_seen, interval=0.2, what="tail -f to start following")
        done = threading.Event()
        sent = [0]

        def sender() -> None:
            while not done.is_set():
                send_records(proc.socket_path, [record(s, agent="tester") for s in range(sent[0], sent[0] + 20)])
                sent[0] += 20

        worker = threading.Thread(target=sender)
        worker.start()
        try:
            for _ in range(2):
                goal = sent[0] + 600  # ~150 kB: a few size rotations on the way
                wait_for(lambda: sent[0] >= goal, what="records sent")
                for _ in range(3):  # a burst on top
                    result = logd("rotate", "--config", config)
                    assert result.returncode == 0, result.stderr
            goal = sent[0] + 600
            wait_for(lambda: sent[0] >= goal, what="records sent")
        finally:
            done.set()
            worker.join(30)
        total = sent[0]
        wait_for(lambda: len([s for s in printed() if s >= 0]) >= total, timeout=30,
                 what="tail to print every record")
        got = printed()
        first = got.index(0)
        missing = sorted(set(range(total)) - set(got))
        assert got[first:] == list(range(total)), f"missing {missing[:20]}"
        backups = [p.name for p in tmp_path.iterdir() if p.name.startswith("agent.log.")]
        assert any(n.endswith(suffix) for n in backups) and len(backups) >= 8, backups

        # the same records, read back from every backup in order
        wait_for(lambda: not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), what="compression")
        queried = logd("query", "--config", config, "--agent", "tester")
        assert queried.returncode == 0, queried.stderr
        q = seqs(queried.stdout)
        assert q[q.index(0):] == list(range(total))
    finally:
        tail.send_signal(signal.SIGTERM)
        _, err = tail.communicate(timeout=10)
    assert tail.returncode == 0 and err == b"", err
