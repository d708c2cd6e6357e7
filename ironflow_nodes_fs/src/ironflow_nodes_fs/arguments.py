"""Reading file-node parameters with upstream's exact error wording (NODE-4, RF-3)."""

from __future__ import annotations

from typing import Any

from ironflow_core import NodeError


def required_str(value: Any, message: str) -> str:
    """A required string; absent or not a string fails with ``message``."""
    if not isinstance(value, str):
        raise NodeError(message)
    return value


def optional_str(value: Any, node: str, name: str) -> str | None:
    """An optional string; present but not a string is ``<node>: '<name>' must be a string``."""
    if value is None or isinstance(value, str):
        return value
    raise NodeError(f"{node}: '{name}' must be a string")
