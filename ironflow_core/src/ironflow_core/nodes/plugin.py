"""The core's built-in nodes, registered through the same hook as any plugin's."""

from __future__ import annotations

import functools

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import NodeRef, node_from_module

NODE_MODULES: dict[str, tuple[str, ...]] = {
    # each module exposes NODES: list[NodeSpec]; keep one family per module.
    # The names are listed here so that listing them imports no node module
    # (tests/core/test_lazy_nodes.py checks them against each module's NODES).
    "ironflow_core.nodes.control": ("if_node", "switch_node"),
    "ironflow_core.nodes.text": ("delay", "log", "template_render"),
    "ironflow_core.nodes.jsondata": (
        "batch", "data_filter", "data_transform", "deduplicate", "json_extract_path",
        "json_parse", "json_stringify", "rename_fields", "select_fields",
    ),
    "ironflow_core.nodes.csvdata": ("csv_parse", "csv_stringify"),
    "ironflow_core.nodes.schema": ("json_validate", "validate_schema"),
    "ironflow_core.nodes.encoding": ("base64_decode", "base64_encode", "hash"),
    "ironflow_core.nodes.dates": ("date_format",),
    "ironflow_core.nodes.cache": ("cache_get", "cache_set"),
    "ironflow_core.nodes.yamlxml": ("xml_parse", "xml_stringify", "yaml_parse", "yaml_stringify"),
    "ironflow_core.nodes.markup": ("html_sanitize", "html_to_markdown", "markdown_to_html"),
    "ironflow_core.nodes.foreach": ("foreach",),
    "ironflow_core.nodes.subflows": ("parallel_subworkflows", "repeat_subworkflow", "subworkflow"),
    "ironflow_core.nodes.code": ("code",),
}


@hookimpl
def ironflow_register_nodes() -> list[NodeRef]:
    """Every core node by name; its module is imported when a flow first uses it."""
    return [NodeRef(name=name, load=functools.partial(node_from_module, module, name))
            for module, names in NODE_MODULES.items() for name in names]
