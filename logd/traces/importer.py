"""Trace files the frameworks wrote -> sessions: read in place (``logd list/trace --dir``)
or imported into the trace folder (``logd trace import FILE...``).

Read: AgenticGoKit ``<session>.trace.json`` (closed or never closed), Koog's JSON
(one object per line or pretty-printed) and text writer lines, OpenAI exports (JSON lines
or ``{"data": [...]}`` batches) -- see :mod:`logd.traces.formats`. Each record becomes the
canonical record the daemon would have stored had it come over the socket, plus an
``import_id`` (a hash of what the file holds) so that importing a file again appends
only what is new. Text lines carry no time: they take the file's modification time, in
file order.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from logd.pipeline import encode
from logd.record import Record, normalize_object
from logd.regular import read_regular
from logd.timestamps import format_epoch
from logd.traces.formats import TraceMeta, expand, koog_text, scan
from logd.traces.index import FOREIGN_SUFFIXES
from logd.traces.model import trace_sessions
from logd.traces.names import UnsafeSessionId, file_name, session_path
from logd.traces.shapes import classify
from logd.traces.store import TraceStore, read_lines

# a file is read whole (a trace file is one document): larger ones are refused, not read until memory runs out
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass
class FileRead:
    path: Path
    by_key: dict[str, list[Record]] = field(default_factory=dict)  # as the daemon files them (shapes.classify)
    problems: list[str] = field(default_factory=list)
    not_traces: int = 0          # documents or lines that are no trace record (kept out)
    first_not_trace: int | None = None

    @property
    def records(self) -> int:
        return sum(len(r) for r in self.by_key.values())

    @property
    def sessions(self) -> dict[str, list[Record]]:
        """The records by session: each trace's settled from all of its spans in the file."""
        traces = trace_sessions(r for records in self.by_key.values() for r in records)
        out: dict[str, list[Record]] = {}
        for key, records in self.by_key.items():
            out.setdefault(traces.get(key, key), []).extend(records)
        return out


def read_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> FileRead:
    """Every trace record in ``path``, by session; problems as one line each. Only a regular
    file of at most ``max_bytes``, not a link (:mod:`logd.regular`): else OSError."""
    out = FileRead(path)
    data, st = read_regular(path, max_bytes)
    received = format_epoch(st.st_mtime)
    meta = TraceMeta()
    for piece in scan(data.decode("utf-8", "replace")):
        if piece.problem:
            out.problems.append(f"{path}: {piece.problem}")
            continue
        if piece.text is not None:
            event = koog_text(piece.text) if "Event (" in piece.text else None
            if event is None:
                _not_trace(out, piece.line)
                continue
            objs = expand(event, meta)
            keys = [_key(f"{piece.line}:{piece.text}".encode())]
        else:
            objs = expand(piece.value, meta)
            keys = [_key(orjson.dumps(o, option=orjson.OPT_SORT_KEYS, default=str)) for o in objs]
        for obj, key in zip(objs, keys, strict=True):  # a Koog text line expands to one object
            record = normalize_object(obj, received)
            found = classify(record)
            if found is None:
                _not_trace(out, piece.line)
                continue
            record["import_id"] = key
            out.by_key.setdefault(found[1], []).append(record)
    if out.not_traces:
        out.problems.append(f"{path}: {out.not_traces} entr{'y is' if out.not_traces == 1 else 'ies are'} "
                            f"not a trace record of AgenticGoKit, Koog or the OpenAI Agents SDK, kept out "
                            f"(first at line {out.first_not_trace})")
    return out


def _not_trace(out: FileRead, line: int) -> None:
    out.not_traces += 1
    if out.first_not_trace is None:
        out.first_not_trace = line


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


@dataclass
class Imported:
    path: Path
    records: int
    sessions: int
    added: int
    already: int
    problems: list[str]


def import_file(path: Path, folder: Path, max_bytes: int = MAX_FILE_BYTES) -> Imported:
    """Append ``path``'s trace records to their session files in ``folder``, skipping those
    an earlier import already added. Raises OSError if the file cannot be read (not a
    regular file, a link, over ``max_bytes``)."""
    read = read_file(path, max_bytes)
    store = TraceStore(folder)
    problems = list(read.problems)
    added = already = 0
    try:
        for key, records in read.by_key.items():
            try:
                target = session_path(folder, key)
            except UnsafeSessionId as exc:
                problems.append(f"{path}: {exc}; its {len(records)} records are not imported")
                continue
            seen = _import_ids(target)
            new = [r for r in records if r["import_id"] not in seen]
            already += len(records) - len(new)
            if new:
                store.append(file_name(key), b"".join(encode(r) for r in new))
                added += len(new)
    finally:
        store.close()
    return Imported(path, read.records, len(read.sessions), added, already, problems)


def _import_ids(path: Path) -> set[str]:
    try:
        records, _ = read_lines(path)
    except FileNotFoundError:
        return set()
    return {r["import_id"] for r in records if isinstance(r.get("import_id"), str)}


def foreign_files(folder: Path) -> list[Path]:
    """Files in ``folder`` written by the frameworks themselves (read in place by ``--dir``)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(e.path) for e in entries if e.name.endswith(FOREIGN_SUFFIXES)
                  and not e.name.endswith(".trace.jsonl") and e.is_file(follow_symlinks=False))
