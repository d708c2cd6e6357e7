"""What group commit saves: task writes per step, by run concurrency, on Redis and memory.

    uv run python bench/group_commit.py [--steps 2000] [--concurrency 1,2,4,16]

One process runs a ``template_render`` fan-out with each
``IRONFLOW_MAX_CONCURRENT_TASKS`` on a ``redis-server`` it starts on loopback
(no persistence) and on the memory store, and reports the task writes the
run's ``GroupCommit`` made (one ``upsert_tasks`` call each: one round trip and
one thread hop on Redis) against the task updates (two per step: ``running``
and ``success``), and wall and CPU µs per step (minimum of ``--reps``).

Batches only form when updates meet a write in flight: a store that never
yields (memory) writes every update alone, and with concurrency N at most N
updates are outstanding, so a batch holds at most N.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from command import Redis
from run import flow_source

from ironflow_core.engine import prepare_run
from ironflow_core.loading import load_flow
from ironflow_core.registry import build_registry
from ironflow_core.specs import FlowSource
from ironflow_core.stores.memory import MemoryStore
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore


def measure(definition, registry, store_name: str, url: str, concurrency: int,  # type: ignore[no-untyped-def]
            reps: int) -> tuple[float, float, int]:
    """(wall µs/step, CPU µs/step, task writes) of the best of ``reps`` runs."""
    env = {"IRONFLOW_MAX_CONCURRENT_TASKS": str(concurrency)}
    best = (float("inf"), float("inf"), 0)
    for _ in range(reps):
        store = MemoryStore() if store_name == "memory" else RedisStore(parse_redis_url(url))

        async def main(store=store) -> int:  # type: ignore[no-untyped-def]
            executor = prepare_run(definition, store=store, registry=registry,
                                   context={"seed": 1}, env=env, plugin_observers=False)
            record = await executor.run()
            assert str(record.status) == "success", record.status
            await store.aclose()
            return executor.task_writer.batches

        t0, c0 = time.perf_counter(), time.process_time()
        writes = trio.run(main)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if cpu < best[1]:
            best = (wall, cpu, writes)
    steps = len(definition.steps)
    return best[0] / steps * 1e6, best[1] / steps * 1e6, best[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,2,4,16")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    registry = build_registry(dict(os.environ))
    definition = load_flow(FlowSource(flow_source("fanout", args.steps, "template")),
                           registry=registry,
                           env={"IRONFLOW_LUA_MAX_INSTRUCTIONS": "0",
                                "IRONFLOW_LUA_MAX_SECONDS": "0"})
    updates = 2 * args.steps
    with tempfile.TemporaryDirectory(prefix="ironflow-gc-") as tmp:
        redis = Redis(Path(tmp))
        try:
            print(f"fan-out of {args.steps} template_render steps, {updates} task updates")
            print(f"{'store':<7}{'concurrency':>12}{'writes':>8}{'updates/write':>15}"
                  f"{'wall µs/step':>14}{'cpu µs/step':>13}")
            for store_name in ("redis", "memory"):
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    wall, cpu, writes = measure(definition, registry, store_name, redis.url,
                                                concurrency, args.reps)
                    print(f"{store_name:<7}{concurrency:>12}{writes:>8}"
                          f"{updates / writes:>15.1f}{wall:>14.1f}{cpu:>13.1f}", flush=True)
        finally:
            redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
