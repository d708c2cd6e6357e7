"""Reading flow sources and loading them with the loader their suffix selects (DSL-4).

Files must be regular files, valid UTF-8 and at most
``IRONFLOW_MAX_FLOW_SOURCE_BYTES`` bytes (default 1 MiB, inclusive; zero or a
non-number means the default). Inline sources (``FlowSource`` without a path)
use the Lua loader and the same size limit. Lua source that a flow builds
while it loads (``code`` steps' ``source`` strings) counts against the same
limit, on every path that loads a flow (run, resume, validate, the API,
subworkflows, the testing kit): they all come through :func:`load_flow`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import attrs
import trio

from ironflow_core.errors import FlowLoadError
from ironflow_core.model import FlowDefinition, FlowSourceRecord
from ironflow_core.registry import Registry
from ironflow_core.regular_files import (
    FileTooLargeError,
    NotRegularFileError,
    open_regular,
    read_bounded,
)
from ironflow_core.settings import MAX_FLOW_SOURCE_BYTES
from ironflow_core.specs import CancelFlag, FlowSource, LoaderSpec, LoadOptions

MAX_SOURCE_ENV: str = MAX_FLOW_SOURCE_BYTES.env or ""
DEFAULT_MAX_SOURCE_BYTES: int = MAX_FLOW_SOURCE_BYTES.default
INLINE_LOADER = "lua"


def max_source_bytes(env: Mapping[str, str]) -> int:
    """``IRONFLOW_MAX_FLOW_SOURCE_BYTES`` (invalid or 0: the 1 MiB default)."""
    limit: int = MAX_FLOW_SOURCE_BYTES.read(env)
    return limit


def _too_large(size: int | None, limit: int, what: str, path: str | None) -> FlowLoadError:
    """``size`` is None when only reading the file showed it to be too large."""
    measured = "" if size is None else f" {size} bytes,"
    return FlowLoadError(
        f"{what} is{measured} over the limit of {limit} bytes (set {MAX_SOURCE_ENV} "
        "to allow larger flows)",
        path=path,
    )


def check_source_text(text: str, env: Mapping[str, str], *, path: str | None = None) -> None:
    """The size limit for inline sources (counted in UTF-8 bytes)."""
    limit = max_source_bytes(env)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise _too_large(size, limit, "flow source", path)


def opened_path(fd: int) -> str | None:
    """The path of the file an open descriptor refers to (Linux ``/proc``), or None."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def inside(path: str, roots: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``roots`` or below one (all absolute, normalised)."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def read_flow_source(
    path: str | os.PathLike[str], env: Mapping[str, str], *,
    within: tuple[str, ...] | None = None,
) -> FlowSource:
    """Read a flow file with the checks of DSL-4; errors never echo file contents.

    ``within``: the file actually opened must be a ``.lua`` file inside one of
    these real directories. It is checked on the open descriptor, so swapping
    a directory for a symlink after the caller resolved the path cannot lead
    the read elsewhere.
    """
    name = os.fspath(path)
    limit = max_source_bytes(env)
    not_regular = FlowLoadError(
        f"Flow file '{name}' cannot be read: flow source must be a regular file", path=name
    )
    try:
        fd, info = open_regular(name, follow_symlinks=within is None)
    except FileNotFoundError:
        raise FlowLoadError(f"Flow file '{name}' not found", path=name) from None
    except (IsADirectoryError, NotRegularFileError):
        raise not_regular from None
    except OSError as exc:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: {exc.strerror or exc}", path=name
        ) from None
    try:
        if within is not None:
            _check_opened(fd, info, name, within)
        data = read_bounded(fd, limit, info.st_size)
    except FileTooLargeError as exc:
        raise _too_large(exc.size, limit, f"Flow file '{name}'", name) from None
    except OSError as exc:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: {exc.strerror or exc}", path=name
        ) from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: flow source is not valid UTF-8", path=name
        ) from None
    return FlowSource(text=text, path=name)


def _check_opened(fd: int, info: os.stat_result, name: str, within: tuple[str, ...]) -> None:
    opened = opened_path(fd)
    if opened is None:  # no /proc: the name must still lead to the same file
        again = os.stat(os.path.realpath(name))
        opened = os.path.realpath(name) if (again.st_dev, again.st_ino) == (
            info.st_dev, info.st_ino) else ""
    if not opened.endswith(".lua") or not inside(opened, within):
        raise FlowLoadError(
            f"Flow file '{name}' cannot be read: it left the flows directory while it was "
            "opened", path=name,
        )


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
    cancel: Sequence[CancelFlag] = (),
    within: tuple[str, ...] | None = None,
) -> FlowDefinition:
    """Read (for a path) and load a flow; ``analyze`` adds DSL-110/111 checks and warnings.

    Setting one of the ``cancel`` flags stops the flow's Lua at its next hook;
    ``within`` confines the file read (see :func:`read_flow_source`).
    """
    if isinstance(path_or_source, FlowSource):
        source = path_or_source
        if source.path is None:
            check_source_text(source.text, env)
    else:
        source = read_flow_source(path_or_source, env, within=within)
    loader = _loader(registry, source)
    flow = loader.load(
        source, LoadOptions(nodes=registry.nodes, env=env, analyze=analyze, cancel=tuple(cancel))
    )
    check_code_sources(flow, env)
    if flow.origin is None:  # the flow travels with its runs (resume needs no file)
        origin = FlowSourceRecord(source=source.text, loader=loader.name, file_name=source.path)
        flow = attrs.evolve(flow, origin=origin)
    return flow


def check_code_sources(flow: FlowDefinition, env: Mapping[str, str]) -> None:
    """The flow source limit for the Lua code the steps carry (built at load time)."""
    limit = max_source_bytes(env)
    total = 0
    for step in flow.steps:
        code = step.config.get("source") if step.node_type == "code" else None
        if not isinstance(code, str) or "bytecode_b64" in step.config:
            continue
        total += len(code.encode("utf-8", "surrogatepass"))
        if total > limit:
            where = f"Flow file '{flow.source_path}'" if flow.source_path else "Flow source"
            raise FlowLoadError(
                f"{where}: step '{step.name}': Lua code sources exceed the flow source limit "
                f"of {limit} bytes "
                f"(set {MAX_SOURCE_ENV} to allow larger flows)",
                path=flow.source_path, step=step.name, line=step.line,
            )


T = TypeVar("T")


async def in_stoppable_thread(work: Callable[[CancelFlag], T], *, name: str) -> T:
    """Run ``work(stop)`` in a worker thread that trio cancellation stops.

    ``work`` passes ``stop`` to the Lua it runs (``cancel=``): it is set once
    the waiting task is cancelled (``trio.from_thread.check_cancelled``), and
    the Lua ends at its next hook. The task waits for the thread
    (``abandon_on_cancel=False``), so a load stuck in a Lua loop or a pattern
    match never outlives its caller (a draining server, a cancelled step).
    """
    from ironflow_core.lua.state import TRIO_CANCEL

    def job() -> T:
        try:
            result = work(TRIO_CANCEL)
        except BaseException:
            trio.from_thread.check_cancelled()  # stopped by trio: Cancelled is the outcome
            raise
        trio.from_thread.check_cancelled()
        return result

    return await trio.to_thread.run_sync(job, abandon_on_cancel=False, thread_name=name)


async def load_flow_in_thread(
    path_or_source: str | os.PathLike[str] | FlowSource,
    *,
    registry: Registry,
    env: Mapping[str, str],
    analyze: bool = False,
    cancel: Sequence[CancelFlag] = (),
    within: tuple[str, ...] | None = None,
) -> FlowDefinition:
    """:func:`load_flow` in a worker thread that trio cancellation (or ``cancel``) stops."""
    return await in_stoppable_thread(
        lambda stop: load_flow(path_or_source, registry=registry, env=env, analyze=analyze,
                               cancel=(stop, *cancel), within=within),
        name="ironflow-load",
    )
