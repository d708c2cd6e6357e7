"""Group commit on a real Redis: updates that meet a write in flight share one script run."""

from __future__ import annotations

from ironflow_core.engine import prepare_run
from ironflow_core.model import FlowDefinition, RunStatus, StepSpec, TaskStatus
from ironflow_core.registry import build_registry
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore

from .conftest import sent_commands

REGISTRY = build_registry({}, entry_points=False)
STEPS = 40


def fan_out() -> FlowDefinition:
    steps = [StepSpec(name=f"s{i}", node_type="log", config={"message": "x", "_step_name": f"s{i}"})
             for i in range(STEPS)]
    return FlowDefinition(name="fan-out", steps=tuple(steps))


async def run(url: str, concurrency: int, run_id: str):  # type: ignore[no-untyped-def]
    store = RedisStore(parse_redis_url(url))
    executor = prepare_run(fan_out(), store=store, registry=REGISTRY, run_id=run_id,
                           env={"IRONFLOW_MAX_CONCURRENT_TASKS": str(concurrency)})
    record = await executor.run()
    stored = await store.get_run(run_id)
    await store.aclose()
    return executor, record, stored


async def test_a_batch_is_one_script_run_and_every_update_lands(redis_url, redis_client):
    before = sent_commands(redis_client)
    alone, record, stored = await run(redis_url, 1, "alone")
    one_by_one = sent_commands(redis_client) - before
    # nothing in flight to meet: one write per step (its running carries the success
    # before it), and the last success when the worker runs out of steps
    assert alone.task_writer.batches == STEPS + 1
    def scripts_run(sent):  # type: ignore[no-untyped-def]
        return sent["evalsha"] - sent["failed:evalsha"]  # not the NOSCRIPT replies

    others = scripts_run(one_by_one) - alone.task_writer.batches  # create, lease, folds, ...

    before = sent_commands(redis_client)
    executor, record, stored = await run(redis_url, 8, "gathered")
    sent = sent_commands(redis_client) - before
    assert record.status is RunStatus.SUCCESS
    assert record.to_json() == stored.to_json()
    assert all(task.status is TaskStatus.SUCCESS and task.attempt == 1
               for task in stored.tasks.values())
    assert len(stored.tasks) == STEPS
    assert executor.task_writer.batches < STEPS  # updates were gathered
    assert scripts_run(sent) == others + executor.task_writer.batches  # one script a batch
