"""Test helpers for flows and plugins: run a flow in isolation and assert on it.

Like pytest's ``pytester``, this gives a plugin author a real run to look at:
the flow is loaded by the real loader, planned and executed by the real engine
on an in-memory store, against a registry that holds the core's built-ins and
exactly the plugins the test names — installed entry points are *not* loaded,
so a test never depends on what else happens to be installed::

    from ironflow_core.testing import run_flow
    from ironflow_nodes_foo import plugin

    def test_greets():
        result = run_flow('''
            local flow = Flow.new("t")
            flow:step("hi", nodes.greet({ name = "Ada" }))
            return flow
        ''', plugins=[plugin])
        result.assert_succeeded()
        assert result.ctx["greeting"] == "Hello, Ada!"

It is also an opt-in pytest plugin: ``pytest_plugins = ["ironflow_core.testing"]``
in a ``conftest.py`` gives the fixtures ``ironflow_plugins`` (override it to
list your plugins), ``ironflow_env``, ``ironflow_registry``, ``run_flow``
(sync tests) and ``arun_flow`` (``async`` tests under pytest-trio).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from ironflow_core.model import (
    Event,
    EventType,
    FlowDefinition,
    ProcessEvent,
    RunRecord,
    RunStatus,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.plugins import PluginRecord
from ironflow_core.registry import Registry, build_registry
from ironflow_core.specs import FlowSource, RunObserver, StateStore

__all__ = [
    "FlowResult",
    "RunRecorder",
    "arun_flow",
    "assert_plugin_installed",
    "call_node",
    "clean_env",
    "load_test_flow",
    "make_registry",
    "node_context",
    "run_flow",
]

FlowInput = str | os.PathLike[str] | FlowSource | FlowDefinition
"""Lua text, a path to a flow file, a ``FlowSource`` or an already built flow."""

PluginInput = Any
"""A module or object with hookimpls, a module name, or a ``(name, plugin)`` pair."""


# ---------------------------------------------------------------- registry
def _plugin_entry(plugin: PluginInput) -> tuple[str, Any]:
    if isinstance(plugin, tuple):
        name, obj = plugin
        return str(name), importlib.import_module(obj) if isinstance(obj, str) else obj
    if isinstance(plugin, str):
        return plugin, importlib.import_module(plugin)
    name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
    return str(name), plugin


def make_registry(
    *plugins: PluginInput,
    builtins: bool = True,
    env: Mapping[str, str] | None = None,
    strict: bool = True,
) -> Registry:
    """A registry of the core's built-ins plus ``plugins``; entry points are not loaded.

    A plugin is a module or object carrying ``@hookimpl`` functions, a module
    name (``"ironflow_nodes_http.plugin"``), or a ``(name, plugin)`` pair (the
    plugin again a module, object or module name) to
    choose the name conflicts and ``ironflow plugins`` report. With ``strict``
    (the default) a plugin that fails to load or whose hook raises fails the
    test at once instead of surfacing later as an unknown node.
    """
    registry = build_registry(
        {} if env is None else env,
        builtins=builtins,
        entry_points=False,
        extra=[_plugin_entry(p) for p in plugins],
    )
    if strict:
        broken = [r for r in registry.plugins if r.status == "failed"]
        if broken:
            raise AssertionError(
                "plugin(s) failed to load: "
                + "; ".join(f"'{r.name}': {r.error}" for r in broken)
            )
    return registry


def assert_plugin_installed(name: str, *, nodes: Iterable[str] = ()) -> PluginRecord:
    """Assert that the installed entry point ``name`` loads and is active.

    This is the one helper that reads the real environment: it checks that
    the distribution under test is installed with a working ``ironflow``
    entry point (and, with ``nodes``, that it provides those node types).
    ``IRONFLOW_DISABLED_PLUGINS`` is ignored here.
    """
    registry = build_registry({}, builtins=True, entry_points=True)
    record = next((r for r in registry.plugins if r.name == name), None)
    if record is None:
        found = ", ".join(r.name for r in registry.plugins) or "none"
        raise AssertionError(
            f"no plugin named '{name}' is installed in the 'ironflow' entry-point group "
            f"(found: {found}); is the distribution installed?"
        )
    if record.status != "active":
        raise AssertionError(f"plugin '{name}' is {record.status}: {record.error}")
    missing = [n for n in nodes if f"node:{n}" not in record.provides]
    if missing:
        raise AssertionError(
            f"plugin '{name}' does not provide node(s) {', '.join(missing)}; "
            f"it provides: {', '.join(record.provides) or 'nothing'}"
        )
    return record


def clean_env() -> dict[str, str]:
    """The process environment without ``IRONFLOW_*`` settings.

    Tests keep ``PATH``, ``HOME`` and the like (a shell node needs them) but do
    not inherit the developer's IronFlow limits, store or disabled plugins.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}


# ---------------------------------------------------------------- recorder
class RunRecorder(RunObserver):
    """An observer that keeps every lifecycle event of the runs it watches."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event | ProcessEvent) -> None:
        """Keep the run events (process events are not a run's)."""
        if isinstance(event, Event):
            self.events.append(event)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def types(self, step: str | None = None) -> list[str]:
        """Event types in emission order (of one step when ``step`` is given)."""
        events = self.events if step is None else self.for_step(step)
        return [str(e.type) for e in events]

    def for_step(self, step: str) -> list[Event]:
        """The events of one step, in emission order."""
        return [e for e in self.events if e.step == step]

    def of_type(self, event_type: str | EventType) -> list[Event]:
        """The events of one type, in emission order."""
        return [e for e in self.events if e.type == event_type]

    def clear(self) -> None:
        """Forget the recorded events, so a test can watch a later run alone."""
        self.events.clear()


# ------------------------------------------------------------------ result
@attrs.define
class FlowResult:
    """What a test run left behind: the stored record, the flow and its events."""

    record: RunRecord
    flow: FlowDefinition
    events: RunRecorder
    store: StateStore

    @property
    def status(self) -> RunStatus:
        """The run's final status as stored."""
        return self.record.status

    @property
    def ctx(self) -> dict[str, Any]:
        """The final persisted context."""
        return self.record.ctx

    @property
    def tasks(self) -> dict[str, TaskRecord]:
        """The stored task records by step name."""
        return self.record.tasks

    @property
    def run_id(self) -> str:
        """The run's id, to look it up in the store."""
        return self.record.id

    def _steps(self, status: TaskStatus) -> list[str]:
        order = [s.name for s in self.flow.steps]
        return [n for n in order if n in self.tasks and self.tasks[n].status is status]

    @property
    def failed_steps(self) -> list[str]:
        """Names of failed steps, in declaration order."""
        return self._steps(TaskStatus.FAILED)

    @property
    def skipped_steps(self) -> list[str]:
        """Names of skipped steps, in declaration order."""
        return self._steps(TaskStatus.SKIPPED)

    def output(self, step: str) -> Any:
        """The task output stored for ``step`` (``KeyError`` names known steps)."""
        if step not in self.tasks:
            raise KeyError(f"no step named '{step}'; steps: {', '.join(self.tasks)}")
        return self.tasks[step].output

    def assert_succeeded(self) -> FlowResult:
        """Raise ``AssertionError`` listing every failed step and its error."""
        if self.status is RunStatus.SUCCESS:
            return self
        lines = [f"run '{self.flow.name}' finished with status {self.status}"]
        for name in self.failed_steps:
            lines.append(f"  step '{name}' failed: {self.tasks[name].error}")
        raise AssertionError("\n".join(lines))

    def assert_failed(self, *steps: str) -> FlowResult:
        """Assert the run failed, and that each of ``steps`` (if any) is among the failures."""
        if self.status is RunStatus.SUCCESS:
            raise AssertionError(f"run '{self.flow.name}' succeeded; expected a failure")
        missing = [s for s in steps if s not in self.failed_steps]
        if missing:
            raise AssertionError(
                f"expected step(s) {', '.join(missing)} to fail; failed: "
                f"{', '.join(self.failed_steps) or 'none'}"
            )
        return self


# ------------------------------------------------------------------ runner
def node_context(
    data: Mapping[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    step_name: str = "s",
    node_type: str = "test",
    max_concurrent_tasks: int = 2,
    lua_limits: Any | None = None,
    run_id: str = "r1",
    **context: Any,
) -> Any:
    """A real ``NodeContext`` for calling a node's ``run`` directly in a unit test.

    The run sees ``clean_env()`` plus ``env`` (so ``IRONFLOW_*`` limits come
    only from the test) and the given registry (default: built-ins only).
    ``lua_limits`` defaults to the limits that environment sets; ``context``
    passes further ``NodeContext`` options through (e.g. an ``overlay``).
    Its ``.services`` serves a test that needs the run's services alone.
    """
    from ironflow_core.context import NodeContext
    from ironflow_core.services import RunServices
    from ironflow_core.settings import EngineLimits, LuaLimits

    run_env = {**clean_env(), **(env or {})}
    services = RunServices(
        run_id=run_id,
        flow_name="t",
        registry=registry or make_registry(),
        env=run_env,
        engine_limits=EngineLimits(max_concurrent_tasks=max_concurrent_tasks),
        lua_limits=LuaLimits.from_env(run_env) if lua_limits is None else lua_limits,
    )
    return NodeContext(dict(data or {}), step_name=step_name, node_type=node_type,
                       services=services, **context)


async def call_node(
    node_type: str,
    config: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    step_name: str = "s",
    ctx: Any | None = None,
) -> dict[str, Any]:
    """Structure ``config`` as the loader would and run the node once; its outputs.

    ``ctx`` (from ``node_context``) runs the node in a context the test made,
    e.g. one with its own ``env`` or shared by several calls; ``data`` and
    ``env`` then come from it. ``NodeError``/``NodeFailure`` propagate, so
    ``pytest.raises`` can check them.
    """
    from ironflow_core.configs import structure_config

    registry = registry or make_registry()
    spec = registry.nodes[node_type]
    structured = structure_config(spec.config, {**config, "_step_name": step_name})
    if ctx is None:
        ctx = node_context(data, registry=registry, env=env, step_name=step_name,
                           node_type=node_type)
    return dict(await spec.run(ctx, structured))


FLOW_SUFFIXES = (".lua",)
"""A one-line string ending in one of these is a path, even when the file is missing."""


def _is_path(source: Any) -> bool:
    """Paths: ``PathLike``, an existing file, or a one-line name ending in ``.lua``.

    A mistyped path must fail as a missing file, not be parsed as Lua source.
    """
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or "\n" in source:
        return False
    return os.path.isfile(source) or source.strip().endswith(FLOW_SUFFIXES)


def load_test_flow(
    source: FlowInput, *, registry: Registry, env: Mapping[str, str]
) -> FlowDefinition:
    """Load Lua text, a flow file or a ``FlowSource``; a ``FlowDefinition`` passes through.

    A one-line string is a path when it names an existing file or ends in
    ``.lua`` (a missing ``flows/greet.lua`` is ``FlowLoadError: Flow file ...
    not found``, never Lua source); otherwise it is Lua source.
    """
    if isinstance(source, FlowDefinition):
        return source
    from ironflow_core.loading import load_flow

    if isinstance(source, (str, os.PathLike)) and _is_path(source):
        return load_flow(os.fspath(source), registry=registry, env=env)
    if isinstance(source, str):
        source = FlowSource(text=source)
    return load_flow(source, registry=registry, env=env)


async def arun_flow(
    source: FlowInput,
    *,
    context: Mapping[str, Any] | None = None,
    plugins: Iterable[PluginInput] = (),
    env: Mapping[str, str] | None = None,
    store: StateStore | None = None,
    registry: Registry | None = None,
    observers: Iterable[Any] = (),
    autojump: bool = False,
) -> FlowResult:
    """Load and run a flow inside the current trio run (``async`` tests).

    ``autojump=True`` lets virtual time jump ahead while the run waits
    (``delay``, backoffs, timeouts), like ``run_flow(autojump=True)``. The test
    must already run on a ``trio.testing.MockClock``: request pytest-trio's
    ``autojump_clock`` (or ``mock_clock``) fixture.

    ``registry`` defaults to ``make_registry(*plugins)``; ``env`` (what the
    run and its nodes see) to ``clean_env()``; ``store`` to a fresh
    ``MemoryStore``. A flow loaded from a file gets ``_flow_dir`` in its
    initial context as ``ironflow run`` does, unless ``context`` sets it.
    Load and planning errors propagate (``FlowLoadError``,
    ``FlowValidationError``), so tests can assert on them.
    """
    from ironflow_core.engine import plan_flow, prepare_run
    from ironflow_core.stores.memory import MemoryStore

    env = clean_env() if env is None else dict(env)
    plugins = tuple(plugins)
    if registry is None:
        registry = make_registry(*plugins)
    elif plugins:
        raise TypeError("pass either 'registry' or 'plugins', not both")
    flow = load_test_flow(source, registry=registry, env=env)
    initial = dict(context or {})
    if isinstance(source, (str, os.PathLike)) and _is_path(source):
        initial.setdefault("_flow_dir", os.path.dirname(os.path.realpath(os.fspath(source))))
    store = store if store is not None else MemoryStore()
    recorder = RunRecorder()
    flow_dir = initial.get("_flow_dir")
    executor = prepare_run(
        plan_flow(flow, registry), store=store, registry=registry, context=initial, env=env,
        observers=[recorder, *observers],
        # The test's own context is trusted: its _flow_dir may hold child flows.
        extra_flow_roots=(flow_dir,) if isinstance(flow_dir, str) else (),
    )
    if not autojump:
        record = await executor.run()
    else:
        with _autojumping():
            record = await executor.run()
    return FlowResult(record=record, flow=flow, events=recorder, store=store)


class _autojumping:
    """Set the running MockClock's autojump threshold to 0 for a block."""

    def __enter__(self) -> None:
        import trio
        import trio.testing

        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, trio.testing.MockClock):
            raise RuntimeError(
                "arun_flow(autojump=True) needs the test to run on a MockClock: request "
                "pytest-trio's `autojump_clock` fixture (or use run_flow(autojump=True))"
            )
        self.clock = clock
        self.threshold = clock.autojump_threshold
        clock.autojump_threshold = 0

    def __exit__(self, *exc: object) -> None:
        self.clock.autojump_threshold = self.threshold


def run_flow(
    source: FlowInput,
    *,
    context: Mapping[str, Any] | None = None,
    plugins: Iterable[PluginInput] = (),
    env: Mapping[str, str] | None = None,
    store: StateStore | None = None,
    registry: Registry | None = None,
    observers: Iterable[Any] = (),
    autojump: bool = False,
) -> FlowResult:
    """Load and run a flow to completion from synchronous code (see ``arun_flow``).

    ``autojump=True`` runs on ``trio.testing.MockClock(autojump_threshold=0)``
    so ``delay`` steps, retry backoffs and timeouts take no real time. Keep it
    off for flows whose steps wait on threads or processes (Lua ``code``
    steps, shell commands): virtual time would run ahead of them.
    """
    import trio

    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_flow() starts its own trio run; inside an async test use "
            "`await arun_flow(...)` instead"
        )
    clock = None
    if autojump:
        import trio.testing

        clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> FlowResult:
        return await arun_flow(
            source, context=context, plugins=plugins, env=env, store=store,
            registry=registry, observers=observers,
        )

    return trio.run(main, clock=clock)


# ----------------------------------------------------------- pytest plugin
try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def ironflow_plugins() -> tuple[PluginInput, ...]:
        """The plugins the test registry holds beside the built-ins; override it."""
        return ()

    @pytest.fixture
    def ironflow_env() -> dict[str, str]:
        """The environment runs see (``clean_env()``); tests may change it."""
        return clean_env()

    @pytest.fixture
    def ironflow_registry(ironflow_plugins: Iterable[PluginInput]) -> Registry:
        """An isolated registry: built-ins plus ``ironflow_plugins``, no entry points."""
        return make_registry(*ironflow_plugins)

    def _bound(
        runner: Callable[..., Any],
        registry: Registry,
        plugins: Iterable[PluginInput],
        env: Mapping[str, str],
    ) -> Callable[..., Any]:
        fixture_plugins = tuple(plugins)

        def bound(source: FlowInput, **kwargs: Any) -> Any:
            extra = tuple(kwargs.pop("plugins", ()))
            if extra and "registry" not in kwargs:
                kwargs["registry"] = make_registry(*fixture_plugins, *extra)
            kwargs.setdefault("registry", registry)
            kwargs.setdefault("env", env)
            return runner(source, **kwargs)

        return bound

    @pytest.fixture(name="run_flow")
    def _run_flow_fixture(
        ironflow_registry: Registry,
        ironflow_plugins: Iterable[PluginInput],
        ironflow_env: dict[str, str],
    ) -> Callable[..., FlowResult]:
        """``run_flow`` bound to the fixture registry and environment (sync tests)."""
        return _bound(run_flow, ironflow_registry, ironflow_plugins, ironflow_env)

    @pytest.fixture(name="arun_flow")
    def _arun_flow_fixture(
        ironflow_registry: Registry,
        ironflow_plugins: Iterable[PluginInput],
        ironflow_env: dict[str, str],
    ) -> Callable[..., Any]:
        """``arun_flow`` bound to the fixture registry and environment (async tests)."""
        return _bound(arun_flow, ironflow_registry, ironflow_plugins, ironflow_env)
