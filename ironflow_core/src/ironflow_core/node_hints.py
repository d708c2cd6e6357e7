"""What to tell someone whose flow names a node type nobody registered.

A flow that uses ``nodes.http_get`` with only ``ironflow-core`` installed, a
typo such as ``nodes.templte_render``, and a node whose plugin failed to load
or was disabled all look the same from Lua. ``unknown_node_message`` tells them
apart and says what to do, so ``validate``, ``run`` and the API give one
message: ``Unknown node type 'http_get' at flow.lua:2 (step 'fetch'); ...``.
"""

from __future__ import annotations

from ironflow_core.plugins import PluginRecord
from ironflow_core.registry import Registry

FIRST_PARTY_NODES: dict[str, tuple[str, ...]] = {
    "ironflow-nodes-http": (
        "http_request", "http_get", "http_post", "http_put", "http_delete",
        "if_http_status", "if_body_contains",
    ),
    "ironflow-nodes-shell": ("shell_command",),
    "ironflow-nodes-fs": (
        "read_file", "write_file", "copy_file", "move_file", "delete_file",
        "list_directory", "zip_create", "zip_list", "zip_extract",
    ),
}
"""Distribution -> the node types it provides, for the first-party families.

Kept here because the hint is needed exactly when the distribution is *not*
installed; a test checks it against the installed workspace.
"""


def distribution_for(node_type: str) -> str | None:
    """The first-party distribution that provides ``node_type``, if any."""
    for distribution, names in FIRST_PARTY_NODES.items():
        if node_type in names:
            return distribution
    return None


def _location(path: str | None, line: int | None, step: str | None) -> str:
    where = ""
    if path is not None and line is not None:
        where = f" at {path}:{line}"
    elif path is not None:
        where = f" in {path}"
    elif line is not None:
        where = f" at line {line}"
    if step is not None:
        where += f" (step '{step}')"
    return where


def _plugin_state(record: PluginRecord) -> str:
    if record.status == "disabled":
        return (f"plugin '{record.name}' ({record.distribution}) is disabled by "
                "IRONFLOW_DISABLED_PLUGINS")
    return f"plugin '{record.name}' ({record.distribution}) failed to load: {record.error}"


def unknown_node_hint(registry: Registry, node_type: str) -> str:
    """The most useful next step for an unregistered node type."""
    distribution = distribution_for(node_type)
    inactive = [r for r in registry.plugins if r.status != "active"]
    if distribution is not None:
        for record in inactive:
            if record.distribution == distribution:
                return _plugin_state(record)
        return f"it is provided by {distribution}: pip install {distribution}"
    import difflib  # only an unknown node type needs it: not at start-up

    close = difflib.get_close_matches(node_type, list(registry.nodes), n=1, cutoff=0.75)
    if close:
        return f"did you mean '{close[0]}'?"
    if inactive:
        return "it may come from a plugin that is not active: " + "; ".join(
            _plugin_state(r) for r in inactive
        )
    return "run 'ironflow nodes' to list the installed node types"


def unknown_node_message(
    registry: Registry,
    node_type: str,
    *,
    path: str | None = None,
    line: int | None = None,
    step: str | None = None,
) -> str:
    """The one message validate, run and the API give for an unregistered node type."""
    return (f"Unknown node type '{node_type}'{_location(path, line, step)}; "
            + unknown_node_hint(registry, node_type))
