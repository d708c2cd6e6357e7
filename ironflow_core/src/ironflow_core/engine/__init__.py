"""The engine: plan a flow, then execute it on trio against a state store."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ironflow_core.engine.executor import FinalStatusError, RunExecutor
from ironflow_core.engine.lease import lease_ttl
from ironflow_core.engine.planner import Plan, plan_flow
from ironflow_core.engine.resume import open_resume, prepare_resume
from ironflow_core.errors import InvalidInputError
from ironflow_core.jsonutil import check_value
from ironflow_core.model import FlowDefinition, RunRecord
from ironflow_core.registry import Registry, default_registry
from ironflow_core.runid import new_run_id
from ironflow_core.services import RunServices
from ironflow_core.settings import EngineLimits, LuaLimits
from ironflow_core.specs import StateStore

__all__ = [
    "FinalStatusError", "Plan", "RunExecutor", "execute", "open_resume", "plan_flow",
    "prepare_resume", "prepare_run",
]


def prepare_run(
    flow: FlowDefinition,
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
    **resume: Any,
) -> RunExecutor:
    """Resolve limits, check the context and plan; raises before any state is written (ENG-11).

    ``resume`` passes a resume's state on to ``RunExecutor`` (see ``resume.py``).
    """
    registry = registry or default_registry()
    env = os.environ if env is None else env
    try:
        check_value(dict(context or {}))
    except ValueError as exc:
        raise InvalidInputError(f"Invalid initial context: {exc}") from None
    limits = EngineLimits.from_env(env, config_concurrency=config_concurrency)
    ttl = lease_ttl(env) if not is_child else 0.0
    plan = plan_flow(flow, registry)
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
    services.run_child = _child_runner(registry, env, overlay, config_concurrency, services)
    all_observers = [*(registry.observers if plugin_observers else ()), *observers]
    ctx = {k: v for k, v in (context or {}).items() if not (overlay and k in overlay)}
    return RunExecutor(
        plan, store=store, services=services, context=ctx, observers=all_observers,
        overlay=overlay, is_child=is_child, completed=completed, lease_ttl=ttl, **resume,
    )


def _child_runner(registry, env, overlay, config_concurrency, parent):  # type: ignore[no-untyped-def]
    """Child runs (SUB-2): in-memory store, no events, own limits, inherited overlay."""

    async def run_child(flow: FlowDefinition, context: dict[str, Any]) -> RunRecord:
        from ironflow_core.stores.memory import MemoryStore

        executor = prepare_run(
            flow, store=MemoryStore(), registry=registry, context=context, env=env,
            plugin_observers=False, overlay=overlay, config_concurrency=config_concurrency,
            is_child=True,
        )
        executor.services.subflows = parent.subflows  # nested sub-flows travel too
        return await executor.run()

    return run_child


async def execute(flow: FlowDefinition, *, store: StateStore, **kwargs: Any) -> RunRecord:
    """Plan and run ``flow`` to completion; returns the stored run record."""
    executor = prepare_run(flow, store=store, **kwargs)
    return await executor.run()
