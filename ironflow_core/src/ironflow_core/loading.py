"""Reading flow sources and loading them with the loader their suffix selects (DSL-4).

Files must be regular files, valid UTF-8 and at most
``IRONFLOW_MAX_FLOW_SOURCE_BYTES`` bytes (default 1 MiB, inclusive; zero or a
non-number means the default). Inline sources (``FlowSource`` without a path)
use the Lua loader and the same size limit.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

import attrs

from ironflow_core.errors import FlowLoadError
from ironflow_core.model import FlowDefinition, FlowSourceRecord
from ironflow_core.registry import Registry
from ironflow_core.settings import lenient_positive_int
from ironflow_core.specs import FlowSource, LoaderSpec, LoadOptions

MAX_SOURCE_ENV = "IRONFLOW_MAX_FLOW_SOURCE_BYTES"
DEFAULT_MAX_SOURCE_BYTES = 1_048_576
INLINE_LOADER = "lua"


def max_source_bytes(env: Mapping[str, str]) -> int:
    return lenient_positive_int(env, MAX_SOURCE_ENV, DEFAULT_MAX_SOURCE_BYTES)


def _too_large(size: int, limit: int, what: str, path: str | None) -> FlowLoadError:
    return FlowLoadError(
        f"{what} is {size} bytes, over the limit of {limit} bytes (set {MAX_SOURCE_ENV} "
        "to allow larger flows)",
        path=path,
    )


def check_source_text(text: str, env: Mapping[str, str], *, path: str | None = None) -> None:
    """The size limit for inline sources (counted in UTF-8 bytes)."""
    limit = max_source_bytes(env)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise _too_large(size, limit, "flow source", path)


def read_flow_source(path: str | os.PathLike[str], env: Mapping[str, str]) -> FlowSource:
    """Read a flow file with the checks of DSL-4; errors never echo file contents."""
    name = os.fspath(path)
    limit = max_source_bytes(env)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FlowLoadError(f"Flow file '{name}' not found", path=name) from None
    except IsADirectoryError:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: flow source must be a regular file", path=name
        ) from None
    except OSError as exc:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: {exc.strerror or exc}", path=name
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FlowLoadError(
                f"Flow file '{name}' cannot be read: flow source must be a regular file",
                path=name,
            )
        if info.st_size > limit:
            raise _too_large(info.st_size, limit, f"Flow file '{name}'", name)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise _too_large(total, limit, f"Flow file '{name}'", name)
            chunks.append(chunk)
    except OSError as exc:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: {exc.strerror or exc}", path=name
        ) from None
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: flow source is not valid UTF-8", path=name
        ) from None
    return FlowSource(text=text, path=name)


def _loader(registry: Registry, source: FlowSource) -> LoaderSpec:
    """The loader for the file's suffix; anything else is read as Lua, as upstream does."""
    if source.path is not None:
        loader = registry.loader_for(source.path)
        if loader is not None:
            return loader
    for loader in registry.loaders:
        if loader.name == INLINE_LOADER:
            return loader
    raise FlowLoadError(
        "No Lua flow loader is registered (is the core plugin disabled?)", path=source.path
    )


def load_flow(
    path_or_source: str | os.PathLike[str] | FlowSource,
    *,
    registry: Registry,
    env: Mapping[str, str],
    analyze: bool = False,
) -> FlowDefinition:
    """Read (for a path) and load a flow; ``analyze`` adds DSL-110/111 checks and warnings."""
    if isinstance(path_or_source, FlowSource):
        source = path_or_source
        if source.path is None:
            check_source_text(source.text, env)
    else:
        source = read_flow_source(path_or_source, env)
    loader = _loader(registry, source)
    flow = loader.load(source, LoadOptions(registry=registry, env=env, analyze=analyze))
    if flow.origin is None:  # the flow travels with its runs (resume needs no file)
        origin = FlowSourceRecord(source=source.text, loader=loader.name, file_name=source.path)
        flow = attrs.evolve(flow, origin=origin)
    return flow
