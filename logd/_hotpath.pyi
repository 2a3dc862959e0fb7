# The compiled hot path (logd/_hotpath.c), as logd/hotpath.py uses it.
from collections.abc import Callable

K_SECRET: int
K_BAIL: int
K_TEXT: int

def home_slot(data: bytes, /) -> int: ...

class FastPath:
    def __init__(self, *, aliases: dict[str, str], actions: dict[str, int], classify_key: Callable[[str], int],
                 value_clean: Callable[[str], bool] | None, message_clean: Callable[[str], bool] | None,
                 buckets: tuple[float, ...], directions: dict[str, int], min_len: int, redact: bool,
                 usage: bool) -> None: ...
    def run(self, lines: list[bytes], start: int, stop: int, suffix: bytes, /) -> tuple[
        bytes, int, int, int, list[list[object]], list[list[object]], str | None, str | None]: ...
