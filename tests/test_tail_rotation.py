"""logd tail -f and logd query against logd's own rotation: size rotation while a daemon
writes (compressed backups made by its background compressor), plus bursts of `logd rotate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logd.logfiles.names import Names

from logsets import SteadySender, following, seqs
from support import wait_for


def logd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LOGD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "logd", *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("compression, suffix", [("zstd", ".zst"), ("gzip", ".gz")])
def test_tail_follow_and_query_through_logds_own_rotation(daemon, tmp_path: Path, compression: str,
                                                         suffix: str) -> None:
    proc = daemon('file = "agent.log"\nfile_only = true\nmax_size = 0.05\ncompress = true\n'
                  f'compression = "{compression}"')
    config = str(proc.config)
    with following(proc, tmp_path / "tail.out", "--config", config) as printed:
        with SteadySender(proc) as sender:
            for _ in range(2):
                sender.wait_sent(600)  # ~150 kB: a few size rotations on the way
                for _ in range(3):  # a burst on top
                    result = logd("rotate", "--config", config)
                    assert result.returncode == 0, result.stderr
            sender.wait_sent(600)
        total = sender.sent
        wait_for(lambda: len([s for s in printed() if s >= 0]) >= total, timeout=30,
                 what="tail to print every record")
        got = printed()
        first = got.index(0)
        missing = sorted(set(range(total)) - set(got))
        assert got[first:] == list(range(total)), f"missing {missing[:20]}"
        backups = [b.main.name for b in Names(tmp_path / "agent.log").scan()]
        assert any(n.endswith(suffix) for n in backups) and len(backups) >= 8, backups

        # the same records, read back from every backup in order
        wait_for(lambda: not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), what="compression")
        queried = logd("query", "--config", config, "--agent", "tester")
        assert queried.returncode == 0, queried.stderr
        q = seqs(queried.stdout)
        assert q[q.index(0):] == list(range(total))
