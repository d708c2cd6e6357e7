"""Fixtures for calling the file and ZIP nodes directly: built-ins plus this plugin only.

``call(node, config, ctx=None)`` structures ``config`` into the node's config
class exactly as the flow loader would, then awaits the node's run function.
"""

from __future__ import annotations

from tests.plugin_fixtures import node_fixtures

registry, make_ctx, call = node_fixtures("nodes-fs", "ironflow_nodes_fs.plugin", node_type="fs")
