"""Backup names of a log file, and finding them again: the one place that knows them.

Rotation, ``logd query``/``logd tail``, the spool and the shippers all ask this module;
none of them has a name pattern of its own. (Which file is which once names move on is
:mod:`logd.logfiles.identity`.)

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
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

DATED = "dated"
NUMBERED = "numbered"
LAYOUTS = (DATED, NUMBERED)
COMPRESSED_SUFFIXES = {".zst": "zst", ".gz": "gz"}  # file suffix -> compression name readers use
TEMP = ".tmp"
_STAMP = r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})"
_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"


# which files of a backup exist (Backup.flags): the plain one, the compressed one, a compression in progress
PLAIN, ZST, GZ, TEMP_ZST, TEMP_GZ = 1, 2, 4, 8, 16
_FLAGS = {("", False): PLAIN, (".zst", False): ZST, (".gz", False): GZ,
          (".zst", True): TEMP_ZST, (".gz", True): TEMP_GZ}  # (compression suffix, is .tmp) -> bit


class Backup:
    """One backup and its files: normally one, briefly two (plain and ``.tmp``, or plain and
    compressed) while it is being compressed.

    Small on purpose: a scan of a folder that keeps everything makes one per backup (10,000
    and more), so it holds its number or time and which files exist (bits), and makes the
    names and paths when asked."""

    __slots__ = ("names", "number", "stamp_text", "flags", "_stamp")

    def __init__(self, names: Names, number: int | None = None, stamp_text: str | None = None,
                 flags: int = 0) -> None:
        self.names = names
        self.number = number  # numbered layout: N; dated: None
        self.stamp_text = stamp_text  # dated layout: the time in the name; numbered: None
        self.flags = flags
        self._stamp: float | None = None

    def __repr__(self) -> str:
        return f"Backup({self.base!r}, files={[p.name for p in self.files]})"

    @property
    def base(self) -> str:
        """Its plain name: "agent.log.3" or "agent-2026-11-29T17-03-00.123.log"."""
        names = self.names
        if self.number is not None:
            return f"{names.current.name}.{self.number}"
        return f"{names.stem}-{self.stamp_text}{names.ext}"

    def _path(self, suffix: str) -> Path:
        return self.names.folder / (self.base + suffix)

    @property
    def stamp(self) -> float | None:
        """Dated layout: the rotation time (epoch seconds), parsed when first asked."""
        if self.stamp_text is None:
            return None
        if self._stamp is None:
            self._stamp = stamp_time(self.stamp_text)
        return self._stamp

    @property
    def plain(self) -> Path | None:
        return self._path("") if self.flags & PLAIN else None

    @plain.setter
    def plain(self, path: Path | None) -> None:
        self.flags = self.flags | PLAIN if path is not None else self.flags & ~PLAIN

    @property
    def compressed(self) -> Path | None:
        if self.flags & ZST:
            return self._path(".zst")
        return self._path(".gz") if self.flags & GZ else None

    @compressed.setter
    def compressed(self, path: Path | None) -> None:
        self.flags &= ~(ZST | GZ)
        if path is not None:
            self.flags |= GZ if os.fspath(path).endswith(".gz") else ZST

    @property
    def compression(self) -> str:
        """Of ``compressed``: "zst", "gz" or "" (none)."""
        return "zst" if self.flags & ZST else "gz" if self.flags & GZ else ""

    @property
    def temp(self) -> Path | None:
        if self.flags & TEMP_ZST:
            return self._path(".zst.tmp")
        return self._path(".gz.tmp") if self.flags & TEMP_GZ else None

    @temp.setter
    def temp(self, path: Path | None) -> None:
        self.flags &= ~(TEMP_ZST | TEMP_GZ)
        if path is not None:
            self.flags |= TEMP_GZ if os.fspath(path).endswith(".gz.tmp") else TEMP_ZST

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

    def _key(self, name: str) -> tuple[int | None, str | None, int] | None:
        """``(number, stamp, flag)`` of a backup file name (what :meth:`parse` says, without
        making its base name: this runs once per file of the folder at every scan)."""
        m = self._numbered.fullmatch(name)
        if m is not None:
            number, stamp = int(m.group(1)), None
        else:
            m = self._dated.fullmatch(name)
            if m is None:
                return None
            number, stamp = None, m.group(1)
        suffix, temp = m.group(2) or "", m.group(3) is not None
        if temp and not suffix:
            return None  # only compressed files are written under .tmp
        return number, stamp, _FLAGS[suffix, temp]

    def names_in_folder(self) -> Iterator[str]:
        """The folder's file names, one at a time (``os.scandir``: no list of them all)."""
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    yield entry.name
        except FileNotFoundError:
            return

    def _ordered(self, names: Iterable[str] | None) -> Iterator[tuple[int | None, str | None, int]]:
        """``(number, time in the name, flags)`` of every backup, newest first, from the
        folder's names (parsed as they are listed; only numbers, times and bits are kept)."""
        numbered: dict[int, int] = {}  # number -> flags
        dated: dict[str, int] = {}  # time in the name -> flags
        for name in (self.names_in_folder() if names is None else names):
            key = self._key(name)
            if key is None:
                continue
            number, stamp, flag = key
            if number is not None:
                numbered[number] = numbered.get(number, 0) | flag
            else:
                assert stamp is not None
                dated[stamp] = dated.get(stamp, 0) | flag
        by_number = sorted(numbered)
        by_time = sorted(dated, reverse=True)
        i = j = 0
        if by_number and by_time:
            # both layouts: merge the two orders by rotation time (a tie: the dated one is
            # newer, as after the usual switch); each numbered backup is looked at (stat) once
            when = Backup(self, by_number[0], None, numbered[by_number[0]]).rotated_at
            while i < len(by_number) and j < len(by_time):
                if when > stamp_time(by_time[j]) + 0.0005:
                    yield by_number[i], None, numbered[by_number[i]]
                    i += 1
                    if i < len(by_number):
                        when = Backup(self, by_number[i], None, numbered[by_number[i]]).rotated_at
                else:
                    yield None, by_time[j], dated[by_time[j]]
                    j += 1
        for number in by_number[i:]:
            yield number, None, numbered[number]
        for stamp in by_time[j:]:
            yield None, stamp, dated[stamp]

    def scan(self, names: Iterable[str] | None = None) -> list[Backup]:
        """Every backup, newest first (``names``: the folder's listing, when the caller has it).

        One small :class:`Backup` per backup: a folder may keep tens of thousands."""
        return [Backup(self, number, stamp, flags) for number, stamp, flags in self._ordered(names)]

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

    def listing(self) -> list[str]:
        """The names of every backup and then the current file, oldest first: what ``logd
        query``, ``logd tail`` and the shippers read (:func:`ranked` gives each its rank and
        compression). Names only, made as they are listed: a folder may keep tens of
        thousands of backups, and the shippers list it at every rotation.

        A backup that exists both plain and compressed (the instant between the compressor's
        rename and its unlink of the plain file) is listed once, compressed (complete, and it
        stays); one with only a ``.tmp`` is not listed."""
        current = False
        current_name = self.current.name

        def names() -> Iterator[str]:
            nonlocal current
            for name in self.names_in_folder():
                if name == current_name:
                    current = True
                yield name

        out = []
        numbered_prefix = current_name + "."
        for number, stamp, flags in self._ordered(names()):
            suffix = ".zst" if flags & ZST else ".gz" if flags & GZ else "" if flags & PLAIN else None
            if suffix is None:
                continue
            base = f"{numbered_prefix}{number}" if number is not None else f"{self.stem}-{stamp}{self.ext}"
            out.append(base + suffix)
        out.reverse()
        if current:
            out.append(current_name)
        return out

    def number_of(self, name: str) -> int | None:
        """A numbered backup's number; 0 for the current file; None for a dated backup or
        any other name."""
        if name == self.current.name:
            return 0
        parsed = self.parse(name)
        return parsed[1] if parsed is not None else None

    def numbered_files(self, number: int) -> tuple[Path, ...]:
        """Every file numbered backup ``number`` may have (plain, compressed, in progress)."""
        return tuple(self.numbered(number, suffix) for suffix in ("", *COMPRESSED_SUFFIXES)) + tuple(
            self.numbered(number, suffix + TEMP) for suffix in COMPRESSED_SUFFIXES)

    def moved(self, name: str) -> Iterator[str]:
        """Names a backup listed as ``name`` may have now, the likeliest first: its compressed
        copy (or, for a compressed name, its plain original) under the same name; then, when
        numbered, the same under a higher number, the nearest first (a numbered rotation
        moves every backup up one). Which of them is the same file is for
        :mod:`logd.logfiles.identity` to say."""
        parsed = self.parse(name)
        if parsed is None:
            return
        base, number, _, _, _ = parsed
        yield from (base + suffix for suffix in ("", *COMPRESSED_SUFFIXES) if base + suffix != name)
        if number is None:
            return
        higher: dict[int, int] = {}
        for other in self.names_in_folder():
            key = self._key(other)
            if key is not None and key[0] is not None and key[0] > number and not key[2] & (TEMP_ZST | TEMP_GZ):
                higher[key[0]] = higher.get(key[0], 0) | key[2]
        for moved in sorted(higher):
            flags = higher[moved]
            yield from (f"{self.current.name}.{moved}{suffix}"
                        for suffix, flag in (("", PLAIN), (".zst", ZST), (".gz", GZ)) if flags & flag)

    def ranked(self, listing: list[str]) -> Iterator[tuple[str, int, str]]:
        """``(name, rank, compression)`` of each name of a :meth:`listing`: rank 0 is the
        current file, 1 the newest backup."""
        rank = len(listing) - (1 if listing and listing[-1] == self.current.name else 0)
        for name in listing:
            yield name, rank, compression_of(name)
            rank -= 1

    def readable(self) -> list[tuple[Path, int, str]]:
        """``(path, rank, compression)`` of the current file (rank 0) and every backup (rank 1
        the newest), oldest first (see :meth:`listing`)."""
        folder = self.folder
        return [(folder / name, rank, compression) for name, rank, compression in self.ranked(self.listing())]
