"""Issue 18, findings 5 and 6 (files): a deleted log folder or file is recreated at the next
write, SIGTERM on a full disk drains what it can and never leaves a torn line, the next
start begins on a fresh line, and a symlink swapped in for the log file is refused. Real
``logd run`` subprocesses; the full disk is a real tmpfs mounted for the test."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from logd.control import ControlError, control_path, request

from support import DaemonProcess, agent_records, send_records, wait_for, write_config


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line]


def test_a_deleted_log_folder_is_recreated_at_the_next_write(daemon, tmp_path):
    d = daemon('file = "logs/agent.log"\nfile_only = true\nmax_size = 1')
    send_records(d.socket_path, [{"message": f"before-{i}"} for i in range(100)])
    wait_for(lambda: len(agent_records(tmp_path / "logs" / "agent.log")) == 100, what="first records")
    shutil.rmtree(tmp_path / "logs")
    send_records(d.socket_path, [{"message": f"after-{i}"} for i in range(100)])  # no SIGHUP
    log = tmp_path / "logs" / "agent.log"
    wait_for(lambda: log.exists() and len(agent_records(log)) == 100, what="the folder and file recreated")
    assert [r["message"] for r in agent_records(log)] == [f"after-{i}" for i in range(100)]
    status = request(d.socket_path, "status")
    assert status["paused"] is False and status["sinks"]["file"]["writable"] is True
    assert d.stop() == 0
    assert any(r.get("message") == "log file was deleted; recreated it" for r in orjson_lines(log))


def test_a_deleted_log_file_is_recreated_at_the_next_write(daemon, tmp_path):
    d = daemon('file = "agent.log"\nfile_only = true')
    send_records(d.socket_path, [{"message": "one"}])
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 1, what="first record")
    (tmp_path / "agent.log").unlink()
    send_records(d.socket_path, [{"message": "two"}])
    wait_for(lambda: (tmp_path / "agent.log").exists() and agent_records(tmp_path / "agent.log"), what="recreated")
    assert d.stop() == 0
    assert [r["message"] for r in agent_records(tmp_path / "agent.log")] == ["two"]


def orjson_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in lines_of(path)]


def test_the_next_start_begins_on_a_fresh_line_after_a_torn_one(daemon, tmp_path):
    (tmp_path / "agent.log").write_bytes(b'{"message":"whole"}\n{"message":"tor')  # a logd killed mid-write
    d = daemon('file = "agent.log"\nfile_only = true')
    send_records(d.socket_path, [{"message": "next"}])
    assert d.stop() == 0
    lines = lines_of(tmp_path / "agent.log")
    assert lines[:2] == [b'{"message":"whole"}', b'{"message":"tor']  # the fragment is left as it was
    parsed = [orjson.loads(line) for line in lines[2:]]
    assert [r["message"] for r in parsed if r.get("agent") != "logd"] == ["next"]


def test_a_symlink_swapped_in_for_the_log_file_is_refused(daemon, tmp_path):
    d = daemon('file = "agent.log"\nfile_only = true')
    target = tmp_path / "precious.txt"
    target.write_bytes(b"do not append here\n")
    (tmp_path / "agent.log").unlink()
    (tmp_path / "agent.log").symlink_to(target)
    d.signal(signal.SIGHUP)  # reopen: the path is now a link
    wait_for(lambda: "is a symbolic link" in d.stderr(), what="the refusal")
    send_records_async(d.socket_path, [{"message": "held, not lost"}])
    assert target.read_bytes() == b"do not append here\n"
    (tmp_path / "agent.log").unlink()  # the operator removes the link: held records are written
    wait_for(lambda: (tmp_path / "agent.log").exists() and any(
        r["message"] == "held, not lost" for r in agent_records(tmp_path / "agent.log")), what="held records")
    assert d.stop() == 0
    assert target.read_bytes() == b"do not append here\n"


def send_records_async(path: Path, records: list[dict]) -> threading.Thread:
    t = threading.Thread(target=send_records, args=(path, records), daemon=True)
    t.start()
    return t


# --- a full disk: a real, small tmpfs ---

@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a full disk)")
    folder = Path(tempfile.mkdtemp(prefix="logd-full-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path) -> Path:
    """Fill the disk to the last byte; returns the filler file (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 4096
        while True:
            try:
                if os.write(fd, block) == 0:
                    break
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                try:
                    os.write(fd, b"\0")  # the last bytes of a page
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def start_on(disk: Path, sock_dir: Path) -> DaemonProcess:
    """logd with only its log file on ``disk`` (its config and stderr are elsewhere)."""
    config = write_config(sock_dir, sock_dir / "logd.sock", f'file = "{disk}/agent.log"\nfile_only = true')
    d = DaemonProcess(config, sock_dir / "logd.sock", sock_dir).start()
    log = disk / "agent.log"  # its start record is written before the tests fill the disk
    wait_for(lambda: log.exists() and log.stat().st_size > 0, what="logd's start record in the file")
    return d


def send_raw(path: Path, data: bytes) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.fspath(path))
    s.sendall(data)
    s.close()


RECORDS = b"".join(b'{"message":"accepted-%d","pad":"%s"}\n' % (i, b"p" * 60) for i in range(889))


def test_sigterm_on_a_full_disk_drains_once_space_is_back_and_loses_nothing(small_disk, sock_dir):
    d = start_on(small_disk, sock_dir)
    filler = fill(small_disk)
    send_raw(d.socket_path, RECORDS)
    wait_for(lambda: request(d.socket_path, "status")["paused"], what="the file sink to fail")
    d.signal(signal.SIGTERM)
    wait_for(lambda: not control_path(d.socket_path).exists(), what="shutdown to begin")
    assert d.proc.poll() is None  # still retrying the full disk, not gone with the records
    filler.unlink()
    assert d.proc.wait(30) == 0
    data = (small_disk / "agent.log").read_bytes()
    assert data.endswith(b"\n")
    messages = [orjson.loads(line)["message"] for line in data.split(b"\n") if line]
    assert [m for m in messages if m.startswith("accepted-")] == [f"accepted-{i}" for i in range(889)]


def test_sigterm_on_a_disk_that_stays_full_leaves_no_torn_line_and_says_what_was_lost(small_disk, sock_dir):
    d = start_on(small_disk, sock_dir)
    filler = fill(small_disk)
    send_raw(d.socket_path, RECORDS)
    wait_for(lambda: request(d.socket_path, "status")["paused"], what="the file sink to fail")
    d.signal(signal.SIGTERM)
    assert d.proc.wait(30) == 1
    lost = [line for line in d.stderr().splitlines() if "could not write" in line]
    assert len(lost) == 1 and "No space left on device" in lost[0]
    data = (small_disk / "agent.log").read_bytes()
    assert data.endswith(b"\n")  # a torn last line was taken back
    written = [orjson.loads(line) for line in data.split(b"\n") if line]
    count = int(lost[0].split("could not write ")[1].split()[0])
    assert count + sum(1 for r in written if r["message"].startswith("accepted-")) >= 889
    filler.unlink()
    again = start_on(small_disk, sock_dir)
    send_records(again.socket_path, [{"message": "after restart"}])
    assert again.stop() == 0
    assert agent_records(small_disk / "agent.log")[-1]["message"] == "after restart"
    with pytest.raises(ControlError):
        request(again.socket_path, "ping")
