"""Entry point of ironflow-nodes-http (group `ironflow`, name `nodes-http`).

Importing this module stays light: httpx loads on the first request.
"""

from __future__ import annotations

from ironflow_core import NodeSpec, hookimpl


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    """The node types this plugin provides (the pluggy hook)."""
    from ironflow_nodes_http import request_node, routing

    return [*request_node.NODES, *routing.NODES]
