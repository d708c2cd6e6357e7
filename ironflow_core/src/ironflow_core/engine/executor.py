"""The trio executor: runs a planned flow phase by phase (semantics.md#engine).

One run is one cancel scope. Each phase opens a nursery with a pool of at
most ``max_concurrent_tasks`` workers that take the eligible members in
declaration order (a lone member runs without one), and commits the
buffered outputs in declaration order once the whole phase has settled
(ENG-3, ENG-91). Every member of a phase reads the same context object: it
is only mutated at the barrier, after the phase's tasks are done, so no
per-step copy is made (ENG-30).

A step is a retry loop (``_attempts``) around single attempts
(``_attempt``), each recorded ``running`` before its node starts. Task
updates go through the run's ``GroupCommit``: those that meet a write in
flight are written together, and each step goes on only once its own update
is durable. A success or a skip is deferred: it rides with the run's next
write (usually the worker's next ``running``), so a step costs one write,
and no node starts before every success and skip before it is durable;
``task_succeeded``/``task_skipped`` are emitted once it is. The final record is the one the run created and kept up to
date, not read back from the store.

A resumed run starts from the run's initial context again, and a step kept
from before (``completed``) is not run: its recorded output joins the others
at its phase's barrier, in declaration order. Every phase therefore sees the
same snapshot, and commits the same way, as in an uninterrupted run.

Every write of a top-level run carries its owner lease token (fencing): a
write refused because another process took the run over stops the run
without writing anything more.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from ironflow_core.context import NodeContext
from ironflow_core.engine.admission import workflow_slots
from ironflow_core.engine.events import EventDispatcher
from ironflow_core.engine.group_commit import GroupCommit
from ironflow_core.engine.lease import LEASE_TTL_SECONDS, OwnerLease
from ironflow_core.engine.planner import MAX_WAIT_SECONDS, Plan
from ironflow_core.errors import LeaseLostError, NodeError, NodeFailure, StoreError
from ironflow_core.jsonutil import dumps_bytes, format_seconds, now_timestamp
from ironflow_core.model import (
    EventType,
    RunOrigin,
    RunRecord,
    RunStatus,
    StepSpec,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.redact import redact_urls
from ironflow_core.services import RunServices
from ironflow_core.specs import NodeSpec, StateStore

log = logging.getLogger("ironflow.engine")

CANCELLED_ERROR = "workflow execution was cancelled"
STOPPED_ERROR = "task stopped before the workflow could complete"
STALLED_REASON = "workflow execution stopped after an infrastructure failure"

SKIP_ROUTE = "route condition was not matched"
SKIP_DEPENDENCY = "dependency failed"
SKIP_HANDLER_IDLE = "error handler was not triggered"
SKIP_HANDLER_DEPENDENCY = "recovery handler dependency failed"


@attrs.define
class _Failure:
    """An unresolved (or resolved) step failure, as recovery handlers see it."""

    message: str
    node_type: str
    output: dict[str, Any] | None = None


@attrs.define
class _Outcome:
    """How one attempt ended: an output, an error, or the deadline."""

    output: dict[str, Any] | None = None
    error: str | None = None
    """The failure message, URLs redacted; None when the attempt succeeded or timed out."""
    failure_output: dict[str, Any] | None = None
    """The structured output a ``NodeFailure`` carried (ENG-82)."""
    timed_out: bool = False
    duration_ms: int = 0


class _NoScope:
    """Stands in for a cancel scope when a step has no deadline."""

    cancelled_caught = False

    def __enter__(self) -> _NoScope:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SCOPE = _NoScope()


class _Stall(Exception):
    """An infrastructure failure: persistence broke or the lease was lost, the run cannot go on."""


class FinalStatusError(StoreError):
    """The run ended but its final status could not be stored.

    The lease is kept (it expires on its own), so reconciliation or recovery
    finds the run later; the record still says ``running`` until then.
    """


def bound_output(output: Mapping[str, Any], limit: int, note: str) -> Any:
    """ENG-25: the value kept in task history, replaced by a marker when too big."""
    if len(dumps_bytes(output)) <= limit:
        return output
    return {
        "_truncated": True,
        "_minimum_bytes": limit + 1,
        "_limit_bytes": limit,
        "_note": note,
    }


class RunExecutor:
    """Executes one planned run against a store; create one per run."""

    def __init__(
        self,
        plan: Plan,
        *,
        store: StateStore,
        services: RunServices,
        context: dict[str, Any],
        observers: Iterable[Any] = (),
        overlay: Mapping[str, Any] | None = None,
        is_child: bool = False,
        completed: Mapping[str, TaskRecord] | None = None,
        parent: tuple[str, str] | None = None,
        lease_ttl: float = LEASE_TTL_SECONDS,
        resume_lease: OwnerLease | None = None,
        previous_attempts: Mapping[str, int] | None = None,
        origin: RunOrigin | None = None,
    ) -> None:
        self.plan = plan
        self.is_child = is_child
        self.completed = dict(completed or {})
        """Steps already finished by the run this one resumes; they are not run again."""
        self.lease = resume_lease
        """Set for a resume in place: the lease was taken before the record was read."""
        self.lease_ttl = lease_ttl
        self.previous_attempts = dict(previous_attempts or {})
        """Attempts a step already made before a resume: a rerun continues the count."""
        self.origin = origin
        self.owner: str | None = resume_lease.owner if resume_lease else None
        self.lost_lease: LeaseLostError | None = None
        self.final_error: StoreError | None = None
        self.resume_in_place = resume_lease is not None
        self.flow = plan.flow
        self.store = store
        self.services = services
        self.run_id = services.run_id
        self.ctx = context
        self.overlay = dict(overlay) if overlay else None
        self.events = EventDispatcher(self.run_id, observers, parent=parent)
        self.task_writer: GroupCommit[TaskRecord] = GroupCommit(self._write_tasks)
        """Every task update of the run goes through it (group commit, fenced by ``owner``)."""
        self.max_concurrent = services.engine_limits.max_concurrent_tasks
        self.output_limit = services.engine_limits.max_task_output_bytes
        self.tasks: dict[str, TaskRecord] = {
            step.name: (
                self.completed[step.name].copy()
                if step.name in self.completed
                else TaskRecord(name=step.name, node_type=step.node_type,
                                depends_on=tuple(step.dependencies))
            )
            for step in self.flow.steps
        }
        self.failures: dict[str, _Failure] = {}
        """Unresolved failures by step name (ENG-60)."""
        self.unavailable: set[str] = set()
        self.stall_reason: str | None = None
        self.record: RunRecord | None = None
        """The record as this run created it; None for a resume in place (stored before)."""
        self.cancel_scope = trio.CancelScope()
        if services.engine_limits.max_run_seconds:
            self.cancel_scope.relative_deadline = services.engine_limits.max_run_seconds
        self.started = now_timestamp()
        if origin is not None and not is_child:
            self._record_subflows(origin)

    # ----------------------------------------------------------------- run
    def initial_record(self) -> RunRecord:
        """The run as it is created: ``pending``, its initial context, every task pending."""
        return RunRecord(
            id=self.run_id,
            flow_name=self.flow.name,
            status=RunStatus.PENDING,
            started=self.started,
            finished=None,
            ctx=dict(self.ctx),
            tasks={name: task.copy() for name, task in self.tasks.items()},
        )

    async def run(self) -> RunRecord:
        """Create the run record, execute every phase and finalize (ENG-11).

        A top-level run holds an owner lease from creation to finalization
        (ST-50), also while it waits for a workflow slot, and records what it
        started from (``RunOrigin``) so it can be resumed. Child runs live in
        memory inside their parent's run and take none. A resumed run (its
        lease already taken) reopens its record instead of creating one.
        """
        if self.is_child:
            self.record = self.initial_record()
            await self.store.create_run(self.record)
            return await self._execute()
        slots = workflow_slots(self.services.env)
        lease = self.lease
        if lease is not None:
            # A resume took the lease before loading its flow: refresh it before the
            # renewals start, in case preparing took a good part of a short lifetime.
            try:
                await lease.acquire()
            except StoreError as exc:
                self.stall_reason = f"could not keep the execution-owner lease: {exc}"
        else:
            # The flow first (it needs no run), then the record and at once its origin,
            # so a process killed in between leaves the smallest possible gap.
            digest = await self.store.save_flow(self.flow.origin) if self.flow.origin else None
            self.record = self.initial_record()
            await self.store.create_run(self.record)
            lease = self.lease = OwnerLease(
                self.store, self.run_id, self.lease_ttl,
                observers=self.services.registry.observers)
            try:
                await self._record_origin(digest)
                await lease.acquire()
                self.owner = lease.owner
            except StoreError as exc:
                self.stall_reason = f"could not take the execution-owner lease: {exc}"
                log.error("run %s: %s", self.run_id, self.stall_reason)
        async with lease.renewed(on_lost=self._lease_lost), slots:
            record = await self._execute()
        if lease.keep:
            raise FinalStatusError(
                f"Run '{self.run_id}' ended {record.status} but its final status could not be "
                f"stored ({self.final_error}); it stays 'running' until its lease expires "
                "and it is reconciled or recovered"
            )
        return record

    async def _record_origin(self, digest: str | None) -> None:
        """Record the run's origin (its stored flow, initial context) beside the record."""
        origin = self.origin
        if origin is None:
            origin = self.origin = RunOrigin(
                flow=digest, flow_name=self.flow.name, context=dict(self.ctx),
            )
        await self.store.set_origin(self.run_id, origin, owner=self.owner)
        self._record_subflows(origin)

    def _record_subflows(self, origin: RunOrigin) -> None:
        from ironflow_core.engine.subflow_sources import SubflowSources

        self.services.subflows = SubflowSources(self.store, self.run_id, origin,
                                                owner=lambda: self.owner)

    def _lease_lost(self, reason: str) -> None:
        """Another process may already have closed this run: stop it as ``stalled``."""
        self.stall_reason = reason
        self.cancel_scope.cancel()

    async def _execute(self) -> RunRecord:
        """Run the phases, then finalize with the status they ended in (shielded)."""
        status = RunStatus.RUNNING
        try:
            if self.stall_reason is None:
                await self._start()
            with self.cancel_scope:
                await self._run_phases()
        except _Stall:
            pass
        except LeaseLostError as exc:
            self.lost_lease = exc
            self.stall_reason = str(exc)
        except StoreError as exc:
            self.stall_reason = str(exc)
        if self.cancel_scope.cancel_called:
            self.services.cancelled.set()
        if self.stall_reason is not None:
            status = RunStatus.STALLED
        elif self.cancel_scope.cancelled_caught or self.cancel_scope.cancel_called:
            status = RunStatus.CANCELLED
        elif self.failures:
            status = RunStatus.FAILED
        else:
            status = RunStatus.SUCCESS
        with trio.CancelScope(shield=True):
            record = await self._finalize(status)
        return record

    async def _start(self) -> None:
        if self.resume_in_place:
            await self.store.reopen_run(self.run_id, owner=self.owner)
            reset = [task for name, task in self.tasks.items() if name not in self.completed]
            if reset:
                await self.store.upsert_tasks(self.run_id, reset, owner=self.owner)
            self.events.emit(
                EventType.RUN_RESUMED, flow_name=self.flow.name, run_status="running",
                reason=f"{len(self.completed)} recorded step(s) kept, {len(reset)} to run",
            )
            return
        await self.store.set_status(self.run_id, RunStatus.RUNNING, owner=self.owner)
        self.events.emit(
            EventType.RUN_STARTED, flow_name=self.flow.name, run_status="running"
        )

    def cancel(self) -> None:
        """Cancel the run: every step and child process is stopped (ENG-170)."""
        self.services.cancelled.set()
        self.cancel_scope.cancel()

    def interrupt(self, reason: str) -> None:
        """Stop the run as ``stalled`` (not cancelled) so another process can resume it.

        A worker that shuts down hands its unfinished runs back this way.
        """
        self._lease_lost(reason)

    async def _run_phases(self) -> None:
        if self.stall_reason is not None:  # the run never got its lease
            raise _Stall()
        steps = self.flow.steps
        for phase in self.plan.phases:
            outputs: dict[int, dict[str, Any]] = {}
            launch: list[int] = []
            for i in phase:
                step = steps[i]
                kept = self.completed.get(step.name)
                if kept is not None:  # its recorded output joins the others at the barrier
                    if isinstance(kept.output, dict) and kept.output:
                        outputs[i] = kept.output
                    continue
                decision = self._decide(step)
                if decision is None:
                    launch.append(i)
                else:
                    reason, unavailable = decision
                    if unavailable:
                        self.unavailable.add(step.name)
                    self._record_skip(step, reason)
            if len(launch) == 1:
                await self._run_task(launch[0], outputs)
            elif launch:
                await self._run_concurrently(launch, outputs)
            if self.stall_reason is not None:
                raise _Stall()
            self._commit(phase, outputs)

    def _blocked(self, name: str) -> bool:
        return name in self.failures or name in self.unavailable

    def _decide(self, step: StepSpec) -> tuple[str, bool] | None:
        """ENG-40..42: None = launch; else (skip reason, marks unavailable)."""
        source = self.plan.handler_source.get(step.name)
        if source is not None:
            if source not in self.failures:
                return SKIP_HANDLER_IDLE, True
            if any(self._blocked(dep) for dep in step.dependencies):
                return SKIP_HANDLER_DEPENDENCY, True
            return None
        if any(self._blocked(dep) for dep in step.dependencies):
            return SKIP_DEPENDENCY, True
        if step.route is not None and not self._route_matches(step):
            return SKIP_ROUTE, False
        return None

    def _route_matches(self, step: StepSpec) -> bool:
        """ENG-50: some dependency wrote ``_route_<dep>`` equal to the route."""
        for dep in step.dependencies:
            value = self.ctx.get(f"_route_{dep}")
            if isinstance(value, str) and value == step.route:
                return True
        return False

    def _commit(self, phase: tuple[int, ...], outputs: dict[int, dict[str, Any]]) -> None:
        """ENG-91: apply outputs in declaration order; later-declared producers win."""
        if not outputs:
            return
        if len(outputs) > 1:
            producers: dict[str, str] = {}
            for i in phase:
                for key in outputs.get(i, ()):
                    if key in producers:
                        log.warning(
                            "steps '%s' and '%s' both wrote context key '%s'; "
                            "the later-declared step wins",
                            producers[key], self.flow.steps[i].name, key,
                        )
                    producers[key] = self.flow.steps[i].name
        for i in phase:
            output = outputs.get(i)
            if output:
                self.ctx.update(output)

    # ---------------------------------------------------------------- tasks
    async def _write_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        await self.store.upsert_tasks(self.run_id, tasks, owner=self.owner)

    async def _save(self, task: TaskRecord) -> None:
        """Persist one task update (gathered with others in flight); stall the run on failure."""
        await self._persisted(self.task_writer.save(task))

    async def _flush(self) -> None:
        """Make the deferred task updates durable now; stall the run on failure."""
        if self.task_writer.deferred:
            await self._persisted(self.task_writer.flush())

    async def _persisted(self, write: Awaitable[None]) -> None:
        try:
            await write
        except StoreError as exc:
            if isinstance(exc, LeaseLostError):
                self.lost_lease = exc
            self.stall_reason = str(exc)
            self.cancel_scope.cancel()
            raise _Stall() from exc

    def _record_skip(self, step: StepSpec, reason: str) -> None:
        task = self.tasks[step.name]
        task.status = TaskStatus.SKIPPED
        task.attempt = 0
        task.started = None
        task.error = None
        task.finished = now_timestamp()
        # a final state, deferred like a success: the skips of a phase share one write
        self.task_writer.defer(task, lambda: self.events.emit(
            EventType.TASK_SKIPPED, step=step.name, node_type=step.node_type,
            task_status="skipped", reason=reason,
        ))

    def _node_context(self, step: StepSpec) -> NodeContext:
        overlay = self.overlay
        source = self.plan.handler_source.get(step.name)
        if source is not None:
            failure = self.failures[source]
            error_overlay: dict[str, Any] = {
                "_error_message": failure.message,
                "_error_step": source,
                "_error_node_type": failure.node_type,
            }
            if failure.output is not None:
                error_overlay["_error_output"] = failure.output
            overlay = {**(overlay or {}), **error_overlay}
        return NodeContext(
            self.ctx,
            step_name=step.name,
            node_type=step.node_type,
            services=self.services,
            raw_config=step.config,
            overlay=overlay,
        )

    async def _run_concurrently(self, launch: list[int], outputs: dict[int, dict[str, Any]]) -> None:
        """ENG-43/ENG-120: at most ``max_concurrent_tasks`` members run at once.

        The limit is a pool of that many workers taking the launched steps in
        declaration order, rather than one task per step queueing on a
        semaphore: a 1,000-step phase then costs no task spawns or wake-ups
        beyond the workers'. A step's deadline starts when a worker takes it
        (ENG-71).
        """
        pending = iter(launch)

        async def worker() -> None:
            for index in pending:  # shared: each step is taken by exactly one worker
                await self._run_task(index, outputs)
            # Out of work: the last success must not wait for the slowest peer to be durable.
            await self._flush()

        try:
            async with trio.open_nursery() as nursery:
                for _ in range(min(self.max_concurrent, len(launch))):
                    nursery.start_soon(worker)
        except BaseExceptionGroup as group:
            # Workers met a broken store (the others were cancelled by the stall):
            # one stall, not a group. Anything else propagates unchanged.
            stalls, rest = group.split(_Stall)
            if stalls is None or (rest is not None and rest.split(trio.Cancelled)[1] is not None):
                raise
            raise _Stall() from None

    async def _run_task(self, index: int, outputs: dict[int, dict[str, Any]]) -> None:
        step = self.flow.steps[index]
        spec = self.services.registry.nodes[step.node_type]
        config = self.plan.configs[index]
        succeeded, result = await self._attempts(step, spec, config)
        if result is not None:
            outputs[index] = result
        source = self.plan.handler_source.get(step.name)
        if succeeded and source is not None:
            self.failures.pop(source, None)  # the handler resolved its source (ENG-113)

    async def _attempts(
        self, step: StepSpec, spec: NodeSpec, config: Any
    ) -> tuple[bool, dict[str, Any] | None]:
        """Run attempts with backoff under one total deadline (ENG-70..75).

        Returns (succeeded, output to publish); a failure may still publish its
        structured output (ENG-82).
        """
        task = self.tasks[step.name]
        node_ctx = self._node_context(step)
        deadline = math.inf
        if step.timeout_s is not None:
            deadline = trio.current_time() + step.timeout_s
        total = step.max_retries + 1
        base = self.previous_attempts.get(step.name, 0)
        for attempt in range(1, total + 1):
            number = base + attempt
            outcome = await self._attempt(step, spec, config, node_ctx, number, deadline)
            if outcome.timed_out:
                return False, await self._fail(step, task, self._timeout_text(step), number,
                                               None, outcome.duration_ms, timed_out=True)
            if outcome.error is None:
                await self._succeed(step, task, outcome, number)
                return True, outcome.output
            if attempt == total:
                return False, await self._fail(step, task, outcome.error, number,
                                               outcome.failure_output, outcome.duration_ms,
                                               timed_out=False)
            # bounded: 100 doublings of any backoff would overflow what a timer can hold
            wait = min(step.backoff_s * (2.0 ** min(attempt - 1, 1000)), MAX_WAIT_SECONDS)
            if not await self._back_off(step, task, outcome, number, wait, deadline):
                return False, await self._fail(step, task, self._timeout_text(step), number,
                                               outcome.failure_output, 0, timed_out=True,
                                               emit=False)
        raise AssertionError("unreachable: the last attempt always returns")

    async def _attempt(
        self, step: StepSpec, spec: NodeSpec, config: Any, node_ctx: NodeContext,
        number: int, deadline: float,
    ) -> _Outcome:
        """One attempt: record it ``running``, run the node, say how it ended."""
        task = self.tasks[step.name]
        began = trio.current_time()
        task.status = TaskStatus.RUNNING
        task.attempt = number
        task.started = now_timestamp()
        task.finished = None
        await self._save(task)
        self.events.emit(
            EventType.TASK_STARTED, step=step.name, node_type=step.node_type,
            task_status="running", attempt=number,
        )
        error: str | None = None
        failure_output: dict[str, Any] | None = None
        output: Any = None
        # no cancel scope without a deadline: it is the per-step hot path
        scope = trio.move_on_at(deadline) if deadline != math.inf else _NO_SCOPE
        with scope:
            try:
                output = await spec.run(node_ctx, config)
            except NodeFailure as exc:
                error, failure_output = str(exc), exc.output
            except NodeError as exc:
                error = str(exc)
            except trio.Cancelled:
                raise
            except Exception as exc:  # a node bug is still a controlled failure
                error = str(exc) or type(exc).__name__
                log.debug("node %s raised", step.node_type, exc_info=True)
        # a result arriving after the deadline is discarded too
        timed_out = scope.cancelled_caught or trio.current_time() >= deadline
        duration_ms = int((trio.current_time() - began) * 1000)
        if timed_out:
            return _Outcome(timed_out=True, duration_ms=duration_ms)
        if error is not None:
            return _Outcome(error=redact_urls(error), failure_output=failure_output,
                            duration_ms=duration_ms)
        if output is None:
            output = {}
        elif not isinstance(output, dict):
            output = dict(output)
        return _Outcome(output=output, duration_ms=duration_ms)

    async def _succeed(self, step: StepSpec, task: TaskRecord, outcome: _Outcome,
                       number: int) -> None:
        task.status = TaskStatus.SUCCESS
        task.output = bound_output(outcome.output or {}, self.output_limit,
                                   "task output exceeded IRONFLOW_MAX_TASK_OUTPUT_BYTES; "
                                   "the full value was still written to the context")
        task.finished = now_timestamp()
        # Deferred: the success rides with this worker's next write (its next step's
        # ``running``, a peer's, or the flush when it runs out of work), so no node
        # starts before it is durable, and it is announced once it is.
        self.task_writer.defer(task, lambda: self.events.emit(
            EventType.TASK_SUCCEEDED, step=step.name, node_type=step.node_type,
            task_status="success", attempt=number, duration_ms=outcome.duration_ms,
        ))

    async def _back_off(self, step: StepSpec, task: TaskRecord, outcome: _Outcome,
                        number: int, wait: float, deadline: float) -> bool:
        """Record a failed attempt that a retry follows, then wait ``wait`` s.

        False when the step's deadline came first.
        """
        task.status = TaskStatus.FAILED
        task.error = outcome.error
        task.finished = now_timestamp()
        await self._save(task)
        self.events.emit(
            EventType.TASK_FAILED, step=step.name, node_type=step.node_type,
            task_status="failed", attempt=number, duration_ms=outcome.duration_ms,
            error=outcome.error,
        )
        task.status = TaskStatus.RUNNING
        task.finished = None
        await self._save(task)
        with trio.move_on_at(deadline) as backoff:
            await trio.sleep(wait)
        if backoff.cancelled_caught or trio.current_time() >= deadline:
            return False
        self.events.emit(
            EventType.TASK_RETRYING, step=step.name, node_type=step.node_type,
            task_status="running", attempt=number + 1,
        )
        return True

    def _timeout_text(self, step: StepSpec) -> str:
        return f"Task '{step.name}' timed out after {format_seconds(step.timeout_s or 0)}s total"

    async def _fail(
        self,
        step: StepSpec,
        task: TaskRecord,
        error: str,
        attempt: int,
        output: dict[str, Any] | None,
        duration_ms: int,
        *,
        timed_out: bool,
        emit: bool = True,
    ) -> dict[str, Any] | None:
        """Record the terminal failure; a structured output is still published (ENG-82)."""
        task.status = TaskStatus.FAILED
        task.attempt = attempt
        task.error = error
        task.output = (
            bound_output(output, self.output_limit, "task output exceeded "
                         "IRONFLOW_MAX_TASK_OUTPUT_BYTES")
            if output is not None else None
        )
        task.finished = now_timestamp()
        await self._save(task)
        self.events.emit(
            EventType.TASK_FAILED, step=step.name, node_type=step.node_type,
            task_status="failed", attempt=attempt,
            duration_ms=duration_ms if emit else None, error=error,
            reason="timed_out" if timed_out else None,
        )
        total = step.max_retries + 1
        message = error if timed_out else f"Task '{step.name}' failed after {total} attempts: {error}"
        failure = _Failure(message=message, node_type=step.node_type, output=output)
        self.failures[step.name] = failure
        log.warning("%s", message)
        return output

    # ------------------------------------------------------------- finalize
    async def _final_write(self, write: Callable[..., Awaitable[None]], *args: Any,
                           **kwargs: Any) -> StoreError | None:
        """One fenced write of the finalization; once fenced out, nothing more is written."""
        if self.lost_lease is not None:
            return None
        try:
            await write(self.run_id, *args, owner=self.owner, **kwargs)
        except LeaseLostError as exc:
            self.lost_lease = exc
        except StoreError as exc:
            return exc
        return None

    async def _finalize(self, status: RunStatus) -> RunRecord:
        """ENG-150: persist the final context, repair tasks, set the terminal status.

        An owner fenced out writes nothing more: the run belongs to another
        process now. When the final status cannot be written the lease is
        kept, so the run is reconciled or recovered once it expires.
        """
        status = await self._flush_deferred(status)
        final_ctx, status = await self._final_context(status)
        status = await self._repair_tasks(status)
        finished = now_timestamp()
        status_error = await self._persist_status(status, finished)
        reason = None
        if status is RunStatus.CANCELLED:
            reason = CANCELLED_ERROR
        elif status is RunStatus.STALLED:
            reason = STALLED_REASON
        self.events.emit(EventType.RUN_FINISHED, flow_name=self.flow.name,
                         run_status=str(status), reason=reason)
        for cleanup in self.services.cleanups:
            try:
                await cleanup()
            except Exception:
                log.debug("run cleanup failed", exc_info=True)
        record = await self._final_record(final_ctx, status, finished, status_error)
        if self.lost_lease is not None:
            log.error("run %s: %s; it was left as the new owner has it", self.run_id,
                      self.lost_lease)
        elif status_error is not None:
            log.error("could not persist the final status of run %s: %s", self.run_id,
                      status_error)
            self.final_error = status_error
            if self.lease is not None:
                self.lease.keep = True  # let it expire: reconciliation or recovery finds the run
            record.status = status
        return record

    async def _flush_deferred(self, status: RunStatus) -> RunStatus:
        """Write the successes no later write carried (the last phase's, a cancelled run's)."""
        if not self.task_writer.deferred or self.lost_lease is not None:
            return status  # a fenced-out owner writes nothing more
        try:
            await self.task_writer.flush()
        except LeaseLostError as exc:
            self.lost_lease = exc
        except StoreError as exc:
            self.stall_reason = str(exc)
            return RunStatus.STALLED
        return status

    async def _final_context(self, status: RunStatus) -> tuple[dict[str, Any], RunStatus]:
        """Persist the context the run ends with (values too big become markers, ENG-25).

        The overlay a parent lent is not the run's own and is left out. A
        context that cannot be stored stalls the run.
        """
        final_ctx = {k: v for k, v in self.ctx.items() if not (self.overlay and k in self.overlay)}
        for key, value in list(final_ctx.items()):
            try:
                final_ctx[key] = bound_output(
                    value, self.output_limit,
                    "value exceeded IRONFLOW_MAX_TASK_OUTPUT_BYTES in the persisted final context",
                ) if not isinstance(value, (int, float, bool)) and value is not None else value
            except (TypeError, ValueError):
                final_ctx[key] = None
        if status is not RunStatus.STALLED or final_ctx:
            failed = await self._final_write(self.store.merge_context, final_ctx)
            if failed is not None:
                self.stall_reason = str(failed)
                status = RunStatus.STALLED
        self.events.emit(EventType.CONTEXT_UPDATED, flow_name=self.flow.name,
                         run_status=str(status))
        return final_ctx, status

    async def _repair_tasks(self, status: RunStatus) -> RunStatus:
        """Close the tasks the run left open: cancelled, or failed/skipped as stopped.

        A run that would have ended ``success`` or ``failed`` with open tasks
        ends ``stalled`` instead (ENG-152).
        """
        repaired = []
        for task in self.tasks.values():
            if task.status.terminal:
                continue
            if status is RunStatus.CANCELLED:
                task.status = TaskStatus.CANCELLED
                task.error = CANCELLED_ERROR
                self.events.emit(EventType.TASK_CANCELLED, step=task.name,
                                 node_type=task.node_type, task_status="cancelled",
                                 attempt=task.attempt or None)
            elif task.status is TaskStatus.RUNNING:
                task.status = TaskStatus.FAILED
                task.error = STOPPED_ERROR
            else:
                task.status = TaskStatus.SKIPPED
                task.error = STOPPED_ERROR
            task.finished = now_timestamp()
            repaired.append(task)
        if not repaired:
            return status
        if status in (RunStatus.SUCCESS, RunStatus.FAILED):
            status = RunStatus.STALLED  # ENG-152
        failed = await self._final_write(self.store.upsert_tasks, repaired)
        if failed is not None:
            self.stall_reason = str(failed)
            status = RunStatus.STALLED
        return status

    async def _persist_status(self, status: RunStatus, finished: str) -> StoreError | None:
        """Store the terminal status (three tries); the last error when it could not be."""
        error: StoreError | None = None
        for _ in range(3):
            error = await self._final_write(self.store.set_status, status, at=finished)
            if error is None:
                break
        return error

    async def _final_record(self, final_ctx: dict[str, Any], status: RunStatus, finished: str,
                            status_error: StoreError | None) -> RunRecord:
        """The run as stored: the record this run holds, else read back from the store.

        The record this run created has seen every write, so when they all
        succeeded it is what the store has, without reading it back. A resume
        in place (whose stored record predates this process), a run whose
        writes failed or that lost its lease reads the store's version.
        """
        record = self.record
        if (record is not None and self.stall_reason is None and self.lost_lease is None
                and status_error is None):
            record.ctx.update(final_ctx)
            record.tasks = dict(self.tasks)
            record.status = status
            if status.terminal and record.finished is None:
                record.finished = finished
            return record
        try:
            return await self.store.get_run(self.run_id)
        except StoreError:
            record = self.initial_record()
            record.ctx.update(final_ctx)
            record.status = status
            return record
