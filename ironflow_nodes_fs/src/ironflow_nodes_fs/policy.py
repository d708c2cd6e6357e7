"""Where file nodes may reach: the operator policy ``IRONFLOW_FS_ROOTS``.

Unset means no confinement, as upstream. When set it is a list of directories
separated by ``os.pathsep``; every path a file node touches must, once ``..``
and symlinks are resolved, lie inside one of them. Paths are checked before
use, and descriptors the nodes open are checked again through
``/proc/self/fd`` where that exists, so a symlink swapped in between the check
and the open cannot lead outside. Everything here blocks (``realpath`` walks
the file system): call it from a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from ironflow_core.errors import NodeError

ROOTS_VAR = "IRONFLOW_FS_ROOTS"


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


@attrs.define
class FsRoots:
    entries: tuple[str, ...]
    _resolved: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FsRoots | None:
        """The operator's roots, or None when the variable is unset (no policy)."""
        raw = env.get(ROOTS_VAR)
        if raw is None:
            return None
        return cls(tuple(part for part in raw.split(os.pathsep) if part.strip()))

    def _roots(self) -> tuple[str, ...]:
        if self._resolved is None:
            self._resolved = tuple(os.path.realpath(entry.strip()) for entry in self.entries)
        return self._resolved

    def contains(self, real: str) -> bool:
        for root in self._roots():
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return True
        return False

    def refusal(self, node: str, path: str) -> NodeError:
        return NodeError(f"{node}: '{path}' is outside the directories allowed by {ROOTS_VAR}")

    def check(self, node: str, path: str, *, follow_leaf: bool) -> None:
        """Refuse ``path`` unless it resolves inside a root.

        ``follow_leaf=False`` is for operations that act on a final symlink
        itself (delete, rename, a no-follow open): only its directory is
        resolved then.
        """
        if follow_leaf:
            real = os.path.realpath(path)
        else:
            parts = split_leaf(path)
            if parts is None:
                real = os.path.realpath(path)
            else:
                real = os.path.join(os.path.realpath(parts[0]), parts[1])
        if not self.contains(real):
            raise self.refusal(node, path)

    def check_fd(self, node: str, fd: int, path: str) -> None:
        """Refuse an already opened file or directory that lies outside every root."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return  # no /proc: the path check made before opening stands alone
        if real.startswith("/") and not self.contains(real):
            raise self.refusal(node, path)


def check_path(roots: FsRoots | None, node: str, path: str, *, follow_leaf: bool) -> None:
    if roots is not None:
        roots.check(node, path, follow_leaf=follow_leaf)


def check_fd(roots: FsRoots | None, node: str, fd: int, path: str) -> None:
    if roots is not None:
        roots.check_fd(node, fd, path)
