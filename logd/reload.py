"""Watch agentflow.toml and ask for a reload when its content really changes.

Editors save in many ways (write in place, write a temp file and rename it over,
swap a symlink as Kubernetes ConfigMaps do), so the watcher observes the
folders involved rather than the file, debounces bursts of events, and only
reports a change when the file's bytes differ from the last ones it saw.
watchdog calls us on its own thread; all real work is handed to the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

# What can change a config: renames (editors, symlink swaps), creation, deletion, and a
# writer closing the file. Not every write: the log file often sits in the same folder,
# and waking this thread on each of its writes costs ingestion (measured with py-spy).
WATCHED_EVENTS = [FileMovedEvent, DirMovedEvent, FileCreatedEvent, DirCreatedEvent, FileDeletedEvent,
                  DirDeletedEvent, FileClosedEvent]


def fingerprint(path: Path) -> str | None:
    """Hash of the file's content (following symlinks), or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def symlink_chain(path: Path) -> tuple[str, ...]:
    """The path, every symlink hop on the way to the real file, and the real file."""
    chain = [path.absolute()]
    current = chain[0]
    for _ in range(16):  # symlink chains are short; never loop forever on a cycle
        if not current.is_symlink():
            break
        target = Path(os.readlink(current))
        current = target if target.is_absolute() else current.parent / target
        chain.append(current)
    chain.append(path.resolve())
    return tuple(dict.fromkeys(os.fspath(p) for p in chain))


def watched_folders(chain: tuple[str, ...]) -> set[Path]:
    return {p.parent for p in map(Path, chain) if p.parent.is_dir()}


def concerns(event_path: str, chain: tuple[str, ...]) -> bool:
    """Whether a change at ``event_path`` can change the config: it is a hop, or a folder
    (often a swapped symlink) on the way to one. Other files in the folder, such as the
    log file logd itself writes next to the config, are not."""
    return any(hop == event_path or hop.startswith(event_path + os.sep) for hop in chain)


class ConfigWatcher(FileSystemEventHandler):
    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop, on_change: Callable[[], None],
                 debounce: float = 0.2, loaded: str | None = None) -> None:
        """``loaded`` is the fingerprint of the content the running config came from, so an
        edit made between loading and watching is not missed."""
        self.path = path
        self.loop = loop
        self.on_change = on_change
        self.debounce = debounce
        self.last = loaded if loaded is not None else fingerprint(path)
        self._chain = symlink_chain(path)
        self._observer = Observer()
        self._watches: dict[Path, ObservedWatch] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._rewatch()
        self._observer.daemon = True
        self._observer.start()
        self._poke()  # compare once now: the file may have changed since it was loaded

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._observer.stop()
        self._observer.join(timeout=5)

    def _rewatch(self) -> None:
        self._chain = symlink_chain(self.path)
        wanted = watched_folders(self._chain)
        for folder in set(self._watches) - wanted:
            self._observer.unschedule(self._watches.pop(folder))
        for folder in wanted - set(self._watches):
            self._watches[folder] = self._observer.schedule(self, os.fspath(folder), recursive=False,
                                                            event_filter=WATCHED_EVENTS)

    # watchdog's thread
    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (including our own) are not changes
        chain = self._chain
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if not any(p and concerns(os.fsdecode(p), chain) for p in paths):
            return
        try:
            self.loop.call_soon_threadsafe(self._poke)
        except RuntimeError:
            pass  # the loop is closed: shutting down

    # the event loop's thread
    def _poke(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(self.debounce, self._settled)

    def _settled(self) -> None:
        self._timer = None
        self._rewatch()  # a symlink swap may have moved the real file
        current = fingerprint(self.path)
        if current is None or current == self.last:
            return  # deleted mid-save, or touched without a change: keep what we have
        self.last = current
        self.on_change()
