"""Start ``ironflow serve`` as a real subprocess on a loopback port and talk to it.

The server is started with ``--port 0`` and announces the port it bound on
stderr, so tests never race for a "free" port. Its stderr goes to a file the
tests can read (and that cannot fill a pipe and stall the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

API_KEY = "test-api-key-0123456789"
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def ironflow_command() -> list[str]:
    script = Path(sys.executable).with_name("ironflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("ironflow")
    assert found, "the ironflow console script is not installed"
    return [found]


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process environment minus every setting the server reads."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRONFLOW_", "REDIS_")) and k not in (
               "HOST", "PORT", "FLOWS_DIR", "MAX_BODY", "RUST_LOG")}
    env["IRONFLOW_LOG"] = "warn"
    env.update(overrides)
    return env


class ServerProcess:
    def __init__(self, cwd: Path, *, env: dict[str, str], args: list[str] | None = None,
                 api_key: str | None = API_KEY) -> None:
        self.cwd = cwd
        self.env = env
        self.args = args or []
        self.api_key = api_key
        self.store_dir = cwd / "store"
        self.stderr_path = cwd / f"serve-{time.monotonic_ns()}.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> ServerProcess:
        command = [*ironflow_command(), "serve", "--host", "127.0.0.1", "--port", "0",
                   "--store-dir", str(self.store_dir), *self.args]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env,
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.stderr())
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"ironflow serve exited early:\n{self.stderr()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"ironflow serve did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def client(self, *, auth: bool = True, **kwargs: Any) -> httpx.Client:
        headers = dict(kwargs.pop("headers", {}))
        if auth and self.api_key:
            headers.setdefault("X-API-Key", self.api_key)
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def run_cli(args: list[str], *, cwd: Path, env: dict[str, str],
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ironflow_command(), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_error(response: httpx.Response, status: int, code: str,
                 message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    if message is not None:
        assert body["error"] == message
    return body


def post_in_background(pool: ThreadPoolExecutor, server: ServerProcess, body: dict,
                       key: str) -> tuple[Any, str]:
    """POST /flows/run from another thread; the idempotency key tells us the run id."""

    def send() -> httpx.Response:
        with server.client() as c:
            return c.post("/flows/run", json=body, headers={"Idempotency-Key": key})

    return pool.submit(send), "idem-" + hashlib.sha256(key.encode()).hexdigest()


def wait_for_run(client: httpx.Client, run_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/runs/{run_id}")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never appeared")


def read_sse(client: httpx.Client, run_id: str, headers: dict | None = None,
             params: dict | None = None) -> list[dict]:
    """Every frame of the stream, until the server closes it."""
    frames: list[dict] = []
    with client.stream("GET", f"/runs/{run_id}/events", headers=headers or {},
                       params=params or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict = {}
        for line in response.iter_lines():
            if not line:
                if frame:
                    frames.append(frame)
                frame = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value
    return frames
