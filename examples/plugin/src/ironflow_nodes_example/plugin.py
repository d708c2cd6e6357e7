"""Entry point of ironflow-nodes-example (group ``ironflow``, name ``nodes-example``).

IronFlow imports this module whenever it loads plugins, so it stays light:
the hook names the nodes with ``NodeRef``s, the node module is imported the
first time a flow uses one of them, and anything heavy a node needs would be
imported inside the node's ``run`` coroutine.
"""

from __future__ import annotations

import functools

from ironflow_core import NodeRef, hookimpl
from ironflow_core.specs import node_from_module

NODE_NAMES = ("slugify", "word_count")
"""The names in ``ironflow_nodes_example.nodes.NODES``."""


@hookimpl
def ironflow_register_nodes() -> list[NodeRef]:
    """``slugify`` and ``word_count``, imported on first use."""
    return [NodeRef(name=name, load=functools.partial(node_from_module,
                                                      "ironflow_nodes_example.nodes", name))
            for name in NODE_NAMES]
