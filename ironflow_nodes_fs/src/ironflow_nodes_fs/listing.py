"""The ``list_directory`` node (semantics.md#file-nodes, LD-1..LD-3).

Each directory is read in one worker thread, through a descriptor opened
relative to its parent with ``O_NOFOLLOW``, so recursion never wanders
through a symlink even if one is swapped in while listing. Entries come out
sorted by name (LD-2); ``type`` is ``"file"`` for regular files and
``"directory"`` for everything else, as upstream (LD-1).
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import trio

from ironflow_core import BoolParam, CountParam, NodeContext, NodeError, lenient, lenient_bool
from ironflow_nodes_fs.arguments import required_str
from ironflow_nodes_fs.limits import DirectoryLimits, directory_limits
from ironflow_nodes_fs.policy import FsRoots, open_confined_dir
from ironflow_nodes_fs.safeio import lossy, os_text

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@attrs.frozen
class ListDirectoryConfig:
    """``list_directory``'s parameters, as the flow's table gives them."""

    path: str | None = lenient()
    output_key: str = lenient("files")
    recursive: BoolParam = None
    max_entries: CountParam = None
    max_depth: CountParam = None


@attrs.frozen
class _Entry:
    name: str
    path: str
    is_file: bool
    is_dir: bool
    """A real directory (not a symlink to one): the only kind recursion enters."""


def _too_many(limits: DirectoryLimits) -> NodeError:
    return NodeError(
        f"list_directory: entry count exceeds limit {limits.max_entries} "
        "(set max_entries or IRONFLOW_MAX_DIRECTORY_ENTRIES to raise)"
    )


def _open_root(path: str, roots: FsRoots | None) -> int:
    try:
        return open_confined_dir(roots, path, "list_directory")
    except OSError as error:
        raise NodeError(
            f"list_directory: failed to read directory '{path}': {os_text(error)}"
        ) from None


def _open_child(parent: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as error:
        raise NodeError(
            f"list_directory: failed to read directory '{shown}': {os_text(error)}"
        ) from None


def _scan(fd: int, shown: str, room: int, limits: DirectoryLimits) -> list[_Entry]:
    """The sorted entries of one directory; more than ``room`` of them is an error."""
    entries: list[_Entry] = []
    try:
        with os.scandir(fd) as iterator:
            for item in iterator:
                if len(entries) >= room:
                    raise _too_many(limits)
                entries.append(
                    _Entry(
                        name=item.name,
                        path=os.path.join(shown, item.name),
                        is_file=item.is_file(follow_symlinks=False),
                        is_dir=item.is_dir(follow_symlinks=False),
                    )
                )
    except OSError as error:
        raise NodeError(
            f"list_directory: failed to read directory '{shown}': {os_text(error)}"
        ) from None
    entries.sort(key=lambda entry: entry.name)
    return entries


async def _list(
    fd: int,
    shown: str,
    depth: int,
    recursive: bool,
    limits: DirectoryLimits,
    out: list[dict[str, Any]],
) -> None:
    room = limits.max_entries - len(out)
    entries = await trio.to_thread.run_sync(_scan, fd, shown, room, limits)
    for entry in entries:
        if len(out) >= limits.max_entries:
            raise _too_many(limits)
        out.append(
            {
                "name": lossy(entry.name),
                "type": "file" if entry.is_file else "directory",
                "path": lossy(entry.path),
            }
        )
        if recursive and entry.is_dir:
            if depth + 1 > limits.max_depth:
                raise NodeError(
                    f"list_directory: recursion depth {depth + 1} exceeds limit {limits.max_depth}"
                )
            child = await trio.to_thread.run_sync(_open_child, fd, entry.name, entry.path)
            try:
                await _list(child, entry.path, depth + 1, recursive, limits, out)
            finally:
                os.close(child)


async def run_list_directory(ctx: NodeContext, config: ListDirectoryConfig) -> dict[str, Any]:
    """List ``path`` (pre-order when ``recursive``) as ``{name, type, path}`` objects."""
    path = ctx.interpolate(required_str(config.path, "list_directory requires 'path' parameter"))
    recursive = lenient_bool(ctx, config.recursive, False)
    limits = directory_limits(ctx, config.max_entries, config.max_depth)
    roots = FsRoots.from_env(ctx.services.env)

    fd = await trio.to_thread.run_sync(_open_root, path, roots)
    out: list[dict[str, Any]] = []
    try:
        await _list(fd, path, 0, recursive, limits, out)
    finally:
        os.close(fd)
    return {config.output_key: out}
