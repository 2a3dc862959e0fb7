# The compiled hot path (logd/_hotpath.c), as logd/hotpath.py uses it.
from collections.abc import Callable

K_SECRET: int
K_BAIL: int
K_TEXT: int
K_READ: int
K_FULL: int

def home_slot(data: bytes, /) -> int: ...

class FastPath:
    def __init__(self, *, aliases: dict[str, str], actions: dict[str, int], classify_key: Callable[[str], int],
                 value_clean: Callable[[str], bool] | None, message_clean: Callable[[str], bool] | None,
                 min_len: int, redact: bool, label: str | None = None, count: bool = False,
                 histogram: str | None = None, scale: float = 1.0, buckets: tuple[float, ...] = (),
                 sum: str | None = None, sum_label: str | None = None, directions: dict[str, int] | None = None,
                 names: str | None = None, failed: str | None = None, failed_ranks: int = 0,
                 observe: str | None = None, observe_label: str | None = None, observe_scale: float = 1.0,
                 observe_buckets: tuple[float, ...] = (), thin: str | None = None, naive_utc: bool = False,
                 entries: tuple[object, str, tuple[str, ...], tuple[str, ...], str, str, str, str, tuple[str, ...],
                                str, str] | None = None,
                 ) -> None: ...
    def run(self, lines: list[bytes], start: int, stop: int, suffix: bytes | list[bytes], /) -> tuple[
        bytes, int, int, int, list[list[object]], list[list[object]], str | None, str | None, int, bool,
        list[int], list[tuple[int, str | None, str, str]], list[tuple[object, str]],
        list[tuple[str, str, str | None, str | None, str]]]: ...
