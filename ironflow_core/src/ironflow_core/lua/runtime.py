"""Running Lua for nodes (``code``, ``foreach``): the runtime sandbox.

Each execution gets a fresh runtime *environment* (CD-2, FE-1) with the
runtime globals of semantics.md#lua-globals and the run's Lua limits. Building a Lua state costs
~0.5 ms, so states come from a small thread-safe pool (:class:`StatePool`):
a state serves one execution at a time, gets a brand-new environment and
fresh limit counters for each (:meth:`LuaState.renew`), and is thrown away
after any limit trip, a Python exception, memory growth or
:data:`~ironflow_core.lua.state.MAX_USES` executions.

:func:`run_in_sandbox` first tries the work *inline* on the trio thread as a
short slice (~1 ms, 100k instructions, 2 MiB of growth, no large C call):
most handlers finish well inside it and skip the thread hop. When the slice
runs out, that attempt is discarded (its state too, and the ``print``/``log``
output it held back) and the work runs again from scratch in a worker thread
with the full limits, by ``trio.to_thread.run_sync(abandon_on_cancel=False)``:
a cancelled task waits for its thread, whose instruction hook polls
``trio.from_thread.check_cancelled`` (:data:`~ironflow_core.lua.state.TRIO_CANCEL`)
and stops the Lua; the thread then ends with ``Cancelled``. So a cancelled
step never leaves Lua running behind it (PY-1).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ironflow_core.lua import functions
from ironflow_core.lua.convert import json_to_lua, lua_to_json
from ironflow_core.lua.errors import LuaCompileError
from ironflow_core.lua.state import (
    TRIO_CANCEL,
    TRIP_INSTRUCTIONS,
    TRIP_SLICE,
    TRIP_TIME,
    LuaState,
)
from ironflow_core.settings import LuaLimits
from ironflow_core.specs import CancelFlag

if TYPE_CHECKING:
    from ironflow_core.services import RunServices

T = TypeVar("T")

POOL_SIZE = 8
"""Idle runtime states kept for reuse (all limits together)."""
LONG_WORK_MEMORY = 1024
"""How many work keys that outgrew a slice are remembered (they go straight to a thread)."""
_REDO = (TRIP_SLICE, TRIP_INSTRUCTIONS, TRIP_TIME)
"""Trips that send an inline attempt to a thread. The slice's finer hook interval
can trip the instruction budget a little earlier than the thread would, so the
thread's run decides; cancellation and the deadline would trip there at once too."""


class StatePool:
    """Idle runtime states, handed out to one execution at a time (any thread)."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._idle: list[LuaState] = []

    def acquire(self, limits: LuaLimits) -> LuaState:
        """An idle state with these limits, or a new one."""
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i].limits == limits:
                    return self._idle.pop(i)
        return LuaState(limits, env={}, runtime=True)

    def release(self, vm: LuaState, *, emit: bool = True) -> None:
        """End ``vm``'s execution; keep it when it is reusable, close it otherwise."""
        evicted = None
        try:
            reusable = vm.finish(emit=emit)
        except BaseException:
            vm.close()
            raise
        if not reusable:
            vm.close()
            return
        with self._lock:
            self._idle.append(vm)
            if len(self._idle) > self.size:
                evicted = self._idle.pop(0)
        if evicted is not None:
            evicted.close()

    def clear(self) -> None:
        """Close every idle state (at exit, and in tests)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for vm in idle:
            vm.close()


POOL = StatePool()
# Idle states are closed while the interpreter is whole: a Lua state left to
# interpreter teardown would call its Python hooks from a half-destroyed heap.
atexit.register(POOL.clear)
_long_work: dict[Hashable, None] = {}


class LuaExecution:
    """One execution in a runtime Lua state; every method runs Lua in the calling thread.

    ``inline=True`` runs it as a slice (see :func:`run_in_sandbox`). Always
    :meth:`close` it: that ends the execution and returns the state to the pool.
    """

    def __init__(
        self,
        limits: LuaLimits,
        *,
        env: Mapping[str, str],
        cancel: Sequence[CancelFlag] = (),
        deadline: float | None = None,
        inline: bool = False,
    ) -> None:
        self.limits = limits
        vm = POOL.acquire(limits)
        try:
            vm.renew(env=env, cancel=cancel, deadline=deadline, slicing=inline)
        except BaseException:
            vm.close()
            raise
        self.vm = vm
        self._closed = False

    @property
    def globals(self) -> Any:
        """The user environment (``_G`` of the code that runs here)."""
        return self.vm.globals

    @property
    def sliced_out(self) -> bool:
        """True when an inline attempt must be redone in a thread (see ``_REDO``)."""
        return self.vm.state.tripped in _REDO

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

    def close(self, *, emit: bool = True) -> None:
        """End the execution (idempotent); ``emit=False`` drops held-back output."""
        if self._closed:
            return
        self._closed = True
        POOL.release(self.vm, emit=emit)


class _Redo(Exception):
    """The inline attempt ran out of its slice; nothing of it is visible."""


def _attempt_inline(
    limits: LuaLimits,
    env: Mapping[str, str],
    cancel: CancelFlag,
    deadline: float | None,
    work: Callable[[LuaExecution], T],
) -> T:
    """Run ``work`` as a slice on this thread; raises :class:`_Redo` when it ran out."""
    sandbox = LuaExecution(limits, env=env, cancel=(cancel,), deadline=deadline, inline=True)
    accepted = False
    try:
        try:
            result = work(sandbox)
        except Exception:
            if sandbox.sliced_out:
                raise _Redo from None
            accepted = True
            raise
        if sandbox.sliced_out:
            raise _Redo
        accepted = True
        return result
    finally:
        sandbox.close(emit=accepted)


def _remember_long(key: Hashable) -> None:
    _long_work[key] = None
    if len(_long_work) > LONG_WORK_MEMORY:
        del _long_work[next(iter(_long_work))]


async def run_in_sandbox(
    services: RunServices,
    work: Callable[[LuaExecution], T],
    *,
    label: str,
    deadline: float | None = None,
    key: Hashable | None = None,
) -> T:
    """Run ``work(sandbox)`` in a fresh runtime environment: inline if short, else in a thread.

    ``work`` must be repeatable: after an inline attempt runs out of its
    slice it is called again from scratch in a worker thread. ``key``
    identifies the work (e.g. its code): work that outgrew a slice once goes
    straight to a thread next time. ``label`` names the work in thread names
    and errors. Trio cancellation and ``services.cancelled`` both stop the Lua
    code at its next hook; on cancellation the thread is awaited before
    ``Cancelled`` propagates (the thread raises it).
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    limits = services.lua_limits
    env = services.env
    if key is None or key not in _long_work:
        try:
            return _attempt_inline(limits, env, services.cancelled, deadline, work)
        except _Redo:
            if key is not None:
                _remember_long(key)

    def job() -> T:
        execution = LuaExecution(limits, env=env, cancel=(TRIO_CANCEL, services.cancelled),
                                 deadline=deadline)
        try:
            result = work(execution)
        except BaseException:
            execution.close()
            trio.from_thread.check_cancelled()  # stopped by trio: Cancelled is the outcome
            raise
        execution.close()
        trio.from_thread.check_cancelled()
        return result

    return await trio.to_thread.run_sync(
        job, abandon_on_cancel=False, thread_name=f"ironflow-lua:{label}"
    )
