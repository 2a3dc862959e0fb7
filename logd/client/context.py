"""Fields bound to the current context (thread, asyncio task) and carried into every record.

One ContextVar holds an immutable-by-convention dict: binding makes a new dict, so a
task created after ``bind`` sees the fields and its own binds never leak back to its
parent (asyncio copies the context into every task it creates).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

# One shared empty default is safe: the bound dict is never changed in place, bind() sets a new one.
_fields: ContextVar[dict[str, Any]] = ContextVar("logd_client_fields", default={})  # noqa: B039


class Bound:
    """What :func:`bind` returns: use it as a context manager to undo the bind on exit."""

    __slots__ = ("_token",)

    def __init__(self, token: Token[dict[str, Any]]) -> None:
        self._token = token

    def reset(self) -> None:
        """Restore the fields bound before (only in the context that bound them)."""
        _fields.reset(self._token)

    def __enter__(self) -> Bound:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.reset()


def bind(**fields: Any) -> Bound:
    """Add fields (``session_id=…``, ``agent=…``, ``correlation_id=…``) to every record from this context.

    Stays bound for the rest of the context, or only inside ``with bind(...):``.
    A field bound to None is removed.
    """
    merged = {**_fields.get(), **fields}
    for key in [k for k, v in fields.items() if v is None]:
        del merged[key]
    return Bound(_fields.set(merged))


def bound() -> dict[str, Any]:
    """The fields bound in the current context (a copy)."""
    return dict(_fields.get())


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def correlation_id() -> str:
    """The bound ``correlation_id``; when none is bound, a new one is made and bound here."""
    current = _fields.get().get("correlation_id")
    if current is None:
        current = new_correlation_id()
        bind(correlation_id=current)
    return str(current)


def current_fields() -> dict[str, Any]:
    """The bound dict itself, for the emit path (do not change it)."""
    return _fields.get()
