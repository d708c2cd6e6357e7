"""Registers the Lua flow loader (``.lua``)."""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.model import FlowDefinition
from ironflow_core.specs import FlowSource, LoaderSpec, LoadOptions


def _load(source: FlowSource, options: LoadOptions) -> FlowDefinition:
    # Imported on first use: lupa and the loader are not needed for `--help`.
    from ironflow_core.lua.loader import load_lua_flow

    return load_lua_flow(source, options)


@hookimpl
def ironflow_register_loaders() -> list[LoaderSpec]:
    """The Lua flow loader, for ``.lua`` files and inline sources."""
    return [
        LoaderSpec(
            name="lua",
            suffixes=(".lua",),
            load=_load,
            summary="IronFlow Lua DSL (Flow.new, flow:step, nodes.<type>)",
        )
    ]
