"""Running Lua for nodes (``code`` now, ``foreach`` later): the runtime sandbox.

Each execution gets a fresh runtime state (PY-1) with the runtime globals of
§1.7 and the run's Lua limits. :func:`run_in_sandbox` does the work in a
worker thread; on trio cancellation it raises the thread's cancellation flag
(polled by the instruction hook) and waits for the thread to stop before
re-raising, so a cancelled step never leaves Lua running behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ironflow_core.lua import functions
from ironflow_core.lua.convert import json_to_lua, lua_to_json
from ironflow_core.lua.errors import LuaCompileError, LuaExecutionError
from ironflow_core.lua.sandbox import LuaVM
from ironflow_core.settings import LuaLimits

if TYPE_CHECKING:
    from ironflow_core.services import RunServices

T = TypeVar("T")


class Sandbox:
    """One runtime Lua state; every method runs Lua synchronously in the calling thread."""

    def __init__(
        self,
        limits: LuaLimits,
        *,
        env: Mapping[str, str],
        cancel: Sequence[threading.Event] = (),
        deadline: float | None = None,
    ) -> None:
        self.limits = limits
        self.vm = LuaVM(limits, env=env, runtime=True, cancel=cancel, deadline=deadline)

    @property
    def globals(self) -> Any:
        """The user environment (``_G`` of the code that runs here)."""
        return self.vm.globals

    def set_global(self, name: str, value: Any) -> None:
        """Set a global from an already converted Lua value (e.g. ``ctx``)."""
        self.vm.globals[name.encode()] = value

    def load_function(self, bytecode_b64: str) -> Any:
        """An authenticated serialized handler, loaded as a binary chunk (DSL-53)."""
        bytecode = functions.verify(bytecode_b64)
        return self.vm.load(bytecode, "=handler", binary=True)

    def compile_source(self, source: str) -> Any:
        """CD-3: ``return <source>`` if that compiles, else ``source`` as a chunk."""
        data = source.encode("utf-8")
        try:
            return self.vm.load(b"return " + data, "=code")
        except LuaCompileError:
            return self.vm.load(data, "=code")

    def to_lua(self, value: Any, path: str = "$") -> Any:
        """A JSON value as a fresh Lua value (DSL-80); ``LuaConversionError`` names the path."""
        return json_to_lua(self.vm, value, path=path)

    def from_lua(self, value: Any, path: str = "$") -> Any:
        """A Lua value as JSON (DSL-81..85); ``LuaConversionError`` names the path."""
        return lua_to_json(self.vm, value, path=path)

    def call(self, fn: Any, *args: Any) -> Any:
        """Call a Lua function under the limits; its first return value (None for none).

        Raises ``LuaExecutionError`` (``LuaLimitError`` when a limit stopped it).
        """
        results = self.vm.call(fn, *args)
        return results[0] if results else None

    def close(self) -> None:
        self.vm.close()


async def run_in_sandbox(
    services: RunServices,
    work: Callable[[Sandbox], T],
    *,
    label: str,
    deadline: float | None = None,
) -> T:
    """Run ``work(sandbox)`` in a worker thread with a fresh runtime sandbox.

    ``label`` names the work in thread names and errors. Trio cancellation
    and ``services.cancelled`` both stop the Lua code at its next hook; on
    cancellation the thread is awaited before ``Cancelled`` propagates.
    """
    cancel = threading.Event()
    lock = threading.Lock()
    started = False
    finished = trio.Event()
    token = trio.lowlevel.current_trio_token()
    limits = services.lua_limits
    env = services.env

    def job() -> T:
        nonlocal started
        with lock:
            if cancel.is_set():
                raise LuaExecutionError("Lua execution was cancelled")
            started = True
        try:
            sandbox = Sandbox(limits, env=env, cancel=(cancel, services.cancelled),
                              deadline=deadline)
            try:
                return work(sandbox)
            finally:
                sandbox.close()
        finally:
            try:
                token.run_sync_soon(finished.set)
            except trio.RunFinishedError:
                pass

    try:
        return await trio.to_thread.run_sync(
            job, abandon_on_cancel=True, thread_name=f"ironflow-lua:{label}"
        )
    except trio.Cancelled:
        with lock:
            cancel.set()
            running = started
        if running:
            with trio.CancelScope(shield=True):
                await finished.wait()
        raise


def monotonic_deadline(seconds: float | None) -> float | None:
    """A deadline for :class:`Sandbox` ``seconds`` from now (None = no deadline)."""
    return None if seconds is None else time.monotonic() + seconds
