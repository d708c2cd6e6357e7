"""Planning: validate a flow and compute its phases before any state exists.

Every error is collected and reported together (semantics.md#plan-validation). Phases come
from Kahn's algorithm on the *augmented* graph: dependency edges plus, for a
recovery pair S -> H, the edge S -> H and H -> D for every other dependent D
of S (ENG-1), so ordinary dependents of a source wait for its handler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ironflow_core.configs import ConfigFieldError, structure_config
from ironflow_core.errors import FlowValidationError
from ironflow_core.model import FlowDefinition, StepSpec
from ironflow_core.node_hints import unknown_node_message
from ironflow_core.registry import Registry

MAX_RETRIES = 100
MAX_WAIT_SECONDS = 31_536_000.0
"""One year: the longest backoff or timeout a step may ask for. Beyond it a
value is a typo that would wait forever (``:retries(2, 1e308)``); each
doubled backoff wait is also capped at it."""


@attrs.frozen
class Plan:
    flow: FlowDefinition
    phases: tuple[tuple[int, ...], ...]
    """Step indices per phase, each phase in declaration order."""
    configs: tuple[Any, ...]
    """The structured node config of each step, by step index."""
    handler_source: Mapping[str, str]
    """Recovery handler name -> the source step it recovers."""


def _interpolation_errors(step: StepSpec) -> list[str]:
    from ironflow_core.interpolate import config_template_errors

    return [
        f"Step '{step.name}' {path}: invalid context interpolation `{expr}`: {detail}"
        for path, expr, detail in config_template_errors(step.config)
    ]


def _step_errors(step: StepSpec) -> list[str]:
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


def _recovery_errors(flow: FlowDefinition, names: Mapping[str, StepSpec]) -> list[str]:
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


def plan_flow(flow: FlowDefinition, registry: Registry, *, for_validation: bool = False) -> Plan:
    """Validate ``flow`` and compute its phases; raise ``FlowValidationError`` on any error."""
    errors: list[str] = list(flow.problems)
    names: dict[str, StepSpec] = {}
    index: dict[str, int] = {}
    for i, step in enumerate(flow.steps):
        if step.name in names:
            errors.append(f"Duplicate step name '{step.name}'")
            continue
        names[step.name] = step
        index[step.name] = i

    for step in flow.steps:
        for dep in step.dependencies:
            if dep not in names:
                errors.append(f"Step '{step.name}' depends on '{dep}', which does not exist")
        errors.extend(_step_errors(step))
    errors.extend(_recovery_errors(flow, names))

    configs: list[Any] = []
    unknown: list[StepSpec] = []
    for step in flow.steps:
        spec = registry.nodes.get(step.node_type)
        if spec is None:
            unknown.append(step)
            configs.append(None)
            continue
        errors.extend(_interpolation_errors(step))
        if step.node_config is not None:
            configs.append(step.node_config)
            continue
        try:
            configs.append(structure_config(spec.config, step.config))
        except ConfigFieldError as exc:
            configs.append(None)
            errors.extend(
                f"Step '{step.name}' ({step.node_type}): {problem}" for problem in exc.problems
            )
    if unknown:
        if for_validation:
            errors.extend(
                unknown_node_message(registry, s.node_type, path=flow.source_path,
                                     line=s.line, step=s.name)
                for s in unknown
            )
        else:
            errors.append(
                "Flow contains steps with unknown node types: "
                + ", ".join(f"'{s.name}' ({s.node_type})" for s in unknown)
            )

    phases, stuck = _phases(flow, index)
    if stuck:
        errors.append(
            "Cycle detected in flow DAG involving steps: "
            + ", ".join(flow.steps[i].name for i in stuck)
        )
    if errors:
        raise FlowValidationError(errors)
    handler_source = {s.on_error: s.name for s in flow.steps if s.on_error is not None}
    return Plan(
        flow=flow,
        phases=tuple(tuple(p) for p in phases),
        configs=tuple(configs),
        handler_source=handler_source,
    )
