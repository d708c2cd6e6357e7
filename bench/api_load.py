"""Load test for ``ironflow serve``: N ``POST /flows/run`` from C concurrent clients.

    uv run python bench/api_load.py [--requests 500] [--concurrency 50] [--store json|memory]

Starts ``ironflow serve`` on a loopback port with a fresh store, sends the
requests (each a one-step inline flow that waits for its run), then checks
that no response was a 5xx and that every run is recorded exactly once and
succeeded. For reference, the same load goes to a trivial Starlette endpoint
served by the same stack (Hypercorn's trio worker, through
``ironflow_core.api.server.serve_asgi``) in its own process. Prints requests
per second and p50/p99 latency for both. Loopback only; bounded by its
arguments. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

API_KEY = "bench-api-key-0123456789"
FLOW = """
local flow = Flow.new("bench")
flow:step("greet", nodes.template_render({ template = "Hello, ${ctx.n}!", output_key = "greeting" }))
return flow
"""
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


# ---------------------------------------------------------------- reference server
def reference_server() -> None:
    """A trivial Starlette endpoint on the same stack; prints its URL on stderr."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ironflow_core.api.server import bind_listener, serve_asgi

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"run_id": "x", "flow_name": "bench", "status": "success",
                             "n": body.get("context", {}).get("n")})

    app = Starlette(routes=[Route("/flows/run", echo, methods=["POST"])])
    sock = bind_listener("127.0.0.1", 0)

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(lambda task_status: serve_asgi(
                app, sock, shutdown_trigger=stop.wait, task_status=task_status))
            print(f"reference listening on {url}", file=sys.stderr, flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    stop.set()
                    break

    trio.run(main)


# ---------------------------------------------------------------- processes
def start(command: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    err_path = cwd / f"server-{time.monotonic_ns()}.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = _LISTENING.search(err_path.read_text(errors="replace"))
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start:\n{err_path.read_text(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------- load
async def load(url: str, requests: int, concurrency: int) -> dict:
    """``requests`` POSTs from ``concurrency`` clients, each with its own connection."""
    import ssl

    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    run_ids: list[str] = []
    counter = iter(range(requests))
    # Clients are built before the clock starts: building one costs ~50 ms of CPU
    # (an SSL context), which would otherwise be measured as server latency.
    tls = ssl.create_default_context()
    clients = [httpx.AsyncClient(base_url=url, timeout=120, verify=tls,
                                 headers={"X-API-Key": API_KEY}) for _ in range(concurrency)]

    async def worker(client: httpx.AsyncClient) -> None:
        async with client:
            for n in counter:
                began = time.perf_counter()
                response = await client.post("/flows/run",
                                             json={"source": FLOW, "context": {"n": n}})
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    run_ids.append(response.json()["run_id"])

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(worker, client)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "elapsed": elapsed,
        "rps": requests / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": statuses,
        "run_ids": run_ids,
    }


async def recorded_runs(url: str) -> list[dict]:
    """Every run summary in the server's store, page by page."""
    import httpx

    runs: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 headers={"X-API-Key": API_KEY}) as client:
        after = None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            page = (await client.get("/runs", params=params)).json()
            runs += page["runs"]
            if not page["has_more"]:
                return runs
            after = page["next_cursor"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--store", choices=["json", "memory"], default="json",
                        help="state store of the server under test (default json)")
    parser.add_argument("--reference-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_server:
        reference_server()
        return 0
    ironflow = shutil.which("ironflow", path=str(Path(sys.executable).parent)) or "ironflow"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IRONFLOW_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(IRONFLOW_API_KEY=API_KEY, IRONFLOW_LOG="warn", IRONFLOW_STORE=args.store)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ironflow-bench-") as tmp:
        root = Path(tmp)
        results = {}
        server, url = start([ironflow, "serve", "--host", "127.0.0.1", "--port", "0",
                             "--store-dir", str(root / "store")], env, root)
        try:
            results["ironflow serve"] = trio.run(load, url, args.requests, args.concurrency)
            runs = trio.run(recorded_runs, url)
        finally:
            stop(server)
        reference, ref_url = start([sys.executable, __file__, "--reference-server"], env, root)
        try:
            results["starlette reference"] = trio.run(load, ref_url, args.requests,
                                                      args.concurrency)
        finally:
            stop(reference)

    ours = results["ironflow serve"]
    if any(status >= 500 for status in ours["statuses"]):
        failures.append(f"5xx responses: {ours['statuses']}")
    if ours["statuses"] != {200: args.requests}:
        failures.append(f"not every request got 200: {ours['statuses']}")
    ids = [r["id"] for r in runs]
    if len(ids) != len(set(ids)) or sorted(ids) != sorted(ours["run_ids"]):
        failures.append(f"recorded runs ({len(ids)}) differ from the replies "
                        f"({len(ours['run_ids'])})")
    if any(r["status"] != "success" for r in runs):
        failures.append("some recorded runs did not succeed")

    print(f"{args.requests} POST /flows/run, {args.concurrency} concurrent clients, "
          f"{args.store} store, loopback, {os.cpu_count()} CPU(s)")
    print(f"{'server':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for name, r in results.items():
        print(f"{name:<22}{r['rps']:>9.1f}{r['p50']:>9.1f}{r['p99']:>9.1f}  {r['statuses']}")
    print(f"runs recorded: {len(ids)} (distinct {len(set(ids))}), "
          f"all success: {all(r['status'] == 'success' for r in runs)}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
