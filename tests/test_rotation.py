"""logd.rotation on real files: crashes at every step of the rename cascade and of compression,
rotation while a compression runs, shutdown during compression, and the config keys."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from logd.config import ConfigError, parse_config
from logd.pipeline import Batch
from logd.rotation import Compression, FileSet, Retention, RotationPolicy, SizeLimit, parse_rotate_every
from logd.sinks.file import FileSink

from rotation_support import all_seqs, batch, decompress, names
from support import wait_for


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, not even except/finally cleanup that catches Exception."""


def build_set(folder: Path, lines: int = 400) -> Path:
    """A real rotated set: agent.log, .1 (plain), .2.zst ... written by the sink itself."""
    sink = FileSink(folder / "agent.log",
                    RotationPolicy(names="numbered", size=SizeLimit(3_000), compression=Compression()))
    for i in range(0, lines, 20):
        sink.write(batch(i, 20))
    assert sink.settle(20)
    sink.close()
    return folder / "agent.log"


def crashing_rename(after: int):
    calls = {"n": 0}

    def rename(src, dst):
        if calls["n"] >= after:
            raise Crash()
        calls["n"] += 1
        os.rename(src, dst)
    return rename


def assert_consistent(current: Path, expected: list[int], suffix: str = ".zst") -> None:
    files = names(current.parent)
    backups = len(files) - 1
    assert files == ["agent.log", "agent.log.1"] + [f"agent.log.{n}{suffix}" for n in range(2, backups + 1)]
    assert all_seqs(current) == expected


def test_kill_at_every_step_of_the_rename_cascade_then_restart_loses_and_repeats_nothing(tmp_path):
    original = build_set(tmp_path / "original")
    expected = all_seqs(original)
    steps = len(names(original.parent))  # one rename per backup, then the current file
    assert steps >= 6
    for after in range(steps + 1):
        folder = tmp_path / f"crash{after}"
        shutil.copytree(original.parent, folder)
        files = FileSet(folder / "agent.log", RotationPolicy(names="numbered", compression=Compression()))
        files.rename = crashing_rename(after)
        if after < steps:
            with pytest.raises(Crash):
                files.rotate()
        else:
            files.rotate()
        # restart: a new sink on the folder recovers it, then keeps writing and rotating
        sink = FileSink(folder / "agent.log",
                        RotationPolicy(names="numbered", size=SizeLimit(3_000), compression=Compression()))
        sink.write(batch(10_000, 30))
        assert sink.settle(20)
        sink.close()
        assert_consistent(folder / "agent.log", expected + list(range(10_000, 10_030)))


def test_kill_during_compression_then_restart_finishes_it(tmp_path):
    """Crash points of one compression: mid-write (partial .tmp), before the rename (complete .tmp),
    after the rename before the unlink (plain and .zst both there)."""
    original = build_set(tmp_path / "original")
    expected = all_seqs(original)
    plain_two = decompress(original.parent / "agent.log.2.zst")

    def case(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(original.parent, folder)
        (folder / "agent.log.2").write_bytes(plain_two)
        return folder

    partial = case("partial")
    (partial / "agent.log.2.zst").rename(partial / "agent.log.2.zst.tmp")
    with open(partial / "agent.log.2.zst.tmp", "r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    complete_tmp = case("complete_tmp")
    (complete_tmp / "agent.log.2.zst").rename(complete_tmp / "agent.log.2.zst.tmp")
    both = case("both")  # plain and compressed: the unlink did not happen
    for folder in (partial, complete_tmp, both):
        sink = FileSink(folder / "agent.log",
                        RotationPolicy(names="numbered", size=SizeLimit(3_000), compression=Compression()))
        sink.open()
        assert sink.settle(20)
        sink.close()
        assert_consistent(folder / "agent.log", expected)


def test_recovery_closes_gaps_and_finishes_retention(tmp_path):
    log = tmp_path / "agent.log"
    log.write_bytes(orjson.dumps({"seq": 9}) + b"\n")
    for number, seq in ((1, 8), (3, 7), (4, 6), (7, 5)):  # a cascade cut short, twice
        (tmp_path / f"agent.log.{number}").write_bytes(orjson.dumps({"seq": seq}) + b"\n")
    (tmp_path / "agent.log.deleting.9.zst").write_bytes(b"retention had decided")
    files = FileSet(log, RotationPolicy(names="numbered"))
    done = files.recover()
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2", "agent.log.3", "agent.log.4"]
    assert all_seqs(log) == [5, 6, 7, 8, 9]
    assert any("retention" in d for d in done) and any("renumbered" in d for d in done)


def test_rotation_during_compression_renames_the_work_and_never_waits_for_it(tmp_path):
    """Rotations go on while a slow compression runs: the backup being compressed and its .tmp
    move up a number each time, and the finished file lands under its new number."""
    log = tmp_path / "agent.log"
    sink = FileSink(log, RotationPolicy(names="numbered", size=SizeLimit(4 << 20), compression=Compression("zstd", 19)))
    try:
        big = Batch([{**orjson.loads(orjson.dumps({"seq": i})), "noise": os.urandom(24).hex() * 4}
                     for i in range(8_000)])  # ~1.7 MB that zstd -19 takes a while over
        sink.write(big)
        sink.rotate_now()
        sink.write(batch(100_000, 5))
        sink.rotate_now()  # .1 (the big one) -> .2: its compression starts in the background
        wait_for(lambda: (tmp_path / "agent.log.2.zst.tmp").exists(), 10, interval=0.001,
                 what="the compression to start")
        for i in range(2):
            sink.write(batch(100_100 + i * 10, 5))
            assert sink.rotate_now()
            # the rotation returned while the compression still runs, now under number 3, then 4
            assert (tmp_path / f"agent.log.{3 + i}.zst.tmp").exists() and (tmp_path / f"agent.log.{3 + i}").exists()
        assert sink.settle(60)
        assert_consistent(log, list(range(8_000)) + list(range(100_000, 100_005)) + list(range(100_100, 100_105))
                          + list(range(100_110, 100_115)))
    finally:
        sink.close()


def test_shutdown_abandons_a_running_compression_and_the_next_start_redoes_it(tmp_path):
    log = tmp_path / "agent.log"
    policy = RotationPolicy(names="numbered", size=SizeLimit(8 << 20), compression=Compression("zstd", 19))
    sink = FileSink(log, policy)
    sink.write(Batch([{"seq": i, "noise": os.urandom(24).hex() * 4} for i in range(8_000)]))
    sink.rotate_now()
    sink.write(batch(100_000, 5))
    sink.rotate_now()
    wait_for(lambda: (tmp_path / "agent.log.2.zst.tmp").exists(), 10, interval=0.001, what="the compression")
    sink.close()
    # shutdown did not wait for zstd -19: the .tmp is gone, the source kept, nothing compressed
    assert names(tmp_path) == ["agent.log", "agent.log.1", "agent.log.2"]
    again = FileSink(log, RotationPolicy(names="numbered", size=SizeLimit(8 << 20), compression=Compression("zstd", 3)))
    again.open()
    assert again.settle(30)
    again.close()
    assert_consistent(log, list(range(8_000)) + list(range(100_000, 100_005)))


def test_retention_hook_sees_the_files_it_is_told_about_while_rotations_go_on(tmp_path):
    """The hook gets the doomed backups under names no rotation touches, so what it reads is what goes."""
    seen: list[int] = []

    def on_delete(paths: list[Path]) -> None:
        for path in paths:
            seen.extend(orjson.loads(line)["seq"] for line in decompress(path).splitlines())

    log = tmp_path / "agent.log"
    sink = FileSink(log, RotationPolicy(names="numbered", size=SizeLimit(1_500), compression=Compression(),
                                        retention=Retention(max_backups=2)), on_delete=on_delete)
    for i in range(0, 600, 10):
        sink.write(batch(i, 10))
    assert sink.settle(20)
    sink.close()
    kept = all_seqs(log)
    assert sorted(seen + kept) == list(range(600))
    assert not [n for n in os.listdir(tmp_path) if ".deleting" in n]


@pytest.mark.parametrize("body,key,expected", [
    ('compression = "lz4"', "logging.compression", 'expected one of "zstd", "gzip", found string "lz4"'),
    ('compression = "gzip"\ncompression_level = 12', "logging.compression_level",
     "expected a gzip level from 1 to 9, found integer 12"),
    ("compression_level = 23", "logging.compression_level", "expected a zstd level from 1 to 22, found integer 23"),
    ('rotate_every = "weekly"', "logging.rotate_every", 'found string "weekly"'),
    ('rotate_every = "0h"', "logging.rotate_every", 'found string "0h"'),
])
def test_bad_rotation_settings_are_refused_naming_file_line_key(tmp_path, body, key, expected):
    path = tmp_path / "agentflow.toml"
    with pytest.raises(ConfigError) as err:
        parse_config(f'[logging]\nfile = "a.log"\n{body}\n', path)
    assert err.value.key == key and expected in str(err.value) and err.value.line is not None
    assert str(err.value).startswith(f"{path}:")


def test_rotation_settings_become_policies_once(tmp_path):
    config = parse_config('[logging]\nfile = "a.log"\nmax_size = 0.5\nmax_backups = 3\nmax_age = 7\n'
                          'compress = true\ncompression = "gzip"\ncompression_level = 9\nrotate_every = "6H"\n',
                          tmp_path / "agentflow.toml")
    policy = RotationPolicy.from_config(config)
    assert policy.size == SizeLimit(512 * 1024)
    assert policy.compression == Compression("gzip", 9) and policy.compression.suffix == ".gz"
    assert policy.retention == Retention(3, 7)
    assert policy.schedule == parse_rotate_every("6h") and str(policy.schedule) == "6h"
    assert config.rotate_every == "6h"
    plain = RotationPolicy.from_config(parse_config('[logging]\nfile = "a.log"\n', tmp_path / "agentflow.toml"))
    assert plain.compression is None and plain.schedule is None and not plain.retention.active
