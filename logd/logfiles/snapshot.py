"""The log file and its backups as they are at one instant, oldest first: what ``logd
query``, ``--sql`` and ``logd tail`` read.

Naming (:mod:`.names`): ``agent.log`` is the current file; backups are dated
(``agent-2026-11-29T17-03-00.123.log.zst``) or numbered (``agent.log.1``, ``agent.log.2.zst``,
higher is older), or both after a switch; each file here gets its rank, 1 the newest backup.
``*.tmp`` files are a compressor's work in progress and are ignored.

Rotation renames files while we read, so :func:`snapshot` takes the set at one
consistent instant: it opens the current file and notes each backup's identity (device,
inode, rotation time: :mod:`.identity`); a backup is opened when it is first read, one at
a time (a folder may keep more backups than a process may open files), and found again
by that identity if a numbered rotation moved it or compression replaced it meanwhile.
Reading is streaming (:mod:`.content`)::

    with snapshot(Path("logs/agent.log")) as files:
        for batch in read_lines(files, on_problem=print):
            for line in batch: ...
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from logd.logfiles.content import LogFile, open_log
from logd.logfiles.identity import Identity
from logd.logfiles.names import Names, compression_of


class LazyFile(LogFile):
    """A backup of a :func:`snapshot`: opened when ``fd`` is first asked for.

    It is the file the name had at the snapshot (:meth:`Identity.recognises`): a numbered
    rotation since then moved it to a higher number, and compression may have replaced a
    plain backup by its compressed copy. A backup deleted since (retention) cannot be
    read: ``fd`` stays None, ``error`` says why."""

    def __init__(self, names: Names, path: Path, number: int, compression: str, noted: Identity,
                 disk_size: int) -> None:
        self._fd: int | None = None
        self._tried = False
        super().__init__(path, number, compression, inode=(noted.device, noted.inode), disk_size=disk_size)
        self.names = names
        self.noted = noted

    @property
    def fd(self) -> int | None:
        if self._fd is None and not self._tried:
            self._tried = True
            self._open_now()
        return self._fd

    @fd.setter
    def fd(self, value: int | None) -> None:
        self._fd = value

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        self.close()
        self._tried = self.error is not None  # a file that could not be found is not looked for again

    def _open_now(self) -> None:
        if self._open_if_ours(self.path):
            return
        for name in self.names.moved(self.path.name):
            if self._open_if_ours(self.names.folder / name):
                return
        if self.error is None:
            self.error = FileNotFoundError(errno.ENOENT, "removed before it could be read", str(self.path))

    def _open_if_ours(self, path: Path) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not self.noted.recognises(st, compression_of(path), lambda: b""):  # no head noted: never read
            return False
        opened = open_log(path, self.number)
        if opened.fd is None:
            self.error = opened.error
            self._tried = True
            return True  # there, but cannot be read: said by error
        if opened.inode != (st.st_dev, st.st_ino):  # replaced between the look and the open
            opened.close()
            return False
        self._fd, self.path, self.compression, self.inode = opened.fd, path, opened.compression, opened.inode
        return True


def list_files(current: Path) -> list[tuple[Path, int, str]]:
    """``(path, number, compression)`` of the current file (number 0) and every backup
    (1 the newest), oldest first; names and their order come from :mod:`.names`."""
    return Names(current).readable()


def _same_on_disk(files: list[LogFile]) -> bool:
    for file in files:
        if file.inode is None:  # not open (a backup not read yet has its inode noted)
            continue
        try:
            st = os.lstat(file.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != file.inode:
            return False
    return True


class Snapshot(list[LogFile]):
    """The files open at one instant, oldest first; closes them on exit."""

    def close(self) -> None:
        for file in self:
            file.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listed(current: Path, eager: bool) -> Snapshot:
    """The set as listed now: the current file open, each backup noted (or open: ``eager``)."""
    names = Names(current)
    files = Snapshot()
    for name, number, compression in names.ranked(names.listing()):
        path = names.folder / name
        if number == 0 or eager:
            files.append(open_log(path, number, compression))
            continue
        try:
            st = os.lstat(path)
        except OSError as exc:
            files.append(LogFile(path, number, compression, error=exc))
            continue
        files.append(LazyFile(names, path, number, compression, Identity.of(st, compression=compression),
                                    st.st_size))
    return files


def snapshot(current: Path, attempts: int = 50, eager: bool = False) -> Snapshot:
    """The current file and every backup as they are at one instant, oldest first.

    The current file is opened now; each backup when it is first read (:class:`LazyFile`),
    so a reader that closes each backup after reading it (``release``) holds one open at a
    time, however many there are. ``eager`` opens them all now (a reader that needs them
    all open at once: ``logd query --sql``).

    A rotation between listing and noting moves names under us; then we start over, so
    each file is what its name said (a file vanishing is retried, not reported)."""
    for _ in range(attempts):
        files = _listed(current, eager)
        vanished = any(isinstance(f.error, FileNotFoundError) for f in files)
        if not vanished and _same_on_disk(files) and Names(current).readable() == [
            (f.path, f.number, f.compression) for f in files
        ]:
            return files
        files.close()
    files = _listed(current, eager)
    return Snapshot(f for f in files if not isinstance(f.error, FileNotFoundError))
