"""Preparing a planned flow to run: limits, services, observers, child runs.

``prepare_run`` takes a :class:`~ironflow_core.engine.planner.Plan` (so a flow
is validated exactly once, by ``plan_flow``) and returns the executor that
runs it. Resuming (``engine.resume``) prepares its runs here too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ironflow_core.engine.executor import RunExecutor
from ironflow_core.engine.lease import lease_ttl
from ironflow_core.engine.lineage import Lineage, flow_roots, subworkflow_slots
from ironflow_core.engine.planner import Plan, plan_flow
from ironflow_core.errors import InvalidInputError
from ironflow_core.jsonutil import check_value
from ironflow_core.model import FlowDefinition, RunRecord
from ironflow_core.registry import Registry, default_registry
from ironflow_core.runid import new_run_id
from ironflow_core.services import RunServices
from ironflow_core.settings import EngineLimits, LuaLimits, SubworkflowLimits
from ironflow_core.specs import StateStore


def prepare_run(
    plan: Plan | FlowDefinition,
    *,
    store: StateStore,
    registry: Registry | None = None,
    context: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    env: Mapping[str, str] | None = None,
    observers: Iterable[Any] = (),
    plugin_observers: bool = True,
    overlay: Mapping[str, Any] | None = None,
    config_concurrency: int | None = None,
    is_child: bool = False,
    completed: Mapping[str, Any] | None = None,
    parent: tuple[str, str] | None = None,
    lineage: Lineage | None = None,
    extra_flow_roots: Sequence[str] = (),
    **resume: Any,
) -> RunExecutor:
    """The executor of a planned flow: limits resolved, the context checked (ENG-11).

    Raises before any state is written. ``registry`` must be the one ``plan``
    was made with. A ``FlowDefinition`` is planned here first (a convenience
    for embedders and tests: it is still planned once).

    A root run's subworkflows may load flow files from the flow's own
    directory, ``FLOWS_DIR`` and ``extra_flow_roots`` (see ``engine.lineage``);
    child runs get their ``lineage`` from the parent. ``resume`` passes a
    resume's state on to ``RunExecutor`` (see ``resume.py``).
    """
    registry = registry or default_registry()
    if isinstance(plan, FlowDefinition):
        plan = plan_flow(plan, registry)
    env = os.environ if env is None else env
    try:
        check_value(dict(context or {}))
    except ValueError as exc:
        raise InvalidInputError(f"Invalid initial context: {exc}") from None
    limits = EngineLimits.from_env(env, config_concurrency=config_concurrency)
    ttl = lease_ttl(env) if not is_child else 0.0
    flow = plan.flow
    run_id = run_id or new_run_id()
    services = RunServices(
        run_id=run_id,
        flow_name=flow.name,
        registry=registry,
        env=env,
        engine_limits=limits,
        lua_limits=LuaLimits.from_env(env),
        overlay=dict(overlay) if overlay else None,
    )
    if lineage is None:
        lineage = Lineage(flow_roots(flow.source_path, env, extra_flow_roots))
    services.lineage = lineage
    services.run_child = _child_runner(registry, env, overlay, config_concurrency, services)
    all_observers = [*(registry.observers if plugin_observers else ()), *observers]
    ctx = {k: v for k, v in (context or {}).items() if not (overlay and k in overlay)}
    return RunExecutor(
        plan, store=store, services=services, context=ctx, observers=all_observers,
        overlay=overlay, is_child=is_child, completed=completed, parent=parent,
        lease_ttl=ttl, **resume,
    )


def _child_runner(registry, env, overlay, config_concurrency, parent):  # type: ignore[no-untyped-def]
    """Child runs (SUB-2): in-memory store, own limits, inherited overlay.

    The family's depth and run-count limits apply; a child of the root run
    holds a subworkflow slot while its subtree runs (``engine.lineage``).
    Nested sub-flows are recorded with the root run (``parent.subflows``).

    A child run publishes no events to the run's own listeners (the API's
    event stream, the CLI's progress); plugin observers do see it, with
    ``parent_run_id``/``parent_step`` set on every event, so a trace can
    nest it under the step that started it.
    """
    lineage = parent.lineage

    async def run_child(flow: FlowDefinition, context: dict[str, Any], *,
                        parent_step: str | None = None) -> RunRecord:
        from ironflow_core.stores.memory import MemoryStore

        limits = SubworkflowLimits.from_env(env)
        child = lineage.admit_child(limits)
        executor = prepare_run(
            plan_flow(flow, registry), store=MemoryStore(), registry=registry, context=context,
            env=env,
            overlay=overlay, config_concurrency=config_concurrency, is_child=True,
            parent=(parent.run_id, parent_step or ""), lineage=child,
        )
        executor.services.subflows = parent.subflows  # nested sub-flows travel too
        if lineage.depth == 0:
            async with subworkflow_slots(limits):
                return await executor.run()
        return await executor.run()

    return run_child


async def execute(flow: FlowDefinition, *, store: StateStore, **kwargs: Any) -> RunRecord:
    """Plan and run ``flow`` to completion; returns the stored run record."""
    executor = prepare_run(flow, store=store, **kwargs)
    return await executor.run()
