"""Telling observers about failed store operations (``store_failed`` process events).

``open_store`` wraps the configured store in ``ObservedStore`` only when some
observer is registered; otherwise the store is used as is and the hot path
pays nothing. The error kind is the class of ``StoreError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from ironflow_core.engine.events import notify
from ironflow_core.errors import (
    InvalidInputError,
    RunConflictError,
    RunNotFoundError,
    StoreCorruptionError,
    StoreError,
)
from ironflow_core.model import ProcessEventType
from ironflow_core.specs import StateStore

OPERATIONS = (
    "create_run", "set_status", "upsert_tasks", "merge_context", "get_run", "list_runs",
    "delete_run", "acquire_lease", "renew_lease", "release_lease", "reconcile_expired",
)
"""The observed ``StateStore`` methods: the ``operation`` of a ``store_failed`` event."""

ERROR_KINDS = ("invalid_input", "not_found", "conflict", "corruption", "backend")


def error_kind(exc: StoreError) -> str:
    """The ``store_failed`` event's kind for ``exc``, so observers can tell bad input from a broken backend."""
    if isinstance(exc, InvalidInputError):
        return "invalid_input"
    if isinstance(exc, RunNotFoundError):
        return "not_found"
    if isinstance(exc, RunConflictError):
        return "conflict"
    if isinstance(exc, StoreCorruptionError):
        return "corruption"
    return "backend"


class ObservedStore:
    """A ``StateStore`` proxy: every operation as before, failures also reported."""

    def __init__(self, store: StateStore, observers: Iterable[Any]) -> None:
        self._store = store
        self._observers = tuple(observers)
        for name in OPERATIONS:
            method = getattr(store, name, None)
            if method is not None:
                setattr(self, name, self._observed(name, method))

    def _observed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        observers = self._observers

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except StoreError as exc:
                notify(observers, ProcessEventType.STORE_FAILED, error_kind(exc),
                       store="state", operation=name, detail=str(exc))
                raise

        return call

    async def aclose(self) -> None:
        """Close the wrapped store (the proxy itself holds nothing to release)."""
        await self._store.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def observe_store(store: StateStore, observers: Iterable[Any]) -> StateStore:
    """``store`` itself unless some observer may want ``store_failed`` events."""
    interested = list(observers)
    if not interested:
        return store
    return ObservedStore(store, interested)  # type: ignore[return-value]
