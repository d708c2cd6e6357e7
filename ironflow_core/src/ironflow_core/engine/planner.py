"""Planning: the one validator of a flow, and its phases, before any state exists.

A loader hands over a raw ``FlowDefinition``; ``plan_flow`` alone checks it
(duplicate names, node types, configs, dependencies, limits, recovery
pairs, cycles) and structures each step's config into its node's config
class. Every problem is collected and reported together in one
``FlowValidationError`` (semantics.md#plan-validation). Phases come
from Kahn's algorithm on the *augmented* graph: dependency edges plus, for a
recovery pair S -> H, the edge S -> H and H -> D for every other dependent D
of S (ENG-1), so ordinary dependents of a source wait for its handler.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ironflow_core.configs import ConfigFieldError, structure_config
from ironflow_core.errors import FlowProblem, FlowValidationError
from ironflow_core.gc_pause import paused_gc
from ironflow_core.interpolate import config_template_errors, template_errors
from ironflow_core.model import FlowDefinition, StepDefinition
from ironflow_core.node_hints import unknown_node_message
from ironflow_core.registry import Registry

MAX_RETRIES = 100
MAX_WAIT_SECONDS = 31_536_000.0
"""One year: the longest backoff or timeout a step may ask for. Beyond it a
value is a typo that would wait forever (``:retries(2, 1e308)``); each
doubled backoff wait is also capped at it."""


_FIELD = re.compile(r" @ (\$\S*)$")


@attrs.frozen
class Plan:
    """A flow that passed every check, with its phases and structured configs.

    What ``prepare_run`` executes; build it with :func:`plan_flow`.
    """

    flow: FlowDefinition
    phases: tuple[tuple[int, ...], ...]
    """Step indices per phase, each phase in declaration order."""
    configs: tuple[Any, ...]
    """The structured node config of each step, by step index."""
    handler_source: Mapping[str, str]
    """Recovery handler name -> the source step it recovers."""


def _has_template_error(value: Any) -> bool:
    """Whether any string in ``value`` has a malformed placeholder (no paths built: fast)."""
    kind = type(value)
    if kind is str:
        return "${" in value and bool(template_errors(value))
    if kind is dict or kind is list:
        for item in value.values() if kind is dict else value:
            item_kind = type(item)
            if item_kind is str:  # most values: no call per string
                if "${" in item and template_errors(item):
                    return True
            elif item_kind is not int and item_kind is not bool and item_kind is not float \
                    and item is not None and _has_template_error(item):
                return True
        return False
    if isinstance(value, str):
        return bool(template_errors(value))
    if isinstance(value, Mapping):
        return any(_has_template_error(item) for item in value.values())
    if isinstance(value, tuple):
        return any(_has_template_error(item) for item in value)
    return False


def _interpolation_errors(step: StepDefinition) -> list[str]:
    """DSL-104: malformed ``${...}`` placeholders anywhere in the step config, with paths."""
    if not _has_template_error(step.config):
        return []
    return [
        f"Step '{step.name}' {path}: invalid context interpolation `{expr}`: {detail}"
        for path, expr, detail in config_template_errors(step.config)
    ]


def _step_errors(step: StepDefinition) -> list[str]:
    """Retry, backoff, timeout and route limits of one step (DSL-102, DSL-103)."""
    backoff = step.backoff_s
    if (step.max_retries <= MAX_RETRIES and type(backoff) is float
            and 0.0 <= backoff <= MAX_WAIT_SECONDS and step.timeout_s is None
            and step.route is None):
        return []  # the usual step: nothing to check further (NaN fails the range test)
    errors = []
    if step.max_retries > MAX_RETRIES:
        errors.append(f"Step '{step.name}' retry count is too large (max {MAX_RETRIES})")
    if not (isinstance(step.backoff_s, (int, float)) and math.isfinite(step.backoff_s)
            and step.backoff_s >= 0):
        errors.append(
            f"Step '{step.name}' retry backoff must be a finite, non-negative number of seconds"
        )
    elif step.backoff_s > MAX_WAIT_SECONDS:
        errors.append(
            f"Step '{step.name}' retry backoff {step.backoff_s:g}s is too long "
            f"(max {MAX_WAIT_SECONDS:.0f}s, one year)"
        )
    if step.timeout_s is not None and not (math.isfinite(step.timeout_s) and step.timeout_s > 0):
        errors.append(
            f"Step '{step.name}' timeout must be a finite number greater than zero"
        )
    elif step.timeout_s is not None and step.timeout_s > MAX_WAIT_SECONDS:
        errors.append(
            f"Step '{step.name}' timeout {step.timeout_s:g}s is too long "
            f"(max {MAX_WAIT_SECONDS:.0f}s, one year)"
        )
    if step.route is not None and not step.dependencies:
        errors.append(
            f"Step '{step.name}' declares a route but has no dependencies; a route is "
            "matched against the _route_<dependency> values its dependencies write"
        )
    return errors


def _recovery_errors(flow: FlowDefinition, names: Mapping[str, StepDefinition]) -> list[str]:
    """The rules of recovery pairs (DSL-105): one handler per source, no nesting."""
    errors = []
    owner: dict[str, str] = {}
    for step in flow.steps:
        handler = step.on_error
        if handler is None:
            continue
        if handler == step.name:
            errors.append(f"Step '{step.name}' cannot use itself as an on_error handler")
            continue
        target = names.get(handler)
        if target is None:
            errors.append(f"Step '{step.name}' on_error target '{handler}' does not exist")
            continue
        if handler in owner:
            errors.append(
                f"Recovery handler '{handler}' is assigned to multiple source steps: "
                f"'{owner[handler]}' and '{step.name}'"
            )
            continue
        owner[handler] = step.name
        if target.on_error is not None:
            errors.append(f"Recovery handler '{handler}' cannot declare on_error")
        if target.route is not None:
            errors.append(f"Recovery handler '{handler}' cannot declare a route")
        if step.name in target.dependencies:
            errors.append(
                f"Recovery handler '{handler}' cannot depend on its owning source step "
                f"'{step.name}'"
            )
    return errors


def _phases(flow: FlowDefinition, index: Mapping[str, int]) -> tuple[list[list[int]], list[int]]:
    """Kahn's algorithm in rounds; returns (phases, indices that could not be scheduled)."""
    count = len(flow.steps)
    successors: list[set[int]] = [set() for _ in range(count)]
    for i, step in enumerate(flow.steps):
        for dep in step.dependencies:
            j = index.get(dep)
            if j is not None:
                successors[j].add(i)
    for i, step in enumerate(flow.steps):
        if step.on_error is None or step.on_error not in index:
            continue
        h = index[step.on_error]
        if h == i:
            continue
        successors[i].add(h)
        for d, other in enumerate(flow.steps):
            if d != h and step.name in other.dependencies:
                successors[h].add(d)
    indegree = [0] * count
    for succ in successors:
        for j in succ:
            indegree[j] += 1
    phases: list[list[int]] = []
    ready = [i for i in range(count) if indegree[i] == 0]
    scheduled = 0
    while ready:
        phases.append(ready)
        scheduled += len(ready)
        nxt: list[int] = []
        for i in ready:
            for j in successors[i]:
                indegree[j] -= 1
                if indegree[j] == 0:
                    nxt.append(j)
        ready = sorted(nxt)
    stuck = [i for i in range(count) if indegree[i] > 0] if scheduled < count else []
    return phases, stuck


def _config_problems(step: StepDefinition, config_class: type | None) -> tuple[Any, list[FlowProblem]]:
    """The step's config structured into ``config_class``, or the problems that prevent it."""
    try:
        return structure_config(config_class, step.config), []
    except ConfigFieldError as exc:
        problems = []
        for problem in exc.problems:
            field = _FIELD.search(problem)
            problems.append(FlowProblem(
                f"Step '{step.name}' ({step.node_type}): {problem}", line=step.line,
                step=step.name, field=field.group(1) if field else None,
            ))
        return None, problems


def plan_flow(flow: FlowDefinition, registry: Registry) -> Plan:
    """Validate ``flow`` and compute its phases; ``FlowValidationError`` lists every problem."""
    with paused_gc():  # a structured config per step, no cycles: nothing to collect
        return _plan(flow, registry)


def _plan(flow: FlowDefinition, registry: Registry) -> Plan:
    problems: list[FlowProblem | str] = list(flow.problems)
    names: dict[str, StepDefinition] = {}
    index: dict[str, int] = {}
    for i, step in enumerate(flow.steps):
        if step.name in names:
            problems.append(FlowProblem(
                f"Duplicate step name '{step.name}' in flow '{flow.name}'. "
                "Each step must have a unique name.", line=step.line, step=step.name,
            ))
            continue
        names[step.name] = step
        index[step.name] = i

    for step in flow.steps:
        for dep in step.dependencies:
            if dep not in names:
                problems.append(f"Step '{step.name}' depends on '{dep}', which does not exist")
        problems.extend(_step_errors(step))
    problems.extend(_recovery_errors(flow, names))

    configs: list[Any] = []
    unknown: list[FlowProblem] = []
    for step in flow.steps:
        spec = registry.nodes.get(step.node_type)
        if spec is None:
            configs.append(None)
            unknown.append(FlowProblem(
                unknown_node_message(registry, step.node_type, path=flow.source_path,
                                     line=step.line, step=step.name),
                line=step.line, step=step.name, placed=True,
            ))
            continue
        problems.extend(_interpolation_errors(step))
        config, config_problems = _config_problems(step, spec.config)
        configs.append(config)
        problems.extend(config_problems)
    problems.extend(unknown)

    phases, stuck = _phases(flow, index)
    if stuck:
        problems.append(
            "Cycle detected in flow DAG involving steps: "
            + ", ".join(flow.steps[i].name for i in stuck)
        )
    if problems:
        raise FlowValidationError(problems, path=flow.source_path)
    handler_source = {s.on_error: s.name for s in flow.steps if s.on_error is not None}
    return Plan(
        flow=flow,
        phases=tuple(tuple(p) for p in phases),
        configs=tuple(configs),
        handler_source=handler_source,
    )
