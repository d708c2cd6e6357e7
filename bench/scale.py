"""Throughput of the redis queue with 1, 2 and 4 workers against the inline queue (issue 16).

    uv run python bench/scale.py [--runs 40] [--concurrency 4]

Two flows: *io* (four ``delay`` steps, two in parallel: 0.4 s of waiting per
run) and *cpu* (two ``code`` steps looping in Lua). *inline* is one process
executing the runs itself (``ironflow run``/``serve`` without workers, at the
same concurrency as one worker) against the same Redis store. With workers,
the clock runs from the first submission until the last run is ``success``;
submission happens in the driver process and is timed apart.

``redis_commands_per_run`` is what Redis processed (``INFO stats``
``total_commands_processed``, which counts the commands inside scripts too)
over the measurement, divided by the runs, idle polls and heartbeats included.
``round_trips_io_flow`` counts what the processes sent (one command or one
script run = one round trip), measured in-process for 20 runs. Finally one ``PUBLISH`` batch (the event channel) is compared with
one ``XADD`` per event (a stream per run), the alternative for events.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Redis, Workers, cluster_env, submit_many

FLOWS = {
    "io": """
local flow = Flow.new("io_bound")
flow:step("a", nodes.delay({ seconds = 0.1 }))
flow:step("b", nodes.delay({ seconds = 0.2 })):depends_on("a")
flow:step("c", nodes.delay({ seconds = 0.2 })):depends_on("a")
flow:step("d", nodes.delay({ seconds = 0.1 })):depends_on("b", "c")
return flow
""",
    "cpu": """
local flow = Flow.new("cpu_bound")
flow:step("a", nodes.code({ source = "local x = 0 for i = 1, 3000000 do x = (x + i * 7) % 1000003 end return { a = x }" }))
flow:step("b", nodes.code({ source = "local x = 0 for i = 1, 3000000 do x = (x + i * 3) % 1000003 end return { b = x }" })):depends_on("a")
return flow
""",
}


def commands(client: Any) -> int:
    return int(client.info("stats")["total_commands_processed"])


def inline(redis: Redis, flow_path: Path, runs: int, concurrency: int) -> float:
    """Runs executed by this one process (the inline queue), ``concurrency`` at a time."""
    from ironflow_core.engine import prepare_run
    from ironflow_core.loading import load_flow
    from ironflow_core.registry import default_registry
    from ironflow_core.stores.select import open_store

    env = cluster_env(redis.url, IRONFLOW_QUEUE="inline")
    registry = default_registry()

    async def main() -> float:
        store = open_store(registry, env)
        flow = load_flow(str(flow_path), registry=registry, env=env)
        limit = trio.Semaphore(concurrency)
        began = time.monotonic()

        async def one(i: int) -> None:
            async with limit:
                record = await prepare_run(flow, store=store, registry=registry,
                                           context={"i": i}, env=env).run()
                assert str(record.status) == "success", record.status

        async with trio.open_nursery() as nursery:
            for i in range(runs):
                nursery.start_soon(one, i)
        elapsed = time.monotonic() - began
        await store.aclose()
        return elapsed

    return trio.run(main)


def with_workers(redis: Redis, directory: Path, flow_path: Path, runs: int, workers: int,
                 concurrency: int) -> tuple[float, float, int]:
    env = cluster_env(redis.url)
    pool = Workers(directory, env, concurrency=concurrency)
    client = redis.client()
    try:
        for _ in range(workers):
            pool.start()
        deadline = time.monotonic() + 120
        while client.hlen("ironflow:{queue}:workers") < workers:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        began = time.monotonic()
        run_ids = trio.run(submit_many, redis.url, flow_path,
                           [{"i": i} for i in range(runs)], env)
        submitted = time.monotonic() - began
        polls = 0
        while True:
            polls += len(run_ids)  # the driver's own HGETs, subtracted from the count
            pipe = client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hget(f"ironflow:runs:{run_id}", "summary")
            statuses = [json.loads(raw)["status"] for raw in pipe.execute()]
            if all(status == "success" for status in statuses):
                break
            assert "failed" not in statuses, statuses
            time.sleep(0.02)
        return time.monotonic() - began, submitted, polls
    finally:
        pool.stop_all()


def client_round_trips(redis: Redis, flow_path: Path, runs: int) -> dict[str, float]:
    """Commands and script runs each process sends per run (``RedisClient.calls``), in-process.

    Inline: the executing process's store. Queued: the submitter (store and
    queue) plus one worker (store and queue: claim, ack, event batches,
    heartbeats). Each call is one network round trip.
    """
    import attrs

    from ironflow_core.engine import prepare_run
    from ironflow_core.loading import load_flow
    from ironflow_core.queues.select import open_queue
    from ironflow_core.queues.submit import submit_run
    from ironflow_core.queues.worker import Worker, WorkerSettings
    from ironflow_core.registry import default_registry
    from ironflow_core.stores.select import open_store

    registry = default_registry()
    env = cluster_env(redis.url)

    async def main() -> dict[str, float]:
        flow = load_flow(str(flow_path), registry=registry, env=env)
        store = open_store(registry, env)
        for i in range(runs):
            await prepare_run(flow, store=store, registry=registry, context={"i": i},
                              env=env).run()
        inline_calls = store.client.calls / runs  # type: ignore[attr-defined]
        queue = open_queue(registry, env)
        worker_store, worker_queue = open_store(registry, env), open_queue(registry, env)
        worker = Worker(worker_queue, worker_store, registry=registry, env=env,
                        settings=attrs.evolve(WorkerSettings.from_env(env, name="count"),
                                              concurrency=4))
        submit_before = store.client.calls  # type: ignore[attr-defined]
        ids = [(await submit_run(prepare_run(flow, store=store, registry=registry,
                                             context={"i": i}, env=env), queue)).id
               for i in range(runs)]
        submit_calls = (store.client.calls - submit_before  # type: ignore[attr-defined]
                        + queue.client.calls) / runs  # type: ignore[attr-defined]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.serve)
            while worker.counts["finished"] < runs:
                await trio.sleep(0.05)
            worker.stop()
        worker_calls = (worker_store.client.calls  # type: ignore[attr-defined]
                        + worker_queue.client.calls) / runs  # type: ignore[attr-defined]
        assert len(ids) == runs
        for closing in (store, queue, worker_store, worker_queue):
            await closing.aclose()
        return {"inline_per_run": round(inline_calls, 1),
                "submit_per_run": round(submit_calls, 1),
                "worker_per_run": round(worker_calls, 1)}

    return trio.run(main)


def event_transport(redis: Redis, events: int = 2000) -> dict[str, float]:
    """µs per event: one PUBLISH script per batch of 50 vs one XADD per event (a stream per run)."""
    from ironflow_core.model import Event, EventType
    from ironflow_store_redis.address import parse_redis_url
    from ironflow_store_redis.queue import RedisQueue

    queue = RedisQueue(parse_redis_url(redis.url), prefix="bench:")
    batch = [Event(id=str(i), run_id="r", type=EventType.TASK_STARTED, timestamp="t",
                   step=f"s{i}") for i in range(50)]

    async def main() -> dict[str, float]:
        began = time.perf_counter()
        for _ in range(events // 50):
            await queue.publish(batch)
        publish = (time.perf_counter() - began) / events * 1e6
        began = time.perf_counter()
        for event in batch * (events // 50):
            await queue.client.call("XADD", "bench:{r}:events", "MAXLEN", "~", 1000, "*",
                                    "e", json.dumps(event.to_json()))
        xadd = (time.perf_counter() - began) / events * 1e6
        await queue.aclose()
        return {"publish_batched_us_per_event": round(publish, 1),
                "xadd_per_event_us": round(xadd, 1)}

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--flows", default="io,cpu")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        directory = Path(tmp)
        redis = Redis(directory / "redis")
        client = redis.client()
        try:
            for name, text in FLOWS.items():
                if name not in args.flows.split(","):
                    continue
                flow_path = directory / f"{name}.lua"
                flow_path.write_text(text)
                row: dict[str, Any] = {}
                client.flushall()
                before = commands(client)
                elapsed = inline(redis, flow_path, args.runs, args.concurrency)
                row["inline"] = {"runs_per_s": round(args.runs / elapsed, 2),
                                 "redis_commands_per_run":
                                     round((commands(client) - before) / args.runs, 1)}
                print(f"{name} inline: {row['inline']}", file=sys.stderr)
                for count in (int(w) for w in args.workers.split(",")):
                    client.flushall()
                    before = commands(client)
                    elapsed, submitted, polls = with_workers(
                        redis, directory, flow_path, args.runs, count, args.concurrency)
                    row[f"{count}_workers"] = {
                        "runs_per_s": round(args.runs / elapsed, 2),
                        "submit_s": round(submitted, 2),
                        "redis_commands_per_run":
                            round((commands(client) - before - polls) / args.runs, 1),
                    }
                    print(f"{name} {count} worker(s): {row[f'{count}_workers']}",
                          file=sys.stderr)
                results[name] = row
            client.flushall()
            (directory / "io.lua").write_text(FLOWS["io"])
            results["round_trips_io_flow"] = client_round_trips(
                redis, directory / "io.lua", 20)
            results["events"] = event_transport(redis)
        finally:
            redis.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
