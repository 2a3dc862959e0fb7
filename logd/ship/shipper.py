"""One thread per ship target: tail the log files, batch, deliver, checkpoint.

At least once: the checkpoint moves only after the remote took a batch (or refused
it for good, into the dead-letter file with the reason), so a restart, an outage or
a kill resends at most the batch in flight. Retryable failures are retried for ever
by default with capped, jittered backoff; the waiting is an injected ``sleep`` that
returns True when the shipper is asked to stop, so tests drive it without sleeping.
Shippers read files, never the pipeline: ingestion never waits on the network.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from logd.levels import RANK
from logd.logfiles.content import CorruptData, Problem, decoded_chunks, open_log, raw_chunks
from logd.logfiles.follow import Chunk, Follower, file_info, located, take_survey
from logd.logfiles.identity import Identity, Position
from logd.logfiles.names import Names
from logd.ship import encoders
from logd.ship.backoff import RetryPolicy
from logd.ship.checkpoint import CheckpointStore
from logd.ship.encoders import Item
from logd.ship.settings import ShipSettings
from logd.ship.targets import Target, build_target, shown_url
from logd.timestamps import format_epoch
from logd.traces.semantics import is_span
from logd.traces.shapes import classify

Notify = Callable[..., None]  # notify(level, message, **fields): a record about logd itself
DURABLE_EVERY = 1.0  # seconds between fsynced checkpoints (a rename is atomic in between)


@dataclass
class ShipStats:
    delivered: int = 0  # records the remote accepted (since the checkpoint was created)
    skipped: int = 0  # records this target's level/match filter left out
    dead_lettered: int = 0
    rejected_by_remote: int = 0  # OTLP partial success: taken, then dropped by the collector
    duplicates: int = 0  # of ``delivered``: acked as already stored (a resend the remote de-duplicated)
    reordered: int = 0  # stored ahead of an earlier record the remote refused for a while
    lost_to_retention: int = 0
    unreadable: int = 0  # damaged backups reported (their rest is not shipped)
    retries: int = 0
    failing_since: float | None = None
    remote_full: bool = False  # the last failure: the remote is at its limits (back-pressure)
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    next_retry_at: float | None = None


class Shipper:
    def __init__(self, settings: ShipSettings, log_path: Path, state_dir: Path, *,
                 hostname: str | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], bool] | None = None, rng: random.Random | None = None,
                 notify: Notify = lambda level, message, **fields: None,
                 target: Target | None = None, poll_interval: float = 0.05,
                 on_progress: Callable[[], None] = lambda: None,
                 ingested: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.log_path = log_path
        self.state_dir = state_dir
        self.hostname = hostname or socket.gethostname()
        self.clock = clock
        self.notify = notify
        self.poll_interval = poll_interval
        self.on_progress = on_progress  # called (on this shipper's thread) after each checkpoint
        self.ingested = ingested  # records the daemon has taken in so far: how busy ingestion is
        self._ingest_seen = (time.monotonic(), 0)
        self.store = CheckpointStore(state_dir, settings.name)
        self.dead_letter_path = state_dir / f"{settings.name}.dead-letter.jsonl"
        self.policy = RetryPolicy(settings.backoff_initial, settings.backoff_max,
                                  max_retries=settings.max_retries, rng=rng or random.Random())
        self.stats = ShipStats()
        self.position: Position | None = None  # last checkpoint saved
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._drain_until = float("inf")
        self._last_durable = 0.0
        self._thread: threading.Thread | None = None
        self._target = target
        self._follower: Follower | None = None
        self._lock = threading.Lock()
        self._floor = RANK.get(settings.level, 0)
        self._match = {key: set(values) for key, values in settings.match}
        self._select = _trace_filter(settings)  # signal = "traces": which records the target takes
        self.crash: str | None = None  # the error the shipper is restarting after, until a batch goes out

    # --- life cycle ---

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.position, self.stats.delivered = self.store.load()
        self._thread = threading.Thread(target=self._run, name=f"ship-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self, drain: float = 2.0) -> None:
        """Ship what is already in the files for up to ``drain`` seconds, then stop.
        A batch still failing then stays after the checkpoint and goes out next start."""
        self._drain_until = time.monotonic() + drain
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(max(0.0, self._drain_until - time.monotonic()) + self.settings.timeout + 1)

    def stop(self, drain: float = 2.0) -> None:
        self.request_stop(drain)
        self.join()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        """Sessions until stopped: an error (a full disk under the state folder, an unreadable
        TLS file, a bug) is reported and the shipper starts again from its checkpoint after
        a backoff, rather than dying quietly."""
        crashes = 0
        while True:
            try:
                self._session()
                return
            except Exception as exc:
                crashes += 1
                error = f"{type(exc).__name__}: {exc}"
                delay = self.policy.delay(crashes)
                with self._lock:
                    self.crash = error
                    self.stats.last_error, self.stats.last_error_at = error, self.clock()
                self.notify("error", f"ship target {self.name} hit an error; restarting from its checkpoint",
                            target=self.name, error=error, retry_in_s=round(delay, 3))
                if self._stop.is_set() or self._sleep(delay):
                    return

    def _session(self) -> None:
        follower = self._follower = Follower(self.log_path, self.position, on_problem=self._problem)
        try:
            if self._target is None:
                self._target = build_target(self.settings, self.hostname, self.clock)
            while True:
                stopping = self._stop.is_set()
                if stopping and time.monotonic() > self._drain_until:
                    return
                cpu = time.thread_time()
                chunks = self._gather(follower, stopping)
                if not chunks:
                    if stopping:
                        return
                    self._stop.wait(self.poll_interval)
                    continue
                if not self._ship(chunks):
                    return
                self.crash = None
                if not stopping:
                    self._stop.wait(self._yield_time(time.thread_time() - cpu))
        finally:
            follower.close()
            if self._stop.is_set():
                if self._target is not None:
                    self._target.close()
                if self.position is not None:
                    try:
                        self.store.save(self.position, self.stats.delivered, durable=True)
                    except OSError:
                        pass

    def _yield_time(self, cpu_spent: float) -> float:
        """Seconds to step aside after a batch. Shippers share the interpreter (the GIL) with
        ingestion; while agents are sending hard, a shipper that keeps up takes half the CPU
        from them (``logd bench --ship``: ingestion at 0.43x). So then it pauses twice as long
        as it worked: shipping falls behind for the burst, reading from disk, and catches up."""
        if self.ingested is None:
            return 0.0
        now, count = time.monotonic(), self.ingested()
        then, before = self._ingest_seen
        self._ingest_seen = (now, count)
        return yield_seconds((count - before) / max(now - then, 1e-3), cpu_spent)

    # --- batching ---

    def _gather(self, follower: Follower, stopping: bool) -> list[Chunk]:
        """Up to ``batch_size`` lines; a partial batch waits at most ``flush_interval`` for more."""
        chunks: list[Chunk] = []
        count = 0
        deadline = 0.0
        limit = self.settings.batch_size
        while count < limit:
            chunk = follower.read(limit - count)
            if chunk is not None:
                if not chunks:
                    deadline = time.monotonic() + self.settings.flush_interval
                chunks.append(chunk)
                count += len(chunk.lines)
                continue
            remaining = deadline - time.monotonic()
            if not chunks or stopping or remaining <= 0:
                break
            stopping = self._stop.wait(min(self.poll_interval, remaining))
        return chunks

    def _wanted(self, record: dict[str, Any]) -> bool:
        level = record.get("level")
        if RANK.get(level if isinstance(level, str) else "info", 2) < self._floor:
            return False
        if self._select is not None and not self._select(record):
            return False
        return all(record.get(key) in values for key, values in self._match.items())

    # --- delivery ---

    def _ship(self, chunks: list[Chunk]) -> bool:
        """Deliver one batch and move the checkpoint; False when asked to stop before it was delivered."""
        items: list[Item] = []
        lines = 0
        everything = self._floor == 0 and not self._match and self._select is None
        for chunk in chunks:
            offset = chunk.start.offset
            prefix = chunk.id_prefix
            for line in chunk.lines:
                record = encoders.parse_line(line)
                if everything or self._wanted(record):
                    items.append((f"{prefix}-{offset}", record))
                offset += len(line) + 1
            lines += len(chunk.lines)
        pending, attempt = items, 0
        assert self._target is not None
        while pending:
            outcome = self._target.send(pending)
            if outcome.dead:
                self._dead_letter(outcome.dead)
            if outcome.rejected:
                self._rejected(outcome.rejected, outcome.error or "")
            if outcome.duplicates or outcome.reordered:
                self._counted(outcome.duplicates, outcome.reordered)
            if outcome.done:
                break
            attempt += 1
            if self.policy.gives_up(attempt):
                self._dead_letter([(item, f"gave up after {self.settings.max_retries} retries: {outcome.error}")
                                   for item in outcome.retry])
                break
            delay = self.policy.delay(attempt, outcome.retry_after)
            self._failed(outcome.error or "delivery failed", delay, outcome.full)
            if self._sleep(delay):
                return False
            pending = outcome.retry
        self._delivered(chunks[-1].end, len(items), lines - len(items))
        return True

    def _failed(self, error: str, delay: float, full: bool = False) -> None:
        now = self.clock()
        with self._lock:
            first = self.stats.failing_since is None
            self.stats.retries += 1
            self.stats.remote_full = full
            self.stats.last_error, self.stats.last_error_at = error, now
            self.stats.next_retry_at = now + delay
            if first:
                self.stats.failing_since = now
        if first:  # one record per outage, not one per attempt
            self.notify("error", f"ship target {self.name} failed; retrying with backoff (nothing is dropped)",
                        target=self.name, error=error, retry_in_s=round(delay, 3))

    def _delivered(self, end: Position, records: int, skipped: int) -> None:
        with self._lock:
            self.stats.delivered += records
            self.stats.skipped += skipped
            self.stats.last_success = self.clock()
            since = self.stats.failing_since
            recovered = since is not None
            outage = self.clock() - since if since is not None else 0.0
            self.stats.failing_since = self.stats.next_retry_at = None
            self.stats.remote_full = False
        now = time.monotonic()
        durable = now - self._last_durable >= DURABLE_EVERY or self._stop.is_set()
        self.store.save(end, self.stats.delivered, durable=durable)
        if durable:
            self._last_durable = now
        self.position = end
        self.on_progress()
        if recovered:
            self.notify("info", f"ship target {self.name} recovered; held records delivered", target=self.name,
                        outage_s=round(outage, 3))

    def _dead_letter(self, refused: list[tuple[Item, str]]) -> None:
        now = format_epoch(self.clock())
        data = b"".join(orjson.dumps({"time": now, "target": self.name, "reason": reason, "id": item_id,
                                      "record": record}, default=str, option=orjson.OPT_APPEND_NEWLINE)
                        for (item_id, record), reason in refused)
        fd = os.open(self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:
            self.stats.dead_lettered += len(refused)
        self.notify("error", f"ship target {self.name} refused {len(refused)} records; kept in the dead-letter file",
                    target=self.name, reason=refused[0][1], count=len(refused), file=str(self.dead_letter_path))

    def _rejected(self, count: int, error: str) -> None:
        with self._lock:
            self.stats.rejected_by_remote += count
            self.stats.last_error, self.stats.last_error_at = error, self.clock()
        self.notify("error", f"ship target {self.name}: the collector accepted a batch but dropped {count} records",
                    target=self.name, error=error, count=count)

    def _counted(self, duplicates: int, reordered: int) -> None:
        with self._lock:
            self.stats.duplicates += duplicates
            self.stats.reordered += reordered
        if reordered:
            self.notify("warn", f"ship target {self.name}: the remote stored {reordered} records ahead of earlier "
                        "ones it had refused for a while (those follow now)", target=self.name, count=reordered)

    def _problem(self, problem: Problem) -> None:
        with self._lock:
            self.stats.unreadable += 1
        self.notify("error", f"ship target {self.name}: a log file could not be read to its end",
                    target=self.name, problem=str(problem))

    # --- retention and status ---

    def before_delete(self, paths: list[Path]) -> int:
        """Retention is about to delete ``paths``: count (and report) the records this target
        has not shipped from them. Thread-safe; the files must still exist.

        Files are matched by their first bytes (names move on while we look). A file counted
        as lost is marked so the follower never opens it in the instant before it goes (it
        would be both counted and shipped)."""
        follower = self._follower
        if follower is None:
            return self._count_lost(paths, self.position, None, set())
        with follower.lock:
            # what was read is delivered or held in the batch being retried: lines from there on are at stake
            return self._count_lost(paths, follower.position or self.position, follower.open_position(),
                                    follower.doomed)

    def _count_lost(self, paths: list[Path], position: Position | None, reading: Position | None,
                    doomed: set[Identity]) -> int:
        # Retention takes the oldest backups, so the doomed files are older than every file
        # left; among themselves their names give the rotation order. Record times cannot order
        # files: one batch's records share a time.
        infos = [info for info in (file_info(path, 1) for path in Names(self.log_path).oldest_first(paths))
                 if info.head]
        if position is None:
            first_unshipped, offset = 0, 0  # nothing read yet: all of them
        else:
            at = next((i for i, info in enumerate(infos) if position.identifies(info.head)), None)
            if at is not None:
                first_unshipped, offset = at, position.offset
            elif take_survey(self.log_path).find(position) is not None:
                first_unshipped, offset = len(infos), 0  # reading beyond them: all shipped
            else:  # the position's file went in an earlier pass, so these are newer: none shipped
                first_unshipped, offset = 0, 0
        lost = 0
        for i in range(first_unshipped, len(infos)):
            info = infos[i]
            if reading is not None and reading.identifies(info.head):
                continue  # being read through an open descriptor: the unlink takes nothing from us
            lost += count_lines(info.path, offset if i == first_unshipped else 0)[0]
            try:
                doomed.add(Identity.of(os.lstat(info.path), info.head, info.compression))
            except OSError:
                pass
        if lost:
            with self._lock:
                self.stats.lost_to_retention += lost
            self.notify("error", f"retention deleted {lost} records ship target {self.name} had not shipped yet",
                        target=self.name, lost=lost, files=[str(p) for p in paths])
        return lost

    def done_with(self, path: Path) -> bool:
        """Whether this target has shipped all of backup ``path`` (one of the shipped file's set)."""
        position = self.position
        if position is None:
            return False
        files, place = located(self.log_path, position)
        mine = next((i for i, name in enumerate(files.entries) if name == path.name), None)
        if mine is None:
            return False
        if mine < place.index:
            return True
        return mine == place.index and files.rank(mine) > 0 and place.offset >= path.stat().st_size

    def lag(self) -> tuple[int, int]:
        """Records and (uncompressed) bytes in the files after the checkpoint."""
        files, place = located(self.log_path, self.position)
        records = size = 0
        for i, name in enumerate(files.entries[place.index:]):
            lines, nbytes = count_lines(files.folder / name, place.offset if i == 0 else 0)
            records += lines
            size += nbytes
        return records, size

    def status(self) -> dict[str, Any]:
        try:
            lag_records, lag_bytes = self.lag()
        except OSError:
            lag_records = lag_bytes = -1
        with self._lock:
            s = self.stats
            state = ("stopped" if not self.alive else "restarting" if self.crash else
                     "held" if s.failing_since is not None and s.remote_full else
                     "retrying" if s.failing_since is not None else "behind" if lag_records > 0 else "up to date")
            return {
                "type": self.settings.type, "url": shown_url(self.settings.url), "state": state,
                "lag_records": lag_records, "lag_bytes": lag_bytes, "delivered": s.delivered,
                "duplicates": s.duplicates, "reordered": s.reordered, "remote_full": s.remote_full,
                "filtered_out": s.skipped, "dead_lettered": s.dead_lettered,
                "rejected_by_remote": s.rejected_by_remote,
                "lost_to_retention": s.lost_to_retention, "unreadable_files": s.unreadable, "retries": s.retries,
                "last_success": _when(s.last_success), "last_error": s.last_error,
                "last_error_at": _when(s.last_error_at), "next_retry_at": _when(s.next_retry_at),
                "restarting_after": self.crash, "checkpoint": str(self.store.path),
            }


BUSY_RATE = 5_000.0  # records/s taken in: above this, ingestion comes first
YIELD_FACTOR = 2.0  # pause / CPU spent while ingestion is busy: shippers get at most a third


def yield_seconds(ingest_rate: float, cpu_spent: float) -> float:
    """How long a shipper pauses after a batch that cost ``cpu_spent`` CPU seconds."""
    if ingest_rate <= BUSY_RATE:
        return 0.0
    return min(0.5, cpu_spent * YIELD_FACTOR)


def _trace_filter(settings: ShipSettings) -> Callable[[dict[str, Any]], object] | None:
    """With ``signal = "traces"``: span records for OTLP (they become spans; the one span rule,
    :func:`logd.traces.semantics.is_span`), every trace record (hooks, events, spans;
    :func:`logd.traces.shapes.classify`, which uses that rule) for NATS."""
    if settings.signal != "traces":
        return None
    return is_span if settings.type == "otlp" else classify


def _when(epoch: float | None) -> str | None:
    return format_epoch(epoch) if epoch is not None else None


_counted: OrderedDict[tuple[int, int, int, int, int], tuple[int, int]] = OrderedDict()
_counted_lock = threading.Lock()


def count_lines(path: Path, offset: int) -> tuple[int, int]:
    """Complete lines and bytes of a (possibly compressed) log file after ``offset``.

    Remembered per file version (inode, size, mtime): status and /metrics ask often, and a
    backlog of compressed backups would otherwise be decompressed at every scrape."""
    try:
        st = os.stat(path)
    except OSError:
        return 0, 0
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, offset)
    with _counted_lock:
        if key in _counted:
            _counted.move_to_end(key)
            return _counted[key]
    result = _count_lines(path, offset)
    with _counted_lock:
        _counted[key] = result
        while len(_counted) > 512:
            _counted.popitem(last=False)
    return result


def _count_lines(path: Path, offset: int) -> tuple[int, int]:
    file = open_log(path, 1)
    if file.fd is None:
        return 0, 0
    lines = size = 0
    skip = offset
    try:
        raw = None if file.compression else raw_chunks(file.fd, start=offset)
        if raw is not None:
            skip = 0
        for chunk in decoded_chunks(file, raw):
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            lines += chunk.count(b"\n")
            size += len(chunk)
    except (CorruptData, OSError):
        pass
    finally:
        file.close()
    return lines, size
