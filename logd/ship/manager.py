"""The daemon's side of shipping: start a :class:`Shipper` per ``[[logging.ship]]`` target,
follow config reloads, answer status, and hear about backups retention will delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, ShipSettings
from .shipper import Notify, Shipper
from .spool import spool_path


def shipped_file(config: Config) -> Path:
    """The file shippers read: the log file, else the spool."""
    return config.file if config.file is not None else spool_path(config.ship_state_dir)


class ShipManager:
    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.shippers: dict[str, Shipper] = {}
        self._keys: dict[str, tuple[ShipSettings, Path, Path]] = {}

    def _start(self, settings: ShipSettings, config: Config) -> None:
        shipper = Shipper(settings, shipped_file(config), config.ship_state_dir, notify=self.notify)
        shipper.start()
        self.shippers[settings.name] = shipper
        self._keys[settings.name] = (settings, shipped_file(config), config.ship_state_dir)

    def start(self, config: Config) -> None:
        for settings in config.ship:
            self._start(settings, config)

    def reconfigure(self, config: Config) -> list[str]:
        """Keep targets whose settings are unchanged, restart changed ones, stop removed ones.
        Each resumes from its own checkpoint, so nothing is skipped or sent twice over it."""
        wanted = {s.name: s for s in config.ship}
        changed = []
        for name in list(self.shippers):
            if name not in wanted or self._keys[name] != (wanted[name], shipped_file(config), config.ship_state_dir):
                self.shippers.pop(name).stop(drain=0)
                self._keys.pop(name)
                changed.append(name)
        for name, settings in wanted.items():
            if name not in self.shippers:
                self._start(settings, config)
                changed.append(name)
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
        return {name: shipper.status() for name, shipper in self.shippers.items()}
