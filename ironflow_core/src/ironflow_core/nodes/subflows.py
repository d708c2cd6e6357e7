"""Composition nodes that run child flows (semantics.md#control-nodes, SUB-*, SWF-*, PS-*, RS-*).

A child flow is loaded from a file next to the parent (``_flow_dir``) and run
by ``services.run_child``: in memory, without events, with its own task limit
and the parent's execution overlay. Structured children run inside the step,
so a step timeout or a run cancellation cancels them with it. Detached
``subworkflow{wait=false}`` children run as trio system tasks instead: they
outlive the step and the parent run (upstream spawns them on the runtime), are
capped process-wide and end when the process's trio run ends (SWF-4).

Every config field is ``Any``: upstream checks parameters when the step runs,
with its own wording, so a wrong parameter fails only its step.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ironflow_core._compat.rusterrors import os_error_text
from ironflow_core.configs import lenient, run_required
from ironflow_core.errors import IronflowError, NodeError
from ironflow_core.model import RunStatus
from ironflow_core.params import (
    ABSENT,
    BoolParam,
    CountParam,
    JsonValue,
    NumberParam,
    lenient_bool,
    strict_float,
    strict_u64,
)
from ironflow_core.settings import MAX_REPEAT_ITERATIONS, lenient_positive_int
from ironflow_core.specs import NodeSpec

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext
    from ironflow_core.model import FlowDefinition, RunRecord
    from ironflow_core.services import ChildRunner

log = logging.getLogger("ironflow.node")



# -- child-run conventions (SUB-1..3) -------------------------------------------------


def resolve_flow_path(
    node: str, flow_file: str, flow_dir: Any, roots: tuple[str, ...] | None = None
) -> str:
    """SUB-1: relative paths join ``_flow_dir``; the result must exist (canonicalised).

    With ``roots`` (the run's ``lineage.flow_roots``) the file must be a
    ``.lua`` file inside one of them, both as written and once every symlink
    is resolved; a name outside is refused before the file system is asked.
    The load checks the opened descriptor again (``read_flow_source(within=)``).
    """
    if os.path.isabs(flow_file):
        joined = flow_file
    else:
        if not isinstance(flow_dir, str):
            raise NodeError(
                f"{node}: cannot resolve relative path '{flow_file}' — _flow_dir not set"
            )
        joined = os.path.join(flow_dir, flow_file)
    if roots is not None:
        _confine(node, flow_file, os.path.normpath(os.path.abspath(joined)), roots)
    try:
        real = os.path.realpath(joined, strict=True)
    except OSError as exc:
        raise NodeError(f"{node}: cannot find '{joined}': {os_error_text(exc)}") from None
    if roots is not None:
        _confine(node, flow_file, real, roots)
    return real


def _confine(node: str, flow_file: str, path: str, roots: tuple[str, ...]) -> None:
    from ironflow_core.loading import inside

    if not path.endswith(".lua"):
        raise NodeError(f"{node}: flow '{flow_file}' is not a .lua file")
    if inside(path, roots):
        return
    if not roots:
        raise NodeError(
            f"{node}: flow '{flow_file}' cannot be loaded: this run has no flows directory "
            "(set FLOWS_DIR, or --flows-dir for the server)"
        )
    raise NodeError(
        f"{node}: flow '{flow_file}' is outside the flows directory (allowed: the flow's own "
        "directory and FLOWS_DIR)"
    )


_SNIPPET = re.compile(r" near '.*'$", re.DOTALL)
"""Lua syntax errors end with the offending token, which quotes the file's text."""


async def load_child(ctx: NodeContext, path: str) -> FlowDefinition:
    """Load a child flow file in a worker thread (Lua evaluation may take a while).

    A load error becomes a ``NodeError`` that never quotes the file's text.
    """
    from ironflow_core.loading import load_flow_in_thread

    services = ctx.services
    try:
        if services.subflows is not None:  # recorded with the run, so a resume needs no file
            return await services.subflows.load(
                path, registry=services.registry, env=services.env,
                cancel=(services.cancelled,), within=flow_roots_of(ctx))
        return await load_flow_in_thread(path, registry=services.registry, env=services.env,
                                         cancel=(services.cancelled,), within=flow_roots_of(ctx))
    except IronflowError as exc:
        raise NodeError(_SNIPPET.sub(" near <source text not shown>", str(exc))) from None


def flow_roots_of(ctx: NodeContext) -> tuple[str, ...] | None:
    """The directories this run's child flows must be in (None: a bare test harness)."""
    lineage = ctx.services.lineage
    return None if lineage is None else lineage.flow_roots


def child_runner(ctx: NodeContext) -> ChildRunner:
    """The engine's way to run a child flow for this step's run."""
    runner = ctx.services.run_child
    if runner is None:  # pragma: no cover - the engine always wires it
        raise NodeError(f"{ctx.node_type}: this run cannot start child runs")
    return runner


def without_overlay(ctx: NodeContext, context: dict[str, Any]) -> dict[str, Any]:
    """SUB-2: overlay keys never travel as ordinary child keys (the overlay itself does)."""
    overlay = ctx.services.overlay
    if overlay:
        for key in overlay:
            context.pop(key, None)
    return context


def public_keys(context: Mapping[str, Any]) -> dict[str, Any]:
    """ENG-100: ``_`` keys stay private to the child."""
    return {k: v for k, v in context.items() if not k.startswith("_")}


def status_text(record: RunRecord) -> str:
    """A child run's status as the step's messages print it."""
    return str(record.status)


def _error_policy(node: str, value: Any, default: bool) -> bool:
    """``on_error``: True = fail fast, False = ignore; anything else is an error."""
    if value is None or not isinstance(value, str):
        return default
    if value == "fail_fast":
        return True
    if value == "ignore":
        return False
    raise NodeError(f"{node}: invalid on_error '{value}'; expected 'fail_fast' or 'ignore'")


# -- subworkflow -----------------------------------------------------------------------


@attrs.frozen
class SubworkflowConfig:
    """``subworkflow``'s parameters (SWF-1..5)."""

    flow: str | None = run_required(lenient=True)
    wait: BoolParam = None
    input: JsonValue = None
    """An object mapping child keys to parent keys or values."""
    output_key: str | None = lenient()
    on_error: JsonValue = None
    """``fail`` or ``continue``; checked when the step runs."""


async def subworkflow(ctx: NodeContext, config: SubworkflowConfig) -> dict[str, Any]:
    """The ``subworkflow`` node: load and execute another .lua flow as a reusable module."""
    node = "subworkflow"
    if config.flow is None:
        raise NodeError("subworkflow requires 'flow' parameter")
    wait = lenient_bool(ctx, config.wait, True)
    output_key = config.output_key
    fail_fast = _error_policy(node, config.on_error, output_key is None)  # SWF-2
    path = resolve_flow_path(node, config.flow, ctx.get("_flow_dir"), flow_roots_of(ctx))
    child_ctx = _subworkflow_input(ctx, config.input)
    child_ctx["_flow_dir"] = os.path.dirname(path)
    without_overlay(ctx, child_ctx)
    try:
        flow = await load_child(ctx, path)  # SWF-5: a load error fails the step regardless
    except IronflowError as exc:
        raise NodeError(str(exc)) from None
    runner = child_runner(ctx)
    if not wait:
        start_detached(ctx, runner, flow, child_ctx)
        return {"subworkflow_name": flow.name, "subworkflow_async": True}
    try:
        record = await runner(flow, child_ctx, parent_step=ctx.step_name)
    except IronflowError as exc:  # the child could not be planned
        raise NodeError(str(exc)) from None
    succeeded = record.status is RunStatus.SUCCESS
    error = f"Subworkflow '{flow.name}' finished with status: {status_text(record)}"
    if not succeeded:
        if fail_fast:
            raise NodeError(error)
        log.warning("subworkflow '%s' failed but on_error=ignore; continuing with its "
                    "partial context (%s)", flow.name, status_text(record))
    output: dict[str, Any] = {}
    if output_key is not None:
        output[output_key] = public_keys(record.ctx)
        output[f"{output_key}_success"] = succeeded
        if not succeeded:
            output[f"{output_key}_error"] = error
    else:
        output.update(public_keys(record.ctx))  # SWF-3: inherited keys come back too
    output["subworkflow_name"] = flow.name
    output["subworkflow_success"] = succeeded
    return output


def _subworkflow_input(ctx: NodeContext, mapping: Any) -> dict[str, Any]:
    """SWF-1: mapped keys only (an absent parent key is omitted), else a full copy."""
    if not isinstance(mapping, dict):
        return ctx.to_dict()
    child: dict[str, Any] = {}
    for child_key, source in mapping.items():
        if isinstance(source, str):
            if source in ctx:
                child[child_key] = ctx[source]
        else:
            child[child_key] = source
    return child


# -- detached children (SWF-4) ---------------------------------------------------------

DEFAULT_MAX_DETACHED = 64


class _DetachedSlots:
    """The process-wide count of running detached children."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    def acquire(self, capacity: int) -> bool:
        with self._lock:
            if self.running >= capacity:
                return False
            self.running += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.running -= 1


detached_slots = _DetachedSlots()


def detached_capacity(env: Mapping[str, str]) -> int:
    """``IRONFLOW_MAX_DETACHED_SUBWORKFLOWS``: how many detached children may run at once."""
    return lenient_positive_int(env, "IRONFLOW_MAX_DETACHED_SUBWORKFLOWS", DEFAULT_MAX_DETACHED)


def start_detached(
    ctx: NodeContext, runner: ChildRunner, flow: FlowDefinition, context: dict[str, Any]
) -> None:
    """Start a child that neither the step nor the parent run waits for or cancels.

    A trio system task outlives every nursery of the run; it is cancelled only
    when the process's trio run ends (a CLI exiting cuts it short, as upstream).
    """
    capacity = detached_capacity(ctx.services.env)
    if not detached_slots.acquire(capacity):
        raise NodeError(
            f"subworkflow: detached fan-out limit reached ({capacity}); refusing to spawn. "
            "Raise IRONFLOW_MAX_DETACHED_SUBWORKFLOWS or wait for in-flight flows to complete."
        )
    try:
        trio.lowlevel.spawn_system_task(
            _run_detached, runner, flow, context, name=f"ironflow detached {flow.name}"
        )
    except BaseException:
        detached_slots.release()
        raise


async def _run_detached(runner: ChildRunner, flow: FlowDefinition, context: dict[str, Any]) -> None:
    try:
        record = await runner(flow, context)
        if record.status is not RunStatus.SUCCESS:
            log.warning("background subworkflow '%s' finished with status: %s",
                        flow.name, record.status)
    except Exception as exc:  # a system task must never raise: errors are only logged
        log.error("background subworkflow '%s' failed: %s", flow.name, exc)
    finally:
        detached_slots.release()


# -- parallel_subworkflows -------------------------------------------------------------

MAX_PARALLEL_CAP = 1024


@attrs.frozen
class ParallelSubworkflowsConfig:
    """``parallel_subworkflows``'s parameters (PS-1..6).

    ``flows``, ``flow`` and ``source_key`` stay raw JSON: which of them is
    present, and with what type, picks the error the step fails with.
    """

    flows: JsonValue = None
    flow: JsonValue = None
    source_key: JsonValue = None
    input: JsonValue = None
    """Dynamic mode: an object merged into every child's input."""
    item_key: str = lenient("item")
    index_key: str = lenient("index")
    child_output_key: str | None = lenient()
    output_key: str = lenient("parallel_results")
    on_error: JsonValue = None
    """``fail`` or ``continue``; checked when the step runs."""
    max_concurrent: CountParam = None


@attrs.frozen
class _Child:
    index: int
    flow_file: str
    path: str
    context: dict[str, Any]
    output_key: str | None


async def parallel_subworkflows(
    ctx: NodeContext, config: ParallelSubworkflowsConfig
) -> dict[str, Any]:
    """The ``parallel_subworkflows`` node: execute multiple subworkflows concurrently and collect their results."""
    node = "parallel_subworkflows"
    entries = _flow_entries(ctx, config)
    fail_fast = _error_policy(node, config.on_error, True)
    output_key = config.output_key
    max_concurrent = strict_u64(ctx, "max_concurrent", config.max_concurrent, os.cpu_count() or 1)
    if max_concurrent == 0:
        raise NodeError("parallel_subworkflows: 'max_concurrent' must be greater than 0")
    max_concurrent = min(max_concurrent, MAX_PARALLEL_CAP)
    flow_dir = ctx.get("_flow_dir")
    children = []
    for index, entry in enumerate(entries):  # PS-4: every path resolves before any child runs
        flow_file = entry.get("flow") if isinstance(entry, dict) else None
        if not isinstance(flow_file, str):
            raise NodeError(
                f"parallel_subworkflows: each flow entry requires a 'flow' field (index {index})"
            )
        mapping = entry.get("input")
        context = _parallel_input(ctx, mapping) if isinstance(mapping, dict) else ctx.to_dict()
        path = resolve_flow_path(node, flow_file, flow_dir, flow_roots_of(ctx))
        context["_flow_dir"] = os.path.dirname(path)
        without_overlay(ctx, context)
        entry_key = entry.get("output_key")
        children.append(_Child(index, flow_file, path, context,
                               entry_key if isinstance(entry_key, str) else None))

    results: list[Any] = [None] * len(children)
    errors: list[str | None] = [None] * len(children)
    limiter = trio.CapacityLimiter(max_concurrent)

    async def run_one(child: _Child) -> None:
        async with limiter:
            results[child.index], errors[child.index] = await _run_parallel_child(ctx, child)

    async with trio.open_nursery() as nursery:
        for child in children:
            nursery.start_soon(run_one, child)

    failures = [e for e in errors if e is not None]
    if failures and fail_fast:  # PS-6; every child has finished by now (PS-4)
        raise NodeError(
            f"parallel_subworkflows: {len(failures)} flow(s) failed:\n" + "\n".join(failures)
        )
    return {
        output_key: results,
        f"{output_key}_count": len(entries),
        f"{output_key}_errors": len(failures),
        f"{output_key}_all_succeeded": not failures,
    }


def _flow_entries(ctx: NodeContext, config: ParallelSubworkflowsConfig) -> list[Any]:
    """PS-1/PS-2: the static ``flows`` list, or one entry per item in dynamic mode."""
    if config.flows is not None:
        if not isinstance(config.flows, list):
            raise NodeError("parallel_subworkflows requires 'flows' array parameter")
        if not config.flows:
            raise NodeError("parallel_subworkflows: 'flows' array must not be empty")
        return config.flows
    if config.flow is None and config.source_key is None:
        raise NodeError(
            "parallel_subworkflows requires either 'flows' array or dynamic 'flow' + 'source_key'"
        )
    if not isinstance(config.flow, str):
        raise NodeError(
            "parallel_subworkflows dynamic mode requires 'flow' when 'flows' is not provided"
        )
    if not isinstance(config.source_key, str):
        raise NodeError(
            "parallel_subworkflows dynamic mode requires 'source_key' when 'flows' is not provided"
        )
    source = ctx.get(config.source_key)
    if not isinstance(source, list):
        raise NodeError(
            f"parallel_subworkflows: source_key '{config.source_key}' not found or not an array"
        )
    item_key, index_key = config.item_key, config.index_key
    base = config.input if isinstance(config.input, dict) else {}
    entries = []
    for position, item in enumerate(source, start=1):
        entry: dict[str, Any] = {"flow": config.flow}
        if config.child_output_key is not None:
            entry["output_key"] = config.child_output_key
        entry["input"] = {**base, item_key: item, index_key: position}
        entries.append(entry)
    return entries


def _parallel_input(ctx: NodeContext, mapping: dict[str, Any]) -> dict[str, Any]:
    """PS-3: a string names a parent key when one exists, else it is a literal string."""
    child: dict[str, Any] = {}
    for child_key, source in mapping.items():
        if isinstance(source, str) and source in ctx:
            child[child_key] = ctx[source]
        else:
            child[child_key] = source
    return child


async def _run_parallel_child(ctx: NodeContext, child: _Child) -> tuple[Any, str | None]:
    """PS-5: the result entry of one child and its error text, if it failed."""
    try:
        flow = await load_child(ctx, child.path)
        record = await child_runner(ctx)(flow, child.context, parent_step=ctx.step_name)
    except Exception as exc:  # load or plan failure: this child only
        message = f"Subworkflow at index {child.index} failed: {exc}"
        return {"success": False, "flow": child.flow_file, "error": message}, message
    succeeded = record.status is RunStatus.SUCCESS
    entry: dict[str, Any] = {"success": succeeded, "flow": flow.name}
    if child.output_key is not None:
        entry[child.output_key] = public_keys(record.ctx)
    else:
        entry.update(public_keys(record.ctx))  # may overwrite success/flow, as upstream
    if succeeded:
        return entry, None
    error = (f"Subworkflow '{flow.name}' (index {child.index}) finished with status: "
             f"{status_text(record)}")
    entry["error"] = error
    return entry, error


# -- repeat_subworkflow ----------------------------------------------------------------

DEFAULT_MAX_DELAY = 60.0
ABSOLUTE_MAX_DELAY = 3600.0


@attrs.frozen
class RepeatSubworkflowConfig:
    """``repeat_subworkflow``'s parameters (RS-1..3).

    The key names stay raw JSON: a present one must be a non-empty string,
    checked (with the rest, before anything runs) when the step runs.
    """

    flow: str | None = lenient()
    max_iterations: CountParam = None
    input: JsonValue = None
    output_key: JsonValue = None
    state_key: JsonValue = None
    next_state_key: JsonValue = None
    until_key: JsonValue = None
    iteration_key: JsonValue = None
    delay_seconds: NumberParam = None
    backoff_factor: NumberParam = None
    max_delay_seconds: NumberParam = None


@attrs.frozen
class _RepeatSettings:
    flow: str
    output_key: str
    state_key: str
    next_state_key: str
    until_key: str
    iteration_key: str
    max_iterations: int
    delay: float
    backoff: float
    max_delay: float


def _repeat_string(value: Any, name: str, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise NodeError(f"repeat_subworkflow: '{name}' must be a non-empty string")
    return value


def _repeat_settings(ctx: NodeContext, config: RepeatSubworkflowConfig) -> _RepeatSettings:
    """Validate every parameter before anything is resolved or run (RS-1)."""
    if not config.flow:
        raise NodeError("repeat_subworkflow requires non-empty 'flow'")
    output_key = _repeat_string(config.output_key, "output_key", "repeat_result")
    keys = {
        "state_key": _repeat_string(config.state_key, "state_key", "repeat_state"),
        "next_state_key": _repeat_string(config.next_state_key, "next_state_key",
                                         "repeat_next_state"),
        "until_key": _repeat_string(config.until_key, "until_key", "repeat_done"),
        "iteration_key": _repeat_string(config.iteration_key, "iteration_key",
                                        "repeat_iteration"),
    }
    names = list(keys)
    for i, left in enumerate(names):
        for right in names[i + 1:]:
            if keys[left] == keys[right]:
                raise NodeError(f"repeat_subworkflow: '{left}' and '{right}' must be distinct")
    if config.max_iterations is None:
        raise NodeError("repeat_subworkflow requires 'max_iterations'")
    max_iterations = strict_u64(ctx, "max_iterations", config.max_iterations, 0)
    cap: int = MAX_REPEAT_ITERATIONS.read(ctx.services.env)
    if max_iterations == 0:
        raise NodeError("repeat_subworkflow: 'max_iterations' must be greater than 0")
    if max_iterations > cap:
        raise NodeError(
            f"repeat_subworkflow: max_iterations {max_iterations} exceeds process limit of "
            f"{cap} (IRONFLOW_MAX_REPEAT_ITERATIONS)"
        )
    delay = strict_float(ctx, "delay_seconds", config.delay_seconds, 0.0)
    backoff = strict_float(ctx, "backoff_factor", config.backoff_factor, 1.0)
    max_delay = strict_float(ctx, "max_delay_seconds", config.max_delay_seconds,
                             max(delay, DEFAULT_MAX_DELAY))
    if delay < 0:
        raise NodeError("repeat_subworkflow: 'delay_seconds' must be non-negative")
    if backoff < 1:
        raise NodeError("repeat_subworkflow: 'backoff_factor' must be at least 1")
    if max_delay < delay:
        raise NodeError(
            "repeat_subworkflow: 'max_delay_seconds' must be at least 'delay_seconds'"
        )
    if max_delay > ABSOLUTE_MAX_DELAY:
        raise NodeError("repeat_subworkflow: 'max_delay_seconds' cannot exceed 3600")
    if config.input is not None:
        if not isinstance(config.input, dict):
            raise NodeError("repeat_subworkflow: 'input' must be an object")
        for reserved in (keys["next_state_key"], keys["until_key"], keys["iteration_key"]):
            if reserved in config.input:
                raise NodeError(
                    f"repeat_subworkflow: input cannot set reserved child key '{reserved}'"
                )
    return _RepeatSettings(
        flow=config.flow, output_key=output_key, max_iterations=max_iterations,
        delay=delay, backoff=backoff, max_delay=max_delay, **keys,
    )


async def repeat_subworkflow(
    ctx: NodeContext, config: RepeatSubworkflowConfig
) -> dict[str, Any]:
    """The ``repeat_subworkflow`` node: repeat a child workflow with explicit bounded state until it completes."""
    node = "repeat_subworkflow"
    settings = _repeat_settings(ctx, config)
    path = resolve_flow_path(node, settings.flow, ctx.get("_flow_dir"), flow_roots_of(ctx))
    static = _parallel_input(ctx, config.input) if config.input is not None else ctx.to_dict()
    for reserved in (settings.next_state_key, settings.until_key, settings.iteration_key):
        static.pop(reserved, None)  # RS-2
    without_overlay(ctx, static)
    state = static.pop(settings.state_key, ABSENT)
    static["_flow_dir"] = os.path.dirname(path)
    try:
        flow = await load_child(ctx, path)
    except IronflowError as exc:
        raise NodeError(str(exc)) from None
    runner = child_runner(ctx)
    delay = settings.delay
    for iteration in range(1, settings.max_iterations + 1):  # RS-3
        child_ctx = dict(static)
        if state is not ABSENT:
            child_ctx[settings.state_key] = state
        child_ctx[settings.iteration_key] = iteration
        try:
            record = await runner(flow, child_ctx, parent_step=ctx.step_name)
        except IronflowError as exc:
            raise NodeError(str(exc)) from None
        if record.status is not RunStatus.SUCCESS:
            raise NodeError(
                f"repeat_subworkflow: child '{flow.name}' iteration {iteration} finished with "
                f"status: {status_text(record)}"
            )
        done = record.ctx.get(settings.until_key)
        if not isinstance(done, bool):
            raise NodeError(
                f"repeat_subworkflow: child iteration {iteration} must return boolean "
                f"'{settings.until_key}'"
            )
        next_state = record.ctx.get(settings.next_state_key, ABSENT)
        if done:  # RS-4
            final = next_state if next_state is not ABSENT else state
            out = settings.output_key
            return {
                out: public_keys(record.ctx),
                f"{out}_state": None if final is ABSENT else final,
                f"{out}_iterations": iteration,
                f"{out}_completed": True,
                f"{out}_flow": record.flow_name,
            }
        if next_state is ABSENT:
            raise NodeError(
                f"repeat_subworkflow: child '{flow.name}' iteration {iteration} returned false "
                f"in '{settings.until_key}' but omitted '{settings.next_state_key}'"
            )
        state = next_state
        if iteration == settings.max_iterations:
            break
        if delay > 0:
            await trio.sleep(delay)
            delay = min(delay * settings.backoff, settings.max_delay)
    raise NodeError(
        f"repeat_subworkflow: child '{flow.name}' did not set '{settings.until_key}' to true "
        f"within max_iterations ({settings.max_iterations})"
    )


NODES: list[NodeSpec] = [
    NodeSpec(
        name="subworkflow",
        run=subworkflow,
        config=SubworkflowConfig,
        summary="Load and execute another .lua flow as a reusable module",
    ),
    NodeSpec(
        name="parallel_subworkflows",
        run=parallel_subworkflows,
        config=ParallelSubworkflowsConfig,
        summary="Execute multiple subworkflows concurrently and collect their results",
    ),
    NodeSpec(
        name="repeat_subworkflow",
        run=repeat_subworkflow,
        config=RepeatSubworkflowConfig,
        summary="Repeat a child workflow with explicit bounded state until it completes",
    ),
]
