"""The records the engine plans with and persists.

``FlowDefinition``/``StepSpec`` are what a loader produces; ``RunRecord`` and
``TaskRecord`` are what a state store keeps (semantics.md#task-records, #records); ``Event``
is what observers receive (semantics.md#events). Conversion to and from JSON lives here so
every store writes the same shapes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    STALLED = "stalled"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


RUN_STATUSES = tuple(s.value for s in RunStatus)


@attrs.frozen
class StepSpec:
    """One step as declared in a flow (DSL-23 defaults)."""

    name: str
    node_type: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    """The JSON config, including ``_step_name`` (DSL-26)."""
    dependencies: tuple[str, ...] = ()
    max_retries: int = 0
    backoff_s: float = 1.0
    timeout_s: float | None = None
    route: str | None = None
    on_error: str | None = None
    line: int | None = None
    """Line of the declaring ``flow:step`` call in the flow file, when known."""
    node_config: Any = None
    """The config structured for the node (its attrs class); ``None`` = not structured yet."""


@attrs.frozen
class Diagnostic:
    """A validation warning (DSL-111)."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    step: str | None = None


@attrs.frozen
class FlowSourceRecord:
    """The flow a run runs, as it travels with the run (content-addressed, stored once).

    ``digest`` is the SHA-256 of the canonical JSON of everything else, so
    two runs of the same file share one stored copy. Sub-flows are stored
    the same way, one record each, and listed in the run's ``RunOrigin``.
    """

    source: str
    loader: str
    file_name: str | None = None

    @property
    def digest(self) -> str:
        import hashlib

        from ironflow_core.jsonutil import dumps

        text = dumps({"file_name": self.file_name, "loader": self.loader, "source": self.source})
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "file_name": self.file_name, "loader": self.loader,
                "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowSourceRecord:
        source, loader, file_name = data.get("source"), data.get("loader"), data.get("file_name")
        if not isinstance(source, str) or not isinstance(loader, str) or not (
            file_name is None or isinstance(file_name, str)
        ):
            raise ValueError("a stored flow needs string 'source' and 'loader' fields")
        return cls(source=source, loader=loader, file_name=file_name)


@attrs.define
class RunOrigin:
    """What a run started from, kept beside its record (never in its ``ctx``).

    Resuming needs the flow (``flow`` is the digest of a stored
    ``FlowSourceRecord``) and the initial context: a resumed phase must see
    the snapshot it had, which is derived from ``context`` plus the recorded
    outputs of the earlier phases. ``recoveries`` counts automatic resumes.
    """

    flow: str | None
    flow_name: str
    context: dict[str, Any] = attrs.field(factory=dict)
    subflows: dict[str, str] = attrs.field(factory=dict)
    """Sub-workflow file path (as resolved) -> digest of its stored flow."""
    recoveries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"context": self.context, "flow": self.flow, "flow_name": self.flow_name,
                "recoveries": self.recoveries, "subflows": self.subflows}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunOrigin:
        flow = data.get("flow")
        context = data.get("context")
        subflows = data.get("subflows") or {}
        recoveries = data.get("recoveries", 0)
        if not (flow is None or isinstance(flow, str)) or not isinstance(context, dict) or not (
            isinstance(subflows, dict) and all(isinstance(v, str) for v in subflows.values())
        ) or not isinstance(recoveries, int):
            raise ValueError("malformed run origin record")
        return cls(flow=flow, flow_name=str(data.get("flow_name", "")), context=dict(context),
                   subflows=dict(subflows), recoveries=recoveries)


@attrs.frozen
class LeaseInfo:
    """Who executes a run and until when (wall-clock microseconds)."""

    owner: str
    expires_micros: int


@attrs.frozen
class FlowDefinition:
    name: str
    steps: tuple[StepSpec, ...]
    source_path: str | None = None
    warnings: tuple[Diagnostic, ...] = ()
    problems: tuple[str, ...] = ()
    """Errors the loader found in validation mode; the planner reports them with its own."""
    deterministic: bool = attrs.field(default=False, eq=False)
    """Loading the same source again gives the same definition (no clock, random,
    UUID or output at load time), so a loaded copy may be reused (the API's cache)."""
    origin: FlowSourceRecord | None = attrs.field(default=None, eq=False, repr=False)
    """The source it was loaded from, so a run can store it (set by ``load_flow``)."""

    def step(self, name: str) -> StepSpec | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None


@attrs.define(slots=True)
class TaskRecord:
    """Progress of one step (ENG-21); optional fields are omitted when unset."""

    name: str
    node_type: str
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0
    input: Any = None
    output: Any = None
    error: str | None = None
    started: str | None = None
    finished: str | None = None
    depends_on: tuple[str, ...] = ()
    """The step's dependencies, so a reader can draw the graph without the flow file."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": str(self.status),
            "attempt": self.attempt,
            "node_type": self.node_type,
        }
        if self.input is not None:
            data["input"] = self.input
        if self.output is not None:
            data["output"] = self.output
        if self.error is not None:
            data["error"] = self.error
        if self.started is not None:
            data["started"] = self.started
        if self.finished is not None:
            data["finished"] = self.finished
        if self.depends_on:
            data["depends_on"] = list(self.depends_on)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskRecord:
        return cls(
            name=data["name"],
            node_type=data.get("node_type", ""),
            status=TaskStatus(data.get("status", "pending")),
            attempt=int(data.get("attempt", 0)),
            input=data.get("input"),
            output=data.get("output"),
            error=data.get("error"),
            started=data.get("started"),
            finished=data.get("finished"),
            depends_on=tuple(data.get("depends_on") or ()),
        )

    def copy(self) -> TaskRecord:
        # a direct constructor call: attrs.evolve costs ~10x more on the per-step path
        return TaskRecord(self.name, self.node_type, self.status, self.attempt, self.input,
                          self.output, self.error, self.started, self.finished,
                          self.depends_on)


@attrs.define(slots=True)
class RunRecord:
    """A run as stored (ST-10)."""

    id: str
    flow_name: str
    status: RunStatus = RunStatus.PENDING
    started: str | None = None
    finished: str | None = None
    ctx: dict[str, Any] = attrs.field(factory=dict)
    tasks: dict[str, TaskRecord] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_name": self.flow_name,
            "status": str(self.status),
            "started": self.started,
            "finished": self.finished,
            "ctx": self.ctx,
            "tasks": {name: task.to_json() for name, task in self.tasks.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        tasks = data.get("tasks") or {}
        return cls(
            id=data["id"],
            flow_name=data.get("flow_name", ""),
            status=RunStatus(data.get("status", "pending")),
            started=data.get("started"),
            finished=data.get("finished"),
            ctx=dict(data.get("ctx") or {}),
            tasks={name: TaskRecord.from_json(t) for name, t in tasks.items()},
        )

    def summary(self) -> RunSummary:
        return RunSummary(
            id=self.id,
            flow_name=self.flow_name,
            status=self.status,
            started=self.started,
            finished=self.finished,
            task_count=len(self.tasks),
        )


@attrs.frozen
class RunSummary:
    """The listing view of a run (ST-11); field order is the digest order (ST-30)."""

    id: str
    flow_name: str
    status: RunStatus
    started: str | None
    finished: str | None
    task_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_name": self.flow_name,
            "status": str(self.status),
            "started": self.started,
            "finished": self.finished,
            "task_count": self.task_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        return cls(
            id=data["id"],
            flow_name=data.get("flow_name", ""),
            status=RunStatus(data.get("status", "pending")),
            started=data.get("started"),
            finished=data.get("finished"),
            task_count=int(data.get("task_count", 0)),
        )


@attrs.frozen
class RunPage:
    """One page of run summaries (ST-21)."""

    runs: tuple[RunSummary, ...]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


class EventType(enum.StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    RUN_RESUMED = "run_resumed"
    CONTEXT_UPDATED = "context_updated"
    TASK_STARTED = "task_started"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_FAILED = "task_failed"
    TASK_SKIPPED = "task_skipped"
    TASK_CANCELLED = "task_cancelled"
    TASK_RETRYING = "task_retrying"


@attrs.frozen
class Event:
    """A run/step lifecycle event (ENG-160); never carries node input or output."""

    id: str
    run_id: str
    type: EventType
    timestamp: str
    flow_name: str | None = None
    run_status: str | None = None
    step: str | None = None
    node_type: str | None = None
    task_status: str | None = None
    attempt: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    reason: str | None = None
    parent_run_id: str | None = None
    """Set on the events of a child run (subworkflow, parallel_subworkflows): the parent's run."""
    parent_step: str | None = None
    """With ``parent_run_id``: the parent step that started the child run."""

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, "run_id": self.run_id, "type": str(self.type),
                "timestamp": self.timestamp}
        for key in ("flow_name", "run_status", "step", "node_type", "task_status",
                    "attempt", "duration_ms", "error", "reason"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class ProcessEventType(enum.StrEnum):
    """What happens to a process's work outside the steps of one run (observer methods)."""

    ADMISSION_DECIDED = "admission_decided"
    """A run or flow load was admitted or refused: ``resource``, ``outcome``."""
    ADMISSION_RELEASED = "admission_released"
    """An admitted ``resource`` finished and gave its slot back."""
    SCHEDULE_DECIDED = "schedule_decided"
    """The final decision for one due schedule occurrence: ``schedule``, ``outcome``."""
    LEASE_CHANGED = "lease_changed"
    """A run-owner lease was renewed or lost, or reconciliation failed: ``outcome``."""
    STORE_FAILED = "store_failed"
    """A store operation raised: ``store``, ``operation``, ``outcome`` (the error kind)."""


@attrs.frozen
class ProcessEvent:
    """One process-level event; ``outcome`` always comes from a fixed vocabulary.

    Vocabularies: admission ``accepted``/``at_capacity``/``draining``;
    schedule ``fired``/``not_claimed``/``late``/``at_capacity``/``failed``/``claim_failed``;
    lease ``renewed``/``lost``/``error``/``reconciliation_failed``; store failures
    ``invalid_input``/``not_found``/``conflict``/``corruption``/``backend``.
    """

    type: ProcessEventType
    outcome: str
    timestamp: str
    resource: str | None = None
    run_id: str | None = None
    schedule: str | None = None
    store: str | None = None
    operation: str | None = None
    detail: str | None = None
