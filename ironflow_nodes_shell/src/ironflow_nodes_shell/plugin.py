"""Entry point of ironflow-nodes-shell (group `ironflow`, name `nodes-shell`).

The node module loads when a flow first uses ``shell_command``.
"""

from __future__ import annotations

from ironflow_core import NodeRef, NodeSpec, hookimpl


def _shell_command() -> NodeSpec:
    from ironflow_nodes_shell.node import SUMMARY, ShellCommandConfig, run_shell_command

    return NodeSpec(
        name="shell_command",
        run=run_shell_command,
        config=ShellCommandConfig,
        summary=SUMMARY,
    )


@hookimpl
def ironflow_register_nodes() -> list[NodeRef]:
    """``shell_command``, imported on first use."""
    return [NodeRef(name="shell_command", load=_shell_command)]
