"""Engine benchmarks: IronFlow against a bare-trio floor doing the same work.

Every workload runs in its own subprocess (so peak RSS is the workload's own),
and inside it both the engine and the floor run, in the same process, so the
ratio is measured under the same conditions.

    uv run python bench/run.py            # full table (several minutes)
    uv run python bench/run.py --quick    # smoke run (seconds), used by a test
    uv run python bench/run.py --json out.json
    uv run python bench/run.py --command [--linear] [--api]   # whole `ironflow` commands

``--command`` runs the whole-command suite of ``bench/command.py`` instead:
``ironflow run`` per added step on every store against the floor, validate,
start-up, peak RSS and (``--api``) the REST API, as a user feels them.

Workloads: ``chain`` (each step depends on the previous), ``fanout`` (all
independent), for 100, 1,000 and 10,000 steps, and ``layered`` (20 layers of
50 steps, each depending on the whole previous layer); steps are no-op Lua function handlers (``code``) or ``template_render``
nodes; stores are ``memory`` and ``json``. The floor is a nursery with one task
per step, a ``trio.Event`` per step for dependencies and a dict merge per
output.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = 20


# ------------------------------------------------------------------ workloads
def deps_of(shape: str, n: int) -> list[list[int]]:
    if shape == "chain":
        return [[i - 1] if i else [] for i in range(n)]
    if shape == "fanout":
        return [[] for _ in range(n)]
    if shape == "layered":
        width = max(1, n // LAYERS)
        deps = []
        for i in range(n):
            layer = i // width
            deps.append(list(range((layer - 1) * width, layer * width)) if layer else [])
        return deps
    raise ValueError(shape)


def flow_source(shape: str, n: int, kind: str) -> str:
    """The flow as Lua that builds its steps in a loop (a 10,000-step literal is > 1 MB)."""
    if kind == "code":
        handler = "function(ctx) return nil end"
    else:
        handler = 'nodes.template_render({template = "v=${ctx.seed}", output_key = "k" .. i})'
    width = max(1, n // LAYERS)
    deps = {
        "chain": "if i > 0 then s:depends_on(\"s\" .. (i - 1)) end",
        "fanout": "",
        "layered": (
            f"local layer = i // {width}\n"
            f"    if layer > 0 then for d = (layer - 1) * {width}, layer * {width} - 1 do "
            "s:depends_on(\"s\" .. d) end end"
        ),
    }[shape]
    return (
        'local flow = Flow.new("bench")\n'
        f"for i = 0, {n - 1} do\n"
        f'    local s = flow:step("s" .. i, {handler})\n'
        f"    {deps}\n"
        "end\n"
        "return flow\n"
    )


async def floor(shape: str, n: int, kind: str) -> None:
    """Bare trio: events for dependencies, one task per step, a dict merge per output."""
    import trio

    deps = deps_of(shape, n)
    done = [trio.Event() for _ in range(n)]
    ctx: dict = {"seed": 1}

    async def one(i: int) -> None:
        for d in deps[i]:
            await done[d].wait()
        if kind == "template":
            ctx.update({f"k{i}": f"v={ctx['seed']}"})
        else:
            ctx.update({})
        done[i].set()

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


def run_one(spec: str, reps: int) -> dict:
    """Measure one workload (engine and floor) in this process."""
    import trio

    from ironflow_core.engine import prepare_run
    from ironflow_core.loading import load_flow
    from ironflow_core.registry import build_registry
    from ironflow_core.specs import FlowSource
    from ironflow_core.stores.json_store import JsonStore
    from ironflow_core.stores.memory import MemoryStore

    shape, n_text, kind, store_name = spec.split(":")
    n = int(n_text)
    env = dict(os.environ)
    env.setdefault("IRONFLOW_LUA_GC_AFTER_EXECUTION", "true")
    load_env = {**env, "IRONFLOW_LUA_MAX_INSTRUCTIONS": "0", "IRONFLOW_LUA_MAX_SECONDS": "0"}
    registry = build_registry(env)
    definition = load_flow(FlowSource(flow_source(shape, n, kind)), registry=registry,
                           env=load_env)
    logging_off()
    engine_times, floor_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            store = MemoryStore() if store_name == "memory" else JsonStore(
                os.path.join(tmp, f"r{rep}"))

            async def main(store: object) -> None:
                executor = prepare_run(definition, store=store, registry=registry,
                                       context={"seed": 1}, env=env, plugin_observers=False)
                record = await executor.run()
                assert str(record.status) == "success", record.status
                await store.aclose()

            t0 = time.perf_counter()
            trio.run(main, store)
            engine_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            trio.run(floor, shape, n, kind)
            floor_times.append(time.perf_counter() - t0)
    return {
        "workload": spec,
        "steps": n,
        "engine_s": engine_times,
        "floor_s": floor_times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def logging_off() -> None:
    import logging

    logging.getLogger("ironflow").setLevel(logging.ERROR)


def measure_start(runs: int) -> dict:
    """``ironflow run examples/hello.lua`` against ``python -c "import trio"``."""
    exe = os.path.join(os.path.dirname(sys.executable), "ironflow")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IRONFLOW_STORE_DIR": tmp, "IRONFLOW_PROGRESS": "off"}
        hello = [exe, "run", os.path.join(ROOT, "examples", "hello.lua"),
                 "--context", '{"user_name": "Ada"}']
        base = [sys.executable, "-c", "import trio"]
        times: dict[str, list[float]] = {"ironflow_run_hello": [], "python_import_trio": []}
        for _ in range(runs):
            for key, cmd in (("ironflow_run_hello", hello), ("python_import_trio", base)):
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                times[key].append(time.perf_counter() - t0)
    return times


def summarize(result: dict) -> dict:
    engine = statistics.median(result["engine_s"])
    floor_s = statistics.median(result["floor_s"])
    n = result["steps"]
    return {
        **result,
        "engine_median_s": engine,
        "floor_median_s": floor_s,
        "engine_us_per_step": engine / n * 1e6,
        "floor_us_per_step": floor_s / n * 1e6,
        "ratio": engine / floor_s if floor_s else float("inf"),
        "spread_s": [min(result["engine_s"]), max(result["engine_s"])],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 rep")
    parser.add_argument("--json", metavar="OUT", help="write results as JSON")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma list of workload prefixes, e.g. fanout:1000")
    parser.add_argument("--command", action="store_true",
                        help="whole-command suite (bench/command.py) instead of the engine one")
    parser.add_argument("--linear", action="store_true", help="with --command: 5,000 -> 50,000")
    parser.add_argument("--api", action="store_true", help="with --command: REST API load")
    args = parser.parse_args()
    if args.command:
        import command

        results = command.run_suite(reps=1 if args.quick else args.reps, quick=args.quick,
                                    linear=args.linear, api=args.api)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2)
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.reps)))
        return 0
    sizes = [100] if args.quick else [100, 1000, 10000]
    reps = 1 if args.quick else args.reps
    shapes = [(shape, n) for shape in ("chain", "fanout") for n in sizes]
    shapes.append(("layered", 100 if args.quick else 1000))  # 20 layers x 50 steps
    specs = [f"{shape}:{n}:{kind}:{store}"
             for shape, n in shapes
             for kind in ("template", "code")
             for store in ("memory", "json")]
    if args.only:
        prefixes = args.only.split(",")
        specs = [s for s in specs if any(s.startswith(p) for p in prefixes)]
    results = []
    for spec in specs:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", spec, "--reps", str(reps)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = summarize(json.loads(proc.stdout.strip().splitlines()[-1]))
        results.append(result)
        print(f"{spec:<28} engine {result['engine_us_per_step']:8.1f} µs/step  "
              f"floor {result['floor_us_per_step']:6.1f} µs/step  "
              f"ratio {result['ratio']:6.1f}  rss {result['peak_rss_mib']:6.1f} MiB", flush=True)
    start = measure_start(2 if args.quick else 10)
    start_summary = {k: statistics.median(v) for k, v in start.items()}
    start_summary["ratio"] = start_summary["ironflow_run_hello"] / start_summary["python_import_trio"]
    print(f"start: ironflow run hello {start_summary['ironflow_run_hello'] * 1000:.0f} ms, "
          f"python -c 'import trio' {start_summary['python_import_trio'] * 1000:.0f} ms, "
          f"ratio {start_summary['ratio']:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"workloads": results, "start": start_summary}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
