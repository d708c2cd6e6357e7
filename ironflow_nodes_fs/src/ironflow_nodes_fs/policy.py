"""Where file nodes may reach: ``IRONFLOW_FS_ROOTS``, enforced by the core's descriptor walk.

The walk lives in ``ironflow_core.fsroots`` (public as ``ironflow_core.FsRoots``)
so that every node that touches files — these and the core's file-backed
cache — obeys the same roots the same way.
"""

from __future__ import annotations

from ironflow_core import FsRoots, open_confined_dir, open_confined_parent, split_leaf

__all__ = ["FsRoots", "open_confined_dir", "open_confined_parent", "split_leaf"]
