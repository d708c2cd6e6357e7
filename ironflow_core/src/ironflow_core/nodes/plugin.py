"""The core's built-in nodes, registered through the same hook as any plugin's."""

from __future__ import annotations

import importlib

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import NodeSpec

NODE_MODULES: tuple[str, ...] = (
    # each module exposes NODES: list[NodeSpec]; keep one family per module
    "ironflow_core.nodes.control",
    "ironflow_core.nodes.text",
    "ironflow_core.nodes.jsondata",
    "ironflow_core.nodes.csvdata",
    "ironflow_core.nodes.schema",
    "ironflow_core.nodes.encoding",
    "ironflow_core.nodes.dates",
    "ironflow_core.nodes.cache",
    "ironflow_core.nodes.yamlxml",
    "ironflow_core.nodes.markup",
    "ironflow_core.nodes.foreach",
    "ironflow_core.nodes.subflows",
    "ironflow_core.nodes.code",
)


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    """The node types this plugin provides (the pluggy hook)."""
    specs: list[NodeSpec] = []
    for module_name in NODE_MODULES:
        specs.extend(importlib.import_module(module_name).NODES)
    return specs
