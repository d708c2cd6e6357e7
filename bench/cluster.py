"""Shared pieces of the scale-out benchmarks: a loopback redis-server and worker processes.

Used by ``bench/kill_storm.py``, ``bench/scale.py`` and the short kill storm in
``tests/store_redis/test_kill_storm.py``. Workers are real ``ironflow worker``
subprocesses with ``IRONFLOW_QUEUE=redis`` and ``IRONFLOW_STORE=redis``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """A throwaway ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not on PATH")
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory),
             "--logfile", str(directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, decode_responses=True)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def ironflow_command() -> list[str]:
    script = Path(sys.executable).with_name("ironflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("ironflow")
    assert found, "the ironflow console script is not installed"
    return [found]


def cluster_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRONFLOW_", "REDIS_"))}
    env.update(IRONFLOW_QUEUE="redis", IRONFLOW_STORE="redis", REDIS_URL=url,
               IRONFLOW_LOG="warn", IRONFLOW_PROGRESS="off", IRONFLOW_LUA_MAX_INSTRUCTIONS="0",
               IRONFLOW_LUA_MAX_SECONDS="0")
    env.update(extra)
    return env


class Workers:
    """A set of ``ironflow worker`` subprocesses that can be killed and replaced."""

    def __init__(self, directory: Path, env: dict[str, str], *, concurrency: int = 4) -> None:
        self.directory = directory
        self.env = env
        self.concurrency = concurrency
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started = 0

    def start(self) -> str:
        self.started += 1
        name = f"worker-{self.started}"
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [*ironflow_command(), "worker", "--name", name,
             "--concurrency", str(self.concurrency)],
            env=self.env, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()
        return name

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self, timeout: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


async def submit_many(url: str, flow_path: Path, contexts: list[dict[str, Any]],
                      env: dict[str, str]) -> list[str]:
    """Record and enqueue one run per context, in this process; returns the run IDs."""
    from ironflow_core.engine import prepare_run
    from ironflow_core.loading import load_flow
    from ironflow_core.queues.select import open_queue
    from ironflow_core.queues.submit import submit_run
    from ironflow_core.registry import default_registry
    from ironflow_core.stores.select import open_store

    registry = default_registry()
    store = open_store(registry, env)
    queue = open_queue(registry, env)
    flow = load_flow(str(flow_path), registry=registry, env=env)
    ids = []
    try:
        for context in contexts:
            executor = prepare_run(flow, store=store, registry=registry, context=context,
                                   env=env, plugin_observers=False)
            ids.append((await submit_run(executor, queue)).id)
    finally:
        await queue.aclose()
        await store.aclose()
    return ids
