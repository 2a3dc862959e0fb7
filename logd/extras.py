"""Optional parts of logd and the extra that installs each (``pip install 'logd[ship]'``).

The core install is what the daemon and the client need; shipping over HTTP/OTLP, SQL over
the logs, the loguru sink and the live ``logd top`` view are extras. Code that needs one
calls :func:`require`, which names the extra to install instead of failing with an
ImportError deep in a stack trace.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "httpx": "ship",
    "h11": "otlp",
    "opentelemetry.proto": "ship",
    "nats": "nats",
    "duckdb": "sql",
    "loguru": "loguru",
    "rich": "tui",
}


class MissingExtra(ImportError):
    """A feature was asked for whose extra is not installed; ``str()`` says what to install."""


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module, "all")
    return f"pip install 'logd[{extra}]'"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra`: ``<feature> needs <module>: pip install 'logd[x]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs {module.split('.')[0]}: {install_hint(module)}") from None
