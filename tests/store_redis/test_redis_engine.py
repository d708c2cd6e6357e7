"""The engine running flows against a real Redis: many runs at once, Redis going away (ENG-12)."""

from __future__ import annotations

import logging

import trio

from ironflow_core.engine import FinalStatusError, prepare_run
from ironflow_core.model import FlowDefinition, RunStatus, StepSpec, TaskStatus
from ironflow_core.registry import build_registry
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore

from .conftest import RedisServer, round_trips, sent_commands

REGISTRY = build_registry({}, entry_points=False)


def step(name: str, node: str, deps: tuple[str, ...] = (), **config) -> StepSpec:
    return StepSpec(name=name, node_type=node, config={**config, "_step_name": name},
                    dependencies=deps)


def fan_out_flow(width: int) -> FlowDefinition:
    """start -> width parallel steps -> join: every task record is written concurrently."""
    steps = [step("start", "log", message="go")]
    steps += [step(f"work_{i}", "delay", ("start",), seconds=0.001) for i in range(width)]
    steps.append(step("join", "log", tuple(f"work_{i}" for i in range(width)), message="done"))
    return FlowDefinition(name="fan-out", steps=tuple(steps))


def open_store(url: str) -> RedisStore:
    return RedisStore(parse_redis_url(url))


async def test_eng_11_fifty_concurrent_runs_lose_no_task_record(redis_url):
    """Each run has its own store (as separate processes would) on one Redis."""
    flow = fan_out_flow(8)
    env = {"IRONFLOW_MAX_CONCURRENT_WORKFLOWS": "50", "IRONFLOW_MAX_CONCURRENT_TASKS": "8"}
    results = {}

    async def one(i: int) -> None:
        store = open_store(redis_url)
        executor = prepare_run(flow, store=store, registry=REGISTRY, env=env,
                               context={"i": i}, run_id=f"run-{i:02d}")
        try:
            results[i] = await executor.run()
        finally:
            await store.aclose()

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
    reader = open_store(redis_url)
    page = await reader.list_runs(limit=100)
    assert sorted(s.id for s in page.runs) == [f"run-{i:02d}" for i in range(50)]
    assert {(s.status, s.task_count) for s in page.runs} == {(RunStatus.SUCCESS, 10)}
    for i in range(50):
        stored = await reader.get_run(f"run-{i:02d}")
        assert stored.to_json() == results[i].to_json()
        assert len(stored.tasks) == 10
        assert all(t.status is TaskStatus.SUCCESS and t.attempt == 1 and t.finished
                   for t in stored.tasks.values())
        assert stored.ctx["i"] == i and stored.ctx["log_message"] == "done"
    await reader.aclose()


async def test_eng_12_redis_going_away_mid_run_ends_the_run_stalled(tmp_path, caplog):
    server = RedisServer(tmp_path / "redis")
    server.start()
    flow = FlowDefinition(name="slow", steps=(
        step("before", "log", message="hi"),
        step("wait", "delay", ("before",), seconds=0.5),
        step("after", "log", ("wait",), message="never stored"),
    ))
    store = open_store(server.url)
    executor = prepare_run(flow, store=store, registry=REGISTRY, env={}, run_id="run-1")
    outcome = {}

    async def run() -> None:
        try:
            outcome["record"] = await executor.run()
        except FinalStatusError as exc:  # issue 14: the store is gone, so is the final write
            outcome["error"] = exc

    try:
        with caplog.at_level(logging.DEBUG):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                with trio.fail_after(10):
                    while True:  # wait until the delay step is running, then kill Redis
                        await trio.sleep(0.01)
                        probe = open_store(server.url)
                        try:
                            task = (await probe.get_run("run-1")).tasks.get("wait")
                        except Exception:
                            task = None
                        finally:
                            await probe.aclose()
                        if task is not None and task.status is TaskStatus.RUNNING:
                            break
                server.kill()
        error = str(outcome["error"])
        assert error.startswith("Run 'run-1' ended stalled but its final status could not be")
        assert executor.stall_reason == (
            f"cannot reach Redis at redis://127.0.0.1:{server.port}/0: Connection refused"
        )
        assert executor.lease.keep  # left to expire, so recovery finds the run
        assert "after" not in executor.completed
        assert not [r for r in caplog.records if r.exc_info]  # a message, never a traceback
        assert "Traceback" not in caplog.text

        server.start()  # Redis is back (empty: no persistence); the same store works again
        assert (await store.list_runs()).runs == ()
    finally:
        await store.aclose()
        server.kill()


async def test_arch_3_an_engine_run_costs_one_round_trip_per_task_update(
    redis_url, redis_client
):
    steps = 200
    chain = [step("s0000", "log", message="x")]
    chain += [step(f"s{i:04d}", "log", (f"s{i - 1:04d}",), message="x") for i in range(1, steps)]
    redis_client.script_flush()  # as after a restart: each script is loaded on first use
    before = sent_commands(redis_client)
    store = open_store(redis_url)
    executor = prepare_run(FlowDefinition(name="chain", steps=tuple(chain)), store=store,
                           registry=REGISTRY, env={}, run_id="chain")
    record = await executor.run()
    assert record.status is RunStatus.SUCCESS
    sent = sent_commands(redis_client) - before
    # create 1 + lease 1 + origin 1 + running fold 2 + one write per step (its running,
    # carrying the success before it) + the last success 1 + final ctx 1 + fold 2 +
    # release 1 (ST-50: no renewal in a run this short; the final record is the one the
    # run holds, not read back), plus NOSCRIPT and SCRIPT LOAD once for each of the
    # seven scripts used.
    assert sent["hgetall"] == 2
    assert (sent["script|load"], sent["failed:evalsha"]) == (7, 7)
    assert round_trips(sent) == steps + 1 + 9 + 2 * 7
    assert record.to_json() == (await store.get_run("chain")).to_json()
    await store.aclose()
