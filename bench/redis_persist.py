"""How long persisting a 2,000-step run takes on Redis against the memory store.

    uv run python bench/redis_persist.py [--steps 2000]

Starts its own ``redis-server`` on a free loopback port (no persistence) and,
in one process, measures:

1. *store replay*: the store calls a 2,000-step run makes (create with every
   task pending, running, two task upserts per step, final context, success)
   against ``MemoryStore`` and ``RedisStore``;
2. *engine run*: the same 2,000-step chain of ``log`` steps run by the engine
   on each store;
3. *per call*: the task-upsert script run through the store's client (trio
   streams in the caller's task), through redis-py called directly (no trio),
   and through redis-py in a trio worker thread (the store's former design),
   wall and CPU time.

Round trips are counted by the server (``INFO commandstats``: the commands the
store sent, not those its scripts ran). Timings are not assertions; the
structural cost (one round trip per task update) is asserted by
``tests/store_redis``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import trio

from ironflow_core.engine import prepare_run
from ironflow_core.model import (
    FlowDefinition,
    RunRecord,
    RunStatus,
    StepSpec,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.registry import build_registry
from ironflow_core.stores.memory import MemoryStore
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.scripts import SCRIPTS
from ironflow_store_redis.store import RedisStore

T0 = "2026-01-01T00:00:00.000000Z"
T1 = "2026-01-01T00:00:01.000000Z"
STORE_COMMANDS = ("eval", "evalsha", "script|load", "hgetall")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commands_sent(observer: Any) -> int:
    """Commands clients have sent so far, as the server counts them."""
    stats = observer.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in STORE_COMMANDS)


async def replay(store: Any, steps: int) -> float:
    names = [f"step_{i:04d}" for i in range(steps)]
    start = time.perf_counter()
    await store.create_run(RunRecord(
        id="bench", flow_name="bench", started=T0,
        tasks={n: TaskRecord(name=n, node_type="log") for n in names},
    ))
    await store.set_status("bench", RunStatus.RUNNING)
    for i, name in enumerate(names):
        await store.upsert_tasks("bench", [TaskRecord(
            name=name, node_type="log", status=TaskStatus.RUNNING, attempt=1, started=T0)])
        await store.upsert_tasks("bench", [TaskRecord(
            name=name, node_type="log", status=TaskStatus.SUCCESS, attempt=1, started=T0,
            finished=T1, output={"log_message": f"message {i}"})])
    await store.merge_context("bench", {"log_message": "done"})
    await store.set_status("bench", RunStatus.SUCCESS)
    elapsed = time.perf_counter() - start
    record = await store.get_run("bench")
    assert len(record.tasks) == steps and record.status is RunStatus.SUCCESS
    return elapsed


def chain(steps: int) -> FlowDefinition:
    specs = []
    for i in range(steps):
        name = f"s{i:04d}"
        deps = (f"s{i - 1:04d}",) if i else ()
        specs.append(StepSpec(name=name, node_type="log",
                              config={"message": "hi", "_step_name": name}, dependencies=deps))
    return FlowDefinition(name="chain", steps=tuple(specs))


async def engine_run(store: Any, flow: FlowDefinition, registry: Any, run_id: str) -> float:
    executor = prepare_run(flow, store=store, registry=registry, env={}, run_id=run_id)
    start = time.perf_counter()
    record = await executor.run()
    elapsed = time.perf_counter() - start
    assert record.status is RunStatus.SUCCESS, record.status
    return elapsed


async def per_call(url: str, calls: int) -> dict[str, tuple[float, float]]:
    """µs per run of the upsert script (wall, CPU): the store's client, redis-py, redis-py threaded."""
    store = RedisStore(parse_redis_url(url), prefix="client:")
    await store.create_run(RunRecord(id="c", flow_name="c", started=T0,
                                     tasks={"a": TaskRecord(name="a", node_type="log")}))
    text = SCRIPTS["upsert_tasks"]
    payload = '{"attempt":1,"name":"a","node_type":"log","status":"running"}'
    args = ["", "rev", "0", "", "a", payload]
    keys = [store.keys.run("c")]

    async def timed(run: Any) -> tuple[float, float]:
        await run()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await run()
        return ((time.perf_counter() - wall) / calls * 1e6,
                (time.process_time() - cpu) / calls * 1e6)

    results = {"store client (trio streams)": await timed(
        lambda: store.client.run_script(text, keys, args))}
    await store.aclose()

    import redis

    direct_client = redis.Redis.from_url(url)
    script = direct_client.register_script(text)

    async def direct() -> None:
        script(keys=keys, args=args)

    async def threaded() -> None:
        await trio.to_thread.run_sync(lambda: script(keys=keys, args=args))

    results["redis-py called directly"] = await timed(direct)
    results["redis-py in a trio thread"] = await timed(threaded)
    direct_client.close()
    return results


async def main(url: str, steps: int) -> None:
    import redis

    observer = redis.Redis.from_url(url)
    memory_replay = await replay(MemoryStore(), steps)
    warm_up = RedisStore(parse_redis_url(url), prefix="warm-up:")
    await replay(warm_up, 2)  # the server learns the scripts (NOSCRIPT + SCRIPT LOAD) here
    await warm_up.aclose()
    redis_store = RedisStore(parse_redis_url(url), prefix="replay:")
    before = commands_sent(observer)
    redis_replay = await replay(redis_store, steps)
    replay_trips = commands_sent(observer) - before - 1  # minus the final get_run
    await redis_store.aclose()

    registry = build_registry({}, entry_points=False)
    flow = chain(steps)
    memory_engine = await engine_run(MemoryStore(), flow, registry, "m")
    redis_store = RedisStore(parse_redis_url(url), prefix="engine:")
    before = commands_sent(observer)
    redis_engine = await engine_run(redis_store, flow, registry, "r")
    engine_trips = commands_sent(observer) - before
    await redis_store.aclose()
    observer.close()

    calls = await per_call(url, 2 * steps)
    print(f"{steps}-step run, one process, redis-server on loopback\n")
    print(f"{'':34}{'memory':>10}{'redis':>10}")
    print(f"{'store replay (s)':34}{memory_replay:10.3f}{redis_replay:10.3f}")
    print(f"{'engine run, chain of log (s)':34}{memory_engine:10.3f}{redis_engine:10.3f}")
    # Per run: create 1, two status folds of 2 (read + script), final context 1.
    print(f"\nredis round trips: replay {replay_trips} "
          f"({(replay_trips - 6) / steps:.2f}/step + 6 per run), engine run {engine_trips}")
    print("\nupsert script per call (µs)     wall     CPU")
    for name, (wall, cpu) in calls.items():
        print(f"  {name:28}{wall:7.0f}{cpu:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    options = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.02)
            trio.run(main, f"redis://127.0.0.1:{port}/0", options.steps)
        finally:
            process.kill()
            process.wait()
