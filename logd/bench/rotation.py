"""``logd bench --rotate``: ingestion while the file rotates every 1 MB with zstd compression
on, against the same daemon settings without rotation, in the same run.

Both scenarios drive the same clients and blobs into a ``logd run`` subprocess and stop the
clock when the daemon reports every record written to its file (``status``: the file sink's
``written``, polled over the control socket the same way in both). Afterwards every line is
counted across the current file and its plain and compressed backups: ``lost`` must be 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
from pathlib import Path

from logd.bench.harness import Report, Row, _write_blobs, cpu_seconds, drive_clients, machine_line, start_logd
from logd.control import ControlError, request
from logd.logfiles.snapshot import list_files


def _written(sock: Path) -> int:
    try:
        return request(sock, "status", timeout=5)["sinks"]["file"]["sent_events"]
    except (ControlError, KeyError):
        return -1


def _count_client_lines(current: Path) -> tuple[int, int]:
    """(lines with a client marker, files) across the current file and every backup."""
    import gzip

    import zstandard

    lines = 0
    files = list_files(current)
    for path, _, compression in files:
        data = path.read_bytes()
        if compression == "zst":
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        elif compression == "gz":
            data = gzip.decompress(data)
        lines += data.count(b'"client":')
    return lines, len(files)


def _scenario(folder: Path, settings: str, blobs: list[Path], total: int) -> tuple[float, float, dict, int, int]:
    """One daemon run: (seconds, daemon CPU seconds, file sink status, client lines found, files)."""
    folder.mkdir()
    # the log in its own folder, as in production (/var/log/logd vs /etc/logd): the config
    # watcher watches the config's folder, and would otherwise wake for every write
    (folder / "logs").mkdir()
    out = folder / "logs" / "agent.log"
    proc, sock = start_logd(folder, f'file = "{out}"\nfile_only = true\n{settings}')
    try:
        seconds = drive_clients(sock, blobs, lambda: _written(sock), total)
        cpu = cpu_seconds(proc.pid)
        status = request(sock, "status")["sinks"]["file"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    written, files = _count_client_lines(out)
    shutil.rmtree(folder, ignore_errors=True)
    return seconds, cpu, status, written, files


def bench_rotate(args: argparse.Namespace, rounds: int = 2) -> Report:
    """Each scenario runs ``rounds`` times, alternating, and keeps its best run: the machines
    are shared and noisy, and alternating gives both the same conditions."""
    folder = Path(tempfile.mkdtemp(prefix="logd-bench-rot-", dir="/tmp"))
    try:
        blobs, total, total_bytes = _write_blobs(folder, args.clients, args.records)
        scenarios = [("logd, no rotation", "max_size = 100000"),
                     ("logd, rotating 1 MB + zstd", "max_size = 1\ncompress = true\ncompression = \"zstd\"")]
        runs: dict[str, list[tuple[float, float, dict, int, int]]] = {name: [] for name, _ in scenarios}
        for round_ in range(rounds):
            for index, (name, settings) in enumerate(scenarios):
                runs[name].append(_scenario(folder / f"run{round_}-{index}", settings, blobs, total))
        rows, notes = [], []
        for name, _ in scenarios:
            lossy = [r for r in runs[name] if r[3] != total]  # a loss is never hidden by a better run
            seconds, cpu, status, written, files = (min(lossy, key=lambda r: r[3]) if lossy
                                                    else min(runs[name], key=lambda r: r[0]))
            rows.append(Row(f"{name} ({args.clients} clients)", total, seconds, total_bytes, cpu, total - written))
            if status.get("rotations"):
                notes.append(f"{name}: {status['rotations']} rotations, {files} files, "
                             f"{status.get('compression_seconds', 0):.2f} s compressing (background thread)")
        notes.append(f"best of {rounds} alternating runs per scenario")
        plain, rotating = rows
        ratio = rotating.rate / plain.rate
        report = Report(
            title=f"logd bench --rotate: {total:,} records (~{total_bytes // total} B each), "
                  f"{args.clients} clients; {machine_line()}",
            rows=rows, ratios=[("rotating / no rotation", ratio)], notes=notes,
            target=">= 0.80x of the throughput without rotation, and 0 lost",
        )
        report.ok = ratio >= 0.8 and rotating.lost == 0 and plain.lost == 0
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - handy while tuning
    ns = argparse.Namespace(clients=4, records=200_000)
    print(bench_rotate(ns).render())
    os._exit(0)
