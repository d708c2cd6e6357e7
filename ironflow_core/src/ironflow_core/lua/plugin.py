"""Registers the Lua flow loader (``.lua``)."""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import LoaderSpec


@hookimpl
def ironflow_register_loaders() -> list[LoaderSpec]:
    return []
