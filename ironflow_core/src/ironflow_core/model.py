"""The records the engine plans with and persists.

``FlowDefinition``/``StepDefinition`` are what a loader produces; ``RunRecord`` and
``TaskRecord`` are what a state store keeps (semantics.md#task-records, #records); ``Event``
is what observers receive (semantics.md#events). Conversion to and from JSON lives here so
every store writes the same shapes.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs

from ironflow_core.errors import FlowProblem
from ironflow_core.jsonutil import TIMESTAMP, dumps


class RunStatus(enum.StrEnum):
    """Where a run stands; every status but ``pending``/``running`` is final (ST-10)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    STALLED = "stalled"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the run is over (its ``finished`` time is set once, ENG-13)."""
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class TaskStatus(enum.StrEnum):
    """Where one step stands (ENG-21)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the step is over (it will not run again in this phase)."""
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


RUN_STATUSES = tuple(s.value for s in RunStatus)


@attrs.frozen
class StepDefinition:
    """One step as declared in a flow (DSL-23 defaults), not yet checked (``plan_flow`` does)."""

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


StepSpec = StepDefinition
"""Deprecated name of :class:`StepDefinition` (plugins may build flows with it)."""


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
        """SHA-256 of the canonical JSON of the record: its stored name, shared by equal flows."""
        import hashlib

        text = dumps(unstructure_record(self))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The stored JSON, with its ``digest`` (see :func:`unstructure_record`)."""
        return {**unstructure_record(self), "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowSourceRecord:
        """Strictly read a stored flow; ``RecordError`` names each bad field."""
        return structure_record(data, cls)


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
        """The stored JSON (see :func:`unstructure_record`)."""
        return unstructure_record(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunOrigin:
        """Strictly read a stored origin; ``RecordError`` names each bad field."""
        return structure_record(data, cls)


@attrs.frozen
class LeaseInfo:
    """Who executes a run and until when (wall-clock microseconds)."""

    owner: str
    expires_micros: int


@attrs.frozen
class FlowDefinition:
    """A flow as a loader produced it: its steps in declaration order, before planning."""

    name: str
    steps: tuple[StepDefinition, ...]
    source_path: str | None = None
    warnings: tuple[Diagnostic, ...] = ()
    problems: tuple[FlowProblem, ...] = ()
    """Problems the loader found (non-string dependencies); the planner reports them."""
    deterministic: bool = attrs.field(default=False, eq=False)
    """Loading the same source again gives the same definition (no clock, random,
    UUID or output at load time), so a loaded copy may be reused (the API's cache)."""
    origin: FlowSourceRecord | None = attrs.field(default=None, eq=False, repr=False)
    """The source it was loaded from, so a run can store it (set by ``load_flow``)."""

    def step(self, name: str) -> StepDefinition | None:
        """The step named ``name``, or ``None``."""
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
        """The stored JSON: unset optional fields omitted (see :func:`unstructure_record`)."""
        return _unstructure_task(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskRecord:
        """Strictly read a stored task; ``RecordError`` names each bad field."""
        return structure_record(data, cls)

    def copy(self) -> TaskRecord:
        """A shallow copy (input and output shared).

        A direct constructor call: attrs.evolve costs ~10x more on the per-step path.
        """
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
        """The stored JSON (ST-10; see :func:`unstructure_record`)."""
        return _unstructure_run(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """Strictly read a stored run; ``RecordError`` names each bad field."""
        return structure_record(data, cls)

    def summary(self) -> RunSummary:
        """The listing view of this run (ST-11)."""
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
        """The listing JSON in ST-11 member order (see :func:`unstructure_record`)."""
        return unstructure_record(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        """Strictly read a stored summary; ``RecordError`` names each bad field."""
        return structure_record(data, cls)


@attrs.frozen
class RunPage:
    """One page of run summaries (ST-21)."""

    runs: tuple[RunSummary, ...]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        """Whether another page follows (it starts after ``next_cursor``)."""
        return self.next_cursor is not None


class EventType(enum.StrEnum):
    """What an ``Event`` reports (ENG-160)."""

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
        """The event as observers and the API's event stream send it (unset fields left out)."""
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


# ---------------------------------------------------------------- record codec
# One cattrs converter turns the stored records into JSON and back. Every
# store (and the API and CLI, through ``to_json``) writes the same shapes, and
# every store reads them with the same strict rules: a field of the wrong type
# is refused with its path (``tasks.a.status is not a task status``), never
# coerced or defaulted.


R = TypeVar("R")


class RecordError(ValueError):
    """A stored record that is not the shape a store writes; the message names each bad field."""


class _Problem(ValueError):
    """What a strict hook says about one field (the path is added by ``_problems``)."""


def _string(value: Any, _type: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Problem("is not a string")


def _optional_string(value: Any, _type: Any) -> str | None:
    return None if value is None else _string(value, _type)


def _unsigned(value: Any, _type: Any) -> int:
    if type(value) is int and value >= 0:
        return value
    raise _Problem("is not an unsigned integer")


def _attempt(value: Any, _type: Any) -> int:
    if type(value) is int and 0 <= value <= 0xFFFFFFFF:
        return value
    raise _Problem("is not an unsigned integer")


_TIMESTAMP_MATCH = TIMESTAMP.fullmatch


def _timestamp(value: Any, _type: Any) -> str | None:
    if value is None or (type(value) is str and _TIMESTAMP_MATCH(value) is not None):
        return value
    raise _Problem("is not an RFC 3339 timestamp")


def _object(value: Any, _type: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)  # shallow: the caller may keep the raw dict
    raise _Problem("is not an object")


def _strings_object(value: Any, _type: Any) -> dict[str, str]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise _Problem("is not an object of strings")


def _strings(value: Any, _type: Any) -> tuple[str, ...]:
    if type(value) is list and all(type(v) is str for v in value):
        return tuple(value)
    raise _Problem("is not a list of strings")


_RUN_STATUS = {s.value: s for s in RunStatus}
_TASK_STATUS = {s.value: s for s in TaskStatus}


def _run_status(value: Any, _type: Any) -> RunStatus:
    status = _RUN_STATUS.get(value) if isinstance(value, str) else None
    if status is None:
        raise _Problem("is not a run status")
    return status


def _task_status(value: Any, _type: Any) -> TaskStatus:
    status = _TASK_STATUS.get(value) if isinstance(value, str) else None
    if status is None:
        raise _Problem("is not a task status")
    return status


def _plain(status: enum.StrEnum) -> str:
    """A status as the plain string it stands for (fast for every JSON encoder)."""
    return status._value_


_STORED_MEMBERS: dict[type, tuple[str, ...]] = {
    TaskRecord: ("name", "status", "attempt", "node_type"),
    RunRecord: ("id", "flow_name", "status", "ctx", "tasks"),
    RunSummary: ("id", "flow_name", "status", "task_count"),
    FlowSourceRecord: ("source", "loader"),
    RunOrigin: ("context",),
}
"""Members a stored record always has, defaults in the class notwithstanding."""


def _make_converter(detailed: bool) -> cattrs.Converter:
    """The record converter; ``detailed`` collects every problem with its path (slower).

    Reading uses the plain one and, only when it refuses a record, the detailed
    one to say why: a well-formed record is read at full speed.
    """
    from cattrs.fns import identity
    from cattrs.gen import (
        make_dict_structure_fn,
        make_dict_unstructure_fn,
        make_mapping_structure_fn,
        override,
    )

    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    converter.register_structure_hook(str, _string)
    converter.register_structure_hook_func(lambda t: t == (str | None), _optional_string)
    converter.register_structure_hook(int, _unsigned)
    converter.register_structure_hook(RunStatus, _run_status)
    converter.register_structure_hook(TaskStatus, _task_status)
    aliases: tuple[tuple[Any, Callable[[Any, Any], Any]], ...] = (
        (dict[str, Any], _object), (dict[str, str], _strings_object), (tuple[str, ...], _strings),
    )
    for alias, hook in aliases:
        converter.register_structure_hook_func(_is(alias), hook)
    converter.register_unstructure_hook(RunStatus, _plain)
    converter.register_unstructure_hook(TaskStatus, _plain)
    task_dict: list[Any] = []

    def tasks(value: Any, type_: Any) -> dict[str, TaskRecord]:
        if not isinstance(value, dict):
            raise _Problem("is not an object")
        return task_dict[0](value, type_)  # type: ignore[no-any-return]

    timestamp = override(struct_hook=_timestamp)
    structure = {
        TaskRecord: make_dict_structure_fn(
            TaskRecord, converter, attempt=override(struct_hook=_attempt),
            started=timestamp, finished=timestamp,
        ),
        RunRecord: make_dict_structure_fn(
            RunRecord, converter, started=timestamp, finished=timestamp,
            tasks=override(struct_hook=tasks),
        ),
        RunSummary: make_dict_structure_fn(
            RunSummary, converter, started=timestamp, finished=timestamp,
        ),
        FlowSourceRecord: make_dict_structure_fn(FlowSourceRecord, converter),
        RunOrigin: make_dict_structure_fn(RunOrigin, converter),
    }
    for cls, fn in structure.items():
        converter.register_structure_hook(cls, _complete(fn, _STORED_MEMBERS[cls]))
    task_dict.append(make_mapping_structure_fn(dict[str, TaskRecord], converter))

    # JSON values and strings are written as they are (no copy on the per-step path).
    kept = override(omit_if_default=False, unstruct_hook=identity)
    same = override(unstruct_hook=identity)
    unstruct_task = make_dict_unstructure_fn(
        TaskRecord, converter, _cattrs_omit_if_default=True,
        name=kept, node_type=kept, status=override(omit_if_default=False), attempt=kept,
        input=same, output=same, error=same, started=same, finished=same,
        depends_on=override(unstruct_hook=list),
    )
    converter.register_unstructure_hook(TaskRecord, unstruct_task)
    converter.register_unstructure_hook(RunRecord, make_dict_unstructure_fn(
        RunRecord, converter, id=same, flow_name=same, started=same, finished=same, ctx=same,
        tasks=override(unstruct_hook=lambda tasks: {n: unstruct_task(t) for n, t in tasks.items()}),
    ))
    converter.register_unstructure_hook(RunSummary, make_dict_unstructure_fn(
        RunSummary, converter, id=same, flow_name=same, started=same, finished=same,
    ))
    converter.register_unstructure_hook(FlowSourceRecord, make_dict_unstructure_fn(
        FlowSourceRecord, converter, source=same, loader=same, file_name=same,
    ))
    converter.register_unstructure_hook(RunOrigin, make_dict_unstructure_fn(
        RunOrigin, converter, flow=same, flow_name=same, context=same, subflows=same,
    ))
    return converter


def _is(alias: Any) -> Callable[[Any], bool]:
    """A predicate for one generic alias (cattrs dispatches those by predicate)."""
    return lambda type_: type_ == alias


def _complete(fn: Any, members: tuple[str, ...]) -> Any:
    """Structure with every stored member present: a missing one reads as ``null``, so its
    hook reports it the way it reports a wrong value."""

    required = frozenset(members)

    def structure(value: Any, type_: Any) -> Any:
        if not isinstance(value, dict):
            raise _Problem("is not an object")
        if not required <= value.keys():
            value = {**dict.fromkeys(required), **value}
        return fn(value, type_)

    return structure


RECORDS = _make_converter(detailed=False)
"""The record converter: strict structure hooks, unset optional task fields omitted."""
_STRUCTURE = {cls: RECORDS.get_structure_hook(cls) for cls in _STORED_MEMBERS}

_unstructure_task = RECORDS.get_unstructure_hook(TaskRecord)
_unstructure_run = RECORDS.get_unstructure_hook(RunRecord)


@functools.cache
def _explaining_converter() -> cattrs.Converter:
    """Built on the first refusal only: start-up does not pay for it."""
    return _make_converter(detailed=True)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _problems(exc: BaseException, path: str) -> list[str]:
    """Flatten cattrs' validation tree into ``<path> <problem>`` lines."""
    from cattrs.errors import AttributeValidationNote, IterableValidationNote

    if isinstance(exc, cattrs.BaseValidationError):
        found: list[str] = []
        for sub in exc.exceptions:
            child = path
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, AttributeValidationNote):
                    child = _join(path, note.name)
                elif isinstance(note, IterableValidationNote):
                    child = _join(path, str(note.index))
            found.extend(_problems(sub, child))
        return found
    if isinstance(exc, _Problem):
        return [f"{path or 'the record'} {exc}"]
    return [f"{path or 'the record'}: {exc}"]


def structure_record(data: Any, cls: type[R], where: str = "") -> R:
    """Read a stored record strictly; ``RecordError`` lists every bad field by its path.

    ``where`` prefixes the paths (``tasks.a`` gives ``tasks.a.status is not a task status``).
    """
    try:
        return _STRUCTURE[cls](data, cls)  # type: ignore[no-any-return]
    except Exception:  # a refusal (or an odd value a hook did not expect): say why
        pass
    try:
        _explaining_converter().structure(data, cls)
    except (cattrs.BaseValidationError, _Problem) as exc:
        raise RecordError("; ".join(_problems(exc, where))) from None
    raise AssertionError("the record converters disagree")  # pragma: no cover


def unstructure_record(record: Any) -> dict[str, Any]:
    """A record as the JSON every store writes (task fields that are unset are left out)."""
    return RECORDS.unstructure(record)  # type: ignore[no-any-return]


def task_json_fits(task: Any) -> bool:
    """Whether ``task`` is certainly a well-formed stored task: the per-step check.

    The same rules as the strict converter's ``TaskRecord`` hooks, without
    building a record: about five times faster. ``False`` only means "ask the
    converter", which then refuses with every bad field by its path (or, for
    an odd value this check does not follow, accepts).
    """
    try:
        attempt = task["attempt"]
        error = task.get("error")
        started = task.get("started")
        finished = task.get("finished")
        if not (
            isinstance(task["name"], str)
            and isinstance(task["node_type"], str)
            and isinstance(task["status"], str)
            and task["status"] in _TASK_STATUS
            and type(attempt) is int
            and 0 <= attempt <= 0xFFFFFFFF
            and (error is None or isinstance(error, str))
            and (started is None or (type(started) is str and _TIMESTAMP_MATCH(started)))
            and (finished is None or (type(finished) is str and _TIMESTAMP_MATCH(finished)))
        ):
            return False
    except (KeyError, TypeError, AttributeError):  # not a dict, or a member is missing
        return False
    if "depends_on" not in task:
        return True
    depends_on = task["depends_on"]
    return type(depends_on) is list and all(type(name) is str for name in depends_on)


def check_task_json(task: Any, where: str) -> dict[str, Any]:
    """Check a task's stored JSON in place (journal replay keeps raw dicts); returns it."""
    if type(task) is not dict or not task_json_fits(task):
        structure_record(task, TaskRecord, where)
    return task  # type: ignore[no-any-return]


def check_run_json(raw: dict[str, Any], where: str = "") -> RunRecord:
    """Check a run's stored JSON; absent ``started``/``finished`` become ``null`` in ``raw``."""
    record = structure_record(raw, RunRecord, where)
    raw.setdefault("started", None)
    raw.setdefault("finished", None)
    return record
