"""Entry point of ironflow-nodes-fs (group `ironflow`, name `nodes-fs`).

The node modules are imported when a flow first uses one of their nodes
(listing the names imports none), and they in turn import nothing heavier
than the standard library's ``zipfile``.
"""

from __future__ import annotations

import functools

from ironflow_core import NodeRef, NodeSpec, hookimpl

NODE_NAMES: tuple[str, ...] = (
    "read_file", "write_file", "copy_file", "move_file", "delete_file", "list_directory",
    "zip_create", "zip_list", "zip_extract",
)
"""Every node this plugin provides, named without importing the node modules."""


@hookimpl
def ironflow_register_nodes() -> list[NodeRef]:
    """The file and ZIP nodes, each imported on first use."""
    return [NodeRef(name=name, load=functools.partial(_node, name)) for name in NODE_NAMES]


def _node(name: str) -> NodeSpec:
    return next(spec for spec in _specs() if spec.name == name)


def _specs() -> list[NodeSpec]:
    from ironflow_nodes_fs import files, listing, zipnodes

    return [
        NodeSpec(
            name="read_file",
            run=files.run_read_file,
            config=files.ReadFileConfig,
            summary="Read text, encode binary as base64, or stream a file to the artifact store",
        ),
        NodeSpec(
            name="write_file",
            run=files.run_write_file,
            config=files.WriteFileConfig,
            summary="Atomically write text, streamed base64, or an artifact to a file",
        ),
        NodeSpec(
            name="copy_file",
            run=files.run_copy_file,
            config=files.TransferConfig,
            summary="Copy a file to a new location",
        ),
        NodeSpec(
            name="move_file",
            run=files.run_move_file,
            config=files.TransferConfig,
            summary="Move a file to a new location",
        ),
        NodeSpec(
            name="delete_file",
            run=files.run_delete_file,
            config=files.DeleteFileConfig,
            summary="Delete a file",
        ),
        NodeSpec(
            name="list_directory",
            run=listing.run_list_directory,
            config=listing.ListDirectoryConfig,
            summary="List files in a directory",
        ),
        NodeSpec(
            name="zip_create",
            run=zipnodes.run_zip_create,
            config=zipnodes.ZipCreateConfig,
            summary="Create a ZIP archive from a file or directory",
        ),
        NodeSpec(
            name="zip_list",
            run=zipnodes.run_zip_list,
            config=zipnodes.ZipListConfig,
            summary="List entries in a ZIP archive",
        ),
        NodeSpec(
            name="zip_extract",
            run=zipnodes.run_zip_extract,
            config=zipnodes.ZipExtractConfig,
            summary="Extract a ZIP archive into a directory",
        ),
    ]
