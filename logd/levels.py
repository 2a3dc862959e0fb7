"""Canonical log levels (zerolog's set and order) and the names agents use for them."""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("trace", "debug", "info", "warn", "error", "fatal", "panic")
RANK: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
# the levels that count as an error: in /metrics, `logd status`, `logd top`, the usage
# metrics and the console's bold messages alike
ERROR_LEVELS: frozenset[str] = frozenset(("error", "fatal", "panic"))

# Every spelling seen in the wild, lower-cased, mapped to the canonical name:
# zerolog (and its console abbreviations), zap, loguru, stdlib logging, syslog.
ALIASES: dict[str, str] = {name: name for name in LEVELS}
ALIASES.update(
    {
        "trc": "trace",
        "dbg": "debug",
        "inf": "info",
        "information": "info",
        "notice": "info",
        "success": "info",
        "wrn": "warn",
        "warning": "warn",
        "err": "error",
        "critical": "fatal",
        "crit": "fatal",
        "alert": "fatal",
        "emerg": "fatal",
        "emergency": "fatal",
        "ftl": "fatal",
        "dpanic": "panic",
        "pnc": "panic",
    }
)

# zerolog's numeric levels (-1..5) and pino/bunyan's (10..60).
_ZEROLOG_NUMERIC = {-1: "trace", 0: "debug", 1: "info", 2: "warn", 3: "error", 4: "fatal", 5: "panic"}
_PINO_THRESHOLDS = ((60, "fatal"), (50, "error"), (40, "warn"), (30, "info"), (20, "debug"))


def canonical_level(value: object) -> str | None:
    """The canonical name for a level as an agent sent it, or None when it is not a level."""
    if isinstance(value, str):
        return ALIASES.get(value.lower())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value in _ZEROLOG_NUMERIC:
            return _ZEROLOG_NUMERIC[int(value)]
        for threshold, name in _PINO_THRESHOLDS:
            if value >= threshold:
                return name
        return "trace"
    return None


CONFIG_LEVELS: dict[str, str] = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error"}
