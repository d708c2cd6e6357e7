"""The planner is the only validator: a loader hands over a raw flow, ``plan_flow`` lists every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironflow_core.engine import plan_flow
from ironflow_core.errors import FlowProblem, FlowValidationError
from ironflow_core.loading import load_flow
from ironflow_core.registry import Registry, build_registry
from ironflow_core.specs import FlowSource


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry({}, entry_points=False)


BROKEN = """local flow = Flow.new("broken")
local a = flow:step("a", nodes.log({ message = "hi" }))
flow:step("a", nodes.log({ message = "again" }))
flow:step("b", nodes.nope({}))
flow:step("c", nodes.template_render({ template = 5, output_key = "k" }))
flow:step("d", nodes.log({})):depends_on(a)
return flow
"""


def test_the_loader_returns_the_flow_as_written(registry: Registry) -> None:
    definition = load_flow(FlowSource(BROKEN), registry=registry, env={})
    assert [(s.name, s.node_type, s.line) for s in definition.steps] == [
        ("a", "log", 2), ("a", "log", 3), ("b", "nope", 4), ("c", "template_render", 5),
        ("d", "log", 6)]
    (problem,) = definition.problems
    assert (problem.step, problem.line, problem.placed) == ("d", 6, True)


def test_every_problem_is_listed_with_its_place(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "broken.lua"
    path.write_text(BROKEN)
    definition = load_flow(path, registry=registry, env={})
    with pytest.raises(FlowValidationError) as info:
        plan_flow(definition, registry)
    error = info.value
    assert error.path == str(path)
    located = [(p.step, p.line, p.field) for p in error.problems]
    assert located == [("d", 6, None), ("a", 3, None), ("c", 5, "$.template"), ("b", 4, None)]
    assert error.errors[0].startswith(f"Step 'd' depends on the builder of step 'a' at {path}:6")
    assert error.errors[1] == ("Duplicate step name 'a' in flow 'broken'. "
                               "Each step must have a unique name.")
    assert error.errors[2].startswith("Step 'c' (template_render): ")
    assert error.errors[3].startswith(f"Unknown node type 'nope' at {path}:4 (step 'b')")
    assert str(error) == "Invalid flow: " + "; ".join(error.errors)
    assert (error.step, error.line) == ("d", 6)  # the first problem's place


def test_one_problem_reads_as_itself_with_its_place() -> None:
    placed = FlowValidationError([FlowProblem("Unknown node type 'x' at f.lua:2", line=2,
                                              step="s", placed=True)], path="f.lua")
    assert str(placed) == "Unknown node type 'x' at f.lua:2"
    located = FlowValidationError([FlowProblem("Step 's' (log): bad @ $.x", line=3, step="s",
                                               field="$.x")], path="f.lua")
    assert str(located) == "f.lua:3: Step 's' (log): bad @ $.x"
    assert (located.step, located.line, located.field) == ("s", 3, "$.x")
    inline = FlowValidationError([FlowProblem("Step 's' (log): bad", line=3)])
    assert str(inline) == "line 3: Step 's' (log): bad"
    flow_level = FlowValidationError(["Cycle detected in flow DAG involving steps: a, b"])
    assert str(flow_level) == "Invalid flow: Cycle detected in flow DAG involving steps: a, b"
    assert flow_level.errors == ["Cycle detected in flow DAG involving steps: a, b"]


def test_a_valid_flow_is_planned_with_its_structured_configs(registry: Registry) -> None:
    source = ('local f = Flow.new("ok")\n'
              'f:step("r", nodes.template_render({ template = "x", output_key = "k" }))\n'
              'f:step("l", nodes.log({ message = "m" })):depends_on("r")\nreturn f\n')
    plan = plan_flow(load_flow(FlowSource(source), registry=registry, env={}), registry)
    assert plan.phases == ((0,), (1,))
    assert type(plan.configs[0]).__name__ == "TemplateRenderConfig"
