"""Resuming an interrupted or failed run (a deliberate addition to upstream).

A resumed run is a new run: its context is the old run's context with the
outputs of every step that succeeded applied in phase order, those steps are
copied over as ``success`` and are not run again, and every other step runs
as usual. The old record is left as it was, so ``finished`` never moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ironflow_core.engine.executor import RunExecutor
from ironflow_core.errors import IronflowError
from ironflow_core.model import FlowDefinition, RunRecord, RunStatus, TaskStatus
from ironflow_core.registry import Registry
from ironflow_core.specs import StateStore


def prepare_resume(
    previous: RunRecord,
    flow: FlowDefinition,
    *,
    store: StateStore,
    registry: Registry,
    env: Mapping[str, str],
    observers: Iterable[Any] = (),
    config_concurrency: int | None = None,
) -> RunExecutor:
    from ironflow_core.engine import prepare_run
    from ironflow_core.engine.planner import plan_flow

    if previous.status is RunStatus.SUCCESS:
        raise IronflowError(f"Run '{previous.id}' already succeeded; nothing to resume")
    if previous.flow_name != flow.name:
        raise IronflowError(
            f"Run '{previous.id}' belongs to flow '{previous.flow_name}', not '{flow.name}'"
        )
    plan = plan_flow(flow, registry)
    context = dict(previous.ctx)
    completed = {}
    for phase in plan.phases:
        for index in phase:
            step = flow.steps[index]
            task = previous.tasks.get(step.name)
            if task is None or task.status is not TaskStatus.SUCCESS:
                continue
            if task.node_type != step.node_type:
                raise IronflowError(
                    f"Step '{step.name}' changed node type since run '{previous.id}'"
                )
            output = task.output or {}
            if isinstance(output, dict) and output.get("_truncated") is True:
                raise IronflowError(
                    f"Step '{step.name}' of run '{previous.id}' has a truncated output; "
                    "it cannot be restored, so the run cannot be resumed"
                )
            context.update(output)
            completed[step.name] = task
    return prepare_run(
        flow, store=store, registry=registry, context=context, env=env,
        observers=observers, config_concurrency=config_concurrency, completed=completed,
    )
