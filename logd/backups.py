"""Backup names of a log file, and finding them again: the one place that knows them.

Rotation, ``logd query``/``logd tail``, the spool and the shippers all ask this module;
none of them has a name pattern of its own.

Two layouts (``backup_names`` in the config):

- ``"dated"`` (the default; lumberjack's and logrotate ``dateext``'s scheme): a rotation
  renames ``agent.log`` to ``agent-2026-11-29T17-03-00.123.log`` (its rotation time, UTC,
  to the millisecond) and that name never changes again; compression makes it
  ``agent-2026-11-29T17-03-00.123.log.zst`` (``.gz``). A rotation is one rename, however
  many backups are kept.
- ``"numbered"`` (AgenticGoKit's layout): ``agent.log.1`` is the newest backup,
  ``agent.log.2.zst`` older, and so on; a rotation renames every backup one number up.

Either way ``<name>.tmp`` is a compression in progress (readers skip it) and
``agent.log.deleting.<name>`` is retention's link to a file it is deleting.

A folder may hold both layouts after the setting was changed (either way, even back and
forth). Within a layout the order is by number or by time in the name; the two are merged
by rotation time: a dated name says it, a numbered backup's mtime is set to it at rotation
(kept by renames and compression). So every reader sees one order across a switch.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DATED = "dated"
NUMBERED = "numbered"
LAYOUTS = (DATED, NUMBERED)
COMPRESSED_SUFFIXES = {".zst": "zst", ".gz": "gz"}  # file suffix -> compression name readers use
TEMP = ".tmp"
_STAMP = r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})"
_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"


@dataclass(slots=True)
class Backup:
    """One backup and its files: normally one, briefly two (plain and ``.tmp``, or plain and
    compressed) while it is being compressed."""

    base: str  # its plain name: "agent.log.3" or "agent-2026-11-29T17-03-00.123.log"
    number: int | None = None  # numbered layout: N; dated: None
    stamp_text: str | None = None  # dated layout: the time in the name; numbered: None
    plain: Path | None = None
    compressed: Path | None = None
    temp: Path | None = None
    compression: str = ""  # of ``compressed``: "zst" or "gz"
    _stamp: float | None = field(default=None, repr=False)

    @property
    def stamp(self) -> float | None:
        """Dated layout: the rotation time (epoch seconds), parsed when first asked."""
        if self.stamp_text is None:
            return None
        if self._stamp is None:
            self._stamp = stamp_time(self.stamp_text)
        return self._stamp

    @property
    def main(self) -> Path:
        """The file readers use: the compressed one when it exists (it is complete)."""
        path = self.compressed or self.plain or self.temp
        assert path is not None
        return path

    @property
    def readable(self) -> Path | None:
        """What a reader opens; None when only an unfinished ``.tmp`` is there."""
        return self.compressed or self.plain

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.plain, self.compressed, self.temp) if p is not None]

    @property
    def rotated_at(self) -> float:
        try:
            return os.stat(self.main).st_mtime
        except FileNotFoundError:
            return float("inf")  # gone meanwhile: nothing to age


def compression_of(path: Path | str) -> str:
    """"zst", "gz" or "" (plain), from the file's suffix."""
    name = os.fspath(path)
    for suffix, compression in COMPRESSED_SUFFIXES.items():
        if name.endswith(suffix):
            return compression
    return ""


def stamp_text(when: float) -> str:
    """Epoch seconds -> ``2026-11-29T17-03-00.123`` (UTC: no daylight-saving repeats)."""
    ms = int(round(when * 1000))
    return time.strftime(_STAMP_FORMAT, time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def stamp_time(text: str) -> float:
    return datetime.strptime(text, _STAMP_FORMAT + ".%f").replace(tzinfo=timezone.utc).timestamp()


class Names:
    """The backup names of one log path (``current``)."""

    def __init__(self, current: Path) -> None:
        self.current = current
        self.folder = current.parent if str(current.parent) else Path(".")
        name = current.name
        dot = name.rfind(".")
        # "agent.log" -> ("agent", ".log"); a name without an extension keeps it all as stem
        self.stem, self.ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
        compressed = r"(\.zst|\.gz)?(\.tmp)?"
        self._numbered = re.compile(re.escape(name) + r"\.([1-9][0-9]*)" + compressed)
        self._dated = re.compile(re.escape(self.stem) + "-" + _STAMP + re.escape(self.ext) + compressed)
        self.deleting_prefix = f"{name}.deleting."

    # --- making names ---

    def numbered(self, number: int, suffix: str = "") -> Path:
        return self.folder / f"{self.current.name}.{number}{suffix}"

    def dated(self, when: float, suffix: str = "") -> Path:
        return self.folder / f"{self.stem}-{stamp_text(when)}{self.ext}{suffix}"

    def deleting(self, path: Path) -> Path:
        """Retention's stable link to ``path``: no reader lists it, no rotation renames it,
        and its suffix still says how it is compressed."""
        return self.folder / f"{self.deleting_prefix}{path.name}"

    def undeleting(self, path: Path) -> Path:
        name = path.name
        return self.folder / (name[len(self.deleting_prefix):] if name.startswith(self.deleting_prefix) else name)

    # --- reading names ---

    def parse(self, name: str) -> tuple[str, int | None, str | None, str, bool] | None:
        """``(base, number, stamp, compression suffix, is_temp)`` of a backup file name; None
        for any other name (the current file, retention links, unrelated files)."""
        m = self._numbered.fullmatch(name)
        if m is not None:
            number, stamp = int(m.group(1)), None
            base = f"{self.current.name}.{number}"
        else:
            m = self._dated.fullmatch(name)
            if m is None:
                return None
            number, stamp = None, m.group(1)
            base = f"{self.stem}-{stamp}{self.ext}"
        suffix, temp = m.group(2) or "", bool(m.group(3))
        if temp and not suffix:
            return None  # only compressed files are written under .tmp
        return base, number, stamp, suffix, temp

    def scan(self, names: Iterable[str] | None = None) -> list[Backup]:
        """Every backup, newest first (``names``: the folder's listing, when the caller has it)."""
        if names is None:
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                return []
        found: dict[str, Backup] = {}
        for name in names:
            parsed = self.parse(name)
            if parsed is None:
                continue
            base, number, stamp, suffix, temp = parsed
            backup = found.get(base)
            if backup is None:
                backup = found[base] = Backup(base, number, stamp)
            path = self.folder / name
            if temp:
                backup.temp = path
            elif suffix:
                backup.compressed = path
                backup.compression = COMPRESSED_SUFFIXES[suffix]
            else:
                backup.plain = path
        numbered = sorted((b for b in found.values() if b.number is not None), key=lambda b: b.number or 0)
        dated = sorted((b for b in found.values() if b.stamp_text is not None), key=lambda b: b.base, reverse=True)
        if not numbered or not dated:
            return numbered or dated
        # both layouts: merge the two orders by rotation time (a tie: the dated one is newer,
        # as after the usual switch); each numbered backup is looked at (stat) at most once
        merged: list[Backup] = []
        i = j = 0
        when = numbered[0].rotated_at
        while i < len(numbered) and j < len(dated):
            if when > (dated[j].stamp or 0.0) + 0.0005:
                merged.append(numbered[i])
                i += 1
                when = numbered[i].rotated_at if i < len(numbered) else 0.0
            else:
                merged.append(dated[j])
                j += 1
        return merged + numbered[i:] + dated[j:]

    def oldest_first(self, paths: Iterable[Path]) -> list[Path]:
        """``paths`` (backups, or retention's links to them) in rotation order, oldest first."""
        paths = list(paths)
        originals = {self.undeleting(p).name: p for p in paths}
        order = [b for b in self.scan(originals)]
        ranked: list[Path] = []
        for backup in reversed(order):
            for path in backup.files:
                if path.name in originals:
                    ranked.append(originals.pop(path.name))
        return ranked + [p for p in paths if p.name in originals]  # not backup names: last, as given

    def readable(self) -> list[tuple[Path, int, str]]:
        """``(path, rank, compression)`` of the current file (rank 0) and every backup (rank 1
        the newest), oldest first: what ``logd query``, ``logd tail`` and the shippers read.

        A backup that exists both plain and compressed (the instant between the compressor's
        rename and its unlink of the plain file) is listed once, compressed (complete, and it
        stays); one with only a ``.tmp`` is not listed."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            names = []
        out = []
        rank = 0
        for backup in self.scan(names):
            path = backup.readable
            if path is None:
                continue
            rank += 1
            out.append((path, rank, backup.compression if backup.compressed else ""))
        out.reverse()
        if self.current.name in names:
            out.append((self.current, 0, ""))
        return out
