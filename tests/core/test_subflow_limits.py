"""Subworkflow limits (issue 13): depth, child-run count, concurrency, confinement.

Real flow files in ``tmp_path`` run by the real loader and engine; the
``probe`` node of ``test_nodes_subflows`` measures how many child subtrees
run at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from ironflow_core.engine.lineage import Lineage, SubworkflowLimitError
from ironflow_core.settings import SubworkflowLimits
from ironflow_core.testing import arun_flow
from tests.core.test_nodes_subflows import PROBES, REGISTRY, RUNNING, error_of, write_flow


@pytest.fixture(autouse=True)
def _reset():
    PROBES.clear()
    RUNNING.update(now=0, peak=0)


async def test_nested_children_share_a_slot_and_never_deadlock(tmp_path: Path):
    """One subtree at a time (limit 1), yet every middle flow's own children run."""
    write_flow(tmp_path, "leaf.lua", 'flow:step("s", nodes.probe({ sleep = 0.01 }))')
    write_flow(tmp_path, "middle.lua", """
        flow:step("busy", nodes.probe({ sleep = 0.05 }))
        flow:step("fan", nodes.parallel_subworkflows({
          flows = { { flow = "leaf.lua" }, { flow = "leaf.lua" } } })):depends_on("busy")
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
          flows = { { flow = "middle.lua" }, { flow = "middle.lua" }, { flow = "middle.lua" } },
          max_concurrent = 3 }))
    """)
    with trio.fail_after(30):
        result = await arun_flow(parent, registry=REGISTRY,
                                 env={"IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS": "1"})
    assert result.status == "success", result.tasks
    assert len(PROBES) == 3 + 6
    assert RUNNING["peak"] <= 2  # a middle's "busy" never overlaps another subtree's probes


async def test_depth_and_run_count_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    recursive = write_flow(tmp_path, "self.lua",
                           'flow:step("again", nodes.subworkflow({ flow = "self.lua" }))')
    result = await arun_flow(recursive, registry=REGISTRY,
                             env={"IRONFLOW_MAX_SUBWORKFLOW_DEPTH": "3"})
    assert error_of(result, "again") == "Subworkflow 'self' finished with status: failed"
    errors = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
    assert len(errors) == 4  # the root and three levels of children
    assert errors[0].endswith(
        "subworkflow nesting depth limit of 3 reached (IRONFLOW_MAX_SUBWORKFLOW_DEPTH)")
    loop = write_flow(tmp_path, "loop.lua", """
        flow:step("loop", nodes.repeat_subworkflow({ flow = "leaf.lua", max_iterations = 50 }))
    """)
    write_flow(tmp_path, "leaf.lua",
               'flow:step("s", function() return { repeat_done = false, '
               'repeat_next_state = 1 } end)')
    result = await arun_flow(loop, registry=REGISTRY, env={"IRONFLOW_MAX_SUBWORKFLOW_RUNS": "5"})
    assert "this run already started 5 subworkflow runs, its limit " \
           "(IRONFLOW_MAX_SUBWORKFLOW_RUNS)" in error_of(result, "loop")


async def test_a_step_cannot_widen_the_flow_roots(tmp_path: Path):
    outside = tmp_path / "outside"
    write_flow(outside, "ok.lua", 'flow:step("s", nodes.probe({}))')
    parent = write_flow(tmp_path / "flows", "parent.lua", f"""
        flow:step("move", function() return {{ _flow_dir = "{outside}" }} end)
        flow:step("load", nodes.subworkflow({{ flow = "ok.lua" }})):depends_on("move")
    """)
    result = await arun_flow(parent, registry=REGISTRY, env={})
    error = error_of(result, "load")
    assert "outside the flows directory" in error or "cannot find" in error
    assert PROBES == []


def test_lineage_counts_the_whole_family():
    limits = SubworkflowLimits(max_depth=2, max_runs=3)
    root = Lineage(("/flows",))
    child = root.admit_child(limits)
    grandchild = child.admit_child(limits)
    with pytest.raises(SubworkflowLimitError, match="depth limit of 2"):
        grandchild.admit_child(limits)
    root.admit_child(limits)
    with pytest.raises(SubworkflowLimitError, match="started 3 subworkflow runs"):
        child.admit_child(limits)


def test_limits_read_the_environment():
    assert SubworkflowLimits.from_env({}) == SubworkflowLimits(8, 1024, 16)
    assert SubworkflowLimits.from_env({
        "IRONFLOW_MAX_SUBWORKFLOW_DEPTH": "2", "IRONFLOW_MAX_SUBWORKFLOW_RUNS": "0",
        "IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS": "x"}) == SubworkflowLimits(2, 1024, 16)


def test_the_opened_file_is_checked_not_the_name(tmp_path: Path):
    """A directory swapped for a symlink after the path was resolved leads nowhere."""
    from ironflow_core.errors import FlowLoadError
    from ironflow_core.loading import read_flow_source

    root, outside = tmp_path / "flows", tmp_path / "outside"
    write_flow(outside, "child.lua", 'flow:step("s", nodes.probe({}))')
    write_flow(root / "lib", "child.lua", 'flow:step("s", nodes.probe({}))')
    roots = (str(root.resolve()),)
    assert read_flow_source(root / "lib" / "child.lua", {}, within=roots).text
    (root / "lib" / "child.lua").unlink()
    (root / "lib").rmdir()
    (root / "lib").symlink_to(outside)  # the swap
    with pytest.raises(FlowLoadError, match="left the flows directory"):
        read_flow_source(root / "lib" / "child.lua", {}, within=roots)
    (root / "last.lua").symlink_to(root / "lib" / "child.lua")
    with pytest.raises(FlowLoadError, match="cannot be read"):
        read_flow_source(root / "last.lua", {}, within=roots)
