"""``cache_set`` / ``cache_get``: a process-wide memory cache and a file cache (semantics.md#text-nodes).

The memory backend is one store for the whole process, shared by every run it
executes (CA-2): bounded by ``IRONFLOW_CACHE_MAX_ENTRIES``, least recently used
entry evicted first, expired entries dropped before each insert. Expiry is
kept in a heap so an insert costs O(log n) rather than a sweep of every entry.

The file backend writes ``<cache_dir>/<safe_key>.json`` (CA-3); its disk I/O
runs in trio's worker threads. Under ``IRONFLOW_FS_ROOTS`` the cache directory
is reached by the same descriptor walk as the file nodes (``fsroots``), and
the entry is opened relative to it without following a symlink.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ironflow_core import jsonutil
from ironflow_core._compat.numbers import U64_MAX, serde_int_text
from ironflow_core._compat.rusterrors import os_error_text
from ironflow_core.configs import lenient, run_required
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.fsroots import FsRoots, open_dir
from ironflow_core.params import ABSENT, CountParam, JsonValue, source_value, strict_u64
from ironflow_core.settings import CACHE_DIR, lenient_positive_int
from ironflow_core.specs import NodeSpec

DEFAULT_MAX_ENTRIES = 10_000


def now_seconds() -> int:
    """Whole Unix seconds, the unit upstream compares expiry in (tests replace it)."""
    return int(time.time())


def _module_clock() -> int:
    return now_seconds()


class MemoryCache:
    """A thread-safe bounded LRU map with per-entry expiry in whole seconds.

    ``clock`` returns Unix seconds; by default it reads this module's
    ``now_seconds`` at each call, so a test can move time by replacing it.
    """

    def __init__(self, clock: Callable[[], int] = _module_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Any, int | None, int]] = OrderedDict()
        self._expiries: list[tuple[int, int, str]] = []
        self._stamps = itertools.count()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (tests and a fresh process start empty)."""
        with self._lock:
            self._entries.clear()
            self._expiries.clear()

    def set(self, key: str, value: Any, ttl: int | None, max_entries: int) -> int:
        """Insert and return the entry count afterwards (``cache_size``)."""
        with self._lock:
            now = self._clock()
            self._drop_expired(now)
            if key not in self._entries and len(self._entries) >= max_entries:
                while len(self._entries) >= max_entries:
                    self._entries.popitem(last=False)
            expires_at = None if ttl is None else min(now + ttl, U64_MAX)
            stamp = next(self._stamps)
            self._entries[key] = (value, expires_at, stamp)
            self._entries.move_to_end(key)
            if expires_at is not None:
                heapq.heappush(self._expiries, (expires_at, stamp, key))
            return len(self._entries)

    def get(self, key: str) -> tuple[bool, Any]:
        """``(hit, value)``; an expired entry is removed and misses (``now >= expires_at``)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            value, expires_at, _stamp = entry
            if expires_at is not None and self._clock() >= expires_at:
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, value

    def _drop_expired(self, now: int) -> None:
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _expires, stamp, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry[2] == stamp:
                del self._entries[key]
        if len(heap) > 2 * len(self._entries) + 64:
            # Overwritten entries leave stale heap items behind; rebuild now and then.
            self._expiries = [
                (exp, stamp, key)
                for key, (_value, exp, stamp) in self._entries.items()
                if exp is not None
            ]
            heapq.heapify(self._expiries)


MEMORY_CACHE = MemoryCache()
"""The process-wide store behind ``backend = "memory"``."""


def _backend(node: str, backend: str) -> str:
    if backend not in ("memory", "file"):
        raise NodeError(f"{node}: unsupported backend '{backend}'. Must be 'memory' or 'file'.")
    return backend


def _cache_dir(ctx: NodeContext, value: str | None) -> str:
    if value is not None:
        return value
    directory: str = CACHE_DIR.read(ctx.services.env)
    return directory


def safe_key(key: str) -> str:
    """CA-3: every character but Unicode alphanumerics, ``-`` and ``_`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)


def cache_file(cache_dir: str, key: str) -> str:
    """The file of ``key`` under ``cache_dir``; the key is made safe for a file name."""
    return os.path.join(cache_dir, f"{safe_key(key)}.json")


def _entry_flags(roots: FsRoots | None) -> int:
    return os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if roots is not None else 0)


def _write_entry(
    cache_dir: str, key: str, value: Any, expires_at: int | None, roots: FsRoots | None
) -> None:
    try:
        dir_fd = open_dir(roots, cache_dir, "cache_set", create=True)
    except OSError as exc:
        raise NodeError(f"Failed to create cache dir '{cache_dir}': {os_error_text(exc)}") from None
    path = cache_file(cache_dir, key)
    text = '{"value":' + jsonutil.dumps(value)
    text += "}" if expires_at is None else f',"expires_at":{expires_at}}}'
    try:
        fd = os.open(os.path.basename(path), os.O_WRONLY | os.O_CREAT | _entry_flags(roots),
                     0o644, dir_fd=dir_fd)
        with open(fd, "w", encoding="utf-8") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NodeError(f"Failed to write cache file '{path}': not a regular file")
            handle.truncate(0)
            handle.write(text)
    except OSError as exc:
        raise NodeError(f"Failed to write cache file '{path}': {os_error_text(exc)}") from None
    finally:
        os.close(dir_fd)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_entry(
    cache_dir: str, key: str, now: int, roots: FsRoots | None
) -> tuple[bool, Any]:
    path = cache_file(cache_dir, key)
    leaf = os.path.basename(path)
    try:
        dir_fd = open_dir(roots, cache_dir, "cache_get")
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except OSError as exc:
        raise NodeError(f"Failed to read cache file '{path}': {os_error_text(exc)}") from None
    try:
        return _read_entry_at(dir_fd, leaf, path, now, roots)
    finally:
        os.close(dir_fd)


def _read_entry_at(
    dir_fd: int, leaf: str, path: str, now: int, roots: FsRoots | None
) -> tuple[bool, Any]:
    try:
        fd = os.open(leaf, os.O_RDONLY | _entry_flags(roots), dir_fd=dir_fd)
    except FileNotFoundError:
        return False, None
    except OSError as exc:
        raise NodeError(f"Failed to read cache file '{path}': {os_error_text(exc)}") from None
    try:
        with open(fd, encoding="utf-8") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NodeError(f"Failed to read cache file '{path}': not a regular file")
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        detail = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
        raise NodeError(f"Failed to read cache file '{path}': {detail}") from None
    try:
        entry = json.loads(text, parse_int=serde_int_text, parse_constant=_no_constant)
    except ValueError as exc:
        raise NodeError(f"Corrupt cache file '{path}': {exc}") from None
    if not isinstance(entry, dict) or "value" not in entry:
        raise NodeError(f"Corrupt cache file '{path}': missing field `value`")
    expires_at = entry.get("expires_at")
    if expires_at is not None and (
        isinstance(expires_at, bool)
        or not isinstance(expires_at, int)
        or not 0 <= expires_at <= U64_MAX
    ):
        raise NodeError(f"Corrupt cache file '{path}': 'expires_at' is not a u64")
    if expires_at is not None and now >= expires_at:
        try:
            os.unlink(leaf, dir_fd=dir_fd)
        except OSError:
            pass  # a reader that cannot reclaim the file still misses
        return False, None
    return True, entry["value"]


@attrs.frozen
class CacheSetConfig:
    """``cache_set``'s parameters (CA-1..4)."""

    key: str | None = run_required(lenient=True)
    source_key: str | None = lenient()
    value: JsonValue = ABSENT
    ttl: CountParam = None
    backend: str = lenient("memory")
    """``memory`` or ``file``."""
    cache_dir: str | None = lenient()
    """Where ``file`` entries live; default ``IRONFLOW_CACHE_DIR``."""


async def cache_set(ctx: NodeContext, config: CacheSetConfig) -> dict[str, Any]:
    """CA-1..4: store the ``source_key`` value (wins) or the literal ``value``."""
    if config.key is None:
        raise NodeError("cache_set requires 'key'")
    key = ctx.interpolate(config.key)
    if config.source_key is not None:
        value = source_value(ctx, config.source_key)
    elif config.value is not ABSENT:
        value = config.value
    else:
        raise NodeError("cache_set requires 'source_key' or 'value'")
    ttl = strict_u64(ctx, "ttl", config.ttl, -1)
    ttl_seconds = None if ttl < 0 else ttl
    backend = _backend("cache_set", config.backend)
    output: dict[str, Any] = {"cache_key": key, "cache_stored": True}
    if backend == "memory":
        limit = lenient_positive_int(
            ctx.services.env, "IRONFLOW_CACHE_MAX_ENTRIES", DEFAULT_MAX_ENTRIES
        )
        output["cache_size"] = MEMORY_CACHE.set(key, value, ttl_seconds, limit)
        return output
    expires_at = None
    if ttl_seconds is not None:
        expires_at = now_seconds() + ttl_seconds
        if expires_at > U64_MAX:
            raise NodeError("cache_set: 'ttl' produces an expiry timestamp overflow")
    cache_dir = _cache_dir(ctx, config.cache_dir)
    roots = FsRoots.from_env(ctx.services.env)
    await trio.to_thread.run_sync(_write_entry, cache_dir, key, value, expires_at, roots)
    return output


@attrs.frozen
class CacheGetConfig:
    """``cache_get``'s parameters (CA-4)."""

    key: str | None = run_required(lenient=True)
    output_key: str = lenient("cached_value")
    backend: str = lenient("memory")
    """``memory`` or ``file``."""
    cache_dir: str | None = lenient()
    """Where ``file`` entries live; default ``IRONFLOW_CACHE_DIR``."""


async def cache_get(ctx: NodeContext, config: CacheGetConfig) -> dict[str, Any]:
    """CA-4: ``<output_key>`` (the value or null) and ``cache_hit``."""
    if config.key is None:
        raise NodeError("cache_get requires 'key'")
    key = ctx.interpolate(config.key)
    backend = _backend("cache_get", config.backend)
    if backend == "memory":
        hit, value = MEMORY_CACHE.get(key)
    else:
        cache_dir = _cache_dir(ctx, config.cache_dir)
        roots = FsRoots.from_env(ctx.services.env)
        hit, value = await trio.to_thread.run_sync(
            _read_entry, cache_dir, key, now_seconds(), roots
        )
    return {config.output_key: value if hit else None, "cache_hit": hit}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="cache_set",
        run=cache_set,
        config=CacheSetConfig,
        summary="Store a value in the cache (memory or file-based) with optional TTL",
    ),
    NodeSpec(
        name="cache_get",
        run=cache_get,
        config=CacheGetConfig,
        summary="Retrieve a value from the cache (memory or file-based)",
    ),
]
