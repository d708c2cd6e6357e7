"""Whole-command benchmarks: what a user of ``ironflow`` feels (issue 17).

Run through ``bench/run.py --command`` (or directly). Every figure is a ratio
or a difference measured in one run, so a loaded machine moves both sides:

* per added step: ``ironflow run FLOW --format json`` as a subprocess on a
  500- and a 5,000-step ``template_render`` fan-out and chain, minimum of
  ``reps`` runs each, ``(t5000 - t500) / 4500``, on the memory, JSON and Redis
  stores (Redis: a ``redis-server`` this script starts on a free loopback
  port, without persistence), against the bare-trio floor (``run.floor``)
  measured the same way in the same run;
* linearity (``--linear``): the same per-step cost from 5,000 to 50,000 steps;
* loading: ``ironflow validate`` of a 5,000-step flow, literal and Lua loop,
  per step above the start-up (``validate`` of ``examples/hello.lua``);
* start: ``ironflow run examples/hello.lua`` against ``python -c "import trio"``;
* peak RSS of a 10,000-step fan-out per store (``wait4`` of the command);
* API (``--api``): ``bench/api_load.py`` on the memory and JSON stores.

Bytecode caches are warm: ``PYTHONDONTWRITEBYTECODE`` is dropped from the
commands' environment and every command runs once, unmeasured, before timing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cluster import Redis  # the loopback redis-server the scale-out benches use

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).parent / "ironflow")
STORES = ("memory", "json", "redis")
FLOOR_SCRIPT = """
import sys, time, trio
sys.path.insert(0, {bench!r})
from run import floor
shape, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wall = cpu = float("inf")
for _ in range(reps):
    t0, c0 = time.perf_counter(), time.process_time()
    trio.run(floor, shape, n, "template")
    wall = min(wall, time.perf_counter() - t0)
    cpu = min(cpu, time.process_time() - c0)
print(wall, cpu)
"""


# ------------------------------------------------------------------ flows
def loop_flow(shape: str, n: int) -> str:
    """``template_render`` steps built by a Lua loop."""
    deps = 'if i > 0 then s:depends_on("s" .. (i - 1)) end' if shape == "chain" else ""
    return (
        'local flow = Flow.new("bench")\n'
        f"for i = 0, {n - 1} do\n"
        '    local s = flow:step("s" .. i, nodes.template_render({'
        'template = "v=${ctx.seed}", output_key = "k" .. i}))\n'
        f"    {deps}\n"
        "end\n"
        "return flow\n"
    )


def literal_flow(shape: str, n: int) -> str:
    """The same flow written out step by step."""
    lines = ['local flow = Flow.new("bench")']
    for i in range(n):
        dep = f':depends_on("s{i - 1}")' if shape == "chain" and i else ""
        lines.append(f'flow:step("s{i}", nodes.template_render({{template = "v=${{ctx.seed}}", '
                     f'output_key = "k{i}"}})){dep}')
    lines.append("return flow")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ processes
def timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds of one command, which must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{err.decode(errors='replace')[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def best_of(cmd: Sequence[str], env: dict[str, str], reps: int) -> tuple[float, float]:
    """Minimum wall and minimum CPU seconds over ``reps`` runs, after a warm-up run.

    CPU time (user + system of the command) is what a loaded machine
    distorts least; both are reported.
    """
    timed(cmd, env)  # warm the bytecode and page caches
    runs = [timed(cmd, env) for _ in range(reps)]
    return min(r[0] for r in runs), min(r[2] for r in runs)


def store_env(store: str, tmp: Path, redis: Redis | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IRONFLOW_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(IRONFLOW_STORE=store, IRONFLOW_STORE_DIR=str(tmp / "store"),
               IRONFLOW_PROGRESS="off", IRONFLOW_LOG="warn")
    if store == "redis" and redis is not None:
        env["REDIS_URL"] = redis.url
    return env


# ------------------------------------------------------------------ measurements
def per_step(small: float, large: float, n_small: int, n_large: int) -> float:
    return (large - small) / (n_large - n_small) * 1e6


def floor_per_step(shape: str, sizes: tuple[int, int], reps: int) -> tuple[float, float]:
    """The bare-trio floor per added step: (wall, CPU) µs."""
    script = FLOOR_SCRIPT.format(bench=str(BENCH))
    walls, cpus = [], []
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", script, shape, str(n), str(reps)],
                             check=True, capture_output=True, text=True).stdout
        wall, cpu = out.split()
        walls.append(float(wall))
        cpus.append(float(cpu))
    return per_step(walls[0], walls[1], *sizes), per_step(cpus[0], cpus[1], *sizes)


def run_command(flow: Path, env: dict[str, str]) -> list[str]:
    return [EXE, "run", str(flow), "--format", "json", "--context", '{"seed": 1}']


def measure_steps(tmp: Path, stores: Sequence[str], sizes: tuple[int, int], reps: int,
                  redis: Redis | None, log: bool = True, unbounded: bool = False) -> dict:
    """Per added step, whole ``ironflow run``, per shape and store, with its floor.

    ``unbounded``: no Lua instruction budget (a 50,000-step flow file takes
    more than the default 5,000,000 instructions or 10 s to evaluate).
    """
    out: dict = {"sizes": list(sizes), "floor": {}, "floor_cpu": {}, "stores": {}}
    for shape in ("fanout", "chain"):
        out["floor"][shape], out["floor_cpu"][shape] = floor_per_step(shape, sizes, reps)
        flows = []
        for n in sizes:
            path = tmp / f"{shape}-{n}.lua"
            path.write_text(loop_flow(shape, n))
            flows.append(path)
        for store in stores:
            env = store_env(store, tmp, redis)
            if unbounded:
                env.update(IRONFLOW_LUA_MAX_INSTRUCTIONS="0", IRONFLOW_LUA_MAX_SECONDS="0")
            times = [best_of(run_command(flow, env), env, reps) for flow in flows]
            us = per_step(times[0][0], times[1][0], *sizes)
            cpu_us = per_step(times[0][1], times[1][1], *sizes)
            floor_wall, floor_cpu = out["floor"][shape], out["floor_cpu"][shape]
            entry = out["stores"].setdefault(store, {})
            entry[shape] = {"seconds": [t[0] for t in times], "cpu_seconds": [t[1] for t in times],
                            "us_per_step": us, "ratio": us / floor_wall,
                            "cpu_us_per_step": cpu_us, "cpu_ratio": cpu_us / floor_cpu}
            if log:
                print(f"  run {shape:<6} {store:<6} wall {us:7.1f} µs/step (floor {floor_wall:5.1f}, "
                      f"x{us / floor_wall:5.1f})  cpu {cpu_us:7.1f} µs/step (floor "
                      f"{floor_cpu:5.1f}, x{cpu_us / floor_cpu:5.1f})  "
                      f"[{sizes[0]}: {times[0][0]:.2f}s, {sizes[1]}: {times[1][0]:.2f}s]", flush=True)
    return out


def measure_validate(tmp: Path, reps: int, n: int = 5000) -> dict:
    env = store_env("memory", tmp, None)
    base = best_of([EXE, "validate", str(ROOT / "examples" / "hello.lua")], env, reps)
    out: dict = {"startup_s": base[0], "startup_cpu_s": base[1], "steps": n}
    for kind, source in (("literal", literal_flow("chain", n)), ("loop", loop_flow("chain", n))):
        path = tmp / f"validate-{kind}.lua"
        path.write_text(source)
        t = best_of([EXE, "validate", str(path)], env, reps)
        out[kind] = {"seconds": t[0], "us_per_step": (t[0] - base[0]) / n * 1e6,
                     "cpu_seconds": t[1], "cpu_us_per_step": (t[1] - base[1]) / n * 1e6}
        print(f"  validate {n} {kind:<7} wall {out[kind]['us_per_step']:.1f} µs/step, "
              f"cpu {out[kind]['cpu_us_per_step']:.1f} µs/step above start-up "
              f"[{t[0]:.2f}s vs {base[0]:.2f}s]", flush=True)
    return out


def measure_start(tmp: Path, runs: int) -> dict:
    env = store_env("json", tmp, None)
    hello = [EXE, "run", str(ROOT / "examples" / "hello.lua"),
             "--context", '{"user_name": "Ada"}']
    trio_only = [sys.executable, "-c", "import trio"]
    timed(hello, env)
    timed(trio_only, env)
    a, b = [], []
    for _ in range(runs):  # interleaved, so load changes hit both
        a.append(timed(hello, env))
        b.append(timed(trio_only, env))
    out = {"ironflow_run_hello_s": min(r[0] for r in a),
           "python_import_trio_s": min(r[0] for r in b),
           "ironflow_run_hello_cpu_s": min(r[2] for r in a),
           "python_import_trio_cpu_s": min(r[2] for r in b)}
    out["ratio"] = out["ironflow_run_hello_s"] / out["python_import_trio_s"]
    out["cpu_ratio"] = out["ironflow_run_hello_cpu_s"] / out["python_import_trio_cpu_s"]
    print(f"  start: hello {out['ironflow_run_hello_s'] * 1000:.0f} ms, import trio "
          f"{out['python_import_trio_s'] * 1000:.0f} ms, ratio {out['ratio']:.2f}; cpu "
          f"{out['ironflow_run_hello_cpu_s'] * 1000:.0f} vs "
          f"{out['python_import_trio_cpu_s'] * 1000:.0f} ms, ratio {out['cpu_ratio']:.2f} "
          f"(min of {runs})", flush=True)
    return out


def measure_rss(tmp: Path, stores: Sequence[str], redis: Redis | None, n: int = 10_000) -> dict:
    path = tmp / f"rss-fanout-{n}.lua"
    path.write_text(loop_flow("fanout", n))
    out = {}
    for store in stores:
        env = store_env(store, tmp, redis)
        out[store] = timed(run_command(path, env), env)[1]
        print(f"  peak RSS fan-out {n} {store:<6} {out[store]:.0f} MiB", flush=True)
    return out


_API_LINE = re.compile(r"^(ironflow serve|starlette reference)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def measure_api(requests: int, concurrency: int) -> dict:
    out = {}
    for store in ("memory", "json"):
        proc = subprocess.run(
            [sys.executable, str(BENCH / "api_load.py"), "--store", store,
             "--requests", str(requests), "--concurrency", str(concurrency)],
            capture_output=True, text=True)
        rows = {}
        for line in proc.stdout.splitlines():
            match = _API_LINE.match(line)
            if match:
                rows[match.group(1)] = {"rps": float(match.group(2)), "p50_ms": float(match.group(3)),
                                        "p99_ms": float(match.group(4))}
        if len(rows) != 2:
            raise SystemExit(f"api_load failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
        ours, ref = rows["ironflow serve"], rows["starlette reference"]
        failures = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
        out[store] = {"ironflow": ours, "reference": ref, "ratio": ours["rps"] / ref["rps"],
                      "failures": failures}
        for line in failures:  # e.g. 503s when load slots wait longer than 1 s
            print(f"  api {store}: {line}", flush=True)
        print(f"  api {store:<6} {ours['rps']:.0f} req/s (p99 {ours['p99_ms']:.0f} ms) vs "
              f"reference {ref['rps']:.0f} req/s (p99 {ref['p99_ms']:.0f} ms): "
              f"{out[store]['ratio'] * 100:.0f} %", flush=True)
    return out


PARTS = ("steps", "linear", "validate", "start", "rss", "api")


def run_suite(*, reps: int, quick: bool, linear: bool, api: bool,
              stores: Sequence[str] = STORES, parts: Sequence[str] = PARTS) -> dict:
    """Every whole-command measurement; ``quick`` shrinks sizes for a smoke run."""
    sizes = (50, 200) if quick else (500, 5000)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="ironflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        redis = Redis(tmp) if "redis" in stores else None
        try:
            if "steps" in parts:
                print(f"whole command, per added step ({sizes[0]} -> {sizes[1]}, "
                      f"min of {reps}):", flush=True)
                results["steps"] = measure_steps(tmp, stores, sizes, reps, redis)
            if linear and "linear" in parts:
                big = (5000, 50_000)
                print(f"linearity ({big[0]} -> {big[1]}, memory and JSON):", flush=True)
                results["linear"] = measure_steps(tmp, [s for s in stores if s != "redis"],
                                                  big, max(1, reps // 2), None, unbounded=True)
            if "validate" in parts:
                results["validate"] = measure_validate(tmp, reps, 200 if quick else 5000)
            if "start" in parts:
                results["start"] = measure_start(tmp, 3 if quick else 10)
            if "rss" in parts:
                results["rss"] = measure_rss(tmp, stores, redis, 200 if quick else 10_000)
            if api and "api" in parts:
                results["api"] = measure_api(100 if quick else 500, 10 if quick else 50)
        finally:
            if redis is not None:
                redis.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import signal

    # SIGTERM unwinds like Ctrl-C, so the redis-server started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--linear", action="store_true", help="also 5,000 -> 50,000 steps")
    parser.add_argument("--api", action="store_true", help="also the REST API load test")
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--parts", default=",".join(PARTS), help="subset of " + ",".join(PARTS))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    results = run_suite(reps=1 if args.quick else args.reps, quick=args.quick,
                        linear=args.linear, api=args.api, stores=args.stores.split(","),
                        parts=args.parts.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
