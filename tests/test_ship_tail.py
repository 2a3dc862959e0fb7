"""The one follower of rotating files (logd/logfiles/follow.py) as the shippers use it, and
their checkpoints, on real rotated files (renamed, compressed, replaced): it resumes exactly
where a checkpoint says, whatever happened to the names."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from logd.logfiles.follow import Follower
from logd.ship.checkpoint import CheckpointError, CheckpointStore, Position
from logd.ship.settings import ShipSettings
from logd.ship.shipper import Shipper

from logsets import lines, record, write


def seqs(follower: Follower, max_lines: int = 1000, rounds: int = 50) -> list[int]:
    """Everything the follower has to give now."""
    out = []
    for _ in range(rounds):
        chunk = follower.read(max_lines)
        if chunk is None:
            break
        out.extend(orjson.loads(line)["seq"] for line in chunk.lines)
    return out


def append(path: Path, start: int, count: int) -> None:
    with open(path, "ab") as f:
        f.write(lines(record(s) for s in range(start, start + count)))


def rotate(log: Path, compression: str = "") -> None:
    """What rotation does: shift backups up (higher = older, compressing), agent.log -> agent.log.1."""
    numbered = sorted((p for p in log.parent.glob(log.name + ".*") if p.name.split(".")[2].isdigit()),
                      key=lambda p: -int(p.name.split(".")[2]))
    for path in numbered:
        n = int(path.name.split(".")[2])
        plain = path.read_bytes() if path.suffix not in (".zst", ".gz") else None
        target = log.with_name(f"{log.name}.{n + 1}{'.' + compression if compression else ''}")
        if plain is not None and compression:
            write(target, plain)
            path.unlink()
        else:
            path.rename(log.with_name(f"{log.name}.{n + 1}{path.name[len(log.name) + 2 + len(str(n)):]}"))
    log.rename(log.with_name(log.name + ".1"))


def test_follows_rename_rotation_without_loss_or_repeat(tmp_path):
    """Lines read before, during and after a rename rotation come out once, in order."""
    log = tmp_path / "agent.log"
    append(log, 0, 10)
    follower = Follower(log, None)
    assert seqs(follower, max_lines=4, rounds=1) == [0, 1, 2, 3]
    append(log, 10, 2)  # written just before the rotation: still read from the renamed file
    rotate(log)
    assert seqs(follower, max_lines=4) == list(range(4, 12))  # the new file does not exist yet
    append(log, 12, 5)
    assert seqs(follower) == list(range(12, 17))
    append(log, 17, 3)
    assert seqs(follower) == [17, 18, 19]


@pytest.mark.parametrize("compression", ["zst", "gz"])
def test_checkpoint_survives_restart_rotation_and_compression(tmp_path, compression):
    """A position saved mid-file resumes exactly after the file became agent.log.2.zst (or .gz)."""
    log = tmp_path / "agent.log"
    append(log, 0, 10)
    follower = Follower(log, None)
    chunk = follower.read(7)
    assert chunk is not None and len(chunk.lines) == 7
    store = CheckpointStore(tmp_path / "state", "central")
    store.save(chunk.end, 7)
    follower.close()  # "restart": nothing kept but the checkpoint

    append(log, 10, 5)
    rotate(log, compression)
    append(log, 15, 5)
    rotate(log, compression)
    append(log, 20, 5)
    assert sorted(p.name for p in tmp_path.glob("agent.log*")) == [
        "agent.log", "agent.log.1", f"agent.log.2.{compression}"]

    position, delivered = store.load()
    assert delivered == 7 and position == chunk.end
    resumed = Follower(log, position)
    assert seqs(resumed, max_lines=3) == list(range(7, 25))


def test_replaced_file_is_not_mistaken_for_the_checkpointed_one(tmp_path):
    """Same name, other first line: the checkpoint's offset is not applied to the newcomer."""
    log = tmp_path / "agent.log"
    append(log, 0, 10)
    follower = Follower(log, None)
    position = follower.read(10).end
    follower.close()
    log.unlink()
    log.write_bytes(lines(record(s) for s in range(100, 130)))  # longer than the old offset
    assert seqs(Follower(log, position)) == list(range(100, 130))


def test_finished_file_deleted_after_checkpoint_resumes_at_the_next(tmp_path):
    """A checkpoint at the end of a backup that retention then removed resumes at the newer file."""
    log = tmp_path / "agent.log"
    append(log, 0, 5)
    follower = Follower(log, None)
    position = follower.read(100).end
    rotate(log)
    append(log, 5, 5)
    follower.close()
    (tmp_path / "agent.log.1").unlink()
    assert seqs(Follower(log, position)) == list(range(5, 10))


def test_incomplete_last_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "agent.log"
    data = lines([record(0), record(1)])
    log.write_bytes(data[:-10])
    follower = Follower(log, None)
    assert seqs(follower) == [0]
    with open(log, "ab") as f:
        f.write(data[-10:])
    assert seqs(follower) == [1]


def test_empty_current_file_after_rotation_is_picked_up_when_written(tmp_path):
    log = tmp_path / "agent.log"
    append(log, 0, 3)
    follower = Follower(log, None)
    assert seqs(follower) == [0, 1, 2]
    rotate(log)
    log.touch()
    assert seqs(follower) == []
    append(log, 3, 2)
    assert seqs(follower) == [3, 4]
    assert follower.position is not None and follower.position.file == "agent.log"


def test_damaged_backup_is_reported_and_reading_goes_on(tmp_path):
    log = tmp_path / "agent.log"
    good = write(tmp_path / "agent.log.2.zst", lines(record(s) for s in range(0, 50)))
    (tmp_path / "agent.log.2.zst").write_bytes(good.read_bytes()[:-40])  # cut inside the frame
    write(tmp_path / "agent.log.1", lines(record(s) for s in range(50, 55)))
    append(log, 55, 2)
    problems = []
    got = seqs(Follower(log, None, on_problem=problems.append))
    assert got[-7:] == list(range(50, 57))
    assert len(problems) == 1 and "agent.log.2.zst" in str(problems[0])


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    store = CheckpointStore(tmp_path, "central")
    store.path.write_text("{not json")
    with pytest.raises(CheckpointError, match="central.checkpoint.json"):
        store.load()


def test_checkpoint_is_replaced_atomically(tmp_path):
    store = CheckpointStore(tmp_path / "state", "central")
    store.save(Position("ab" * 16, 100, "2026-11-23T11:28:07.000000Z", "agent.log"), 3)
    store.save(Position("cd" * 16, 7, None, "agent.log.1"), 4)
    assert store.load() == (Position("cd" * 16, 7, None, "agent.log.1"), 4)
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["central.checkpoint.json"]
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"


def test_retention_of_unshipped_backup_is_counted_as_loss(tmp_path):
    """Backups retention is about to delete: records after the checkpoint count as lost; shipped ones do not."""
    log = tmp_path / "agent.log"
    write(tmp_path / "agent.log.3.zst", lines(record(s) for s in range(0, 10)))
    write(tmp_path / "agent.log.2.zst", lines(record(s) for s in range(10, 20)))
    write(tmp_path / "agent.log.1", lines(record(s) for s in range(20, 30)))
    append(log, 30, 5)
    follower = Follower(log, None)
    first = follower.read(10)
    mid = follower.read(4)  # into agent.log.2.zst: 4 of its 10 shipped
    assert [orjson.loads(line)["seq"] for line in mid.lines] == [10, 11, 12, 13]
    follower.close()
    store = CheckpointStore(tmp_path / "state", "central")
    store.save(mid.end, 14)
    notes = []
    shipper = Shipper(ShipSettings(type="http", url="http://127.0.0.1:9/", name="central"), log, tmp_path / "state",
                      notify=lambda level, message, **fields: notes.append((level, message, fields)))
    shipper.position, _ = store.load()
    assert first is not None
    assert shipper.before_delete([tmp_path / "agent.log.3.zst"]) == 0  # all shipped
    assert shipper.before_delete([tmp_path / "agent.log.2.zst", tmp_path / "agent.log.1"]) == 6 + 10
    assert shipper.stats.lost_to_retention == 16
    assert notes and notes[0][0] == "error" and notes[0][2]["lost"] == 16
    assert shipper.lag() == (6 + 10 + 5, sum(len(lines([record(s)])) for s in range(14, 35)))


def test_files_starting_with_the_same_line_are_told_apart(tmp_path):
    """A burst of identical records can start two files with the same line; the checkpoint's
    file, once deleted, is not mistaken for the next one (which would skip its first lines)."""
    log = tmp_path / "agent.log"
    burst = lines([record(0, message="heartbeat")] * 5)  # same time, same text
    log.write_bytes(burst + lines(record(s) for s in range(1, 40)))
    follower = Follower(log, None)
    position = follower.read(10).end  # 5 heartbeats and seq 1..5
    follower.close()
    rotate(log)
    log.write_bytes(burst + lines(record(s) for s in range(100, 140)))
    (tmp_path / "agent.log.1").unlink()  # retention took the checkpoint's file
    got = seqs(Follower(log, position))
    assert got == [0] * 5 + list(range(100, 140))


def test_copytruncate_rotation_resumes_in_the_copy_then_the_emptied_file(tmp_path):
    """logrotate's copytruncate: the file is copied to agent.log.1 and cut to zero in place;
    what was not read yet comes from the copy (same first bytes), then the new lines."""
    log = tmp_path / "agent.log"
    append(log, 0, 10)
    follower = Follower(log, None)
    assert seqs(follower, max_lines=4, rounds=1) == [0, 1, 2, 3]
    (tmp_path / "agent.log.1").write_bytes(log.read_bytes())
    os.truncate(log, 0)
    assert seqs(follower) == list(range(4, 10))
    append(log, 10, 3)
    assert seqs(follower) == [10, 11, 12]
