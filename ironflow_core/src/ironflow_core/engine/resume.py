"""Resuming an interrupted or failed run (a deliberate addition to upstream).

In place (the default): the same run ID continues. Its lease is taken
first, so a run another process still executes is refused; the record goes
back to ``running``; steps recorded ``success`` keep their records and are
not run again; every other step runs again, a step that was in flight with
its next attempt number (at-least-once for work in flight, exactly-once for
a recorded completion). The flow comes from the store (it travels with the
run), unless one is given explicitly, which must have the same name.

Correctness rests on one rule: a resumed run starts from the run's *initial*
context and applies a kept step's recorded output at its phase's barrier,
with the outputs of the steps that run again, in declaration order. So each
phase sees the snapshot it had, and commits exactly as an uninterrupted run.

As a new run (``as_new``): the old record is left untouched and a new run
copies the kept steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import trio

from ironflow_core.engine.executor import RunExecutor
from ironflow_core.engine.lease import OwnerLease, lease_ttl
from ironflow_core.engine.planner import Plan, plan_flow
from ironflow_core.engine.run import prepare_run
from ironflow_core.errors import IronflowError, RunConflictError, StoreCorruptionError, StoreError
from ironflow_core.model import (
    FlowDefinition,
    RunOrigin,
    RunRecord,
    RunStatus,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.registry import Registry
from ironflow_core.runid import validate_run_id
from ironflow_core.specs import FlowSource, StateStore

log = logging.getLogger("ironflow.engine")


def kept_steps(previous: RunRecord, plan: Plan) -> tuple[dict[str, TaskRecord], dict[str, int]]:
    """The recorded completions a resume keeps, and the attempts the others already made.

    A ``success`` is kept, unless its recorded output was truncated (it cannot
    be restored, so the step runs again). A failure its recovery handler
    resolved is kept with the handler, so the pair stays resolved.
    """
    kept: dict[str, TaskRecord] = {}
    for step in plan.flow.steps:
        task = previous.tasks.get(step.name)
        if task is None or task.status is not TaskStatus.SUCCESS:
            continue
        if task.node_type != step.node_type:
            raise IronflowError(
                f"Step '{step.name}' changed node type since run '{previous.id}'"
            )
        output = task.output
        if isinstance(output, dict) and output.get("_truncated") is True:
            log.warning("run %s: step '%s' has a truncated recorded output; it runs again",
                        previous.id, step.name)
            continue
        kept[step.name] = task
    for handler, source in plan.handler_source.items():
        if handler not in kept:
            continue
        failed = previous.tasks.get(source)
        if failed is not None and failed.status is TaskStatus.FAILED:
            kept[source] = failed
        else:
            del kept[handler]
    attempts = {
        name: task.attempt for name, task in previous.tasks.items()
        if name not in kept and task.attempt > 0
    }
    return kept, attempts


def prepare_resume(
    previous: RunRecord,
    flow: FlowDefinition,
    *,
    store: StateStore,
    registry: Registry,
    env: Mapping[str, str],
    observers: Iterable[Any] = (),
    config_concurrency: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> RunExecutor:
    """A new run continuing ``previous`` (``--as-new``); the old record stays as it was.

    ``context`` is the run's initial context (its ``RunOrigin``); without it
    the stored context stands in, as for runs recorded before origins were.
    """
    _check_resumable(previous, flow)
    plan = plan_flow(flow, registry)
    completed, _ = kept_steps(previous, plan)
    return prepare_run(
        plan, store=store, registry=registry,
        context=dict(previous.ctx if context is None else context), env=env,
        observers=observers, config_concurrency=config_concurrency, completed=completed,
    )


async def busy_run_error(store: StateStore, run_id: str,
                         busy: RunConflictError) -> IronflowError:
    """What a resume of a run that still holds its lease is told.

    A run's lease outlives its final status by a moment (the status is
    written, then the lease released): a run that already succeeded says so
    rather than "still executing".
    """
    try:
        record = await store.get_run(run_id)
    except StoreError:
        return busy
    if record.status is RunStatus.SUCCESS:
        return IronflowError(f"Run '{run_id}' already succeeded; nothing to resume")
    return busy


def _check_resumable(previous: RunRecord, flow: FlowDefinition) -> None:
    """A run that succeeded, or belongs to another flow, cannot be resumed."""
    if previous.status is RunStatus.SUCCESS:
        raise IronflowError(f"Run '{previous.id}' already succeeded; nothing to resume")
    if previous.flow_name != flow.name:
        raise IronflowError(
            f"Run '{previous.id}' belongs to flow '{previous.flow_name}', not '{flow.name}'"
        )


async def stored_flow(
    store: StateStore, run_id: str, origin: RunOrigin | None, *,
    registry: Registry, env: Mapping[str, str],
) -> FlowDefinition:
    """Load the flow a run recorded; an error says what to do when there is none."""
    from ironflow_core.loading import load_flow

    if origin is None or origin.flow is None:
        raise IronflowError(
            f"Run '{run_id}' has no stored flow (it was recorded by an older version, or "
            "its flow was built in code); pass the flow file with --flow"
        )
    source = await store.load_flow(origin.flow)
    if source is None:
        raise StoreCorruptionError(
            f"The flow of run '{run_id}' (sha256 {origin.flow}) is missing from the store"
        )
    text = FlowSource(text=source.source, path=source.file_name)
    return await trio.to_thread.run_sync(
        partial(load_flow, text, registry=registry, env=env)
    )


async def open_resume(
    store: StateStore,
    run_id: str,
    *,
    registry: Registry,
    env: Mapping[str, str],
    flow: FlowDefinition | None = None,
    as_new: bool = False,
    observers: Iterable[Any] = (),
    config_concurrency: int | None = None,
    count_recovery: bool = False,
) -> RunExecutor:
    """Prepare a resume of ``run_id``; in place unless ``as_new``.

    In place, the run's lease is taken first: another owner's live lease is a
    ``RunConflictError`` naming the holder and the expiry. ``count_recovery``
    (automatic recovery) adds one to the origin's ``recoveries``.
    """
    validate_run_id(run_id)
    lease = None
    if not as_new:
        lease = OwnerLease(store, run_id, lease_ttl(env))
        try:
            await lease.acquire()
        except RunConflictError as exc:
            raise await busy_run_error(store, run_id, exc) from None
    try:
        previous = await store.get_run(run_id)
        origin = await store.get_origin(run_id)
        if flow is None:
            flow = await stored_flow(store, run_id, origin, registry=registry, env=env)
        _check_resumable(previous, flow)
        if as_new:
            return prepare_resume(
                previous, flow, store=store, registry=registry, env=env, observers=observers,
                config_concurrency=config_concurrency,
                context=origin.context if origin is not None else None,
            )
        assert lease is not None
        plan = plan_flow(flow, registry)
        completed, attempts = kept_steps(previous, plan)
        if origin is None:  # a run recorded before origins: record one now
            digest = await store.save_flow(flow.origin) if flow.origin is not None else None
            origin = RunOrigin(flow=digest, flow_name=flow.name, context=dict(previous.ctx))
        if count_recovery:
            origin.recoveries += 1
        await store.set_origin(run_id, origin, owner=lease.owner)
        return prepare_run(
            plan, store=store, registry=registry, context=origin.context, env=env,
            run_id=run_id, observers=observers, config_concurrency=config_concurrency,
            completed=completed, resume_lease=lease, previous_attempts=attempts, origin=origin,
        )
    except BaseException:
        if lease is not None:
            with trio.CancelScope(shield=True):
                await lease.release()
        raise
