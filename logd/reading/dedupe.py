"""Readers of the log keep the first copy of a record an ack-mode client sent twice."""

from __future__ import annotations

from logd.record import Record


class Deduplicator:
    """For readers of the log (``logd query``): keep the first record of each ``_rid``.

    Only a ``_resent`` record can be a duplicate, and its first copy is at most a few
    batches of the same stream before it, so memory stays bounded: per stream, the
    record indexes of its last ``batches`` batches.
    """

    def __init__(self, batches: int = 16) -> None:
        self.batches = batches
        self.dropped = 0
        self._seen: dict[str, dict[int, set[int]]] = {}

    def keep(self, record: Record) -> bool:
        rid = record.get("_rid")
        if not isinstance(rid, str):
            return True
        try:
            stream, seq_text, index_text = rid.rsplit(":", 2)
            seq, index = int(seq_text), int(index_text)
        except ValueError:
            return True
        recent = self._seen.setdefault(stream, {})
        seen = recent.get(seq)
        if seen is None:
            seen = recent[seq] = set()
            if len(recent) > self.batches:
                del recent[next(iter(recent))]  # the stream's oldest batch
        if index in seen and record.get("_resent") is True:
            self.dropped += 1
            return False
        seen.add(index)
        return True
