"""Fixtures for calling ``shell_command`` directly: built-ins plus this plugin only."""

from __future__ import annotations

from tests.plugin_fixtures import node_fixtures

registry, make_ctx, call = node_fixtures(
    "nodes-shell", "ironflow_nodes_shell.plugin", node_type="shell_command"
)
