"""Entry point of ironflow-nodes-http (group `ironflow`, name `nodes-http`).

Importing this module stays light, and so does listing the nodes: a node's
module (and httpx) loads when a flow first uses that node.
"""

from __future__ import annotations

import functools

from ironflow_core import NodeRef, hookimpl, node_from_module

NODE_MODULES: dict[str, tuple[str, ...]] = {
    "ironflow_nodes_http.request_node": (
        "http_delete", "http_get", "http_post", "http_put", "http_request",
    ),
    "ironflow_nodes_http.routing": ("if_body_contains", "if_http_status"),
}
"""Module -> the names in its ``NODES`` (checked by the core's lazy-node tests)."""


@hookimpl
def ironflow_register_nodes() -> list[NodeRef]:
    """The HTTP request nodes and the status/body routing nodes, imported on first use."""
    return [NodeRef(name=name, load=functools.partial(node_from_module, module, name))
            for module, names in NODE_MODULES.items() for name in names]
