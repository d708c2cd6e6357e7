"""The record a run returns is the one it holds, and it equals what the store has (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from ironflow_core.engine import prepare_run
from ironflow_core.model import RunStatus
from ironflow_core.stores.json_store import JsonStore
from ironflow_core.stores.memory import MemoryStore

from .engine_helpers import flow, registry, step

REG = registry()
ENV = {"IRONFLOW_MAX_CONCURRENT_TASKS": "4", "IRONFLOW_MAX_TASK_OUTPUT_BYTES": "64"}

FLOWS = {
    "success": flow(
        step("a", config={"out": {"x": 1, "big": "y" * 100}}),
        step("b", config={"out": {"nested": {"list": [1, 2.5, "z"]}}}),
        step("c", deps=("a", "b"), config={"seen": ["x"]}),
    ),
    "failed": flow(
        step("ok", config={"out": {"k": "v"}}),
        step("bad", max_retries=2, backoff_s=0.1,
             config={"fail": "boom", "failure_output": {"partial": True}}),
        step("after", deps=("bad",)),
    ),
    "recovered": flow(
        step("flaky", config={"fail": "once", "fail_times": 1}, max_retries=1),
        step("next", deps=("flaky",), config={"out": {"done": True}}),
    ),
}


@pytest.fixture(params=["memory", "json"])
def make_store(request, tmp_path: Path):
    def make():
        return MemoryStore() if request.param == "memory" else JsonStore(tmp_path / "store")
    return make


@pytest.mark.parametrize("name", sorted(FLOWS))
async def test_the_returned_record_is_what_the_store_has(name, make_store, autojump_clock):
    store = make_store()
    executor = prepare_run(FLOWS[name], store=store, registry=REG, context={"seed": 1},
                           env=ENV)
    record = await executor.run()
    assert record is executor.record  # held, not read back
    assert record.to_json() == (await store.get_run(record.id)).to_json()
    assert record.status is {"success": RunStatus.SUCCESS, "failed": RunStatus.FAILED,
                             "recovered": RunStatus.SUCCESS}[name]
    assert record.finished is not None


async def test_a_cancelled_run_returns_what_the_store_has(make_store, autojump_clock):
    store = make_store()
    f = flow(step("fast", config={"out": {"a": 1}}), step("slow", config={"sleep": 10}))
    executor = prepare_run(f, store=store, registry=REG, context={}, env=ENV)
    async with trio.open_nursery() as nursery:
        async def cancel_later() -> None:
            await trio.sleep(1)
            executor.cancel()
        nursery.start_soon(cancel_later)
        record = await executor.run()
    assert record.status is RunStatus.CANCELLED
    assert record.to_json() == (await store.get_run(record.id)).to_json()
