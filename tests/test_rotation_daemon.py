"""Rotation in a running ``logd run``: real coreutils ``tail -F`` across 20+ rotations under load,
kill -9 during compression then restart, a file size limit (RLIMIT_FSIZE) then recovery,
``logd rotate`` and SIGUSR1."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from logd.control import request
from logd.logfiles.names import Names

from rotation_support import all_seqs, backup_names, decompress, file_set, names, seqs_in
from support import DaemonProcess, agent_records, read_records, send, send_records, wait_for, write_config


def numbered(count: int, start: int = 0, pad: int = 40) -> bytes:
    return b"".join(orjson.dumps({"level": "info", "msg": f"record {i}", "seq": i, "pad": "p" * pad}) + b"\n"
                    for i in range(start, start + count))


def own_records(log: Path) -> list[dict]:
    """logd's own records in the file set, oldest first (read again when a running daemon's
    compressor renamed a backup between the listing and the read)."""
    for _ in range(50):
        try:
            return [r for p in file_set(log) for r in map(orjson.loads, decompress(p).splitlines())
                    if r.get("agent") == "logd"]
        except FileNotFoundError:
            continue
    raise AssertionError(f"the backups of {log} kept moving while they were read")


def paced_send(path: Path, total: int, start: int = 0, per_batch: int = 10, pause: float = 0.004) -> None:
    """One client sending ``total`` numbered records back to back in small batches, on one connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    for first in range(start, start + total, per_batch):
        s.sendall(numbered(min(per_batch, start + total - first), first))
        time.sleep(pause)  # a steady stream rather than one burst (see the test's docstring)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def test_tail_F_follows_20_rotations_under_load_and_sees_every_line_once(daemon, tmp_path):
    """coreutils ``tail -F`` reads the old file to its end (its IN_MODIFY events come before the
    rename's), then reopens the name. It resolves the name when it handles the event, so two
    rotations within one of its wake-ups could skip a file; the stream here rotates every
    ~0.2 s (``logd tail -f`` also handles bursts, see test_tail.py)."""
    d = daemon('file = "agent.log"\nfile_only = true\nmax_size = 0.01\ncompress = true')
    log = tmp_path / "agent.log"
    seen: list[int] = []
    lines = [0]
    with open(tmp_path / "tail.stderr", "wb") as tail_err:
        tail = subprocess.Popen(["tail", "-F", "-n", "+1", str(log)], stdout=subprocess.PIPE, stderr=tail_err)

        def read() -> None:
            assert tail.stdout is not None
            for line in tail.stdout:
                lines[0] += 1
                record = orjson.loads(line)
                if "seq" in record:
                    seen.append(record["seq"])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_for(lambda: lines[0] >= 1, 10, what="tail to print logd's start record")
            send(d.socket_path, numbered(1))  # tail now watches the file: this arrives through inotify
            wait_for(lambda: seen == [0], 10, what="tail to follow")
            total = 2_300  # ~230 KB: 23 rotations of 10 KB, one every ~0.2 s
            paced_send(d.socket_path, total - 1, start=1, per_batch=10, pause=0.02)
            try:
                wait_for(lambda: len(seen) >= total, 20, what="tail -F to print every line")
            except AssertionError as exc:
                import itertools
                missing = sorted(set(range(total)) - set(seen))
                # consecutive missing numbers as (first, last) runs
                groups = (list(g) for _, g in itertools.groupby(enumerate(missing), lambda t: t[1] - t[0]))
                runs = [(g[0][1], g[-1][1]) for g in groups]
                said = (tmp_path / "tail.stderr").read_text()[-1500:]
                raise AssertionError(f"missing {runs}; tail said: {said}") from exc
            d.stop()
            tail.terminate()
            reader.join(10)
        finally:
            tail.kill()
    assert len(backup_names(log)) >= 20
    assert seen == list(range(total))  # every line exactly once, in order
    assert all_seqs(log) == list(range(total))  # and the files agree


def test_kill_9_during_compression_then_restart_finishes_it_with_nothing_lost_or_doubled(daemon, tmp_path):
    config = ('file = "agent.log"\nfile_only = true\nmax_size = 2\ncompress = true\ncompression_level = 19\n'
              'backup_names = "numbered"')
    d = daemon(config)
    log = tmp_path / "agent.log"
    total = 0
    for _ in range(3):  # ~4.5 MB: two rotations, and zstd -19 over 2 MB takes seconds
        blob = b"".join(orjson.dumps({"msg": "m", "seq": i, "noise": os.urandom(32).hex()}) + b"\n"
                        for i in range(total, total + 10_000))
        send(d.socket_path, blob)
        total += 10_000
    wait_for(lambda: (tmp_path / "agent.log.2.zst.tmp").exists(), 20, interval=0.002, what="compression to start")
    wait_for(lambda: sum(len(seqs_in(p)) for p in (log, tmp_path / "agent.log.1", tmp_path / "agent.log.2")) == total,
             10, what="every record in the plain files")
    assert (tmp_path / "agent.log.2.zst.tmp").exists(), "the kill must come during compression"
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    assert "agent.log.2.zst.tmp" in names(tmp_path) and "agent.log.2" in names(tmp_path)

    again = daemon(config.replace("compression_level = 19", "compression_level = 3"))
    wait_for(lambda: names(tmp_path)[:3] == ["agent.log", "agent.log.1", "agent.log.2.zst"]
             and "agent.log.2" not in names(tmp_path), 30, what="the restart to finish the compression")
    again.stop()
    assert not [n for n in names(tmp_path) if n.endswith(".tmp")]
    assert all_seqs(log) == list(range(total))
    recovered = [r for r in own_records(log) if "unclean stop" in r["message"]]
    assert recovered and any("agent.log.2.zst.tmp" in a for a in recovered[0]["actions"])


class LimitedDaemon(DaemonProcess):
    """``logd run`` with a soft RLIMIT_FSIZE: writes past ``limit`` bytes fail with EFBIG."""

    limit = 60_000

    def start(self, wait: bool = True) -> LimitedDaemon:
        limit = self.limit

        def lower_limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        cmd = [sys.executable, "-m", "logd", "run", "--config", str(self.config)]
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=self.workdir, env=self.env,
                                         preexec_fn=lower_limit)
        if wait:
            from support import can_connect
            wait_for(lambda: self._alive_or_fail() and can_connect(self.socket_path), 15, what="logd to listen")
        return self


def test_file_size_limit_pauses_clients_reports_and_writes_everything_once_lifted(tmp_path, sock_dir):
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"\nfile_only = true\nmax_size = 1')
    d = LimitedDaemon(config, sock_dir / "logd.sock", tmp_path).start()
    try:
        total = 2_000  # ~200 KB against a 60 KB limit
        sender = threading.Thread(target=send, args=(d.socket_path, numbered(total)))
        sender.start()
        wait_for(lambda: "sink file failed" in d.stderr(), 20, what="the error on stderr")
        wait_for(lambda: request(d.socket_path, "status")["paused"], 10, what="clients paused")
        assert d.proc.poll() is None and sender.is_alive()  # no crash; the sender waits (backpressure)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        sender.join(30)
        assert not sender.is_alive()
        wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == total, 20, what="every record written")
        assert d.stop() == 0
    finally:
        d.kill()
    assert all_seqs(tmp_path / "agent.log") == list(range(total))
    messages = [r["message"] for r in read_records(tmp_path / "agent.log") if r.get("agent") == "logd"]
    assert any("sink file failed" in m for m in messages) and any("recovered" in m for m in messages)
    assert "File too large" in d.stderr()


def test_sighup_while_the_file_is_full_reopens_it_and_the_held_records_go_to_the_new_file(tmp_path, sock_dir):
    """An external logrotate moves the full file away and sends HUP: the reload is refused (a
    sink holds records), the file is reopened anyway, and what was held lands in the new file."""
    config = write_config(tmp_path, sock_dir / "logd.sock", 'file = "agent.log"\nfile_only = true\nmax_size = 1')
    d = LimitedDaemon(config, sock_dir / "logd.sock", tmp_path).start()
    try:
        total = 500  # ~90 KB against a 60 KB limit per file
        sender = threading.Thread(target=send, args=(d.socket_path, numbered(total)))
        sender.start()
        wait_for(lambda: "sink file failed" in d.stderr(), 20, what="the file to fill up")
        os.rename(tmp_path / "agent.log", tmp_path / "agent.log.moved")
        d.signal(signal.SIGHUP)
        sender.join(30)
        assert not sender.is_alive()
        wait_for(lambda: len(agent_records(tmp_path / "agent.log")) + len(agent_records(tmp_path / "agent.log.moved"))
                 == total, 20, what="every record written")
        assert d.stop() == 0
    finally:
        d.kill()
    moved, current = seqs_in(tmp_path / "agent.log.moved"), seqs_in(tmp_path / "agent.log")
    assert moved + current == list(range(total)) and moved and current
    assert "keeping the last good config" in d.stderr()


def test_logd_rotate_and_sigusr1_rotate_through_the_running_daemon(daemon, tmp_path):
    d = daemon('file = "agent.log"\ncompress = true\ncompression = "gzip"\nbackup_names = "numbered"')
    log = tmp_path / "agent.log"
    send_records(d.socket_path, [{"msg": "first", "seq": i} for i in range(10)])
    out = subprocess.run([sys.executable, "-m", "logd", "rotate", "--socket", str(d.socket_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"rotated {log}"
    assert seqs_in(tmp_path / "agent.log.1") == list(range(10))
    send_records(d.socket_path, [{"msg": "second", "seq": i} for i in range(10, 20)])
    d.signal(signal.SIGUSR1)
    wait_for(lambda: (tmp_path / "agent.log.2.gz").exists() and not (tmp_path / "agent.log.2").exists(), 10,
             what="SIGUSR1 rotation and the gzip of the older backup")
    send_records(d.socket_path, [{"msg": "third", "seq": 20}])
    assert request(d.socket_path, "status")["sinks"]["file"]["rotations"] == 2
    d.stop()
    assert names(tmp_path)[:3] == ["agent.log", "agent.log.1", "agent.log.2.gz"]
    assert all_seqs(log) == list(range(21))
    rotated = [r for r in own_records(log) if r.get("event") == "rotate"]
    assert [r["reason"] for r in rotated] == ["logd rotate", "SIGUSR1"]


def test_logd_rotate_without_a_file_says_so(daemon, tmp_path):
    d = daemon("")
    out = subprocess.run([sys.executable, "-m", "logd", "rotate", "--socket", str(d.socket_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "no log file is configured" in out.stderr


def test_reloads_while_rotating_under_load_lose_and_repeat_nothing(daemon, tmp_path):
    """A reload builds a new file sink before the old one's last batch: both share the path's
    rotation state, so whichever rotates, the other follows; a new policy (gzip) applies."""
    d = daemon('file = "agent.log"\nfile_only = true\nmax_size = 0.02\ncompress = true')
    sender = threading.Thread(target=paced_send, args=(d.socket_path, 3_000), kwargs={"pause": 0.002})
    sender.start()
    original = d.config.read_text()
    for i, extra in enumerate(['\nlevel = "debug"', '\nlevel = "info"', '\ncompression = "gzip"']):
        wait_for(lambda i=i: len(backup_names(tmp_path / "agent.log")) >= 3 * (i + 1), 20, what="rotations")
        d.config.write_text(original.replace("compress = true", "compress = true" + extra))
        d.signal(signal.SIGHUP)
    sender.join(60)
    wait_for(lambda: [r for r in own_records(tmp_path / "agent.log") if r.get("event") == "reload"
                      and any("compression" in c for c in r.get("changed", []))], 20, what="the gzip reload")
    paced_send(d.socket_path, 600, start=3_000)  # rotations under the new policy
    wait_for(lambda: not [b for b in Names(tmp_path / "agent.log").scan()[1:] if b.plain or b.temp], 20,
             what="compression to catch up")
    d.stop()
    assert all_seqs(tmp_path / "agent.log") == list(range(3_600))
    assert [r for r in own_records(tmp_path / "agent.log") if r.get("event") == "reload"]
    assert any(n.endswith(".gz") for n in backup_names(tmp_path / "agent.log")) and any(
        n.endswith(".zst") for n in backup_names(tmp_path / "agent.log"))
