"""glibc allocator settings for a long-running daemon, and giving freed memory back.

Speed: each batch allocates and frees a few hundred KB (reads, encoded lines); with glibc's
defaults that memory is trimmed and page-faulted back in on every batch, which measured at
~60% of the daemon's CPU time (`logd bench`: 145k -> 280k records/s). So freed memory is
kept for reuse up to :data:`TRIM_THRESHOLD`, and blocks below :data:`MMAP_THRESHOLD` come
from the heap.

Flat memory: those raised thresholds, applied to every thread's own arena (glibc gives
each thread one, up to 8 per core), let the threads that work on big buffers (the
compressor, the shippers) each keep tens of MB of free heap for good: the daemon's RSS
climbed 30 -> 180 MB over a few hundred compressed rotations of varied records. Now the
threads share :data:`ARENA_MAX` arenas, and the compressor gives free heap back after each
pass (:func:`release_free_memory`). No-op where glibc is not the allocator.

Python's cyclic collector (:func:`tune_gc`): a batch's decoded records (a dict or more
each) are alive together, so with the default threshold of 700 young containers the
collector ran several times per 1,000-record batch, walking records that are freed by
their reference counts at the batch's end anyway (~7% of the daemon's CPU on trace records).
"""

from __future__ import annotations

import ctypes
import gc
import threading

TRIM_THRESHOLD = 16 << 20  # free heap kept at the top of an arena before it is returned
MMAP_THRESHOLD = 4 << 20  # blocks from this size up are mmapped (and unmapped when freed)
ARENA_MAX = 2  # the event loop's arena and one for every other thread
GC_YOUNG = 10_000  # young containers before a collection: more than a batch's records hold
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8

_libc: ctypes.CDLL | None = None
_lock = threading.Lock()


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist: glibc
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def tune_malloc(trim_threshold: int = TRIM_THRESHOLD, mmap_threshold: int = MMAP_THRESHOLD,
                arena_max: int = ARENA_MAX) -> bool:
    """Apply the settings above (before threads start); False where glibc is not there."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(option, value) for option, value in (
        (M_ARENA_MAX, arena_max), (M_TRIM_THRESHOLD, trim_threshold), (M_MMAP_THRESHOLD, mmap_threshold)))


def tune_gc(young: int = GC_YOUNG) -> None:
    """Collect cycles after ``young`` new containers (older generations as by default; what
    start-up made is frozen out of collections by :func:`logd.daemon.serve`)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, oldest)


def release_free_memory() -> None:
    """Return free heap pages of every arena to the system (``malloc_trim(0)``): a few ms,
    called off the write path after work that freed big buffers."""
    libc = _glibc()
    if libc is not None:
        with _lock:  # one trim at a time is enough
            libc.malloc_trim(0)
