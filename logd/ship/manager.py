"""The daemon's side of shipping (``[[logging.ship]]``): start a :class:`Shipper` per target,
follow config reloads, answer status, and hear about backups retention will delete."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from logd.components import StartupError, Tables
from logd.events import Events
from logd.ship.checkpoint import CheckpointError
from logd.ship.settings import ShipSettings, check_target
from logd.ship.shipper import Shipper
from logd.ship.spool import prune_spool, spool_path
from logd.sinks.file import FileSettings
from logd.spec import SERVICE, Context, Spec


def shipped_file(config: Tables) -> Path:
    """The file shippers read: the log file, else the spool."""
    file = config.of(FileSettings)
    return file.file if file.file is not None else spool_path(file.ship_state_dir)


class ShipManager:
    """The shippers of one daemon; built once, it follows reloads itself (:meth:`reload`)."""

    def __init__(self, config: Tables, events: Events, ingested: Callable[[], int] | None = None) -> None:
        self.config = config
        self.events = events
        self.notify = events.emit  # shippers report from their own threads: Events is thread-safe
        self.ingested = ingested
        self.shippers: dict[str, Shipper] = {}
        self._keys: dict[str, tuple[ShipSettings, Path, Path]] = {}
        self._spool: Path | None = None  # set when shippers read the spool (no log file)
        self._prune_lock = threading.Lock()

    def _start(self, settings: ShipSettings, config: Tables) -> Shipper:
        state = config.of(FileSettings).ship_state_dir
        shipper = Shipper(settings, shipped_file(config), state, notify=self.notify,
                          on_progress=self._prune, ingested=self.ingested)
        shipper.start()
        self._keys[settings.name] = (settings, shipped_file(config), state)
        return shipper

    def _prune(self) -> None:
        """Spool backups every target has shipped are deleted (the spool is ours, unlike the log)."""
        spool = self._spool
        if spool is None:
            return
        with self._prune_lock:
            shippers = list(self.shippers.values())
            prune_spool(spool, lambda path: all(s.done_with(path) for s in shippers))

    def _spool_of(self, config: Tables) -> Path | None:
        file = config.of(FileSettings)
        return spool_path(file.ship_state_dir) if file.file is None else None

    async def start(self) -> None:
        """Each target resumes from its checkpoint; a state folder that cannot be used stops the start."""
        self._spool = self._spool_of(self.config)
        try:
            self.shippers = await asyncio.to_thread(
                lambda: {s.name: self._start(s, self.config) for s in self.config.elements(ShipSettings)})
        except (OSError, CheckpointError) as exc:
            raise StartupError(f"cannot start shipping: {exc}") from None

    def reconfigure(self, config: Tables) -> list[str]:
        """Keep targets whose settings are unchanged, restart changed ones, stop removed ones.
        Each resumes from its own checkpoint, so nothing is skipped or sent twice over it.
        The set is swapped in one step, so status never sees it half-built."""
        self.config = config
        self._spool = self._spool_of(config)
        wanted = {s.name: s for s in config.elements(ShipSettings)}
        shippers = dict(self.shippers)
        changed = []
        for name in list(shippers):
            if name not in wanted or self._keys[name] != (wanted[name], shipped_file(config),
                                                          config.of(FileSettings).ship_state_dir):
                shippers.pop(name).stop(drain=0)
                self._keys.pop(name)
                changed.append(name)
        for name, settings in wanted.items():
            if name not in shippers:
                shippers[name] = self._start(settings, config)
                if name not in changed:
                    changed.append(name)
        self.shippers = {name: shippers[name] for name in wanted}
        return changed

    async def reload(self, config: Tables) -> None:
        try:
            restarted = await asyncio.to_thread(self.reconfigure, config)
        except (OSError, CheckpointError) as exc:
            self.events.emit("error", "ship targets could not follow the new config", error=str(exc))
            return
        if restarted:
            self.events.emit("info", "ship targets follow the new config", event="reload", targets=restarted)

    async def stop(self) -> None:
        """The shippers' last look at the files (what clients sent is written by then: sources
        stop first), then each stops."""
        if self.shippers:
            await asyncio.to_thread(self.stop_now)

    def stop_now(self, drain: float = 2.0) -> None:
        for shipper in self.shippers.values():  # all drain at once, then wait for each
            shipper.request_stop(drain)
        for shipper in self.shippers.values():
            shipper.join()

    def before_delete(self, paths: list[Path]) -> int:
        """Retention hook: records about to be deleted that some target has not shipped."""
        return sum(shipper.before_delete(paths) for shipper in self.shippers.values())

    def status(self) -> dict[str, Any]:
        """Per target; reads the files (lag): off the event loop."""
        return {name: shipper.status() for name, shipper in list(self.shippers.items())}

    def stats(self) -> dict[str, Any]:
        return {"ship": self.status()} if self.shippers else {}


def _ship_families(targets: dict[str, dict[str, Any]]) -> Iterable:
    """Per ship target (``[[logging.ship]]``), from logd.ship's own status."""
    lag_records = GaugeMetricFamily("logd_ship_lag_records", "Records in the log files not yet shipped",
                                    labels=["target"])
    lag_bytes = GaugeMetricFamily("logd_ship_lag_bytes", "Bytes of the log files not yet shipped", labels=["target"])
    failing = GaugeMetricFamily("logd_ship_failing", "1 while the target is being retried", labels=["target"])
    shipped = CounterMetricFamily("logd_ship_delivered_records", "Records the target accepted", labels=["target"])
    dead = CounterMetricFamily("logd_ship_dead_lettered_records", "Records the target refused, kept as dead letters",
                               labels=["target"])
    retries = CounterMetricFamily("logd_ship_retries", "Failed attempts, each retried", labels=["target"])
    full = GaugeMetricFamily("logd_ship_remote_full", "1 while the remote refuses records for its limits "
                             "(a full stream): records wait in the log", labels=["target"])
    duplicates = CounterMetricFamily("logd_ship_duplicate_records", "Records the remote acked as already stored "
                                     "(a resend it de-duplicated); counted in delivered too", labels=["target"])
    for name, t in sorted(targets.items()):
        if t.get("lag_records", -1) >= 0:  # -1: the files could not be read just now
            lag_records.add_metric([name], t["lag_records"])
            lag_bytes.add_metric([name], t["lag_bytes"])
        failing.add_metric([name], 1 if t.get("state") in ("retrying", "held") else 0)
        full.add_metric([name], 1 if t.get("remote_full") else 0)
        duplicates.add_metric([name], t.get("duplicates", 0))
        shipped.add_metric([name], t.get("delivered", 0))
        dead.add_metric([name], t.get("dead_lettered", 0))
        retries.add_metric([name], t.get("retries", 0))
    return (lag_records, lag_bytes, failing, shipped, dead, retries, full, duplicates)


def _build(settings: tuple[ShipSettings, ...], ctx: Context) -> ShipManager:
    pipeline = ctx.pipeline
    manager = ShipManager(ctx.config, ctx.events, ingested=lambda: pipeline.stats.received)
    ctx.retention.append(manager.before_delete)  # the file sink's retention asks before deleting backups
    return manager


def _summary(config: Tables) -> str | None:
    if not config.elements(ShipSettings):
        return None
    return f"ship state (checkpoints, dead letters): {config.of(FileSettings).ship_state_dir}"


# its status reads the files (lag): taken off the event loop
SPEC = Spec(SERVICE, "ship", _build, ShipSettings, table="ship", array=True, check=check_target,
            doc="One table per target; `type` and `url` are required.", summary=_summary, figures_in_thread=True,
            figures=lambda manager: manager.stats(),
            families=lambda s: _ship_families(s.get("ship", {})))
