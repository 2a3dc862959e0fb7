"""The log files' one identity rule and one follower (logd/logfiles/), where `logd tail -f`,
the shippers and the readers meet: logd's own rotation and compression under two readers
of one folder, a writer's last lines after a rename, a checkpoint written by the previous
release, links and FIFOs named like backups, and the identity rule itself."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import pytest

from logd.logfiles import follow
from logd.logfiles.content import Problem, read_lines
from logd.logfiles.follow import Follower
from logd.logfiles.identity import HEAD_BYTES, Head, Identity, Position
from logd.logfiles.names import Names
from logd.logfiles.snapshot import snapshot
from logd.reading.tail import TailFollower
from logd.rotation import Compression, RotationPolicy, SizeLimit
from logd.ship.checkpoint import CheckpointStore
from logd.sinks.file import FileSink

from logsets import BASE, compress_file, lines, record, write
from rotation_support import batch


def seq_of(lines_: list[bytes]) -> list[int]:
    return [orjson.loads(line)["seq"] for line in lines_]


def drain(follower: Follower, max_lines: int = 7) -> list[bytes]:
    """Everything the follower has to give now, a few lines at a time (as a shipper batches);
    a follower that lost its place and reads on and on fails, rather than hangs, the test."""
    got: list[bytes] = []
    while (chunk := follower.read(max_lines)) is not None:
        got.extend(chunk.lines)
        assert len(got) < 10_000, "the follower reads the same lines again and again"
    return got


def append(path: Path, seqs: range) -> None:
    with path.open("ab") as f:
        f.write(lines(record(s) for s in seqs))


@pytest.mark.parametrize("layout", ["dated", "numbered"])
def test_tail_f_and_a_shipper_follow_one_folder_through_logds_rotation_and_compression(tmp_path: Path,
                                                                                      layout: str) -> None:
    """logd's file sink rotates every 2 kB while its compressor replaces backups by .zst on
    its own thread; `tail -f` and a shipper (restarted from its saved checkpoint midway) read
    the same folder, each at its own pace: each sees every line once, in order."""
    log = tmp_path / "agent.log"
    sink = FileSink(log, RotationPolicy(size=SizeLimit(2_000), compression=Compression(), names=layout))
    problems: list[Problem] = []
    shown: list[bytes] = []
    shipped: list[bytes] = []
    store = CheckpointStore(tmp_path / "state", "central")
    try:
        sink.write(batch(0, 5))
        tail = TailFollower(log, shown.extend, problems.append)
        tail.poll()
        shipper = Follower(log, None, problems.append)
        seq = 5
        for turn in range(8):
            sink.write(batch(seq, 13))  # ~2.3 kB: a rotation or more each turn
            seq += 13
            if turn % 2:
                tail.poll()  # tail -f falls behind every other turn
            if turn % 3 != 1:
                shipped.extend(drain(shipper))
            if turn == 4:  # the shipper restarts: only its checkpoint survives
                assert shipper.position is not None
                store.save(shipper.position, len(shipped))
                shipper.close()
                position, delivered = store.load()
                assert delivered == len(shipped)
                shipper = Follower(log, position, problems.append)
            if turn % 3 == 0:
                assert sink.settle(20)  # the compressor's pass is done: backups are .zst now
        assert sink.settle(20)
        tail.poll()
        shipped.extend(drain(shipper))
        shipper.close()
        tail.follower.close()
    finally:
        sink.close()
    assert seq_of(shown) == list(range(seq))
    assert seq_of(shipped) == list(range(seq))
    assert problems == []
    backups = [b.main.name for b in Names(log).scan()]
    assert len(backups) >= 8 and sum(name.endswith(".zst") for name in backups) == len(backups) - 1, backups


def test_a_shipper_reads_the_writers_last_lines_in_a_renamed_file(tmp_path: Path) -> None:
    """logrotate renames the file and only then tells the writer (SIGHUP): the writer's last
    lines land in the renamed file while the new one is empty. The shipper reads them before
    moving on (it used to move to the new file at once, and never shipped those lines)."""
    log = tmp_path / "agent.log"
    append(log, range(0, 3))
    follower = Follower(log, None)
    assert seq_of(drain(follower)) == [0, 1, 2]
    os.replace(log, tmp_path / "agent.log.1")
    log.touch()  # logrotate's create: the new file exists, empty
    assert drain(follower) == []
    append(tmp_path / "agent.log.1", range(3, 5))  # the writer, still on its old descriptor
    assert seq_of(drain(follower)) == [3, 4]
    append(log, range(5, 8))  # reopened: from here on it writes the new file
    assert seq_of(drain(follower)) == [5, 6, 7]
    follower.close()


def test_a_rotation_between_the_followers_look_and_its_open_skips_no_file(tmp_path: Path, monkeypatch) -> None:
    """The follower lists the folder, then opens the file after the one it finished. A
    rotation landing in between (agent.log now names a newer file) must not make it skip
    the file that was current when it looked. It did: the name was opened again, and a
    young file's few first bytes could not tell the two apart."""
    log = tmp_path / "agent.log"
    names = Names(log)
    append(log, range(0, 3))
    follower = Follower(log, None)
    assert seq_of(drain(follower)) == [0, 1, 2]
    os.replace(log, names.dated(BASE))  # rotated: ours is a backup now
    append(log, range(3, 5))  # the new current file has data: the writer has left ours
    rotated: list[Path] = []
    real_info = follow.file_info

    def rotation_lands(path: Path, *rest: object) -> follow.FileInfo:
        if path == log and not rotated:  # the follower looks at the file after ours: rotate it now
            rotated.append(names.dated(BASE + 1))
            os.replace(log, rotated[0])
            append(log, range(5, 7))
        return real_info(path, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(follow, "file_info", rotation_lands)
    assert seq_of(drain(follower)) == [3, 4, 5, 6]
    assert rotated
    follower.close()


def test_a_numbered_rotation_caught_half_way_skips_no_file(tmp_path: Path, monkeypatch) -> None:
    """A numbered rotation renames every backup up one, oldest first, and the current file
    last. Caught half-way (the backups moved, the current file not yet), the name the
    follower listed for the file after its own holds a newer file: it must still read the
    file right after the one it finished."""
    log = tmp_path / "agent.log"

    def rotate() -> None:  # as rotation does with numbered names, all at once
        for number in sorted((int(p.name.rsplit(".", 1)[1]) for p in tmp_path.glob("agent.log.*")), reverse=True):
            os.replace(log.with_name(f"agent.log.{number}"), log.with_name(f"agent.log.{number + 1}"))
        os.replace(log, log.with_name("agent.log.1"))

    append(log, range(0, 2))
    follower = Follower(log, None)
    assert seq_of(drain(follower)) == [0, 1]
    for seqs in (range(2, 4), range(4, 6), range(6, 8)):
        rotate()
        append(log, seqs)  # ours is agent.log.3 now, then .2 [2, 3], .1 [4, 5], agent.log [6, 7]
    moved: list[bool] = []
    real_info = follow.file_info

    def half_a_rotation(path: Path, *rest: object) -> follow.FileInfo:
        if path.name == "agent.log.2" and not moved:  # the file after ours: the renames land now
            moved.append(True)
            for number in (3, 2, 1):
                os.replace(log.with_name(f"agent.log.{number}"), log.with_name(f"agent.log.{number + 1}"))
        return real_info(path, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(follow, "file_info", half_a_rotation)
    assert seq_of(drain(follower)) == [2, 3, 4, 5, 6, 7]
    assert moved
    follower.close()


def test_a_checkpoint_saved_by_the_previous_release_resumes_exactly(tmp_path: Path) -> None:
    """An upgrade neither re-ships nor skips: a checkpoint file as the previous release wrote
    it (sha256 of the first 4 KiB, 32 hex digits; offset in uncompressed bytes) resumes at the
    same record after its file was rotated and compressed."""
    log = tmp_path / "agent.log"
    append(log, range(0, 200))
    data = log.read_bytes()
    offset = sum(len(line) + 1 for line in data.split(b"\n")[:50])  # after 50 records
    state = tmp_path / "state"
    state.mkdir()
    (state / "central.checkpoint.json").write_bytes(orjson.dumps({
        "fingerprint": hashlib.sha256(data[:4096]).hexdigest()[:32], "offset": offset,
        "first_time": record(0)["time"], "file": "agent.log", "fp_len": 4096, "delivered": 50}))
    os.replace(log, tmp_path / "agent.log.1")
    compress_file(tmp_path / "agent.log.1", tmp_path / "agent.log.1.zst")
    append(log, range(200, 210))
    position, delivered = CheckpointStore(state, "central").load()
    assert delivered == 50 and position is not None and position.offset == offset
    follower = Follower(log, position)
    assert seq_of(drain(follower, 1000)) == list(range(50, 210))
    follower.close()


def test_links_and_fifos_named_like_backups_are_reported_and_passed_over(tmp_path: Path) -> None:
    """Every reader opens through one opener: a symbolic link named like a backup is not
    followed to the file it names, a FIFO does not hang the reader; each is reported once and
    the other files are read (the shipper's follower and the query's snapshot alike)."""
    secret = tmp_path / "elsewhere.log"
    write(secret, lines(record(s) for s in range(1000, 1003)))
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "agent.log"
    write(folder / "agent.log.3", lines(record(s) for s in range(0, 3)))
    (folder / "agent.log.2").symlink_to(secret)
    os.mkfifo(folder / "agent.log.1")
    append(log, range(3, 6))

    problems: list[Problem] = []
    follower = Follower(log, None, problems.append)
    assert seq_of(drain(follower)) == [0, 1, 2, 3, 4, 5]
    append(log, range(6, 8))
    assert seq_of(drain(follower)) == [6, 7]
    follower.close()
    assert sorted(p.path.name for p in problems) == ["agent.log.1", "agent.log.2"]
    assert all("skipped" in p.message for p in problems)

    problems.clear()
    with snapshot(log) as files:
        got = seq_of([line for batch_ in read_lines(files, problems.append) for line in batch_])
    assert got == list(range(8))
    assert sorted(p.path.name for p in problems) == ["agent.log.1", "agent.log.2"]


def test_the_identity_rule(tmp_path: Path) -> None:
    """One rule for which file is which: the same inode with the same head; the compressed
    copy (a new inode) by its head, or by its rotation time when the head was never read;
    never a file that only reuses an inode number, nor a plain copy."""
    plain = write(tmp_path / "agent.log.2", lines(record(s) for s in range(100)))
    head = plain.read_bytes()[:HEAD_BYTES]
    st = os.stat(plain)
    compressed = write(tmp_path / "agent.log.2.zst", plain.read_bytes())
    os.utime(compressed, ns=(st.st_atime_ns, st.st_mtime_ns))  # as the compressor keeps the rotation time
    zst = os.stat(compressed)
    other = write(tmp_path / "agent.log.1", lines(record(s) for s in range(100, 200)))
    other_head = other.read_bytes()[:HEAD_BYTES]

    read = Identity.of(st, head)
    assert read.head is not None and read.recognises(st, "", lambda: head)  # the very file
    assert read.recognises(zst, "zst", lambda: head)  # its compressed copy: same head
    assert not read.recognises(zst, "zst", lambda: other_head)
    reused = os.stat_result(list(os.stat(other)[:10]), {"st_mtime_ns": os.stat(other).st_mtime_ns})
    assert not Identity(reused.st_dev, reused.st_ino, Head.of(head)).recognises(reused, "", lambda: other_head)
    copy = write(tmp_path / "copy.log", plain.read_bytes())  # copytruncate's copy: plain, new inode
    assert not read.recognises(os.stat(copy), "", lambda: head)
    assert Position(read.head.fingerprint, 10, fp_len=read.head.length).identifies(head)  # a checkpoint finds it

    noted = Identity.of(st, compression="")  # a snapshot's note: stat only, never read
    assert noted.head is None
    assert noted.recognises(zst, "zst", lambda: b"")  # the compressed copy, by its rotation time
    assert not noted.recognises(os.stat(other), "", lambda: b"")

    young = Head.of(head[:100])  # a head taken while the file had 100 bytes names it grown
    assert young.length == 100 and young.names(head) and not young.names(other_head)
