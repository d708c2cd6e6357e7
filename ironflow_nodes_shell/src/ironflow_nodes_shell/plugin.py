"""Entry point of ironflow-nodes-shell (group `ironflow`, name `nodes-shell`)."""

from __future__ import annotations

from ironflow_core import NodeSpec, hookimpl


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    """The node types this plugin provides (the pluggy hook)."""
    from ironflow_nodes_shell.node import SUMMARY, ShellCommandConfig, run_shell_command

    return [
        NodeSpec(
            name="shell_command",
            run=run_shell_command,
            config=ShellCommandConfig,
            summary=SUMMARY,
        )
    ]
