"""One sandboxed Lua 5.4 state with the limits of DSL-92.

A :class:`LuaState` owns a fresh ``lupa.lua54.LuaRuntime``. The prelude
(``prelude.lua``) keeps private references to ``debug``, ``load`` and
``string.dump``, installs the limit hook and bounded library wrappers, builds
the user environment (DSL-70 plus the IronFlow globals of semantics.md#lua-globals) and empties
the real globals table. User code only ever runs inside that environment,
through ``P.call`` (a private ``pcall``), so no Lua error ever unwinds through
lupa's unprotected API.

Building a state costs far more than running a small handler, so a runtime
state may serve several executions in turn (:meth:`LuaState.renew`): each gets
a brand-new user environment built inside Lua and fresh limit counters; a
state that tripped a limit or grew is thrown away instead (:meth:`LuaState.finish`).
An execution may also run as an *inline slice* (``slicing=True``): tight
extra limits (time, instructions, memory growth, size of a single C
operation) that end it early with ``TRIP_SLICE``, and its ``print``/``log``
output held back until :meth:`LuaState.finish` emits or drops it.

Limits: an instruction hook (count and wall clock, plus cancellation events
and a deadline) that keeps failing on every instruction once tripped, so
``pcall`` cannot swallow it; a hook interval that shrinks when memory grows
(one instruction on a 100 MB string costs milliseconds); work charged by the
string and table wrappers; and lupa's allocator ceiling, armed only while user
code runs because a failed allocation inside lupa's own pushes would abort the
process.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio
from lupa import lua54

from ironflow_core.lua import globals as lua_globals
from ironflow_core.lua import patterns
from ironflow_core.lua.errors import (
    HostError,
    LuaCompileError,
    LuaExecutionError,
    LuaLimitError,
    memory_message,
)
from ironflow_core.settings import LuaLimits
from ironflow_core.specs import CancelFlag

TRIP_INSTRUCTIONS = 1
TRIP_TIME = 2
TRIP_CANCELLED = 3
TRIP_DEADLINE = 4
TRIP_ABORTED = 5
TRIP_SLICE = 6
"""An inline slice ran out (never shown to users: the work is redone in a thread)."""

MATCH_BUDGET = 20_000_000
"""Worst-case steps a C pattern match may take (about 0.3 s); beyond it the Python matcher runs."""
WORK_QUANTUM = 20_000_000
"""Bytes/steps of C library work between two time checks."""
ADAPT_K = 2_000_000_000
"""Hook interval x memory in use stays below this (about 0.5 s of memcpy per interval)."""
MIN_INTERVAL = 8
SLICE_SECONDS = 0.001
SLICE_INSTRUCTIONS = 100_000
SLICE_INTERVAL = 1_000
"""Hook interval during a slice, so the clock is read often enough."""
SLICE_MEMORY = 2 * 1024 * 1024
"""Memory a slice may grow by; also bounds what one VM instruction can cost."""
SLICE_OP = 256 * 1024
"""Largest cost estimate of one C library call inside a slice (bytes or match steps)."""
REUSE_SLACK = 1024 * 1024
"""A state holding this much more than when it was new is not reused."""
MAX_USES = 1000
HANDLE_BYTES = 256 * 1024 * 1024
"""Subject bytes the Python matcher may hold for live ``gmatch``/``gsub`` iterations."""

_PRIVATES = ("call", "load", "to_json", "collect", "setmetatable", "env", "null", "amt", "omt",
             "loader", "begin", "finish", "retire")
"""What the prelude returns, in this order."""



class TrioCancellation:
    """The cancel flag of a trio worker thread (``trio.to_thread.run_sync``).

    Set once the trio task waiting for this thread was cancelled
    (``trio.from_thread.check_cancelled``); with ``abandon_on_cancel=False``
    the task then waits for the thread, which stops at the hook's next poll.
    Only meaningful in a thread trio started.
    """

    __slots__ = ()

    def is_set(self) -> bool:
        """True once trio asked the waiting task to stop."""
        try:
            trio.from_thread.check_cancelled()
        except trio.Cancelled:
            return True
        return False


TRIO_CANCEL = TrioCancellation()

_chunk_lock = threading.Lock()
_chunks: dict[str, bytes] = {}


class _NullSentinel:
    """What ``json_null`` wraps; its lupa metatable is replaced, so nothing is reachable."""

    __slots__ = ()


_NULL = _NullSentinel()


class Trip(Exception):
    """Internal: a limit tripped while Python code was running for Lua."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("attribute access is not allowed")


def compiled_chunk(filename: str) -> bytes:
    """A trusted Lua file of this package, compiled once per process and stripped."""
    with _chunk_lock:
        chunk = _chunks.get(filename)
        if chunk is None:
            # The package's own loader reads the file (a plain file or a zip
            # member alike) without importing importlib.resources' readers.
            loader: Any = __spec__.loader
            source = loader.get_data(os.path.join(os.path.dirname(__file__), filename))
            boot = lua54.LuaRuntime(
                encoding=None, register_eval=False, register_builtins=False
            )
            name = "=" + filename.removesuffix(".lua")
            compiled = boot.globals().load(source, name.encode(), b"t")
            if not callable(compiled):  # pragma: no cover - a broken chunk is a bug
                raise RuntimeError(f"{filename} does not compile: {compiled!r}")
            chunk = _chunks[filename] = boot.globals().string.dump(compiled, True)
        return chunk


class LimitState:
    """Counters polled by the hook; shared with the worker thread's cancellation flag."""

    def __init__(
        self,
        limits: LuaLimits,
        *,
        cancel: Sequence[CancelFlag],
        deadline: float | None,
        memory: Callable[[], int],
    ) -> None:
        self.max_instructions = limits.max_instructions
        self.max_seconds = limits.max_seconds
        self.base_interval = max(1, limits.hook_interval)
        self.interval = self.base_interval
        self.cancel = tuple(cancel)
        self.deadline = deadline
        self.memory = memory
        self.instructions = 0
        self.counting = False
        """Instructions are only counted while user code runs (``LuaState.call``)."""
        self.trusted = False
        """Trusted Lua (the loader's extraction) runs: the hook keeps its base interval."""
        self.started = time.monotonic()
        self.tripped = 0
        self.closed = False
        self.limit_interval = self.base_interval
        self.flushing = False
        self.slicing = False
        self.slice_end = 0.0
        self.slice_memory = 0

    def reset(
        self, *, cancel: Sequence[CancelFlag], deadline: float | None, slicing: bool
    ) -> None:
        """Fresh counters for a new execution in the same state (``slicing``: inline slice).

        The clocks (time budget, slice end) and the slice's memory mark only
        start with :meth:`start`, once the execution's setup is done.
        """
        self.cancel = tuple(cancel)
        self.deadline = deadline
        self.instructions = 0
        self.counting = False
        self.trusted = False
        self.tripped = 0
        self.slicing = slicing
        base = self.limit_interval
        self.base_interval = min(base, SLICE_INTERVAL) if slicing else base
        self.interval = self._adapted()
        self.start()

    def start(self) -> None:
        """Start the execution's clocks (and the slice's memory mark) from now."""
        self.started = time.monotonic()
        if self.slicing:
            self.slice_end = self.started + SLICE_SECONDS
            self.slice_memory = (self.memory() or 0) + SLICE_MEMORY

    def messages(self) -> list[bytes]:
        """The message of each trip code, in code order (the prelude gets them too)."""
        return [
            f"Lua execution exceeded instruction budget of {self.max_instructions}".encode(),
            f"Lua execution exceeded time budget of {self.max_seconds}s".encode(),
            b"Lua execution was cancelled",
            b"Lua execution exceeded the step deadline",
            b"Lua execution was aborted",
            b"Lua execution outgrew its inline slice",
        ]

    def message(self, code: int) -> str:
        """The message of trip ``code``."""
        return self.messages()[code - 1].decode()

    def trip(self, code: int) -> int:
        """Record the first limit that tripped; returns the recorded code."""
        if not self.tripped:
            self.tripped = code
        return self.tripped

    def poll(self) -> int:
        """0, or the code of a limit that has passed (time, cancellation, deadline)."""
        if self.tripped:
            return self.tripped
        for event in self.cancel:
            if event.is_set():
                return TRIP_CANCELLED
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            return TRIP_DEADLINE
        if self.max_seconds and now - self.started >= self.max_seconds:
            return TRIP_TIME
        if self.slicing and (now >= self.slice_end or self.memory() > self.slice_memory):
            return TRIP_SLICE
        return 0

    def check_slice(self) -> None:
        """For Python work done during a slice (conversions): end the slice when it is over."""
        if time.monotonic() >= self.slice_end or self.memory() > self.slice_memory:
            raise Trip(self.trip(TRIP_SLICE))

    def on_trip(self) -> int:
        """Lua ended the slice itself (a C operation too large for it)."""
        return self.trip(TRIP_SLICE)

    def check(self) -> None:
        """For Python code working on Lua's behalf: raise :class:`Trip` when a limit passed."""
        code = self.poll()
        if code:
            raise Trip(self.trip(code))

    def _adapted(self) -> int:
        if self.trusted:
            return self.base_interval
        used = self.memory() or 0
        if used <= 0:
            return self.base_interval
        return max(MIN_INTERVAL, min(self.base_interval, ADAPT_K // used))

    def _retune(self) -> int:
        new = self._adapted()
        if new != self.interval:
            self.interval = new
            return new
        return 0

    # The callbacks below are called from Lua and must never raise.
    def on_mode(self, user: bool) -> int:
        """Trusted Lua enters (``user``) or leaves user code; returns the hook interval.

        User code is counted against the instruction budget and gets the
        memory-adapted interval. Trusted code is not counted and runs without
        the hook (0): an active count hook slows every VM instruction down,
        whatever its interval, so trusted code polls the limits itself
        (``on_check``). A tripped state keeps the hook on every instruction.
        """
        try:
            self.counting = bool(user)
            self.trusted = not user
            if self.tripped:
                return 1
            self.interval = self._adapted()
            return self.interval if user else 0
        except BaseException:
            self.trip(TRIP_ABORTED)
            return 1

    def on_hook(self) -> int:
        """The instruction hook: count, poll the clocks and flags; <0 trips, >0 a new interval."""
        try:
            if self.flushing:
                return 0
            if self.tripped:
                return -self.tripped
            if self.counting:
                self.instructions += self.interval
                if self.max_instructions and self.instructions >= self.max_instructions:
                    return -self.trip(TRIP_INSTRUCTIONS)
                if self.slicing and self.instructions >= SLICE_INSTRUCTIONS:
                    return -self.trip(TRIP_SLICE)
            code = self.poll()
            if code:
                return -self.trip(code)
            return self._retune()
        except BaseException:
            return -self.trip(TRIP_ABORTED)

    def on_check(self) -> int:
        """A check from the C library wrappers during long work (no counting)."""
        try:
            code = self.poll()
            if code:
                return -self.trip(code)
            return self._retune()
        except BaseException:
            return -self.trip(TRIP_ABORTED)

    def on_gc(self) -> int:
        """After a GC step: -2 closed, -1 a limit passed, >0 a shorter interval."""
        try:
            if self.closed:
                return -2
            if self.flushing:
                return 0
            if self.poll():
                return -1
            new = self._adapted()
            if new < self.interval:
                self.interval = new
                return new
            return 0
        except BaseException:
            return 0


class LuaState:
    """A fresh sandboxed Lua state (loader or runtime flavour of semantics.md#lua-globals).

    Use it from one thread, and always :meth:`close` it: the Lua state holds
    references to Python host functions that point back here.
    """

    def __init__(
        self,
        limits: LuaLimits,
        *,
        env: Mapping[str, str],
        runtime: bool,
        cancel: Sequence[CancelFlag] = (),
        deadline: float | None = None,
    ) -> None:
        self.limits = limits
        self.env = env
        self.runtime = runtime
        self._closed = False
        self._pending: BaseException | None = None
        self._handles: dict[int, Any] = {}
        self._handle_bytes = 0
        self._next_handle = 1
        self.uses = 0
        self._buffered = False
        self._pressure = False
        """User code ran out of memory: the state is not reused."""
        memory_limit = limits.max_memory_bytes or 0
        self._memory_limit = memory_limit
        lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            encoding=None,
            attribute_filter=_deny_attributes,
            # Always lupa's counting allocator (the hook reads memory use), but
            # without a ceiling until user code runs.
            max_memory=memory_limit or 1 << 40,
        )
        box: list[Any] = [lua]
        self._box = box
        lua.set_max_memory(0)
        self.state = LimitState(
            limits,
            cancel=cancel,
            deadline=deadline,
            memory=lambda: box[0].get_memory_used() if box[0] is not None else 0,
        )
        try:
            self._start(lua, box, memory_limit)
        except BaseException:
            box[0] = None
            raise
        self.baseline_memory = lua.get_memory_used()

    def _start(self, lua: Any, box: list[Any], memory_limit: int) -> None:
        """Run the prelude with the host functions and settings it expects."""
        state = self.state
        hosts: dict[str, Callable[..., Any]] = {
            "on_hook": state.on_hook,
            "on_check": state.on_check,
            "on_gc": state.on_gc,
            "on_trip": state.on_trip,
            "on_mode": state.on_mode,
            "pattern_degree": _pattern_degree,
            "find": self.host(self._find),
            "gmatch_open": self.host(self._gmatch_open),
            "gmatch_next": self.host(self._gmatch_next),
            "gsub_open": self.host(self._gsub_open),
            "gsub_next": self.host(self._gsub_next),
            "release": self.host(self._release),
        }
        if memory_limit:
            hosts["arm"] = lambda: box[0].set_max_memory(memory_limit) if box[0] else None
            hosts["disarm"] = lambda: box[0].set_max_memory(0) if box[0] else None
        for name, fn in lua_globals.host_functions(self).items():
            hosts[name] = self.host(fn)
        settings: dict[str, Any] = {
            "interval": state.interval,
            "budget": MATCH_BUDGET,
            "quantum": WORK_QUANTUM,
            "mem_limited": bool(memory_limit),
            "null": _NULL,
            "runtime": self.runtime,
            "conv_depth": self.limits.max_conversion_depth,
            "conv_nodes": self.limits.max_conversion_nodes,
            **{f"trip{i}": message for i, message in enumerate(state.messages(), 1)},
        }
        privates = lua.execute(
            compiled_chunk("prelude.lua"),
            ",".join(hosts).encode(),
            ",".join(settings).encode(),
            ",".join(_PRIVATES).encode(),
            *hosts.values(),
            *settings.values(),
        )
        (self._p_call, self._p_load, self._p_to_json, self._p_collect, self._p_setmetatable,
         self.globals, self.null, self.array_mt, self.object_mt, self.loader_privates,
         self._p_begin, self._p_finish, self._p_retire) = privates

    # -- small helpers ------------------------------------------------------
    @property
    def lua(self) -> Any:
        """The lupa runtime; ``LuaExecutionError`` once the state is closed."""
        lua = self._box[0]
        if lua is None:
            raise LuaExecutionError("the Lua state is closed")
        return lua

    @property
    def to_json_function(self) -> Any:
        """The prelude's Lua -> JSON walker (for trusted Lua chunks such as the DSL)."""
        return self._p_to_json

    def new_table(self) -> Any:
        """A new empty Lua table (for conversions)."""
        return self.lua.table()

    def mark_array(self, table: Any) -> None:
        """Give ``table`` the JSON array marker metatable."""
        self._p_setmetatable(table, self.array_mt)

    def memory_over(self, size: int) -> int:
        """0 when ``size`` more bytes fit under the memory ceiling, else the ceiling.

        Python pushes values into Lua with the ceiling disarmed (a failed push
        would abort the process), so whatever a host function hands to Lua is
        measured here first.
        """
        limit = self._memory_limit
        if not limit or self.lua.get_memory_used() + size <= limit:
            return 0
        return limit

    def reserve(self, size: int, what: str) -> None:
        """Refuse (``HostError``) a host result of ``size`` bytes that would pass the ceiling."""
        limit = self.memory_over(size)
        if limit:
            raise HostError(memory_message(f"{what} of {size} bytes", limit))

    def host(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a Python function for Lua: results become ``true, ...`` or ``false, msg[, trip]``.

        No Python exception object ever reaches Lua; a ``BaseException``
        (KeyboardInterrupt, a cancellation) trips the state and is re-raised
        once control is back in Python.
        """
        state = self.state

        def call(*args: Any) -> Any:
            try:
                result = fn(*args)
            except Trip as trip:
                return (False, state.messages()[trip.code - 1], trip.code)
            except HostError as exc:
                return (False, str(exc).encode("utf-8", "replace"))
            except Exception as exc:
                return (False, f"internal error: {type(exc).__name__}: {exc}".encode(
                    "utf-8", "replace"))
            except BaseException as exc:
                if self._pending is None:
                    self._pending = exc
                code = state.trip(TRIP_ABORTED)
                return (False, state.messages()[code - 1], code)
            if type(result) is tuple:
                return (True, *result)
            return (True, result)

        return call

    # -- running code -------------------------------------------------------
    def renew(
        self,
        *,
        env: Mapping[str, str],
        cancel: Sequence[CancelFlag] = (),
        deadline: float | None = None,
        slicing: bool = False,
    ) -> None:
        """Start a new execution in this runtime state: fresh environment, counters, limits.

        Only a state that :meth:`finish` declared reusable may be renewed.
        """
        if self._closed or self.state.tripped or not self.runtime:
            raise LuaExecutionError("this Lua state cannot serve another execution")
        self.env = env
        self._handles.clear()
        self._handle_bytes = 0
        state = self.state
        state.reset(cancel=cancel, deadline=deadline, slicing=slicing)
        seed = os.urandom(16)
        # Building the environment is trusted setup, not part of the execution:
        # no limit may trip while it runs (a trip here would escape as a raw
        # Lua error, before the caller can tell a slice that ran out from a
        # failure), and the clocks only start once it is done.
        state.flushing = True
        try:
            self.globals = self._p_begin(
                state.interval,
                SLICE_OP if slicing else WORK_QUANTUM,
                SLICE_OP if slicing else False,
                int.from_bytes(seed[:8], "little", signed=True),
                int.from_bytes(seed[8:], "little", signed=True),
                slicing,
            )
        finally:
            state.flushing = False
        state.start()
        self._buffered = slicing
        self.uses += 1

    def finish(self, *, emit: bool = True) -> bool:
        """End the current execution; True when the state may serve another one.

        Held-back slice output is emitted (``emit``) or dropped. A state that
        tripped a limit, saw a Python exception, still holds more memory than
        when it was new (after the GC of IRONFLOW_LUA_GC_AFTER_EXECUTION), or
        served :data:`MAX_USES` executions, is not reusable.
        """
        self._handles.clear()
        self._handle_bytes = 0
        if self._closed:
            return False
        buffered, self._buffered = self._buffered, False
        reusable = not (self.state.tripped or self._pending is not None or self._pressure)
        self.globals = None
        if reusable or buffered:
            # A tripped state fails every instruction; this last call must run.
            self.state.flushing = True
            try:
                self._p_finish(emit and buffered, reusable and self.limits.gc_after_execution)
            except lua54.LuaError:
                return False
            finally:
                self.state.flushing = False
        if not reusable:
            return False
        used = self.lua.get_memory_used()
        return used <= self.baseline_memory + REUSE_SLACK and self.uses < MAX_USES

    def load(self, chunk: bytes, name: str, *, binary: bool = False) -> Any:
        """Compile a chunk in the user environment (no code runs)."""
        try:
            result = self._p_load(chunk, name.encode(), b"b" if binary else b"t", self.globals)
        except lua54.LuaError as exc:  # a limit tripped by the hook (not a compile error)
            raise self._failure(exc.args[0] if exc.args else None) from None
        if isinstance(result, tuple):
            raise LuaCompileError(_lua_error_text(result[1]))
        if result is None:
            raise LuaCompileError("chunk did not compile")
        return result

    def call(self, fn: Any, *args: Any, count: bool = True) -> tuple[Any, ...]:
        """Run user code with every limit armed; returns its results.

        ``count=False`` leaves the instruction budget alone (work the engine
        does on the flow's behalf); time, memory and cancellation still apply.
        """
        if self._closed:
            raise LuaExecutionError("the Lua state is closed")
        self.state.counting = count
        try:
            result = self._p_call(fn, *args)
        except lua54.LuaError as exc:
            self._disarm()
            self._reraise_pending()
            raise self._failure(exc.args[0] if exc.args else None) from None
        finally:
            self.state.counting = False
            self.state.trusted = False
        self._disarm()
        self._reraise_pending()
        if not isinstance(result, tuple):
            result = (result,)
        if result[0] is True:
            return result[1:]
        raise self._failure(result[1] if len(result) > 1 else None)

    def _disarm(self) -> None:
        lua = self._box[0]
        if lua is not None and self._memory_limit:
            lua.set_max_memory(0)

    def _reraise_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending

    def _failure(self, error_object: Any) -> LuaExecutionError:
        code = self.state.tripped
        if code:
            return LuaLimitError(self.state.message(code), code)
        if error_object == b"not enough memory":
            self._pressure = True
        return LuaExecutionError(error_text(error_object))

    def to_json_text(self, value: Any, path: str) -> tuple[bool, bytes]:
        """Run the prelude's Lua -> JSON walker (instructions are not counted)."""
        try:
            result = self._p_to_json(
                value, path.encode(), self.limits.max_conversion_depth,
                self.limits.max_conversion_nodes,
            )
        except lua54.LuaError as exc:
            raise self._failure(exc.args[0] if exc.args else None) from None
        ok, text = result
        if not ok and self.state.tripped:
            raise LuaLimitError(self.state.message(self.state.tripped), self.state.tripped)
        return ok, text

    def collect(self) -> None:
        """A full garbage collection (IRONFLOW_LUA_GC_AFTER_EXECUTION)."""
        try:
            self._p_collect(b"collect")
        except lua54.LuaError:
            pass

    def close(self) -> None:
        """Stop the state for good and release it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.state.closed = True
        self.state.trip(TRIP_ABORTED)
        # No full collection first: closing the runtime (``lua_close``) frees
        # all its memory at once; only the GC sentinel, which calls into
        # Python, is retired so that nothing calls back while lupa tears down.
        try:
            self._p_retire()
        except lua54.LuaError:  # pragma: no cover - retire cannot fail
            self.collect()
        finally:
            self._handles.clear()
            for attr in ("_p_call", "_p_load", "_p_to_json", "_p_collect", "_p_setmetatable",
                         "_p_begin", "_p_finish", "_p_retire", "loader_privates", "globals", "null",
                         "array_mt", "object_mt"):
                setattr(self, attr, None)
            self._box[0] = None

    def __enter__(self) -> LuaState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pattern matching beyond the C budget ---------------------------------
    def _matcher(self, s: bytes, p: bytes) -> patterns.Matcher:
        return patterns.Matcher(s, p, self.state.check)

    def _reserve_captures(self, captures: list[bytes | int]) -> list[bytes | int]:
        size = sum(len(c) for c in captures if isinstance(c, bytes))
        if size > patterns.RESERVE_STEP:
            self.reserve(size, "pattern captures")
        return captures

    def _reserve_replacement(self, size: int) -> None:
        self.reserve(size, "gsub replacement")

    def _find(self, s: bytes, p: bytes, init: int, plain: bool, isfind: bool) -> Any:
        length = len(s)
        start = _posrelat(init, length) - 1
        if start > length:
            return None
        try:
            if isfind and (plain or not patterns.has_specials(p)):
                index = s.find(p, start)
                return None if index < 0 else (index + 1, index + len(p))
            anchor = p[:1] == b"^"
            matcher = self._matcher(s, p[1:] if anchor else p)
            found = matcher.search(start, anchor=anchor)
            if found is None:
                return None
            st, e = found
            if isfind:
                return (st + 1, e, *self._reserve_captures(matcher.captures(st, e, whole=False)))
            return tuple(self._reserve_captures(matcher.captures(st, e, whole=True)))
        except patterns.PatternError as exc:
            raise HostError(str(exc)) from None

    def _hold(self, entry: list[Any], size: int) -> int:
        if self._handle_bytes + size > HANDLE_BYTES:
            raise HostError("too many pattern iterations in progress")
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = entry
        self._handle_bytes += size
        return handle

    def _release(self, handle: int) -> None:
        entry = self._handles.pop(handle, None)
        if entry is not None:
            self._handle_bytes -= len(entry[0].src)

    def _gmatch_open(self, s: bytes, p: bytes, init: int) -> int:
        length = len(s)
        start = _posrelat(init, length) - 1
        if start > length:
            start = length + 1
        return self._hold([self._matcher(s, p), start, -1], length)

    def _gmatch_next(self, handle: int) -> Any:
        entry = self._handles.get(handle)
        if entry is None:
            return ()
        matcher, src, lastmatch = entry
        try:
            found = None if src > matcher.slen else matcher.search(
                src, anchor=False, lastmatch=lastmatch)
            if found is None:
                self._release(handle)
                return ()
            st, e = found
            entry[1] = entry[2] = e
            return tuple(self._reserve_captures(matcher.captures(st, e, whole=True)))
        except patterns.PatternError as exc:
            self._release(handle)
            raise HostError(str(exc)) from None

    def _gsub_open(self, s: bytes, p: bytes, repl: bytes | None) -> int:
        anchor = p[:1] == b"^"
        matcher = self._matcher(s, p[1:] if anchor else p)
        return self._hold([matcher, anchor, repl], len(s))

    def _gsub_next(self, handle: int, src: int, lastmatch: int) -> Any:
        entry = self._handles.get(handle)
        if entry is None:
            return None
        matcher, anchor, repl = entry
        try:
            if src > matcher.slen:
                return None
            found = matcher.search(src, anchor=anchor, lastmatch=lastmatch)
            if found is None:
                return None
            st, e = found
            if repl is not None:
                return (st, e, patterns.expand_replacement(
                    matcher, repl, st, e, self._reserve_replacement))
            caps = self._reserve_captures(matcher.captures(st, e, whole=False))
            return (st, e, len(caps), *caps)
        except patterns.PatternError as exc:
            self._release(handle)
            raise HostError(str(exc)) from None


def _pattern_degree(p: bytes, gmatch: bool) -> int:
    try:
        degree, optional = patterns.pattern_degree(p, gmatch=bool(gmatch))
    except Exception:
        return 64 * 4096
    if degree < 0:
        return -1
    return min(degree, 512) * 4096 + min(optional, 4095)


def _posrelat(pos: int, length: int) -> int:
    if pos > 0:
        return pos
    if pos == 0 or pos < -length:
        return 1
    return length + pos + 1


def _lua_error_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


MAX_ERROR_BYTES = 16 * 1024
"""Longer Lua error messages are cut (an error string can be as large as Lua memory)."""


def error_text(error_object: Any) -> str:
    """How an error object reads in a message (strings raw, numbers in Lua's form)."""
    if error_object is None:
        return "nil"
    if isinstance(error_object, bytes):
        if len(error_object) > MAX_ERROR_BYTES:
            cut = error_object[:MAX_ERROR_BYTES].decode("utf-8", "ignore")
            return f"{cut}... ({len(error_object)} bytes, truncated)"
        return error_object.decode("utf-8", "replace")
    if isinstance(error_object, bool):
        return "true" if error_object else "false"
    if isinstance(error_object, int):
        return str(error_object)
    if isinstance(error_object, float):
        if math.isfinite(error_object) and error_object == int(error_object):
            return f"{error_object:.1f}"
        return repr(error_object)
    kind = lua54.lua_type(error_object) or type(error_object).__name__
    return f"(error object is a {kind} value)"
