"""Where file-touching nodes may reach: the operator policy ``IRONFLOW_FS_ROOTS``.

Unset means no confinement, as upstream. When set it is a list of directories
separated by ``os.pathsep``, and every path a node touches is reached by
*descriptors*, never by handing the kernel a path string twice: the matching
root is opened, then each component is opened relative to its parent with
``O_NOFOLLOW | O_DIRECTORY``. A symlink met on the way is read
(``readlinkat``) and its target walked the same way, so a link that stays
inside the roots works and one that leads out is refused; ``..`` never climbs
above the root it started from. The caller gets a directory descriptor and a
leaf name and acts with the ``*at`` calls (``os.open(dir_fd=…)``,
``os.unlink(dir_fd=…)``, ``os.rename(src_dir_fd=…, dst_dir_fd=…)``), so a
directory swapped for a symlink while a node runs cannot lead the operation
outside the roots.

The fs plugin and the core's file-backed cache both use this module; it is
part of the core's public API (``ironflow_core.FsRoots``). Everything here
blocks: call it from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping

import attrs

from ironflow_core.errors import NodeError
from ironflow_core.settings import FS_ROOTS

ROOTS_VAR: str = FS_ROOTS.env or ""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_SYMLINK_HOPS = 40


def split_leaf(path: str) -> tuple[str, str] | None:
    """``(parent, name)`` of the last component, like Rust's ``Path::file_name``.

    Trailing ``/`` and ``/.`` are ignored (``a/b/`` names ``b``); a path whose
    last component is ``..`` or that is only a root has no name (None).
    """
    trimmed = path
    while True:
        if len(trimmed) > 1 and trimmed.endswith("/"):
            trimmed = trimmed.rstrip("/") or "/"
        elif trimmed.endswith("/.") and len(trimmed) > 2:
            trimmed = trimmed[:-2]
        else:
            break
    parent, name = os.path.split(trimmed)
    if name in ("", ".", ".."):
        return None
    return (parent or "."), name


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


@attrs.frozen
class FsRoots:
    """The operator's roots; every method refuses what lies outside them."""

    entries: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FsRoots | None:
        """The operator's roots, or None when the variable is unset (no policy)."""
        entries = FS_ROOTS.read(env)
        return None if entries is None else cls(entries)

    def refusal(self, node: str, path: str) -> NodeError:
        """The one error text every fs node gives for a path outside the allowed roots."""
        return NodeError(f"{node}: '{path}' is outside the directories allowed by {ROOTS_VAR}")

    # --- the walk ---------------------------------------------------------------

    def open_dir(self, path: str, node: str, *, create: bool = False,
                 shown: str | None = None) -> int:
        """A descriptor of the directory ``path`` (created, component by component, if asked)."""
        shown = path if shown is None else shown
        fd, leaf = self._walk(path, node, shown, leaf=False, follow_leaf=True, create=create)
        assert leaf is None
        return fd

    def open_parent(self, path: str, node: str, *, follow_leaf: bool = False,
                    create: bool = False, shown: str | None = None) -> tuple[int, str]:
        """``(directory descriptor, leaf name)`` for acting on ``path`` with the ``*at`` calls.

        The leaf itself is not opened. With ``follow_leaf`` a leaf symlink is
        resolved first (inside the roots). ``create`` makes missing parents.
        """
        shown = path if shown is None else shown
        if split_leaf(path) is None:
            raise NodeError(f"{node}: '{shown}' has no file name")
        fd, leaf = self._walk(path, node, shown, leaf=True, follow_leaf=follow_leaf,
                              create=create)
        assert leaf is not None
        return fd, leaf

    def _walk(self, path: str, node: str, shown: str, *, leaf: bool, follow_leaf: bool,
              create: bool) -> tuple[int, str | None]:
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        located = self._locate(absolute)
        if located is None:
            raise self.refusal(node, shown)
        stack, pending = [located[0]], located[1]
        hops = 0
        try:
            while pending:
                name = pending.pop(0)
                if name == "..":
                    if len(stack) == 1:
                        raise self.refusal(node, shown)
                    os.close(stack.pop())
                    continue
                if leaf and not pending:
                    target = _link_target(stack[-1], name) if follow_leaf else None
                    if target is None:
                        top = stack.pop()
                        return top, name
                else:
                    try:
                        stack.append(_open_child_dir(stack[-1], name, create=create))
                        continue
                    except OSError as error:
                        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                            raise
                        target = _link_target(stack[-1], name)
                        if target is None:
                            raise
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                if target.startswith("/"):
                    relocated = self._locate(target)
                    if relocated is None:
                        raise self.refusal(node, shown)
                    _close_all(stack)
                    stack = [relocated[0]]
                    pending = relocated[1] + pending
                else:
                    pending = _components(target) + pending
            if leaf:
                raise NodeError(f"{node}: '{shown}' has no file name")
            top = stack.pop()
            return top, None
        finally:
            _close_all(stack)

    def _locate(self, absolute: str) -> tuple[int, list[str]] | None:
        """Open the root ``absolute`` starts in: ``(root descriptor, remaining components)``."""
        parts = _components(absolute)
        spellings: list[tuple[list[str], str]] = []
        for entry in self.entries:
            spelled = os.path.normpath(os.path.abspath(entry))
            real = os.path.realpath(entry)
            spellings += [(_components(spelled), real), (_components(real), real)]
        for root_parts, real in spellings:
            if parts[: len(root_parts)] == root_parts:
                try:
                    return os.open(real, _DIR_FLAGS), parts[len(root_parts):]
                except OSError:
                    continue
        # Reached through a link in the operator's own layout: a prefix that is,
        # by identity, one of the roots.
        identities = set()
        for _, real in spellings:
            try:
                info = os.stat(real)
            except OSError:
                continue
            identities.add((info.st_dev, info.st_ino))
        for end in range(len(parts), -1, -1):
            if ".." in parts[:end]:
                continue
            try:
                fd = os.open("/" + "/".join(parts[:end]), _DIR_FLAGS)
            except OSError:
                continue
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) in identities:
                return fd, parts[end:]
            os.close(fd)
        return None


def _open_child_dir(parent: int, name: str, *, create: bool) -> int:
    flags = _DIR_FLAGS | os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    return os.open(name, flags, dir_fd=parent)


def _link_target(parent: int, name: str) -> str | None:
    """The target of ``name`` when it is a symlink, else None (missing included)."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISLNK(info.st_mode):
        return None
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError:
        return None


# --- the same calls with or without a policy ---------------------------------


def open_dir(roots: FsRoots | None, path: str, node: str, *, create: bool = False,
             shown: str | None = None) -> int:
    """A directory descriptor for ``path``: walked under ``roots``, or opened as given.

    ``shown`` is the path a refusal names (``path`` by default).
    """
    if roots is not None:
        return roots.open_dir(path, node, create=create, shown=shown)
    if create:
        os.makedirs(path or ".", exist_ok=True)
    return os.open(path or ".", _DIR_FLAGS)


def open_parent(roots: FsRoots | None, path: str, node: str, *, follow_leaf: bool = False,
                create: bool = False) -> tuple[int, str]:
    """``(parent descriptor, leaf)`` for ``path``: walked under ``roots``, or opened as given."""
    if roots is not None:
        return roots.open_parent(path, node, follow_leaf=follow_leaf, create=create)
    parts = split_leaf(path)
    if parts is None:
        raise NodeError(f"{node}: '{path}' has no file name")
    parent, leaf = parts
    if create:
        os.makedirs(parent, exist_ok=True)
    return os.open(parent, _DIR_FLAGS), leaf
