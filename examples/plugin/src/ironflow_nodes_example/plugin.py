"""Entry point of ironflow-nodes-example (group ``ironflow``, name ``nodes-example``).

IronFlow imports this module when it builds its registry, so it stays light:
the node module is imported only when the hook is called, and anything heavy a
node needs would be imported inside the node's ``run`` coroutine.
"""

from __future__ import annotations

from ironflow_core import NodeSpec, hookimpl


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    from ironflow_nodes_example import nodes

    return list(nodes.NODES)
