"""The core's built-in stores (json, memory)."""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import StoreSpec


@hookimpl
def ironflow_register_stores() -> list[StoreSpec]:
    return []
