"""Kill storm: runs survive workers being SIGKILLed at random (issue 16).

    uv run python bench/kill_storm.py                    # 200 runs, 4 workers, ~60 kills
    uv run python bench/kill_storm.py --runs 40 --kills 10

A loopback ``redis-server`` holds state and queue; 4 ``ironflow worker``
processes (``IRONFLOW_RECOVERY=resume``, short ``IRONFLOW_LEASE_TTL_SECONDS``)
execute runs of a flow with parallel phases, ``delay`` steps and shell steps
that append ``tag:step:nonce`` to a file and print the nonce (so the recorded
output names the execution that counted). A driver SIGKILLs a random worker
every ``--every`` seconds (one that has announced itself, so it holds runs;
a replacement still starting is not a target) and starts a replacement each
time.

It then checks: every run ``success``; for every shell step the recorded
nonce is in the file exactly once and is the step's last line (so no step
whose success was recorded ran again); the consumer group's pending list is
empty; no lease is left. Re-executions of steps that were in flight when
their worker died are counted (at-least-once for work in flight).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Redis, Workers, cluster_env, submit_many

SHELL_STEPS = ("start", "p1", "p2", "p3", "q1", "q2", "done")


def storm_flow(append_file: Path, slow: float = 1.0) -> str:
    def shell(name: str) -> str:
        script = (f'n=$(date +%s%N)$$; echo "${{ctx.tag}}:{name}:$n" >> {append_file}; '
                  'printf %s "$n"')
        return (f'nodes.shell_command({{ cmd = "sh", args = {{ "-c", {json.dumps(script)} }}, '
                f'output_key = "{name}" }})')

    return f"""
local flow = Flow.new("kill_storm")
flow:step("start", {shell("start")})
flow:step("p1", {shell("p1")}):depends_on("start")
flow:step("p2", {shell("p2")}):depends_on("start")
flow:step("p3", {shell("p3")}):depends_on("start")
flow:step("wait_a", nodes.delay({{ seconds = {0.3 * slow} }})):depends_on("start")
flow:step("mid", nodes.delay({{ seconds = {0.2 * slow} }})):depends_on("p1", "p2", "p3", "wait_a")
flow:step("q1", {shell("q1")}):depends_on("mid")
flow:step("q2", {shell("q2")}):depends_on("mid")
flow:step("wait_b", nodes.delay({{ seconds = {0.2 * slow} }})):depends_on("mid")
flow:step("done", {shell("done")}):depends_on("q1", "q2", "wait_b")
return flow
"""


def check(redis: Redis, run_ids: list[str], append_file: Path) -> dict[str, Any]:
    """The storm's verdict, from the store (read with a plain client) and the append file."""
    import trio as _trio

    from ironflow_core.registry import default_registry
    from ironflow_core.stores.select import open_store

    env = cluster_env(redis.url)

    async def records() -> list[Any]:
        store = open_store(default_registry(), env)
        try:
            return [await store.get_run(run_id) for run_id in run_ids]
        finally:
            await store.aclose()

    runs = _trio.run(records)
    lines: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in append_file.read_text().splitlines():
        tag, step, nonce = line.split(":")
        lines[(tag, step)].append(nonce)
    statuses: dict[str, int] = defaultdict(int)
    repeated_after_success = reexecuted = 0
    for record in runs:
        statuses[str(record.status)] += 1
        tag = record.ctx.get("tag")
        for step in SHELL_STEPS:
            task = record.tasks[step]
            if str(task.status) != "success":
                continue
            recorded = str(task.output.get(f"{step}_stdout"))
            seen = lines[(tag, step)]
            if seen.count(recorded) != 1 or seen[-1] != recorded:
                repeated_after_success += 1
            reexecuted += len(seen) - 1
    client = redis.client()
    pending = client.xpending("ironflow:{queue}:runs", "workers")["pending"]
    leases = client.zcard("ironflow:run_leases:v1:expiry")
    dead = client.xlen("ironflow:{queue}:dead")
    return {"runs": len(runs), "statuses": dict(statuses),
            "steps_rerun_after_recorded_success": repeated_after_success,
            "in_flight_steps_executed_again": reexecuted,
            "pending_messages": pending, "leases_left": leases, "dead_letters": dead}


def storm(*, runs: int, workers: int, kills: int, every: float, ttl: float,
          directory: Path, timeout: float, quiet: bool = False,
          slow: float = 1.0) -> dict[str, Any]:
    redis = Redis(directory / "redis")
    pool: Workers | None = None
    try:
        append_file = directory / "append.txt"
        append_file.touch()
        flow_path = directory / "storm.lua"
        flow_path.write_text(storm_flow(append_file, slow))
        env = cluster_env(redis.url, IRONFLOW_RECOVERY="resume",
                          IRONFLOW_RECOVERY_MAX_ATTEMPTS="1000",
                          IRONFLOW_LEASE_TTL_SECONDS=str(ttl))
        pool = Workers(directory, env, concurrency=4)
        for _ in range(workers):
            pool.start()
        client = redis.client()
        ready_by = time.monotonic() + 60
        while client.hlen("ironflow:{queue}:workers") < workers and time.monotonic() < ready_by:
            time.sleep(0.1)  # kill workers that are executing runs, not ones still starting
        began = time.monotonic()
        run_ids = trio.run(submit_many, redis.url, flow_path,
                           [{"tag": f"t{i}"} for i in range(runs)], env)
        done_kills = 0
        deadline = began + timeout
        rng = random.Random(16)
        while time.monotonic() < deadline:
            time.sleep(every)
            finished = sum(1 for status in _statuses(client, run_ids) if status == "success")
            if finished == runs:
                break
            # only workers that announced themselves: they claim runs, so a kill hits work
            ready = sorted(set(pool.procs) & set(client.hkeys("ironflow:{queue}:workers")))
            if done_kills < kills and ready:
                victim = rng.choice(ready)
                pool.kill(victim)
                pool.start()
                done_kills += 1
                if not quiet:
                    print(f"  kill {done_kills}: {victim}; {finished}/{runs} runs done",
                          file=sys.stderr)
        elapsed = time.monotonic() - began
        # let the last acknowledgements land before looking at the group
        settle = time.monotonic() + 10
        while time.monotonic() < settle:
            if client.xpending("ironflow:{queue}:runs", "workers")["pending"] == 0:
                break
            time.sleep(0.2)
        pool.stop_all()
        pool = None
        verdict = check(redis, run_ids, append_file)
        verdict.update(kills=done_kills, workers_started=workers + done_kills,
                       seconds=round(elapsed, 1))
        return verdict
    finally:
        if pool is not None:
            pool.stop_all(5)
        redis.stop()


def _statuses(client: Any, run_ids: list[str]) -> list[str]:
    """Run statuses as the store keeps them (``info`` JSON of each run hash)."""
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hget(f"ironflow:runs:{run_id}", "summary")
    out = []
    for raw in pipe.execute():
        try:
            out.append(json.loads(raw).get("status", ""))
        except (TypeError, ValueError):
            out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-storm-") as tmp:
        verdict = storm(runs=args.runs, workers=args.workers, kills=args.kills,
                        every=args.every, ttl=args.ttl, directory=Path(tmp),
                        timeout=args.timeout)
    print(json.dumps(verdict, indent=2))
    ok = (verdict["statuses"] == {"success": args.runs}
          and verdict["steps_rerun_after_recorded_success"] == 0
          and verdict["pending_messages"] == 0 and verdict["leases_left"] == 0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
