"""Size, count and depth limits of the file nodes (semantics.md#configuration, #file-nodes, #zip-nodes).

Operator caps come from the run's environment. A node's own lenient ``max_*``
parameters may lower a cap, never raise it: the smaller of the two applies.
``0`` or an invalid value means "use the operator's cap" (except
``max_depth``, where ``0`` is a real limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ironflow_core import lenient_positive_int, lenient_u64

DEFAULT_FILE_BYTES = 52_428_800
DEFAULT_DIRECTORY_ENTRIES = 10_000
DEFAULT_DIRECTORY_DEPTH = 32
DEFAULT_ZIP_ENTRIES = 10_000
DEFAULT_ZIP_UNCOMPRESSED_BYTES = 536_870_912


def max_file_bytes(env: Mapping[str, str]) -> int:
    """``IRONFLOW_MAX_FILE_BYTES``: the most a file node reads or writes."""
    return lenient_positive_int(env, "IRONFLOW_MAX_FILE_BYTES", DEFAULT_FILE_BYTES)


def _default_depth(env: Mapping[str, str]) -> int:
    return lenient_positive_int(env, "IRONFLOW_MAX_DIRECTORY_DEPTH", DEFAULT_DIRECTORY_DEPTH)


def _positive_or(ctx: Any, value: Any, cap: int) -> int:
    return min(lenient_u64(ctx, value, 0) or cap, cap)


def _depth(ctx: Any, value: Any, cap: int) -> int:
    return min(lenient_u64(ctx, value, cap), cap)


@attrs.frozen
class DirectoryLimits:
    """How many entries and how deep ``list_directory`` may walk."""

    max_entries: int
    max_depth: int


def directory_limits(ctx: Any, max_entries: Any, max_depth: Any) -> DirectoryLimits:
    """The step's directory limits, capped by the operator's settings."""
    env = ctx.services.env
    default_entries = lenient_positive_int(
        env, "IRONFLOW_MAX_DIRECTORY_ENTRIES", DEFAULT_DIRECTORY_ENTRIES
    )
    return DirectoryLimits(
        max_entries=_positive_or(ctx, max_entries, default_entries),
        max_depth=_depth(ctx, max_depth, _default_depth(env)),
    )


@attrs.frozen
class ZipLimits:
    """The bounds a zip node enforces on an archive (entries, depth, bytes)."""

    max_entries: int
    max_depth: int
    max_total_uncompressed_bytes: int


def zip_limits(
    ctx: Any, max_entries: Any, max_depth: Any, max_total_uncompressed_bytes: Any
) -> ZipLimits:
    """The step's zip limits, capped by the operator's settings."""
    env = ctx.services.env
    return ZipLimits(
        max_entries=_positive_or(
            ctx,
            max_entries,
            lenient_positive_int(env, "IRONFLOW_MAX_ZIP_ENTRIES", DEFAULT_ZIP_ENTRIES),
        ),
        max_depth=_depth(ctx, max_depth, _default_depth(env)),
        max_total_uncompressed_bytes=_positive_or(
            ctx,
            max_total_uncompressed_bytes,
            lenient_positive_int(
                env, "IRONFLOW_MAX_ZIP_UNCOMPRESSED_BYTES", DEFAULT_ZIP_UNCOMPRESSED_BYTES
            ),
        ),
    )
