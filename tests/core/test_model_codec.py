"""The one record codec (model.RECORDS) and the one strict JSON reader (jsonutil.loads_strict)."""

from __future__ import annotations

import ast
import pathlib

import pytest

from ironflow_core import storekit
from ironflow_core.jsonutil import JsonNestingError, loads_strict
from ironflow_core.model import (
    FlowSourceRecord,
    RecordError,
    RunOrigin,
    RunRecord,
    RunStatus,
    RunSummary,
    TaskRecord,
    TaskStatus,
    check_run_json,
    check_task_json,
    structure_record,
)

T0 = "2024-05-01T10:00:00.000001Z"


def a_task(**changes) -> TaskRecord:
    task = TaskRecord("a", "code", TaskStatus.SUCCESS, 2, {"in": 1}, {"out": [1, 2]}, None, T0,
                      None, ("b",))
    for key, value in changes.items():
        setattr(task, key, value)
    return task


def a_run() -> RunRecord:
    return RunRecord("run-1", "flow", RunStatus.RUNNING, T0, None, {"k": {"x": 1}},
                     {"a": a_task(), "b": TaskRecord("b", "noop")})


# ------------------------------------------------------------------- writing
def test_task_json_leaves_out_unset_fields_and_writes_plain_strings():
    data = a_task().to_json()
    assert data == {"name": "a", "node_type": "code", "status": "success", "attempt": 2,
                    "input": {"in": 1}, "output": {"out": [1, 2]}, "started": T0,
                    "depends_on": ["b"]}
    assert type(data["status"]) is str  # not the enum: every JSON encoder takes it fast
    assert TaskRecord("b", "noop").to_json() == {
        "name": "b", "node_type": "noop", "status": "pending", "attempt": 0}


def test_run_json_keeps_null_times_and_shares_no_task_dicts():
    run = a_run()
    data = run.to_json()
    assert list(data) == ["id", "flow_name", "status", "started", "finished", "ctx", "tasks"]
    assert data["finished"] is None and data["status"] == "running"
    assert data["tasks"]["b"] == {"name": "b", "node_type": "noop", "status": "pending",
                                  "attempt": 0}


def test_summary_json_is_in_st_11_member_order():
    data = a_run().summary().to_json()
    assert list(data) == ["id", "flow_name", "status", "started", "finished", "task_count"]
    assert data["task_count"] == 2 and type(data["status"]) is str


def test_every_record_round_trips():
    run = a_run()
    assert RunRecord.from_json(run.to_json()) == run
    assert RunSummary.from_json(run.summary().to_json()) == run.summary()
    flow = FlowSourceRecord("return {}", "lua", "f.lua")
    assert flow.to_json()["digest"] == flow.digest
    assert FlowSourceRecord.from_json(flow.to_json()) == flow
    origin = RunOrigin("d" * 64, "flow", {"x": 1}, {"sub.lua": "e" * 64}, 2)
    assert RunOrigin.from_json(origin.to_json()) == origin


# ------------------------------------------------------------------- reading
def refusal(data, cls=RunRecord, where="") -> str:
    with pytest.raises(RecordError) as info:
        structure_record(data, cls, where)
    assert isinstance(info.value, ValueError)  # what the stores catch
    return str(info.value)


def test_a_bad_record_is_refused_with_every_bad_field_by_path():
    data = a_run().to_json()
    data.update(flow_name=3, status="exploded", ctx=[])
    data["tasks"]["a"].update(attempt=True, started="yesterday", depends_on="b")
    data["tasks"]["c"] = 5
    assert refusal(data).split("; ") == [
        "flow_name is not a string",
        "status is not a run status",
        "ctx is not an object",
        "tasks.a.attempt is not an unsigned integer",
        "tasks.a.started is not an RFC 3339 timestamp",
        "tasks.a.depends_on is not a list of strings",
        "tasks.c is not an object",
    ]


def test_stored_members_must_be_present_even_where_the_class_has_a_default():
    assert refusal({"name": "a"}, TaskRecord, "tasks.a").split("; ") == [
        "tasks.a.node_type is not a string",
        "tasks.a.status is not a task status",
        "tasks.a.attempt is not an unsigned integer",
    ]
    assert refusal({"id": "run-1", "flow_name": "f", "status": "running"}).split("; ") == [
        "ctx is not an object", "tasks is not an object"]
    assert refusal([1]) == "the record is not an object"


@pytest.mark.parametrize("attempt", [-1, 2**32, 1.0, "1", None])
def test_attempt_is_an_unsigned_32_bit_integer(attempt):
    data = a_task().to_json() | {"attempt": attempt}
    assert refusal(data, TaskRecord, "task") == "task.attempt is not an unsigned integer"


def test_values_are_never_coerced_and_unknown_members_are_ignored():
    data = a_run().to_json() | {"extra": True}
    data["tasks"]["a"]["error"] = 5
    assert refusal(data) == "tasks.a.error is not a string"
    data["tasks"]["a"]["error"] = "boom"
    assert RunRecord.from_json(data).tasks["a"].error == "boom"
    assert refusal({"source": "x", "loader": "lua", "file_name": 1},
                   FlowSourceRecord) == "file_name is not a string"
    assert refusal({"flow": None, "flow_name": "f", "context": {}, "subflows": {"a": 1}},
                   RunOrigin) == "subflows is not an object of strings"


def test_raw_checks_leave_the_json_as_it_is_and_fill_absent_times():
    raw = {"id": "run-1", "flow_name": "f", "status": "pending", "ctx": {}, "tasks": {}}
    assert check_run_json(raw) == RunRecord("run-1", "f")
    assert raw["started"] is None and raw["finished"] is None
    task = a_task().to_json()
    assert check_task_json(task, "task") is task
    with pytest.raises(ValueError, match=r"^task 'a'\.status is not a task status$"):
        check_task_json(task | {"status": "done"}, "task 'a'")


# ------------------------------------------------------------- strict JSON
@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_loads_strict_refuses_non_finite_constants(text):
    with pytest.raises(ValueError, match="is not valid JSON"):
        loads_strict(text)


def test_loads_strict_refuses_numbers_out_of_range_and_deep_values():
    with pytest.raises(ValueError, match="1e999 is out of range"):
        loads_strict("[1e999]")
    with pytest.raises(ValueError, match="nests deeper than 3 levels"):
        loads_strict("[[[[1]]]]", max_depth=3)
    assert loads_strict("[[[[1]]]]", max_depth=None) == [[[[1]]]]
    with pytest.raises(JsonNestingError):
        loads_strict("[" * 100_000 + "]" * 100_000, max_depth=None)


def test_loads_strict_takes_the_callers_hooks():
    assert loads_strict("[2, 1.5]", parse_int=float, parse_float=str) == [2.0, "1.5"]
    pairs = loads_strict('{"a": 1, "a": 2}', max_depth=None, object_pairs_hook=list)
    assert pairs == [("a", 1), ("a", 2)]


# ---------------------------------------------------------------- storekit
def test_storekit_exports_what_it_lists():
    assert sorted(storekit.__all__) == sorted(set(storekit.__all__))
    for name in storekit.__all__:
        assert getattr(storekit, name) is not None, name


def test_the_redis_store_uses_only_the_public_core_api():
    package = pathlib.Path(__file__).parents[2] / "ironflow_store_redis/src/ironflow_store_redis"
    allowed = {"ironflow_core", "ironflow_core.storekit"}
    used = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ironflow_core"):
                used.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                used.update((path.name, a.name) for a in node.names
                            if a.name.startswith("ironflow_core"))
    assert used, "found no imports of the core at all"
    assert {(name, module) for name, module in used if module not in allowed} == set()


ODD_VALUES = [None, True, False, 0, -1, 2**32, 1.0, "", "x", "success", "done", T0, "yesterday",
              [], ["b"], ["b", 1], ("b",), {}, {"a": 1}]


def test_the_per_step_task_check_accepts_only_what_the_converter_accepts():
    from ironflow_core.model import task_json_fits

    good = [a_task().to_json(), TaskRecord("b", "noop").to_json(),
            a_task(error="boom", finished=T0, depends_on=()).to_json()]
    for task in good:
        assert task_json_fits(task)  # the fast path is the one taken
    members = ["name", "node_type", "status", "attempt", "input", "output", "error", "started",
               "finished", "depends_on", "extra"]
    cases = [[1], "task", None]
    for task in good:
        for member in members:
            cases.append({k: v for k, v in task.items() if k != member})
            cases += [task | {member: value} for value in ODD_VALUES]
    for case in cases:
        try:
            structure_record(case, TaskRecord)
        except RecordError:
            assert not task_json_fits(case), case
            with pytest.raises(ValueError):
                check_task_json(case, "task")
        else:
            assert check_task_json(case, "task") is case
