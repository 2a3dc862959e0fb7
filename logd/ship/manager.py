"""The daemon's side of shipping: start a :class:`Shipper` per ``[[logging.ship]]`` target,
follow config reloads, answer status, and hear about backups retention will delete."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logd.config import Config, ShipSettings
from logd.events import Events
from logd.ship.shipper import Shipper
from logd.ship.spool import prune_spool, spool_path


def shipped_file(config: Config) -> Path:
    """The file shippers read: the log file, else the spool."""
    return config.file if config.file is not None else spool_path(config.ship_state_dir)


class ShipManager:
    def __init__(self, events: Events, ingested: Callable[[], int] | None = None) -> None:
        self.notify = events.emit  # shippers report from their own threads: Events is thread-safe
        self.ingested = ingested
        self.shippers: dict[str, Shipper] = {}
        self._keys: dict[str, tuple[ShipSettings, Path, Path]] = {}
        self._spool: Path | None = None  # set when shippers read the spool (no log file)
        self._prune_lock = threading.Lock()

    def _start(self, settings: ShipSettings, config: Config) -> Shipper:
        shipper = Shipper(settings, shipped_file(config), config.ship_state_dir, notify=self.notify,
                          on_progress=self._prune, ingested=self.ingested)
        shipper.start()
        self._keys[settings.name] = (settings, shipped_file(config), config.ship_state_dir)
        return shipper

    def _prune(self) -> None:
        """Spool backups every target has shipped are deleted (the spool is ours, unlike the log)."""
        spool = self._spool
        if spool is None:
            return
        with self._prune_lock:
            shippers = list(self.shippers.values())
            prune_spool(spool, lambda path: all(s.done_with(path) for s in shippers))

    def start(self, config: Config) -> None:
        self._spool = spool_path(config.ship_state_dir) if config.file is None else None
        self.shippers = {settings.name: self._start(settings, config) for settings in config.ship}

    def reconfigure(self, config: Config) -> list[str]:
        """Keep targets whose settings are unchanged, restart changed ones, stop removed ones.
        Each resumes from its own checkpoint, so nothing is skipped or sent twice over it.
        The set is swapped in one step, so status never sees it half-built."""
        self._spool = spool_path(config.ship_state_dir) if config.file is None else None
        wanted = {s.name: s for s in config.ship}
        shippers = dict(self.shippers)
        changed = []
        for name in list(shippers):
            if name not in wanted or self._keys[name] != (wanted[name], shipped_file(config), config.ship_state_dir):
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

    def stop(self, drain: float = 2.0) -> None:
        for shipper in self.shippers.values():  # all drain at once, then wait for each
            shipper.request_stop(drain)
        for shipper in self.shippers.values():
            shipper.join()

    def before_delete(self, paths: list[Path]) -> int:
        """Retention hook: records about to be deleted that some target has not shipped."""
        return sum(shipper.before_delete(paths) for shipper in self.shippers.values())

    def status(self) -> dict[str, Any]:
        return {name: shipper.status() for name, shipper in list(self.shippers.items())}
