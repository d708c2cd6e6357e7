"""ironflow-nodes-fs registers its nine nodes through its own entry point (semantics.md#node-conventions)."""

from __future__ import annotations

from ironflow_core.testing import assert_plugin_installed

SUMMARIES = {
    "copy_file": "Copy a file to a new location",
    "delete_file": "Delete a file",
    "list_directory": "List files in a directory",
    "move_file": "Move a file to a new location",
    "read_file": "Read text, encode binary as base64, or stream a file to the artifact store",
    "write_file": "Atomically write text, streamed base64, or an artifact to a file",
    "zip_create": "Create a ZIP archive from a file or directory",
    "zip_extract": "Extract a ZIP archive into a directory",
    "zip_list": "List entries in a ZIP archive",
}


def test_every_file_node_is_registered_by_nodes_fs(registry):
    assert_plugin_installed("nodes-fs", nodes=SUMMARIES)
    for name, summary in SUMMARIES.items():
        spec = registry.node(name)
        assert spec is not None, name
        assert spec.summary == summary
        assert spec.config is not None
        assert registry.node_providers[name] == "nodes-fs"
